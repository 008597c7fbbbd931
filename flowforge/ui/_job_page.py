"""The job page: status and times, timeline, diagram, errors, pending work, figures."""

from __future__ import annotations

import json
from typing import Final
from urllib.parse import quote

from flowforge.flow import Flow
from flowforge.job_state import JobState, JobStatus
from flowforge.ui._charts import timeline
from flowforge.ui._drawing import draw_svg
from flowforge.ui._html import badge, seconds, table, text, when
from flowforge.ui._report import error_items, pending_items, plain, routine_items

__all__ = ["ACTIONS", "actions_for", "job_body", "routine_status"]

ACTIONS: Final = {
    "resume": "Resume",
    "retry": "Retry the failed delivery",
    "cancel": "Cancel",
}
"""Actions the inspector can take, by name, with their button labels."""
HISTORY_SHOWN: Final = 200


def actions_for(job: JobState) -> list[str]:
    """Return the actions the job's status allows."""
    if job.status is JobStatus.FAILED:
        return ["retry"]
    if job.status is JobStatus.PAUSED:
        return ["resume", "cancel"]
    return []


def routine_status(job: JobState) -> dict[str, str]:
    """Return what each routine did, for the diagram: its status, or ``waiting``.

    A routine with a pending delivery (or a join still waiting) in a job that
    has not ended for good is ``waiting``, unless it failed.
    """
    status = {rid: state.status.value for rid, state in job.routine_states.items()}
    if not job.is_finished:
        waiting = {d.routine_id for d in job.pending}
        waiting |= {routine_id for routine_id, _ in job.waiting_joins}
        for routine_id in waiting:
            if status.get(routine_id) != "failed":
                status[routine_id] = "waiting"
    return status


def _json(value: object) -> str:
    return text(json.dumps(plain(value), indent=2, ensure_ascii=False))


def _facts(job: JobState) -> str:
    took = "-"
    if job.started_at is not None and job.finished_at is not None:
        took = seconds((job.finished_at - job.started_at).total_seconds())
    entry = f"{job.entry_routine_id}.{job.entry_slot or 'call'}"
    facts = [
        ("Flow", text(job.flow_id)),
        ("Created", when(job.created_at)),
        ("Started", when(job.started_at)),
        ("Finished", when(job.finished_at)),
        ("Duration", text(took)),
        ("Deliveries", str(job.delivery_count)),
        ("Entry", f"<code>{text(entry)}</code>"),
        ("History kept", f"{len(job.get_execution_history())} of {job.history_total}"),
    ]
    items = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    params = f'<pre class="payload">{_json(job.entry_params)}</pre>'
    return (
        f'<dl class="facts">{items}</dl>'
        f'<details data-key="params"><summary>Entry params</summary>{params}</details>'
    )


def _diagram(job: JobState, flow: Flow | None) -> str:
    if flow is None:
        return (
            '<p class="muted">Name the flow to see its diagram: '
            f"<code>flowforge ui STORE --flow module:attr</code> (flow id "
            f"<code>{text(job.flow_id)}</code>).</p>"
        )
    legend = "".join(
        f'<span class="legend-item ff-status-{name}">{name}</span>'
        for name in ("completed", "failed", "waiting", "skipped")
    )
    return (
        f'<div class="diagram">{draw_svg(flow, routine_status(job))}</div>'
        f'<p class="legend">{legend}</p>'
    )


def _errors(job: JobState) -> str:
    items = error_items(job)
    if not items:
        return '<p class="muted">No errors.</p>'
    blocks = []
    if len(items) < job.error_count:
        blocks.append(
            f'<p class="muted">The job keeps {len(items):,} of its '
            f"{job.error_count:,} errors: the first and the most recent.</p>"
        )
    for item in items:
        where = f"{item['routine_id']}.{item['slot'] or 'call'}"
        title = "Payload (its repr: it cannot be saved)"
        title = title if item["payload_is_repr"] else "Payload"
        payload = (
            f'<h4>{title}</h4><pre class="payload">{_json(item["payload"])}</pre>'
            if item["payload"] is not None
            else ""
        )
        blocks.append(
            f'<article class="error"><header><b>{text(item["error_type"])}</b> in '
            f"<code>{text(where)}</code> · delivery #{text(item['seq'])} · attempt "
            f"{text(item['attempt'])} · {text(item['at'])}</header>"
            f'<p class="message">{text(item["message"])}</p>{payload}'
            f'<details open data-key="traceback-{text(item["seq"])}">'
            "<summary>Traceback</summary>"
            f'<pre class="traceback">{text(item["traceback"])}</pre></details>'
            "</article>"
        )
    return "".join(blocks)


