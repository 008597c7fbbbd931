"""Runtime: the scheduler loop, the only code that calls routines' handlers.

The loop pops the next delivery from the job's pending stack, merges its data
into the slot's buffer, calls the handler and, when the handler returns,
turns the emissions it recorded into new deliveries pushed on the stack in
reverse connection order. The stack gives a depth-first order without
recursion, so a chain of any length runs in constant stack depth. With a
journal, each finished delivery is checkpointed before the next one starts.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import Executor
from contextvars import Token
from typing import TYPE_CHECKING, Final, final

from flowforge._clock import SystemClock
from flowforge._concurrent import ConcurrentLoop
from flowforge._context import CURRENT, DeliveryContext
from flowforge._direct import (
    DONE,
    JOB_RUNNING,
    RUNNING,
    SKIPPED,
    route_emissions,
    run_loop,
)
from flowforge._entry import check_entry_params, choose_entry_slot
from flowforge._names import check_id
from flowforge._plan import Plan, Target
from flowforge._stats import snapshot_routine, snapshot_stats
from flowforge.error_handler import ErrorHandler, ErrorStrategy
from flowforge.exceptions import ExecutionError, StoreError
from flowforge.execution_tracker import COMPLETED, FAILED, RETRIED
from flowforge.job_state import JobState, JobStatus, new_job_state
from flowforge.record import (
    Delivery,
    ErrorRecord,
    PausePoint,
    RoutineState,
    RoutineStatus,
    new_delivery,
)
from flowforge.routine import Routine
from flowforge.store.base import Change
from flowforge.types import Payload

if TYPE_CHECKING:
    from flowforge._journal import Journal
    from flowforge.flow import Flow
    from flowforge.types import Clock

__all__ = ["Ready", "Runtime", "drop_pending", "rollback", "stopped_by_limit"]

STOP_HANDLER: Final = ErrorHandler(ErrorStrategy.STOP)
# Enum members read once: an Enum class attribute is slow to read on CPython
# 3.11, and each job reads these a few times.
JOB_PAUSED: Final = JobStatus.PAUSED
JOB_COMPLETED: Final = JobStatus.COMPLETED
JOB_CANCELLED: Final = JobStatus.CANCELLED
BUFFERED: Final = "buffered"
DROPPED: Final = "dropped"
CANCELLED: Final = "cancelled"

Ready = tuple[Routine, RoutineState, Target | None, Payload | None, Payload]
"""What a delivery calls: routine, its state, target slot (``None`` for a source's
``__call__``), the slot buffer before the merge, and the buffer to call with."""


@final
class Runtime:
    """Run jobs of one flow: depth-first on the calling thread, or on a pool.

    Args:
        flow: The flow whose routines the jobs run.
        journal: Checkpoints each delivery of a durable job into its store.
        executor: Runs handlers concurrently (the ``concurrent`` strategy);
            the calling thread still coordinates.
        max_workers: How many handlers of one job may run at once.

    Thread safety: a runtime runs one job at a time; several threads may each
    run their own job of the same flow with their own runtime.
    """

    __slots__ = (
        "flow",
        "clock",
        "journal",
        "executor",
        "max_workers",
        "monotonic",
        "_random",
    )

    def __init__(
        self,
        flow: Flow,
        *,
        journal: Journal | None = None,
        executor: Executor | None = None,
        max_workers: int = 1,
    ) -> None:
        """Bind the runtime to ``flow``; with ``executor``, run handlers on it."""
        self.flow = flow
        self.clock: Clock = flow.clock or SystemClock()
        self.journal = journal
        self.executor = executor
        self.max_workers = max_workers
        # The system clock's method adds a frame per call; read time directly.
        self.monotonic = (
            time.monotonic if type(self.clock) is SystemClock else self.clock.monotonic
        )
        self._random: random.Random | None = None

    def new_job(
        self,
        entry_routine_id: str,
        entry_params: Mapping[str, object] | None = None,
        *,
        entry_slot: str | None = None,
        job_id: str | None = None,
    ) -> JobState:
        """Return a pending job that starts at ``entry_routine_id``.

        Raises:
            UnknownPortError: If the entry routine or slot does not exist.
            DefinitionError: If the entry routine has several slots and no
                ``entry_slot`` says which one receives the params, or
                ``job_id`` is not a non-empty str that UTF-8 can encode.
        """
        flow = self.flow
        params = check_entry_params(entry_params)
        routine = flow.get_routine(entry_routine_id)
        slot_name = choose_entry_slot(routine, entry_routine_id, entry_slot)
        job = new_job_state(
            job_id=(
                os.urandom(16).hex()  # 32 random hex digits
                if job_id is None
                else check_id(job_id, "job_id")
            ),
            flow_id=flow.flow_id,
            entry_routine_id=entry_routine_id,
            entry_params=params,
            entry_slot=slot_name,
            created_at=self.clock.now(),
            history_limit=flow.history_limit,
            flow_shape=flow.plan().shape,
        )
        job.pending.append(
            new_delivery(0, entry_routine_id, slot_name, dict(params), -1)
        )
        job.next_seq = 1
        return job

    def run(self, job: JobState) -> JobState:
        """Run ``job``'s pending deliveries until it ends or pauses; return it."""
        plan = self.flow.plan()
        clock = self.clock
        status, job.status = job.status, JOB_RUNNING
        now = clock.now()
        job.started_at = job.started_at or now
        job._wall_offset = now.timestamp() - self.monotonic()
        context = DeliveryContext(job)
        job.tracker.know_routes(plan.event_targets)
        began = self.monotonic()
        journal = self.journal
        if journal is not None:
            try:
                journal.begin(job)
            except BaseException:
                job.status = status  # not started: resumable as it was
                raise
        self.flow.register_running(job)
        token = CURRENT.set(context)
        try:
            if self.executor is None:
                run_loop(self, job, self._loop_plan(job, plan), context)
            else:
                ConcurrentLoop(self, self.executor, self.max_workers).run(job, plan)
        except StoreError:
            self._finish(job, plan, began, token, write=False)
            raise
        except BaseException:
            self._finish(job, plan, began, token, write=True)
            raise
        self._settle(job)
        self._finish(job, plan, began, token, write=True)
        return job

    def _loop_plan(self, job: JobState, plan: Plan) -> Plan:
        """Return the plan the sequential loop reads for ``job``.

        A job about to run only its entry delivery (a new job, say) gets the
        flow's plan for that entry, so that the entry takes the loop's fast
        path: every other delivery of the run comes from a connection, so the
        entry is the only one that reads the plan's ``direct[-1]``.
        """
        pending = job.pending
        if len(pending) != 1 or self.journal is not None:
            return plan
        entry = pending[0]
        if entry.connection >= 0 or entry.slot is None:
            return plan
        return self.flow._entry_plans.get(plan, entry.routine_id, entry.slot)

    def _finish(
        self,
        job: JobState,
        plan: Plan,
        began: float,
        token: Token[DeliveryContext | None],
        *,
        write: bool,
    ) -> None:
        """Release what the run held; save the job's state unless the store failed."""
        CURRENT.reset(token)
        self.flow.unregister_running(job)
        job.tracker.add_wall_time(self.monotonic() - began)
        try:
            snapshot_stats(job, plan)
        finally:  # the lease is released even if a routine's stats cannot be
            if self.journal is not None:
                self.journal.end(job, write=write)

    def _settle(self, job: JobState) -> None:
        job._stop_request = None  # honoured, or moot once the job failed
        status = job.status
        if status is JOB_RUNNING and not job.pending:
            status = job.status = JOB_COMPLETED
        if status is not JOB_PAUSED:
            job.finished_at = self.clock.now()
        if status is JOB_CANCELLED:
            drop_pending(job, self.monotonic() + job._wall_offset)

    def may_deliver(self, job: JobState, delivery: Delivery) -> bool:
        """Say whether ``delivery``, just taken off the stack, may run now.

        A stop request pauses or cancels the job, and the delivery limit
        fails it: then the delivery goes back on the stack and the answer is
        False. A retry waits its delay first (if the wait is interrupted,
        the delivery goes back before the exception leaves); a retry is
        never refused for the limit, which its first attempt already passed.
        """
        if job._stop_request is not None:
            job.pending.append(delivery)
            self.honour_stop_request(job)
            return False
        if delivery.attempt:
            try:
                self.clock.sleep(self.retry_delay(delivery))
            except BaseException:
                job.pending.append(delivery)
                raise
            return True
        if job.delivery_count >= self.flow.max_deliveries:
            job.pending.append(delivery)
            self.fail_on_limit(job, delivery)
            return False
        return True

    def _checkpointed(
        self, job: JobState, plan: Plan, context: DeliveryContext, delivery: Delivery
    ) -> None:
        change = self.change_before(job, delivery)
        self._deliver(job, plan, context, delivery)
        self.checkpoint(job, plan, delivery, change)

    def _deliver(
        self, job: JobState, plan: Plan, context: DeliveryContext, delivery: Delivery
    ) -> None:
        """Handle one delivery on this thread."""
        ready = self.prepare(job, plan, delivery)
        if ready is None:
            return
        routine, _, target, _, buffer = ready
        context.routine = routine
        context.delivery = delivery
        emissions: list[tuple[str, Payload]] = []
        context.emissions = emissions
        started = self.monotonic()
        try:
            if target is None:
                routine(**delivery.data)
            else:
                target.invoke(buffer, delivery.routine_id)
        except BaseException as error:  # user code: any failure is handled
            context.routine = None
            if not self.failed(job, plan, delivery, ready, emissions, error, started):
                raise
            return
        duration = self.monotonic() - started
        context.routine = None
        self.complete(job, plan, delivery, ready, emissions, None, started, duration)

    def failed(
        self,
        job: JobState,
        plan: Plan,
        delivery: Delivery,
        ready: Ready,
        emissions: list[tuple[str, Payload]],
        error: BaseException,
        started: float,
    ) -> bool:
        """Handle a handler's ``error``; return False when the caller must re-raise.

        An ``Exception`` is the delivery's failure, handled by its error
        strategy. Anything else (``KeyboardInterrupt``, ``SystemExit``) undoes
        the delivery's merge and puts it back on the stack, so that a resume
        runs it again.
        """
        duration = self.monotonic() - started
        if isinstance(error, Exception):
            self.complete(
                job, plan, delivery, ready, emissions, error, started, duration
            )
            return True
        rollback(job, delivery, ready)
        job.pending.append(delivery)
        return False

    def prepare(self, job: JobState, plan: Plan, delivery: Delivery) -> Ready | None:
        """Merge a delivery's data into its slot and say what to call.

        Returns ``None`` when the delivery needs no handler run: its routine
        was skipped, a join still waits, or the merge failed (then the error
        is handled as the delivery's failure).
        """
        routine_id = delivery.routine_id
        state = job.routine_states.get(routine_id)
        if state is None:
            state = job.routine_states[routine_id] = RoutineState(routine_id)
        elif state.status is SKIPPED:
            self._record(job, state, delivery, DROPPED, self.monotonic(), 0.0)
            return None
        slot_name = delivery.slot
        if slot_name is None:
            return (plan.routines[routine_id], state, None, None, delivery.data)
        connection = delivery.connection
        target = (
            plan.edges[connection].target
            if connection >= 0
            else plan.target(routine_id, slot_name)
        )
        buffers = job.slot_buffers
        old = buffers.get(target.key)
        data = delivery.data
        if target.merge_override:
            buffer = {**old, **data} if old else dict(data)
        else:
            try:
                buffer = target.slot.merge(old, data)
            except Exception as error:  # noqa: BLE001  a user's merge function failed
                self._fail(job, delivery, target.routine, state, error, 0.0)
                return None
        buffers[target.key] = buffer
        if target.join_sources and connection >= 0:
            arrived = job.join_arrivals.get(target.key)
            if arrived is None:
                arrived = job.join_arrivals[target.key] = set()
            arrived.add(connection)
            # Arrivals come only from the join's sources, so counting suffices.
            if len(arrived) < len(target.join_sources):
                self._record(job, state, delivery, BUFFERED, self.monotonic(), 0.0)
                return None
        return (target.routine, state, target, old, buffer)

    def complete(
        self,
        job: JobState,
        plan: Plan,
        delivery: Delivery,
        ready: Ready,
        emissions: list[tuple[str, Payload]],
        error: Exception | None,
        started: float,
        duration: float,
    ) -> None:
        """Record a handler's outcome and deliver its emissions, or handle its error."""
        routine, state, target, _, _ = ready
        if error is not None:
            rollback(job, delivery, ready)
            self._fail(job, delivery, routine, state, error, duration, started)
            return
        if target is not None and target.join_sources:
            del job.slot_buffers[target.key]
            job.join_arrivals.pop(target.key, None)
        if state.status is RUNNING:
            state.status = DONE
        self._record(job, state, delivery, COMPLETED, started, duration)
        if emissions:
            route_emissions(job, plan, delivery.routine_id, emissions)

    def _fail(
        self,
        job: JobState,
        delivery: Delivery,
        routine: Routine,
        state: RoutineState,
        error: Exception,
        duration: float,
        started: float | None = None,
    ) -> None:
        if started is None:
            started = self.monotonic()
        handler = self._handler_for(routine)
        if handler.should_retry(error, delivery.attempt):
            self._record(job, state, delivery, RETRIED, started, duration)
            delivery.attempt += 1
            job.pending.append(delivery)
            return
        self._record(job, state, delivery, FAILED, started, duration)
        _add_error(job, state, _error_record(delivery, error, self.clock))
        strategy = handler.final_strategy()
        if strategy is ErrorStrategy.SKIP:
            state.status = RoutineStatus.SKIPPED
            return
        state.status = RoutineStatus.FAILED
        if strategy is ErrorStrategy.STOP:
            # Back on the stack, unfinished: resume runs it first, counted once.
            job.delivery_count -= 1
            state.deliveries -= 1
            job.pending.append(delivery)
            job.status = JobStatus.FAILED

    def _handler_for(self, routine: Routine) -> ErrorHandler:
        return routine._error_handler or self.flow.error_handler or STOP_HANDLER

    def undo_merge(self, job: JobState, delivery: Delivery, ready: Ready) -> None:
        """Undo a delivery's merge after its handler was interrupted."""
        rollback(job, delivery, ready)

    def retry_delay(self, delivery: Delivery) -> float:
        """Return how long to wait before a retried delivery's next attempt."""
        handler = self._handler_for(self.flow.plan().routines[delivery.routine_id])
        if handler.retry_jitter and self._random is None:
            self._random = random.Random()
        return handler.retry_delay_for(delivery.attempt - 1, self._random)

    def change_before(self, job: JobState, delivery: Delivery) -> Change | None:
        """Describe, before a delivery runs, what it may change (durable jobs only)."""
        if self.journal is None:
            return None
        slot = delivery.slot
        return Change(
            pending_from=0 if self.executor is not None else len(job.pending),
            routine_id=delivery.routine_id,
            buffer_key=None if slot is None else (delivery.routine_id, slot),
            history_from=job.history_total,
            errors_from=len(job.errors),
        )

    def checkpoint(
        self, job: JobState, plan: Plan, delivery: Delivery, change: Change | None
    ) -> None:
        """Commit a finished delivery to the job's store (durable jobs only)."""
        if self.journal is None or change is None:
            return
        snapshot_routine(job, plan, delivery.routine_id)
        self.journal.commit(job, change)

    def honour_stop_request(self, job: JobState) -> None:
        """Pause or cancel ``job`` as a pending request asks."""
        assert job._stop_request is not None  # noqa: S101  checked by the caller
        status, reason, checkpoint = job._stop_request
        job._stop_request = None
        job.status = status
        if status is JobStatus.PAUSED:
            point = PausePoint(reason, checkpoint, self.clock.now(), job.delivery_count)
            job.pause_points.append(point)

    def fail_on_limit(self, job: JobState, delivery: Delivery) -> None:
        """Fail ``job``: it needs more deliveries than the flow allows."""
        limit = self.flow.max_deliveries
        error = ExecutionError(
            f"{_limit_reached(job)}{limit} deliveries; a cycle may never end. Add "
            "a stop condition, or raise Flow(max_deliveries=...)"
        )
        routine_id = delivery.routine_id
        state = job.routine_states.get(routine_id)
        if state is None:
            state = job.routine_states[routine_id] = RoutineState(routine_id)
        _add_error(job, state, _error_record(delivery, error, self.clock))
        job.status = JobStatus.FAILED

    def _record(
        self,
        job: JobState,
        state: RoutineState,
        delivery: Delivery,
        outcome: str,
        started: float,
        duration: float,
    ) -> None:
        """Add a delivery's outcome to the history, counts and tracker."""
        job.history_raw.append(
            (
                delivery.seq,
                delivery.routine_id,
                delivery.slot,
                outcome,
                delivery.attempt,
                started + job._wall_offset,
                duration,
            )
        )
        job.history_total += 1
        if outcome is not RETRIED:
            job.delivery_count += 1
            state.deliveries += 1
        if outcome is COMPLETED or outcome is FAILED or outcome is RETRIED:
            job.tracker.record_run(delivery.routine_id, outcome, duration)


