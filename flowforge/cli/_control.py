"""``resume``, ``cancel``, ``recover`` and ``prune``: commands that change jobs."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.text import Text

from flowforge.cli._flow_path import load_flow
from flowforge.cli._output import console, parse_age, report_end
from flowforge.cli._problem import FAILED, CommandError
from flowforge.cli._recovery import recover_with_progress
from flowforge.cli._store_url import open_store
from flowforge.exceptions import JobNotFoundError
from flowforge.job_state import JobStatus
from flowforge.store import Store
from flowforge.ui._report import ENDED

__all__ = ["cancel", "prune", "recover", "resume"]

FLOW_OPTION = click.option(
    "--flow",
    "flow_path",
    required=True,
    metavar="MODULE:ATTR",
    help="The job's flow: a Flow, or a function returning one.",
)


@click.command()
@click.argument("store_url", metavar="STORE")
@click.argument("job_id")
@FLOW_OPTION
@click.option("--force", is_flag=True, help="Resume on a changed flow definition.")
def resume(store_url: str, job_id: str, flow_path: str, force: bool) -> None:
    """Resume a paused, failed or interrupted job until it ends.

    A failed job runs its failed delivery again first. Exits 1 if the job
    fails again.
    """
    store = open_store(store_url)
    flow = load_flow(flow_path)
    report_end(flow.resume(job_id, store=store, force=force))


@click.command()
@click.argument("store_url", metavar="STORE")
@click.argument("job_id")
@FLOW_OPTION
def cancel(store_url: str, job_id: str, flow_path: str) -> None:
    """Cancel a paused job: drop its pending deliveries, for good.

    A job running in a live process cannot be cancelled from outside it, and
    a completed, failed or cancelled job has already ended.
    """
    store = open_store(store_url)
    flow = load_flow(flow_path)
    job = store.load(job_id)
    if job.status in (JobStatus.RUNNING, JobStatus.PENDING):
        raise CommandError(
            f"job {job_id!r} is {job.status.value} (owner "
            f"{store.get(job_id).owner!r}): only a paused job can be cancelled "
            "from outside the process that runs it"
        )
    flow.cancel(job, store=store)
    report_end(job)


@click.command()
@click.argument("store_url", metavar="STORE")
@FLOW_OPTION
def recover(store_url: str, flow_path: str) -> None:
    """Finish every job of the flow that a dead process left running.

    Each abandoned job (its owner's process is gone or its lease expired) is
    resumed in turn, with a progress bar when there are many, then a
    summary. Jobs a live process runs are left alone. Exits 1 if a job
    failed or could not be recovered.
    """
    store = open_store(store_url)
    flow = load_flow(flow_path)
    summary = recover_with_progress(flow, store, console(err=True))
    console().print(Text(summary.text()))
    if summary.failed or summary.refused:
        raise click.exceptions.Exit(FAILED)


@click.command()
@click.argument("store_url", metavar="STORE")
@click.option("--older-than", required=True, metavar="AGE", help="Such as 7d or 12h.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in ENDED]),
    help="Only ended jobs in this status (default: any ended status).",
)
@click.option("--dry-run", is_flag=True, help="List what would go; delete nothing.")
def prune(store_url: str, older_than: str, status: str | None, dry_run: bool) -> None:
    """Delete ended jobs not updated for --older-than.

    Only completed, failed and cancelled jobs are deleted; running, pending
    and paused jobs never are.
    """
    age = parse_age(older_than)
    store = open_store(store_url)
    doomed = _prunable(store, datetime.now(UTC) - age, status)
    out = console()
    for job_id in doomed:
        out.print(Text(f"{'would delete' if dry_run else 'deleting'} {job_id}"))
        if not dry_run:
            try:
                store.delete(job_id)
            except JobNotFoundError:  # another process deleted it first
                pass
    verb = "would delete" if dry_run else "deleted"
    out.print(Text(f"{verb} {len(doomed)} jobs older than {older_than}"))


def _prunable(store: Store, cutoff: datetime, status: str | None) -> list[str]:
    return [
        r.job_id
        for r in store.list_jobs(status=status)
        if r.status in ENDED and r.updated_at < cutoff
    ]
