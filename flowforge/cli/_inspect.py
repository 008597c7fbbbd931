"""``flowforge jobs`` and ``flowforge show``: read a store, change nothing."""

from __future__ import annotations

import json
from typing import cast

import click
from rich.table import Table
from rich.text import Text

from flowforge.cli._output import console, parse_since, printable, seconds_text
from flowforge.cli._store_url import open_store
from flowforge.exceptions import FlowForgeError
from flowforge.job_state import JobState, JobStatus
from flowforge.store import JobRecord, Store
from flowforge.ui._report import job_report, record_item

__all__ = ["jobs", "show"]

_STATUS_STYLES = {
    "completed": "green",
    "failed": "bold red",
    "running": "cyan",
    "pending": "cyan",
    "paused": "yellow",
    "cancelled": "dim",
}
STATUSES = [status.value for status in JobStatus]
_NUMBERS = ("DELIVERIES", "ERRORS", "RUNS", "RETRIES")


@click.command()
@click.argument("store_url", metavar="STORE")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in it.")
@click.option("--flow", "flow_id", metavar="ID", help="Only jobs of this flow id.")
@click.option("--since", metavar="AGE|TIME", help="Updated since: 2h, 7d, or ISO time.")
@click.option("--limit", default=50, show_default=True, help="Newest jobs shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead.")
def jobs(
    store_url: str,
    status: str | None,
    flow_id: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List a store's jobs, newest update first.

    Shows id, flow, status, last update, deliveries and errors. With --json,
    one JSON object per line.
    """
    store = open_store(store_url)
    records = store.list_jobs(flow_id=flow_id, status=status)
    if since is not None:
        cutoff = parse_since(since)
        records = [r for r in records if r.updated_at >= cutoff]
    shown = records[::-1][: max(limit, 0)]
    items = [record_item(r, _load_quietly(store, r)) for r in shown]
    if as_json:
        for item in items:
            click.echo(json.dumps(item))
        return
    _print_table(items, len(records))


def _load_quietly(store: Store, record: JobRecord) -> JobState | None:
    try:
        return store.load(record.job_id)
    except FlowForgeError:  # deleted meanwhile, or unreadable: listed without counts
        return None


def _print_table(items: list[dict[str, object]], total: int) -> None:
    table = Table(box=None, header_style="bold")
    for name in ("JOB", "FLOW", "STATUS", "UPDATED", "DELIVERIES", "ERRORS"):
        table.add_column(name, justify="right" if name in _NUMBERS else "left")
    for item in items:
        status = str(item["status"])
        table.add_row(
            Text(printable(item["job_id"])),
            Text(printable(item["flow_id"])),
            Text(status, style=_STATUS_STYLES.get(status, "")),
            Text(str(item["updated_at"])),
            Text(str(item.get("deliveries", "?"))),
            Text(str(item.get("errors", "?"))),
        )
    out = console()
    if items:
        out.print(table)
    out.print(Text(f"{len(items)} of {total} jobs shown", style="dim"))


@click.command()
@click.argument("store_url", metavar="STORE")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.option("--history", default=20, show_default=True, help="Last records shown.")
def show(store_url: str, job_id: str, as_json: bool, history: int) -> None:
    """Show one job: status, times, entry, pending work, errors, figures.

    Errors come with their tracebacks, and with the failed payload while
    the failed delivery is still pending (a failed job keeps it to run again
    on resume). Per-routine figures are deliveries, runs, retries and the
    p50 and p95 handler times.
    """
    report = job_report(open_store(store_url).load(job_id))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_report(report, history)


def _print_report(report: dict[str, object], history: int) -> None:
    out = console()
    status = str(report["status"])
    title = Text(f"job {report['job_id']} ", style="bold")
    title.append(status, style=_STATUS_STYLES.get(status, ""))
    out.print(title)
    for key in ("flow_id", "created_at", "started_at", "finished_at"):
        out.print(Text(f"  {key.replace('_', ' ')}: {report[key] or '-'}"))
    entry = f"{report['entry_routine_id']} ({report['entry_slot'] or 'call'})"
    out.print(Text(f"  entry: {entry} {json.dumps(report['entry_params'])}"))
    out.print(Text(f"  deliveries: {report['deliveries']}"))
    _print_pending(report)
    _print_errors(report)
    _print_routines(report)
    _print_history(report, history)


def _items(report: dict[str, object], key: str) -> list[dict[str, object]]:
    return cast(list[dict[str, object]], report[key])  # job_report's shape


def _print_pending(report: dict[str, object]) -> None:
    pending = _items(report, "pending")
    out = console()
    out.print(Text(f"\npending deliveries ({len(pending)})", style="bold"))
    for item in pending:
        mark = "  (failed; runs again on resume)" if item["failed"] else ""
        line = f"  #{item['seq']} {item['routine_id']}.{item['slot'] or 'call'}"
        out.print(Text(f"{line} {json.dumps(item['data'])}{mark}"))


def _print_errors(report: dict[str, object]) -> None:
    errors = _items(report, "errors")
    out = console()
    total = report.get("error_count", len(errors))
    kept = "" if total == len(errors) else f", {len(errors)} kept"
    out.print(Text(f"\nerrors ({total}{kept})", style="bold"))
    for item in errors:
        where = f"{item['routine_id']}.{item['slot'] or 'call'}"
        head = f"  {item['at']} {where} #{item['seq']} attempt {item['attempt']}: "
        out.print(Text(head + f"{item['error_type']}: {item['message']}", "red"))
        if item["payload"] is not None:
            out.print(Text(f"    payload: {json.dumps(item['payload'])}"))
        for line in str(item["traceback"]).rstrip().splitlines():
            out.print(Text(f"    {line}", style="dim"))


def _print_routines(report: dict[str, object]) -> None:
    table = Table(box=None, header_style="bold", title_justify="left")
    for name in ("ROUTINE", "STATUS", "DELIVERIES", "RUNS", "RETRIES", "ERRORS"):
        table.add_column(name, justify="right" if name in _NUMBERS else "left")
    table.add_column("P50", justify="right")
    table.add_column("P95", justify="right")
    for item in _items(report, "routines"):
        cells = [item.get(key, "-") for key in ("routine_id", "status", "deliveries")]
        cells += [item.get(key, "-") for key in ("runs", "retries", "errors")]
        times = [seconds_text(item.get("p50")), seconds_text(item.get("p95"))]
        table.add_row(*(Text(printable(cell)) for cell in cells + times))
    out = console()
    out.print(Text("\nroutines", style="bold"))
    out.print(table)


def _print_history(report: dict[str, object], limit: int) -> None:
    records = _items(report, "history")
    out = console()
    shown = records[-limit:] if limit > 0 else []
    total = report["history_total"]
    out.print(Text(f"\nhistory (last {len(shown)} of {total})", style="bold"))
    for item in shown:
        where = f"{item['routine_id']}.{item['slot'] or 'call'}"
        line = f"  #{item['seq']} {item['started_at']} {where} {item['outcome']}"
        out.print(Text(f"{line} {seconds_text(item['duration'])}"))
