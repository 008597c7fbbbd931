"""Whether a job's data fits a flow's plan, checked before the job is touched.

A job read from a store or a file names routines, slots and connections by
name and index. Data that parses can still name a routine the flow lacks or a
connection past its end; running it would fail half-way, after the job was
claimed and changed. :func:`misfits` lists every such problem up front, so
that the job is refused (and left as it is) instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from flowforge.engine.correlate import groups_misfit
from flowforge.engine.plan import is_source
from flowforge.error_handler import ErrorHandler, ErrorStrategy

if TYPE_CHECKING:
    from flowforge.engine.plan import Plan
    from flowforge.job_state import JobState
    from flowforge.record import Delivery

__all__ = ["MAX_ATTEMPT", "describe", "detach_routed_failures", "misfits"]

MAX_ATTEMPT: Final = 1_000_000
"""The highest retry attempt a stored delivery may have; more is damage."""
SHOWN: Final = 5
"""How many problems a message lists before it only counts the rest."""


def misfits(
    plan: Plan, job: JobState, flow_handler: ErrorHandler | None = None
) -> list[str]:
    """Return one sentence per part of ``job`` that does not fit ``plan``.

    ``flow_handler`` is the flow's error handler: with a routine's own, it
    says how many retries a pending delivery may have had.
    """
    problems = [
        f"pending delivery {d.seq}: {problem}"
        for d in job.pending
        if (problem := _delivery_misfit(plan, d, flow_handler)) is not None
    ]
    problems += [
        f"routine state of unknown routine {rid!r}"
        for rid in job.routine_states
        if rid not in plan.routines
    ]
    problems += [
        f"slot buffer of unknown slot {rid!r}.{slot!r}"
        for rid, slot in job.slot_buffers
        if (rid, slot) not in plan.targets
    ]
    problems += [
        f"slot buffer of correlated join {rid!r}.{slot!r} {problem}"
        for (rid, slot), buffer in job.slot_buffers.items()
        if (target := plan.targets.get((rid, slot))) is not None
        and target.group_sources is not None
        and (problem := groups_misfit(target, buffer)) is not None
    ]
    for (rid, slot), seen in job.join_arrivals.items():
        target = plan.targets.get((rid, slot))
        if target is None or not seen <= target.join_sources:
            problems.append(f"join arrivals of {rid!r}.{slot!r} fit no join there")
    return problems


def detach_routed_failures(job: JobState) -> None:
    """Send ``job``'s pending routed failures to their slots by name, not by route.

    A routed failure's delivery is numbered after the connections of the
    flow it ran on (see :class:`~flowforge.record.Delivery`); on a changed
    flow (a forced resume) that number can name another edge, or none. Such
    a delivery then goes to its routine and slot by name, as an entry does,
    and :func:`misfits` checks that they exist.
    """
    connections = job.flow_shape.get("connections")
    if not isinstance(connections, list):
        return
    for delivery in job.pending:
        if delivery.connection >= len(connections):
            delivery.connection = -1


def _retries(handler: ErrorHandler | None) -> int:
    """Return how many retries ``handler`` gives a delivery: 0 unless RETRY."""
    if handler is None or handler.strategy is not ErrorStrategy.RETRY:
        return 0
    return handler.max_retries


def describe(problems: list[str]) -> str:
    """Return the problems as one sentence, the first few in full."""
    shown = "; ".join(problems[:SHOWN])
    more = len(problems) - SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def _delivery_misfit(
    plan: Plan, delivery: Delivery, flow_handler: ErrorHandler | None
) -> str | None:
    routine = plan.routines.get(delivery.routine_id)
    if routine is None:
        return f"unknown routine {delivery.routine_id!r}"
    if not 0 <= delivery.attempt <= MAX_ATTEMPT:
        return f"attempt {delivery.attempt} is out of range (0 to {MAX_ATTEMPT:,})"
    most = _retries(routine._error_handler or flow_handler)
    if delivery.attempt > most:
        return (
            f"attempt {delivery.attempt} is past the {most} retries the routine's "
            "error handler allows (if you lowered max_retries, raise it to resume)"
        )
    if delivery.slot is None:
        return None if is_source(routine) else "a call of a routine that is no source"
    if delivery.slot not in routine.slots:
        return f"unknown slot {delivery.routine_id!r}.{delivery.slot!r}"
    index = delivery.connection
    if index == -1:
        return None
    if not 0 <= index < len(plan.edges):
        return f"connection {index} does not exist ({len(plan.edges)} connections)"
    edge = plan.edges[index]
    if (edge.target_id, edge.slot_name) != (delivery.routine_id, delivery.slot):
        return f"connection {index} leads to {edge.target_id!r}.{edge.slot_name!r}"
    return None
