"""Runtime: the scheduler loop, the only code that calls routines' handlers.

The loop pops the next delivery from the job's pending stack, merges its data
into the slot's buffer, calls the handler and, when the handler returns,
turns the emissions it recorded into new deliveries pushed on the stack in
reverse connection order. The stack gives a depth-first order without
recursion, so a chain of any length runs in constant stack depth.
"""

from __future__ import annotations

import random
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from flowforge._clock import SystemClock
from flowforge._context import CURRENT, DeliveryContext
from flowforge._fingerprint import flow_shape
from flowforge.error_handler import ErrorHandler, ErrorStrategy
from flowforge.exceptions import DefinitionError, ExecutionError
from flowforge.job_state import JobState, JobStatus
from flowforge.record import (
    Delivery,
    ErrorRecord,
    PausePoint,
    RoutineState,
    RoutineStatus,
)
from flowforge.routine import Routine

if TYPE_CHECKING:
    from flowforge.connection import Connection
    from flowforge.flow import Flow
    from flowforge.slot import Slot
    from flowforge.types import Clock, Payload

__all__ = ["Runtime"]

STOP_HANDLER: Final = ErrorHandler(ErrorStrategy.STOP)


@final
@dataclass(frozen=True, slots=True)
class Edge:
    """A connection resolved to the objects the loop needs."""

    index: int
    connection: Connection
    target_id: str
    slot: Slot


@final
@dataclass(frozen=True, slots=True)
class Plan:
    """A flow's routing table, built once per change of the flow."""

    routines: Mapping[str, Routine]
    routes: Mapping[tuple[str, str], tuple[Edge, ...]]
    join_sources: Mapping[tuple[str, str], frozenset[int]]
    shape: dict[str, object]


def compile_plan(flow: Flow) -> Plan:
    """Return the routing table of ``flow``: each event's edges, each join's sources."""
    routes: dict[tuple[str, str], list[Edge]] = {}
    join_sources: dict[tuple[str, str], set[int]] = {}
    routines = dict(flow.routines)
    for index, connection in enumerate(flow.connections):
        slot = routines[connection.target_id].get_slot(connection.slot)
        edge = Edge(index, connection, connection.target_id, slot)
        routes.setdefault((connection.source_id, connection.event), []).append(edge)
        if slot.is_join:
            join_sources.setdefault((connection.target_id, slot.name), set()).add(index)
    return Plan(
        routines=routines,
        routes={key: tuple(edges) for key, edges in routes.items()},
        join_sources={key: frozenset(found) for key, found in join_sources.items()},
        shape=flow_shape(flow),
    )


def is_source(routine: Routine) -> bool:
    """Return whether ``routine``'s class overrides ``__call__``."""
    return type(routine).__call__ is not Routine.__call__


