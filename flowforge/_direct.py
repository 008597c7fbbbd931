"""The sequential scheduler's direct path, and turning emissions into deliveries.

Most deliveries go along a connection to an override slot that is no join,
and their handler returns. :func:`direct_path` handles those with fewer
calls and lookups than ``Runtime.prepare`` and ``Runtime.complete``, doing
exactly what they would; anything else, and any failure, goes through them.
:func:`route_emissions` turns a handler's emissions into deliveries for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from flowforge.execution_tracker import COMPLETED, FOLD_AT
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

__all__ = ["direct_path", "route_emissions"]

# Enum members read once: an attribute of an Enum class is slow to read on
# CPython 3.11, and these are read for every delivery.
RUNNING: Final = RoutineStatus.RUNNING
DONE: Final = RoutineStatus.COMPLETED
SKIPPED: Final = RoutineStatus.SKIPPED


def direct_path(
    runtime: Runtime, job: JobState, plan: Plan, context: DeliveryContext
) -> Callable[[Delivery], None]:
    """Return what runs one delivery of a job without a journal, inlined when simple."""
    direct, states, buffers = plan.direct, job.routine_states, job.slot_buffers
    finished, monotonic = _finisher(job, plan), runtime.monotonic

    def deliver(delivery: Delivery) -> None:
        routine_id, target = delivery.routine_id, direct[delivery.connection]
        state = states.get(routine_id)
        if target is None or (state is not None and state.status is SKIPPED):
            runtime._deliver(job, plan, context, delivery)
            return
        if state is None:
            state = states[routine_id] = RoutineState(routine_id)
        old, data, parameter = buffers.get(target.key), delivery.data, target.parameter
        if old:
            buffer = {**old, **data}
        else:  # a handler given one value, never the dict, needs no copy
            buffer = data if parameter in data else dict(data)
        buffers[target.key] = buffer
        emitted: list[tuple[str, Payload]] = []
        context.routine, context.delivery = target.routine, delivery
        context.emissions = emitted
        started = monotonic()
        try:
            if parameter is None:
                target.invoke(buffer, routine_id)
            else:  # what the slot's invoker would do, one call fewer
                argument = buffer[parameter] if parameter in buffer else buffer
                target.handler(argument)  # type: ignore[misc]
        except BaseException as error:  # user code: any failure is handled
            context.routine = None
            ready = (target.routine, state, target, old, buffer)
            if not runtime.failed(job, plan, delivery, ready, emitted, error, started):
                raise
            return
        context.routine = None
        finished(delivery, state, started, monotonic() - started, emitted)

    return deliver


def _finisher(
    job: JobState, plan: Plan
) -> Callable[[Delivery, RoutineState, float, float, list[tuple[str, Payload]]], None]:
    """Return what records a completed handler run and routes its emissions.

    It does what ``Runtime.complete`` does. Nothing else holds a completed
    delivery (the history keeps a tuple of its fields, the context is pointed
    at the next delivery), so when its one emission goes along one
    connection, the delivery becomes the one along that connection.
    """
    history, tracker, pending = job.history_raw, job.tracker, job.pending
    run_times, wall_offset = tracker.times_by_routine(), job._wall_offset
    routes, counts = plan.routes, tracker.event_counts()

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
        counts[route.key] = counts.get(route.key, 0) + 1
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
    (``counted``); :func:`complete_event_targets` adds where they went.
    """
    counts = job.tracker.event_counts()
    routes = plan.routes[routine_id]
    seq = job.next_seq
    created: list[Delivery] = []
    for event, data in emissions:
        route = routes[event]
        if not counted:
            counts[route.key] = counts.get(route.key, 0) + 1
        for edge in route.edges:
            payload = data if edge.apply is None else edge.apply(data)
            created.append(
                new_delivery(seq, edge.target_id, edge.slot_name, payload, edge.index)
            )
            seq += 1
    job.next_seq = seq
    created.reverse()
    job.pending.extend(created)
