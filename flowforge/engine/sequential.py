"""The sequential scheduler loop, with its inlined direct path.

Most deliveries go along a connection to an override slot that is no join,
and their handler returns. :func:`run_loop` runs those inlined, with fewer
calls and lookups than ``Runtime.prepare`` and ``Runtime.complete``, doing
exactly what they would; anything else, and any failure, goes through them.
``routing.route_emissions`` turns a handler's emissions into deliveries for both.

Nothing else holds a completed direct delivery (the history keeps a tuple of
its fields, the context is pointed at the next delivery), so when its one
emission goes along one connection, it becomes the delivery along that
connection instead of a new object.

A job with neither a journal nor observers (the usual one) runs in
:func:`_run_inlined`, which also does what :func:`finisher`'s function does,
in the loop, and keeps the reused delivery in a local instead of pushing it
on the stack and popping it again. It is the one function of the package over
STYLE's limits (120 lines, complexity 25), an exception recorded in
``.flake8`` and held to this one function by ``tests/test_fast_path.py``: it
saves about a tenth of a hop (``benchmarks/README.md``). The other jobs run in
:func:`_run_finishing`, which calls a finisher; ``tests/test_fast_path.py``
checks that both record the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from flowforge.engine.checkpointed import checkpointed
from flowforge.engine.routing import (
    DONE,
    JOB_RUNNING,
    RUNNING,
    SKIPPED,
    refuse_awaitable,
    route_emissions,
)
from flowforge.execution_tracker import COMPLETED, FOLD_AT
from flowforge.record import Delivery, RoutineState, _MadeState

if TYPE_CHECKING:
    from flowforge._context import DeliveryContext
    from flowforge.engine.plan import Plan, Target
    from flowforge.job_state import JobState
    from flowforge.engine.runtime import Ready, Runtime
    from flowforge.types import Payload

    Emissions = list[tuple[str, Payload]]
    General = Callable[[JobState, Plan, DeliveryContext, Delivery], None]
    Finished = Callable[[Delivery, RoutineState, float, float, Emissions], None]
    Failed = Callable[
        [JobState, Plan, Delivery, Ready, Emissions, BaseException, float], bool
    ]

__all__ = ["finisher", "run_loop"]


def run_loop(
    runtime: Runtime, job: JobState, plan: Plan, context: DeliveryContext
) -> None:
    """Run a job's pending deliveries on this thread until it ends, pauses or fails.

    A direct delivery runs in the loop, inlined (checkpointed after it in a
    job with a journal); any other, and every delivery of a job with
    observers, goes through ``Runtime.deliver`` (or its checkpointed form).
    """
    if runtime.journal is None and runtime.observers is None:
        _run_inlined(runtime, job, plan, context)
    else:
        _run_finishing(runtime, job, plan, context)


def _run_inlined(
    runtime: Runtime, job: JobState, plan: Plan, context: DeliveryContext
) -> None:
    """Run a plain job: ``_run_finishing`` with its finisher written in the loop.

    ``held`` is a routed delivery not yet on the stack nor run: whatever
    interrupts the loop (a ``KeyboardInterrupt``) puts it back on the stack.
    A routed hop takes its next target from the edge (``Edge.hop``, what
    ``direct`` holds for it) and its routes from the target, and reuses the
    emission list it emptied; the context is pointed at the delivery and the
    list when one is popped (the general path points it elsewhere).
    """
    pending, states, buffers = job.pending, job.routine_states, job.slot_buffers
    limit, monotonic = runtime.setup.max_deliveries, runtime.monotonic
    direct, general, failed = plan.direct, runtime.deliver, runtime.failed
    history, tracker, wall_offset = job._history, job.tracker, job._wall_offset
    run_times, counts = tracker._times_by_routine(), tracker._counts_by_position()
    firsts = tracker._first_times()
    emissions: Emissions = []
    delivery: Delivery | None = None
    held: Delivery | None = None
    try:
        while True:
            if delivery is None:
                if not pending or job.status is not JOB_RUNNING:
                    return
                delivery = pending.pop()
                target = direct[delivery.connection]
                context._delivery, context._emissions = delivery, emissions
            if (
                job._stop_request is not None
                or job.delivery_count >= limit
                or delivery.attempt
            ) and not runtime.may_deliver(job, delivery):
                return
            rid = delivery.routine_id
            state = states.get(rid)
            if target is None or (state is not None and state.status is SKIPPED):
                held = None
                general(job, plan, context, delivery)
                delivery = None
                continue
            if state is None:  # RoutineState(rid), without its __init__
                state = states[rid] = _MadeState()
                state.routine_id, state.status, state.deliveries = rid, RUNNING, 0
                state._errors = state._stats = state._error_counts = None
            old, data = buffers.get(target.key), delivery.data
            parameter = target.parameter
            if old:
                buffer = {**old, **data}
                argument = buffer[parameter] if parameter in buffer else buffer
            elif parameter in data:  # given one value, never the dict: no copy
                buffer, argument = data, data[parameter]
            else:
                buffer = argument = dict(data)
            buffers[target.key] = buffer
            context._routine = target.routine
            started = monotonic()
            try:
                held = None  # from here, failed() puts it back if need be
                if parameter is None:
                    result = target.invoke(buffer, rid)
                else:  # what the slot's invoker would do, one call fewer
                    result = target.handler(argument)  # type: ignore[misc]
                if result is not None:
                    refuse_awaitable(result)
            except BaseException as error:  # user code: any failure is handled
                context._routine = None
                ready = (target.routine, state, target, old, buffer)
                if not failed(job, plan, delivery, ready, emissions, error, started):
                    raise
                emissions, delivery = [], None  # the failure path had the list
                continue
            ran = monotonic() - started  # seconds the handler took
            context._routine = None  # from here on, what finisher() does
            if state.status is RUNNING:
                state.status = DONE
            at = started + wall_offset  # the record's fields read in place, no locals
            history.append(
                (delivery.seq, rid, delivery.slot, COMPLETED, delivery.attempt, at, ran)
            )
            job.history_total += 1
            job.delivery_count += 1
            state.deliveries += 1
            if rid not in run_times and rid not in firsts:  # a first: no list
                firsts[rid] = ran
            else:  # a second time: reading the times again makes the list
                times = run_times.get(rid) or tracker._times_by_routine()[rid]
                times.append(ran)
                if len(times) >= FOLD_AT:
                    tracker._fold(rid)
            if len(emissions) != 1:
                if emissions:
                    route_emissions(job, plan, rid, emissions)
                    emissions.clear()
                delivery = None
                continue
            event, data = emissions.pop()
            try:
                route = target.routes[event]
            except KeyError:  # defined after this job's plan was made: no edges
                delivery = None
                continue
            counts[route.index] += 1
            edge = route.single
            if edge is None:
                route_emissions(job, plan, rid, [(event, data)], counted=True)
                delivery = None
                continue
            delivery.data = data if edge.apply is None else edge.apply(data)
            seq = delivery.seq = job.next_seq
            job.next_seq = seq + 1
            delivery.routine_id, delivery.slot = edge.target_id, edge.slot_name
            delivery.connection, delivery.attempt = edge.index, 0
            held, target = delivery, edge.hop  # run at once, not pushed and popped
    except BaseException:
        if held is not None and (not pending or pending[-1] is not held):
            pending.append(held)
        raise


def _run_finishing(
    runtime: Runtime, job: JobState, plan: Plan, context: DeliveryContext
) -> None:
    """Run a job with a journal or observers: a finisher ends a direct delivery."""
    pending, states, buffers = job.pending, job.routine_states, job.slot_buffers
    limit, monotonic = runtime.setup.max_deliveries, runtime.monotonic
    direct, general, finished, failed = _paths(runtime, job, plan)
    while pending and job.status is JOB_RUNNING:
        delivery = pending.pop()
        stop = job._stop_request is not None or job.delivery_count >= limit
        if (stop or delivery.attempt) and not runtime.may_deliver(job, delivery):
            return
        rid, target = delivery.routine_id, direct[delivery.connection]
        state = states.get(rid)
        if target is None or (state is not None and state.status is SKIPPED):
            general(job, plan, context, delivery)
            continue
        if state is None:  # RoutineState(rid), without its __init__
            state = states[rid] = _MadeState()
            state.routine_id, state.status, state.deliveries = rid, RUNNING, 0
            state._errors = state._stats = state._error_counts = None
        old, data, parameter = buffers.get(target.key), delivery.data, target.parameter
        # A handler given one value, never the dict, needs no copy.
        buffer = {**old, **data} if old else data if parameter in data else dict(data)
        buffers[target.key] = buffer
        emissions: Emissions = []
        context._routine, context._delivery = target.routine, delivery
        context._emissions = emissions
        started = monotonic()
        try:
            if parameter is None:
                result = target.invoke(buffer, rid)
            else:  # what the slot's invoker would do, one call fewer
                argument = buffer[parameter] if parameter in buffer else buffer
                result = target.handler(argument)  # type: ignore[misc]
            if result is not None:
                refuse_awaitable(result)
        except BaseException as error:  # user code: any failure is handled
            context._routine = None
            ready = (target.routine, state, target, old, buffer)
            if not failed(job, plan, delivery, ready, emissions, error, started):
                raise
            continue
        context._routine = None
        finished(delivery, state, started, monotonic() - started, emissions)


def _paths(
    runtime: Runtime, job: JobState, plan: Plan
) -> tuple[Sequence[Target | None], General, Finished, Failed]:
    """Return the direct targets, the general path, and a direct delivery's ends.

    The ends are the finisher of a direct delivery and what handles its
    failure; in a durable job, both checkpoint the delivery. Every delivery
    of an observed job takes the general path, which tells the observers.
    """
    journal = runtime.journal
    if runtime.observers is not None:
        general = runtime.deliver if journal is None else runtime.deliver_checkpointed
        return (None,) * len(plan.direct), general, finisher(job, plan), runtime.failed
    durable = checkpointed(runtime, job, plan, finisher(job, plan))
    return plan.direct, runtime.deliver_checkpointed, *durable


def finisher(job: JobState, plan: Plan) -> Finished:
    """Return what records a completed direct delivery and routes its emissions."""
    history, tracker, pending = job._history, job.tracker, job.pending
    run_times, wall_offset = tracker._times_by_routine(), job._wall_offset
    routes, counts = plan.routes, tracker._counts_by_position()

    def finished(
        delivery: Delivery,
        state: RoutineState,
        started: float,
        took: float,
        emissions: Emissions,
    ) -> None:
        if state.status is RUNNING:
            state.status = DONE
        rid, at = delivery.routine_id, started + wall_offset
        history.append(
            (delivery.seq, rid, delivery.slot, COMPLETED, delivery.attempt, at, took)
        )
        job.history_total += 1
        job.delivery_count += 1
        state.deliveries += 1
        times = run_times.get(rid)
        if times is None:
            run_times[rid] = [took]
        else:
            times.append(took)
            if len(times) >= FOLD_AT:
                tracker._fold(rid)
        if len(emissions) != 1:
            if emissions:
                route_emissions(job, plan, rid, emissions)
            return
        event, data = emissions[0]
        try:
            route = routes[rid][event]
        except KeyError:  # defined after this job's plan was made: no edges
            return
        counts[route.index] += 1
        edge = route.single
        if edge is None:
            route_emissions(job, plan, rid, emissions, counted=True)
            return
        delivery.data = data if edge.apply is None else edge.apply(data)
        delivery.seq = job.next_seq
        job.next_seq += 1
        delivery.routine_id, delivery.slot = edge.target_id, edge.slot_name
        delivery.connection, delivery.attempt = edge.index, 0
        pending.append(delivery)

    return finished
