"""The bounded error log of a job: the first and the most recent error records.

A job that keeps failing under ``CONTINUE`` must not hold every error it ever
recorded: ``JobState.errors`` keeps the first :data:`ERROR_HEAD` records and
the most recent ``history_limit`` ones, dropping from the middle; each
routine's state keeps exact counts by exception type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from flowforge.exceptions import JobFailedError
from flowforge.record import ErrorRecord, RoutineState

if TYPE_CHECKING:
    from flowforge.record import Delivery

__all__ = [
    "ERROR_HEAD",
    "add_error",
    "failing_record",
    "failure",
    "new_errors",
    "trim_errors",
]

ERROR_HEAD: Final = 100
"""How many of a job's first error records are always kept."""


def add_error(
    errors: list[ErrorRecord],
    states: Mapping[str, RoutineState],
    record: ErrorRecord,
    limit: int,
    heads: dict[str, int] | None,
) -> dict[str, int] | None:
    """Add ``record`` to ``errors`` and its routine's state, keeping the bound.

    ``limit`` is how many recent records are kept after the first
    :data:`ERROR_HEAD`. ``heads`` counts each routine's records among the
    first ones once the log is full (``None`` before); the new value is
    returned.
    """
    state = states[record.routine_id]
    errors.append(record)
    state.errors.append(record)
    counts = state.error_counts
    counts[record.error_type] = counts.get(record.error_type, 0) + 1
    if len(errors) <= ERROR_HEAD + limit:
        return heads
    if heads is None:
        heads = {}
        for kept in errors[:ERROR_HEAD]:
            heads[kept.routine_id] = heads.get(kept.routine_id, 0) + 1
    dropped = errors.pop(ERROR_HEAD)
    # The routine's list holds its records in the job's order: the dropped
    # one comes right after the routine's records among the first ones.
    del states[dropped.routine_id].errors[heads.get(dropped.routine_id, 0)]
    return heads


def trim_errors(errors: list[ErrorRecord], limit: int) -> None:
    """Drop records from the middle of ``errors`` to keep its bound, in place."""
    extra = len(errors) - ERROR_HEAD - limit
    if extra > 0:
        del errors[ERROR_HEAD : ERROR_HEAD + extra]


def new_errors(
    errors: list[ErrorRecord], total: int, errors_from: int
) -> list[tuple[int, ErrorRecord]]:
    """Return the records numbered ``errors_from`` on, with their numbers.

    Records are numbered in the order they were made, from 0; ``total`` is
    how many were made. A record dropped since is not returned.
    """
    fresh = min(total - errors_from, len(errors))
    if fresh <= 0:
        return []
    return list(enumerate(errors[-fresh:], total - fresh))


def failure(
    job_id: str,
    record: ErrorRecord | None,
    cause: tuple[ErrorRecord, BaseException] | None,
) -> tuple[JobFailedError, BaseException | None]:
    """Return the error that says why job ``job_id`` failed, and its cause.

    ``record`` is the error that failed the job; ``cause`` the live exception
    kept for a record, in the process that ran the job. The cause returned is
    ``None`` when the live exception is not ``record``'s (a loaded job).
    """
    if record is None:
        empty = JobFailedError(
            job_id=job_id,
            routine_id=None,
            slot=None,
            error_type=None,
            error_message=None,
        )
        return empty, None
    live = cause[1] if cause is not None and cause[0] is record else None
    error = JobFailedError(
        job_id=job_id,
        routine_id=record.routine_id,
        slot=record.slot,
        error_type=record.error_type,
        error_message=record.message,
        traceback=None if live is not None else record.traceback,
    )
    return error, live


def failing_record(
    errors: Sequence[ErrorRecord], pending: Sequence[Delivery]
) -> ErrorRecord | None:
    """Return the record of the error that failed a job, from its kept ``errors``.

    A delivery whose failure stopped the job goes back on the ``pending``
    stack, so its record is the one whose delivery is pending. It need not be
    the last record: in the concurrent strategies, deliveries in flight when
    the job failed may record their own (handled) failures after it. A job
    failed by a limit on a delivery that is not pending has its last record.
    """
    if not errors:
        return None
    by_delivery = {(r.seq, r.routine_id): r for r in errors}
    for delivery in reversed(pending):
        found = by_delivery.get((delivery.seq, delivery.routine_id))
        if found is not None:
            return found
    return errors[-1]
