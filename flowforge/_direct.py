"""The sequential scheduler's direct path, and turning emissions into deliveries.

Most deliveries go along a connection to an override slot that is no join,
and their handler returns. :func:`run_loop` runs those inlined, with fewer
calls and lookups than ``Runtime.prepare`` and ``Runtime.complete``, doing
exactly what they would; anything else, and any failure, goes through them.
:func:`route_emissions` turns a handler's emissions into deliveries for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from flowforge.execution_tracker import COMPLETED, FOLD_AT
from flowforge.job_state import JobStatus
from flowforge.record import (
    Delivery,
    RoutineState,
    RoutineStatus,
    new_delivery,
)

if TYPE_CHECKING:
    from flowforge._context import DeliveryContext
    from flowforge._plan import Plan
    from flowforge.job_state import JobState
    from flowforge.runtime import Runtime
    from flowforge.types import Payload

__all__ = ["run_loop", "route_emissions"]

# Enum members read once: an attribute of an Enum class is slow to read on
# CPython 3.11, and these are read for every delivery.
RUNNING: Final = RoutineStatus.RUNNING
DONE: Final = RoutineStatus.COMPLETED
SKIPPED: Final = RoutineStatus.SKIPPED
JOB_RUNNING: Final = JobStatus.RUNNING


def run_loop(
    runtime: Runtime, job: JobState, plan: Plan, context: DeliveryContext
) -> None:
    """Run a job's pending deliveries on this thread until it ends, pauses or fails.

    A direct delivery runs here, inlined; any other, and every delivery of a
    job with a journal, goes through ``Runtime._deliver`` (or its
    checkpointed form).
    """
    pending, limit, monotonic = (
        job.pending,
        runtime.flow.max_deliveries,
        runtime.monotonic,
    )
    states, buffers = job.routine_states, job.slot_buffers
    if runtime.journal is None:
        direct, general = plan.direct, runtime._deliver
    else:  # every delivery takes the checkpointed path
        direct, general = (None,) * len(plan.direct), runtime._checkpointed
    finished = _finisher(job, plan)
    while pending and job.status is JOB_RUNNING:
        delivery = pending.pop()
        if (
            job._stop_request is not None
            or delivery.attempt
            or job.delivery_count >= limit
        ) and not runtime.may_deliver(job, delivery):
            return
        rid, target = delivery.routine_id, direct[delivery.connection]
        state = states.get(rid)
        if target is None or (state is not None and state.status is SKIPPED):
            general(job, plan, context, delivery)
            continue
        if state is None:
            state = states[rid] = RoutineState(rid)
        old, data, parameter = buffers.get(target.key), delivery.data, target.parameter
        # A handler given one value, never the dict, needs no copy.
        buffer = {**old, **data} if old else data if parameter in data else dict(data)
        buffers[target.key] = buffer
        emissions: list[tuple[str, Payload]] = []
        context.routine, context.delivery = target.routine, delivery
        context.emissions = emissions
        started = monotonic()
        try:
            if parameter is None:
                target.invoke(buffer, rid)
            else:  # what the slot's invoker would do, one call fewer
                argument = buffer[parameter] if parameter in buffer else buffer
                target.handler(argument)  # type: ignore[misc]
        except BaseException as error:  # user code: any failure is handled
            context.routine = None
            ready = (target.routine, state, target, old, buffer)
            if not runtime.failed(
                job, plan, delivery, ready, emissions, error, started
            ):
                raise
            continue
        context.routine = None
        finished(delivery, state, started, monotonic() - started, emissions)


def _finisher(
    job: JobState, plan: Plan
) -> Callable[[Delivery, RoutineState, float, float, list[tuple[str, Payload]]], None]:
    """Return what records a completed direct delivery and routes its emissions.

    It does what ``Runtime.complete`` does. Nothing else holds a completed
    delivery (the history keeps a tuple of its fields, the context is pointed
    at the next delivery), so when its one emission goes along one
    connection, the delivery becomes the one along that connection.
    """
    history, tracker, pending = job.history_raw, job.tracker, job.pending
    run_times, wall_offset = tracker.times_by_routine(), job._wall_offset
    routes, counts = plan.routes, tracker.counts_by_position()

    def finished(
        delivery: Delivery,
        state: RoutineState,
        started: float,
        duration: float,
        emissions: list[tuple[str, Payload]],
    ) -> None:
        if state.status is RUNNING:
            state.status = DONE
        rid = delivery.routine_id
        history.append(
            (
                delivery.seq,
                rid,
                delivery.slot,
                COMPLETED,
                delivery.attempt,
                started + wall_offset,
                duration,
            )
        )
        job.history_total += 1
        job.delivery_count += 1
        state.deliveries += 1
        times = run_times.get(rid)
        if times is None:
            run_times[rid] = [duration]
        else:
            times.append(duration)
            if len(times) >= FOLD_AT:
                tracker.fold(rid)
        if len(emissions) != 1:
            if emissions:
                route_emissions(job, plan, rid, emissions)
            return
        event, data = emissions[0]
        route = routes[rid][event]
        counts[route.index] += 1
        if len(route.edges) != 1:
            route_emissions(job, plan, rid, emissions, counted=True)
            return
        edge = route.edges[0]
        delivery.data = data if edge.apply is None else edge.apply(data)
        delivery.seq = job.next_seq
        job.next_seq += 1
        delivery.routine_id, delivery.slot = edge.target_id, edge.slot_name
        delivery.connection, delivery.attempt = edge.index, 0
        pending.append(delivery)

    return finished


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
    counts = job.tracker.counts_by_position()
    routes = plan.routes[routine_id]
    seq = job.next_seq
    created: list[Delivery] = []
    for event, data in emissions:
        route = routes[event]
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