@final
class Runtime:
    """Run jobs of one flow on the calling thread, depth-first.

    Args:
        flow: The flow whose routines the jobs run.
        clock: The time seam; defaults to the flow's clock.

    Thread safety: a runtime runs one job per call; several threads may each
    run their own job of the same flow.
    """

    __slots__ = ("flow", "clock", "_random")

    def __init__(self, flow: Flow, *, clock: Clock | None = None) -> None:
        """Bind the runtime to ``flow``."""
        self.flow = flow
        self.clock: Clock = clock or flow.clock or SystemClock()
        self._random = random.Random()

    def start(
        self,
        entry_routine_id: str,
        entry_params: Mapping[str, object] | None = None,
        *,
        entry_slot: str | None = None,
        job_id: str | None = None,
    ) -> JobState:
        """Create a job that starts at ``entry_routine_id`` and run it to its end.

        Raises:
            UnknownPortError: If the entry routine or slot does not exist.
            DefinitionError: If the entry routine has several slots and no
                ``entry_slot`` says which one receives the params.
        """
        params = _entry_params(entry_params)
        routine = self.flow.get_routine(entry_routine_id)
        slot_name = _entry_slot(routine, entry_routine_id, entry_slot)
        job = JobState(
            job_id=job_id or uuid.uuid4().hex,
            flow_id=self.flow.flow_id,
            entry_routine_id=entry_routine_id,
            entry_params=params,
            entry_slot=slot_name,
            created_at=self.clock.now(),
            history_limit=self.flow.history_limit,
            flow_shape=self.flow.plan().shape,
        )
        job.pending.append(Delivery(0, entry_routine_id, slot_name, dict(params)))
        job.next_seq = 1
        return self.run(job)

    def run(self, job: JobState) -> JobState:
        """Run ``job``'s pending deliveries until it ends; return it."""
        plan = self.flow.plan()
        clock = self.clock
        job.status = JobStatus.RUNNING
        now = clock.now()
        job.started_at = job.started_at or now
        job.wall_offset = now.timestamp() - clock.monotonic()
        context = DeliveryContext(job)
        token = CURRENT.set(context)
        began = clock.monotonic()
        self.flow.register_running(job)
        try:
            self._loop(job, plan, context)
        finally:
            self.flow.unregister_running(job)
            CURRENT.reset(token)
            job.tracker.add_wall_time(clock.monotonic() - began)
            _snapshot_stats(job, plan)
        if job.status is JobStatus.RUNNING and not job.pending:
            job.status = JobStatus.COMPLETED
        if job.status is not JobStatus.PAUSED:
            job.finished_at = clock.now()
        if job.status is JobStatus.CANCELLED:
            _drop_pending(job, clock.monotonic())
        return job

    def _loop(self, job: JobState, plan: Plan, context: DeliveryContext) -> None:
        pending = job.pending
        limit = self.flow.max_deliveries
        while pending:
            if job.stop_request is not None:
                _honour_stop_request(job, self.clock)
                return
            delivery = pending[-1]
            if delivery.attempt == 0:
                if job.delivery_count >= limit:
                    _fail_on_limit(job, delivery, limit, self.clock)
                    return
                job.delivery_count += 1
            pending.pop()
            if not self._deliver(job, plan, context, delivery):
                return

    def _deliver(
        self, job: JobState, plan: Plan, context: DeliveryContext, delivery: Delivery
    ) -> bool:
        """Handle one delivery; return False when the job must stop."""
        routine_id = delivery.routine_id
        state = job.routine_states.get(routine_id)
        if state is None:
            state = job.routine_states[routine_id] = RoutineState(routine_id)
        if state.status is RoutineStatus.SKIPPED:
            self._record(job, delivery, "dropped", self.clock.monotonic(), 0.0)
            return True
        state.deliveries += delivery.attempt == 0
        routine = plan.routines[routine_id]
        slot_name = delivery.slot
        if slot_name is None:
            return self._call(job, plan, context, delivery, routine, state, None)
        slot = routine._slots[slot_name]
        key = (routine_id, slot_name)
        old = job.slot_buffers.get(key)
        try:
            buffer = slot.merge(old, delivery.data)
        except Exception as error:  # noqa: BLE001  a user's merge function failed
            now = self.clock.monotonic()
            return self._fail(job, delivery, routine, state, error, now, 0.0)
        job.slot_buffers[key] = buffer
        if slot.is_join and delivery.connection >= 0:
            arrived = job.join_arrivals.setdefault(key, set())
            arrived.add(delivery.connection)
            if not arrived >= plan.join_sources[key]:
                self._record(job, delivery, "buffered", self.clock.monotonic(), 0.0)
                return True
        undo = (key, slot, old, buffer)
        return self._call(job, plan, context, delivery, routine, state, undo)

    def _call(
        self,
        job: JobState,
        plan: Plan,
        context: DeliveryContext,
        delivery: Delivery,
        routine: Routine,
        state: RoutineState,
        undo: tuple[tuple[str, str], Slot, Payload | None, Payload] | None,
    ) -> bool:
        context.routine = routine
        context.routine_id = routine_id = delivery.routine_id
        context.slot = delivery.slot
        context.seq = delivery.seq
        context.attempt = delivery.attempt
        emissions = context.emissions = []
        monotonic = self.clock.monotonic
        started = monotonic()
        try:
            if undo is None:
                routine(**delivery.data)
            else:
                undo[1].invoke(undo[3], routine_id)
        except Exception as error:  # noqa: BLE001  user code: any failure is handled
            duration = monotonic() - started
            _rollback(job, delivery, undo)
            return self._fail(job, delivery, routine, state, error, started, duration)
        except BaseException:
            _rollback(job, delivery, undo)
            job.pending.append(delivery)
            raise
        finally:
            context.routine = None
        duration = monotonic() - started
        if undo is not None and undo[1].is_join:
            del job.slot_buffers[undo[0]]
            job.join_arrivals.pop(undo[0], None)
        if state.status is RoutineStatus.RUNNING:
            state.status = RoutineStatus.COMPLETED
        self._record(job, delivery, "completed", started, duration)
        if emissions:
            _route(job, plan, routine_id, emissions)
        return True

    def _fail(
        self,
        job: JobState,
        delivery: Delivery,
        routine: Routine,
        state: RoutineState,
        error: Exception,
        started: float,
        duration: float,
    ) -> bool:
        handler = routine._error_handler or self.flow.error_handler or STOP_HANDLER
        if handler.should_retry(error, delivery.attempt):
            self._record(job, delivery, "retried", started, duration)
            self.clock.sleep(handler.retry_delay_for(delivery.attempt, self._random))
            delivery.attempt += 1
            job.pending.append(delivery)
            return True
        self._record(job, delivery, "failed", started, duration)
        record = _error_record(delivery, error, self.clock)
        job.errors.append(record)
        state.errors.append(record)
        strategy = handler.final_strategy()
        if strategy is ErrorStrategy.SKIP:
            state.status = RoutineStatus.SKIPPED
            return True
        state.status = RoutineStatus.FAILED
        if strategy is ErrorStrategy.STOP:
            job.pending.append(delivery)
            job.status = JobStatus.FAILED
            return False
        return True

    def _record(
        self,
        job: JobState,
        delivery: Delivery,
        outcome: str,
        started: float,
        duration: float,
    ) -> None:
        job.history_raw.append(
            (
                delivery.seq,
                delivery.routine_id,
                delivery.slot,
                outcome,
                delivery.attempt,
                started + job.wall_offset,
                duration,
            )
        )
        if outcome in ("completed", "failed", "retried"):
            job.tracker.record_run(delivery.routine_id, outcome, duration)


