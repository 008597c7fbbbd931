"""Turning a handler's emissions into deliveries, and the statuses the loops read.

Every scheduler loop routes emissions the same way: one delivery per edge of
each emitted event, numbered in connection order, the first one on top of the
job's pending stack.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Final

from flowforge.exceptions import ExecutionError

from flowforge.job_state import JobStatus
from flowforge.record import Delivery, RoutineStatus, new_delivery

if TYPE_CHECKING:
    from flowforge.engine.plan import Plan
    from flowforge.job_state import JobState
    from flowforge.types import Payload

__all__ = [
    "DONE",
    "JOB_FAILED",
    "JOB_RUNNING",
    "RUNNING",
    "SKIPPED",
    "limit_reached",
    "refuse_awaitable",
    "request_overflow",
    "route_emissions",
]

# Enum members read once: an attribute of an Enum class is slow to read on
# CPython 3.11, and these are read for every delivery.
RUNNING: Final = RoutineStatus.RUNNING
DONE: Final = RoutineStatus.COMPLETED
SKIPPED: Final = RoutineStatus.SKIPPED
JOB_RUNNING: Final = JobStatus.RUNNING
JOB_FAILED: Final = JobStatus.FAILED


def route_emissions(
    job: JobState,
    plan: Plan,
    routine_id: str,
    emissions: list[tuple[str, Payload]],
    *,
    counted: bool = False,
) -> None:
    """Turn a handler's emissions into deliveries, first one on top of the stack.

    Counts each emission in the job's tracker unless the caller has
    (``counted``).
    """
    counts = job.tracker._counts_by_position()
    routes = plan.routes[routine_id]
    seq = job.next_seq
    created: list[Delivery] = []
    for event, data in emissions:
        route = routes.get(event)
        if route is None:  # defined after this job's plan was made: no edges
            continue
        if not counted:
            counts[route.index] += 1
        for edge in route.edges:
            payload = data if edge.apply is None else edge.apply(data)
            created.append(
                new_delivery(seq, edge.target_id, edge.slot_name, payload, edge.index)
            )
            seq += 1
    job.next_seq = seq
    created.reverse()
    job.pending.extend(created)
    if len(job.pending) > job._max_pending:
        request_overflow(job, len(job.pending))


def request_overflow(job: JobState, pending: int) -> None:
    """Ask the job to fail at its next boundary: it holds too much pending work."""
    if job._stop_request is None:
        limit = job._max_pending
        job._stop_request = (
            JOB_FAILED,
            f"{limit_reached(job)}{limit:,} pending deliveries ({pending:,} are "
            "waiting); a cycle or fan-out makes work faster than it is done. Make "
            "it emit less, or raise Flow(max_pending=...)",
            None,
        )


def refuse_awaitable(result: object) -> None:
    """Fail a plain handler's delivery if it returned an awaitable to no one.

    A thread never awaits, so such work would be dropped without a word (a
    plain function that returns a coroutine, say); the delivery fails instead,
    and the awaitable is closed so that Python does not warn about it.

    Raises:
        ExecutionError: If ``result`` is awaitable.
    """
    if result is not None and inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()
        raise ExecutionError(
            f"the handler returned {type(result).__name__} {result!r}, which a "
            "thread cannot await: declare the handler async def (then the flow "
            "runs on an event loop), or await the work inside it"
        )


def limit_reached(job: JobState) -> str:
    """Return how an error of one of the flow's limits starts, for ``job``."""
    return f"job {job.job_id!r} reached the flow's limit of "