def _pending(job: JobState) -> str:
    items = pending_items(job)
    if not items:
        return '<p class="muted">Nothing pending.</p>'
    rows = [
        [
            f"#{item['seq']}"
            + (
                ' <span class="badge status-failed">failed</span>'
                if item["failed"]
                else ""
            ),
            f"<code>{text(item['routine_id'])}.{text(item['slot'] or 'call')}</code>",
            text(item["attempt"]),
            f'<pre class="payload">{_json(item["data"])}</pre>',
        ]
        for item in items
    ]
    return table(["Delivery", "To", "Attempt", "Payload"], rows, css="pending")


def _waiting_groups(job: JobState) -> str:
    """Return the correlated joins' incomplete groups: key, inputs heard, payloads."""
    rows = []
    for (routine_id, slot), groups in job.waiting_groups.items():
        inputs = job.slot_buffers[(routine_id, slot)]["groups"]
        assert isinstance(inputs, dict)  # noqa: S101  waiting_groups checked it
        for key, heard in groups.items():
            rows.append(
                [
                    f"<code>{text(routine_id)}.{text(slot)}</code>",
                    f"<code>{_json(key)}</code>",
                    text(", ".join(f"#{index}" for index in sorted(heard))),
                    f'<pre class="payload">{_json(inputs[key])}</pre>',
                ]
            )
    return table(["Join", "Key", "Heard from", "Inputs"], rows, css="groups")


def _routines(job: JobState) -> str:
    rows = [
        [
            f"<code>{text(item['routine_id'])}</code>",
            badge(str(item["status"])),
            text(item["deliveries"]),
            text(item.get("runs", "-")),
            text(item.get("retries", "-")),
            text(item["errors"]),
            text(seconds(item.get("p50"))),
            text(seconds(item.get("p95"))),
        ]
        for item in routine_items(job)
    ]
    headers = ["Routine", "Status", "Count", "Runs", "Retries", "Errors", "p50", "p95"]
    return table(headers, rows, css="figures")


def _history(job: JobState) -> str:
    records = job.get_execution_history()[-HISTORY_SHOWN:]
    rows = [
        [
            f"#{r.seq}",
            f"<code>{text(r.routine_id)}.{text(r.slot or 'call')}</code>",
            f'<span class="outcome outcome-{text(r.outcome)}">{text(r.outcome)}</span>',
            str(r.attempt),
            when(r.started_at),
            text(seconds(r.duration)),
        ]
        for r in reversed(records)
    ]
    headers = ["Delivery", "Routine", "Outcome", "Attempt", "Started", "Took"]
    return (
        f'<details data-key="history"><summary>Last {len(records)} of '
        f"{job.history_total} "
        f"deliveries</summary>{table(headers, rows, css='history')}</details>"
    )


def _actions(job: JobState, base: str, flow: Flow | None, allowed: bool) -> str:
    names = actions_for(job)
    if not names:
        return ""
    if not allowed:
        return (
            '<p class="note">Read-only: start the inspector with '
            "<code>--allow-actions</code> to resume, retry or cancel jobs.</p>"
        )
    if flow is None:
        return (
            '<p class="note">To act on this job, start the inspector with '
            f"<code>--flow</code> naming flow <code>{text(job.flow_id)}</code>.</p>"
        )
    job_id = quote(job.job_id, safe="")
    links = "".join(
        f'<a class="button action-{name}" href="{text(base)}/confirm?'
        f'action={name}&amp;job={text(job_id)}">{ACTIONS[name]}</a>'
        for name in names
    )
    return f'<div class="actions">{links}</div>'


def _waiting_section(job: JobState) -> list[tuple[str, str]]:
    """Return the waiting groups' section, for a job that has any."""
    count = sum(len(groups) for groups in job.waiting_groups.values())
    return [(f"Waiting groups ({count})", _waiting_groups(job))] if count else []


def job_body(job: JobState, *, base: str, flow: Flow | None, allowed: bool) -> str:
    """Return the job page's body."""
    sections = [
        ("Timeline", timeline(job.get_execution_history())),
        ("Flow", _diagram(job, flow)),
        (f"Errors ({job.error_count})", _errors(job)),
        (f"Pending ({len(job.pending)})", _pending(job)),
        *_waiting_section(job),
        ("Routines", _routines(job)),
        ("History", _history(job)),
    ]
    parts = "".join(
        f'<section id="{text(title.split()[0].lower())}"><h2>{text(title)}</h2>'
        f"{content}</section>"
        for title, content in sections
    )
    return (
        f'<nav class="crumbs"><a href="{text(base)}/">Jobs</a> / '
        f"<span>{text(job.job_id)}</span></nav>"
        f'<section class="job-head"><h1><span class="job-id">{text(job.job_id)}'
        f"</span> {badge(job.status.value)}</h1>"
        f"{_actions(job, base, flow, allowed)}{_facts(job)}</section>{parts}"
    )