def _route(
    job: JobState, plan: Plan, routine_id: str, emissions: list[tuple[str, Payload]]
) -> None:
    """Turn a handler's emissions into deliveries, first one on top of the stack."""
    tracker = job.tracker
    created: list[Delivery] = []
    seq = job.next_seq
    for event, data in emissions:
        edges = plan.routes.get((routine_id, event), ())
        tracker.record_emission(
            routine_id, event, [(e.target_id, e.slot.name) for e in edges]
        )
        for edge in edges:
            payload = edge.connection.apply(data)
            created.append(
                Delivery(seq, edge.target_id, edge.slot.name, payload, edge.index)
            )
            seq += 1
    job.next_seq = seq
    created.reverse()
    job.pending.extend(created)


def _rollback(
    job: JobState,
    delivery: Delivery,
    undo: tuple[tuple[str, str], Slot, Payload | None, Payload] | None,
) -> None:
    """Undo a failed delivery's merge so a retry or resume merges it once."""
    if undo is None:
        return
    key, slot, old, buffer = undo
    slot.unmerge(buffer, delivery.data)
    if old is None:
        del job.slot_buffers[key]
    else:
        job.slot_buffers[key] = old
    if slot.is_join and delivery.connection >= 0:
        job.join_arrivals[key].discard(delivery.connection)


def _error_record(
    delivery: Delivery, error: BaseException, clock: Clock
) -> ErrorRecord:
    return ErrorRecord(
        routine_id=delivery.routine_id,
        slot=delivery.slot,
        seq=delivery.seq,
        attempt=delivery.attempt,
        error_type=type(error).__qualname__,
        message=str(error),
        traceback="".join(traceback.format_exception(error)),
        at=clock.now(),
    )


def _fail_on_limit(job: JobState, delivery: Delivery, limit: int, clock: Clock) -> None:
    error = ExecutionError(
        f"job {job.job_id!r} reached the flow's limit of {limit} deliveries; a cycle "
        "may never end. Add a stop condition, or raise Flow(max_deliveries=...)"
    )
    job.errors.append(_error_record(delivery, error, clock))
    job.status = JobStatus.FAILED


def _honour_stop_request(job: JobState, clock: Clock) -> None:
    assert job.stop_request is not None  # noqa: S101  checked by the caller
    status, reason, checkpoint = job.stop_request
    job.stop_request = None
    job.status = status
    if status is JobStatus.PAUSED:
        job.pause_points.append(
            PausePoint(reason, checkpoint, clock.now(), job.delivery_count)
        )


def _drop_pending(job: JobState, now: float) -> None:
    """Record a cancelled job's pending deliveries in its history, then drop them."""
    for delivery in reversed(job.pending):
        job.history_raw.append(
            (
                delivery.seq,
                delivery.routine_id,
                delivery.slot,
                "cancelled",
                delivery.attempt,
                now + job.wall_offset,
                0.0,
            )
        )
    job.pending.clear()


def _snapshot_stats(job: JobState, plan: Plan) -> None:
    for routine_id, state in job.routine_states.items():
        state.stats = plan.routines[routine_id].stats()


def _entry_params(params: Mapping[str, object] | None) -> Payload:
    if params is None:
        return {}
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise TypeError(f"entry_params must be a mapping with str keys, got {params!r}")
    return dict(params)


def _entry_slot(
    routine: Routine, routine_id: str, entry_slot: str | None
) -> str | None:
    if entry_slot is not None:
        return routine.get_slot(entry_slot).name
    if is_source(routine):
        return None
    slots = list(routine.slots)
    if len(slots) == 1:
        return slots[0]
    if not slots:
        raise DefinitionError(
            f"entry routine {routine_id!r} has no slots and does not override "
            "__call__; give it a slot or make it a source routine"
        )
    raise DefinitionError(
        f"entry routine {routine_id!r} has several slots {slots}; "
        "choose one with execute(..., entry_slot=...)"
    )
