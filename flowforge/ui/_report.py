"""A stored job as plain JSON data: what the inspector shows and ``show --json`` prints.

Standard library only, so that the ``flowforge`` command uses it without the
inspector's libraries. Payloads are user data of any type: values JSON
cannot hold are shown by their ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from flowforge.exceptions import UnknownPortError
from flowforge.job_state import JobState, JobStatus
from flowforge.store import JobRecord

__all__ = [
    "ENDED",
    "error_items",
    "failed_seq",
    "history_items",
    "job_report",
    "pending_items",
    "plain",
    "record_item",
    "routine_items",
    "time_text",
]

ENDED: Final = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
_SCALARS: Final = (str, int, float, bool, type(None))


def plain(value: object) -> object:
    """Return ``value`` as JSON data: containers kept, anything else by ``repr``."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return repr(value)


def time_text(value: datetime | None) -> str | None:
    """Return an aware time as ISO 8601 text, to the second (``None`` stays)."""
    return None if value is None else value.isoformat(timespec="seconds")


def record_item(record: JobRecord, job: JobState | None = None) -> dict[str, object]:
    """Return one line of a job listing; ``job`` adds its counts and times."""
    item: dict[str, object] = {
        "job_id": record.job_id,
        "flow_id": record.flow_id,
        "status": record.status.value,
        "updated_at": time_text(record.updated_at),
        "owner": record.owner,
    }
    if job is not None:
        item["created_at"] = time_text(job.created_at)
        item["deliveries"] = job.delivery_count
        item["errors"] = job.error_count
    return item


def failed_seq(job: JobState) -> int | None:
    """Return the sequence number of the delivery that failed the job, if pending.

    A failed job keeps that delivery on its pending stack (last) to run it
    again on resume, so its payload can still be shown.
    """
    error = job.error
    if error is None or not job.pending or job.pending[-1].seq != error.seq:
        return None
    return error.seq


def pending_items(job: JobState) -> list[dict[str, object]]:
    """Return the job's pending deliveries, the next to run first."""
    failed = failed_seq(job)
    return [
        {
            "seq": d.seq,
            "routine_id": d.routine_id,
            "slot": d.slot,
            "attempt": d.attempt,
            "data": plain(d.data),
            "failed": d.seq == failed,
        }
        for d in reversed(job.pending)
    ]


def error_items(job: JobState) -> list[dict[str, object]]:
    """Return the job's errors, oldest first, with the failed payload if kept.

    The payload is the one the error record kept (its ``repr`` text when it
    could not be saved: ``payload_is_repr``); records from before payloads
    were kept show the pending delivery's data, if it is still pending.
    """
    payloads = {d.seq: d.data for d in job.pending}
    return [
        {
            "routine_id": e.routine_id,
            "slot": e.slot,
            "seq": e.seq,
            "attempt": e.attempt,
            "error_type": e.error_type,
            "message": e.message,
            "traceback": e.traceback,
            "at": time_text(e.at),
            "payload": plain(
                e.payload if e.payload is not None else payloads.get(e.seq)
            ),
            "payload_is_repr": e.payload is not None and not e.payload_saved,
        }
        for e in job.errors
    ]


def history_items(job: JobState) -> list[dict[str, object]]:
    """Return the retained history, oldest first, times as ISO text."""
    return [
        {
            "seq": h.seq,
            "routine_id": h.routine_id,
            "slot": h.slot,
            "outcome": h.outcome,
            "attempt": h.attempt,
            "started_at": h.started_at.isoformat(),
            "duration": h.duration,
        }
        for h in job.get_execution_history()
    ]


def routine_items(job: JobState) -> list[dict[str, object]]:
    """Return each routine's status and figures (count, retries, p50, p95)."""
    items = []
    for routine_id, state in job.routine_states.items():
        item: dict[str, object] = {
            "routine_id": routine_id,
            "status": state.status.value,
            "deliveries": state.deliveries,
            "errors": sum(state.error_counts.values()),
        }
        try:
            figures = job.tracker.get_routine_performance(routine_id)
        except UnknownPortError:  # the routine buffered or was skipped only
            figures = None
        if figures is not None:
            item["runs"] = figures.runs
            item["retries"] = figures.retries
            item["p50"] = figures.p50_time
            item["p95"] = figures.p95_time
        items.append(item)
    return items


def job_report(job: JobState) -> dict[str, object]:
    """Return everything ``flowforge show`` shows about a job, as JSON data."""
    return {
        "job_id": job.job_id,
        "flow_id": job.flow_id,
        "status": job.status.value,
        "created_at": time_text(job.created_at),
        "started_at": time_text(job.started_at),
        "finished_at": time_text(job.finished_at),
        "entry_routine_id": job.entry_routine_id,
        "entry_slot": job.entry_slot,
        "entry_params": plain(job.entry_params),
        "deliveries": job.delivery_count,
        "history_total": job.history_total,
        "pending": pending_items(job),
        "errors": error_items(job),
        "error_count": job.error_count,
        "routines": routine_items(job),
        "history": history_items(job),
    }