def rollback(job: JobState, delivery: Delivery, ready: Ready) -> None:
    """Undo a failed delivery's merge so a retry or resume merges it once."""
    _, _, target, old, buffer = ready
    if target is None:
        return
    target.slot.unmerge(buffer, delivery.data)
    if old is None:
        del job.slot_buffers[target.key]
    else:
        job.slot_buffers[target.key] = old
    if target.join_sources and delivery.connection >= 0:
        job.join_arrivals[target.key].discard(delivery.connection)


def stopped_by_limit(job: JobState, error: ErrorRecord) -> bool:
    """Say whether ``error`` is the delivery limit's, which no handler raised."""
    return error.error_type == "ExecutionError" and error.message.startswith(
        _limit_reached(job)
    )


def _limit_reached(job: JobState) -> str:
    return f"job {job.job_id!r} reached the flow's limit of "


def _add_error(job: JobState, state: RoutineState, record: ErrorRecord) -> None:
    job.errors.append(record)
    state.errors.append(record)


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


def drop_pending(job: JobState, now: float) -> None:
    """Record a cancelled job's pending deliveries in its history, then drop them.

    ``now`` is the time to record, in seconds since the epoch.
    """
    for delivery in reversed(job.pending):
        job.history_raw.append(
            (
                delivery.seq,
                delivery.routine_id,
                delivery.slot,
                CANCELLED,
                delivery.attempt,
                now,
                0.0,
            )
        )
        job.history_total += 1
    job.pending.clear()
