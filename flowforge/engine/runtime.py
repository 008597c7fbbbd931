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
from datetime import UTC, datetime
from functools import partial
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Final, final

from flowforge.engine.clock import SystemClock, checked_now
from flowforge.engine.correlate import close_group, gather
from flowforge._context import DeliveryContext
from flowforge.engine.routing import (
    refuse_awaitable,
    DONE,
    JOB_FAILED,
    RUNNING,
    SKIPPED,
    limit_reached,
    route_emissions,
)
from flowforge.engine.entry import (
    check_entry_params,
    choose_entry_slot,
    entry_routine,
)
from flowforge._names import check_id
from flowforge.engine.fallback import error_record, route_failure
from flowforge.engine.observe import delivery_failed, delivery_started
from flowforge.engine.plan import Plan, Target
from flowforge.engine.stats import snapshot_routine
from flowforge.error_handler import ErrorHandler, ErrorStrategy
from flowforge.exceptions import ExecutionError, SerializationError
from flowforge.execution_tracker import COMPLETED, FAILED, RETRIED, ROUTED
from flowforge.job_state import JobState, JobStatus, new_job_state, record_error
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
    from flowforge.engine.journal import Journal
    from flowforge.engine.setup import FlowSetup
    from flowforge.types import Clock

__all__ = ["Ready", "Runtime", "drop_pending", "rollback", "stopped_by_limit"]

STOP_HANDLER: Final = ErrorHandler(ErrorStrategy.STOP)
BUFFERED: Final = "buffered"
DROPPED: Final = "dropped"
CANCELLED: Final = "cancelled"
_RUNS: Final = (COMPLETED, FAILED, RETRIED, ROUTED)
"""The outcomes of a handler run, which the tracker counts."""

_utc_now: Final = partial(datetime.now, UTC)
"""``SystemClock().now`` without its frame: the time a job is stamped with."""

Ready = tuple[Routine, RoutineState, Target | None, Payload | None, Payload]
"""What a delivery calls: routine, its state, target slot (``None`` for a source's
``__call__``), the slot buffer before the merge (for a correlated join, the key
of the group that fires), and the buffer to call with."""


@final
class Runtime:
    """Run jobs of one flow: depth-first on the calling thread, or on a pool.

    Args:
        setup: What the flow hands over: its plan, settings and running jobs.
        journal: Checkpoints each delivery of a durable job into its store.
        executor: Runs handlers concurrently (the ``concurrent`` strategy);
            the calling thread still coordinates.
        max_workers: How many handlers of one job may run at once.
        strategy: ``"sequential"`` or ``"concurrent"``; an async job runs
            its concurrent deliveries as tasks, without an executor.

    Thread safety: a runtime runs one job at a time; several threads may each
    run their own job of the same flow with their own runtime.
    """

    __slots__ = (
        "setup",
        "clock",
        "journal",
        "executor",
        "max_workers",
        "strategy",
        "monotonic",
        "now",
        "observers",
        "_random",
        "unsaved",
    )

    def __init__(
        self,
        setup: FlowSetup,
        *,
        journal: Journal | None = None,
        executor: Executor | None = None,
        max_workers: int = 1,
        strategy: str = "sequential",
    ) -> None:
        """Bind the runtime to a flow's ``setup``; with ``executor``, run on it."""
        self.setup = setup
        self.clock: Clock = setup.clock
        self.journal = journal
        self.observers = setup.observers
        self.executor = executor
        self.max_workers = max_workers
        self.strategy = strategy
        # The system clock's method adds a frame per call; read time directly.
        system = type(self.clock) is SystemClock
        self.monotonic = time.monotonic if system else self.clock.monotonic
        self.now: Callable[[], datetime] = _utc_now if system else self.clock.now
        self._random: random.Random | None = None
        self.unsaved: Delivery | None = None
        """The delivery whose checkpoint found a value it cannot save."""

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
        setup = self.setup
        plan = setup.plan()
        params = check_entry_params(entry_params)
        routine = entry_routine(plan, setup.flow_id, entry_routine_id)
        slot_name = choose_entry_slot(routine, entry_routine_id, entry_slot)
        now = self.now
        job = new_job_state(  # by position: keywords cost a job's start more
            (
                os.urandom(16).hex()  # 32 random hex digits
                if job_id is None
                else check_id(job_id, "job_id")
            ),
            setup.flow_id,
            entry_routine_id,
            params,
            slot_name,
            now() if now is _utc_now else checked_now(self.clock),
            setup.history_limit,
            plan.shape,
        )
        job.pending.append(
            new_delivery(0, entry_routine_id, slot_name, dict(params), -1)
        )
        job.next_seq = 1
        return job

    def may_deliver(self, job: JobState, delivery: Delivery) -> bool:
        """Say whether ``delivery``, just taken off the stack, may run now.

        A stop request pauses or cancels the job, and the delivery limit
        fails it: then the delivery goes back on the stack and the answer is
        False. A retry waits its delay first (if the wait is interrupted,
        the delivery goes back before the exception leaves); a retry is
        never refused for the limit, which its first attempt already passed.
        """
        delay = self.admit(job, delivery)
        if delay is None:
            return False
        if delivery.attempt:
            try:
                self.clock.sleep(delay)
            except BaseException:
                job.pending.append(delivery)
                raise
        return True

    def admit(self, job: JobState, delivery: Delivery) -> float | None:
        """Return how long ``delivery`` must wait before it runs, or ``None``.

        ``None`` means it may not run: it went back on the stack, and the job
        paused, was cancelled, or failed for reaching its delivery limit.
        """
        if job._stop_request is not None:
            job.pending.append(delivery)
            self.honour_stop_request(job, delivery)
            return None
        if delivery.attempt:
            return self.retry_delay(delivery)
        if job.delivery_count >= self.setup.max_deliveries:
            job.pending.append(delivery)
            self.fail_on_limit(job, delivery)
            return None
        return 0.0

    def deliver_checkpointed(
        self, job: JobState, plan: Plan, context: DeliveryContext, delivery: Delivery
    ) -> None:
        """Handle one delivery of a durable job on this thread, then checkpoint it."""
        change = self.change_before(job, delivery)
        self.deliver(job, plan, context, delivery)
        self.checkpoint(job, plan, delivery, change)

    def deliver(
        self, job: JobState, plan: Plan, context: DeliveryContext, delivery: Delivery
    ) -> None:
        """Handle one delivery on this thread."""
        ready = self.prepare(job, plan, delivery)
        if ready is None:
            return
        routine, _, target, _, buffer = ready
        context._routine = routine
        context._delivery = delivery
        emissions: list[tuple[str, Payload]] = []
        context._emissions = emissions
        end = delivery_started(self.observers, job, delivery, routine)
        started = self.monotonic()
        try:
            if target is None:
                call_source = routine.__call__  # a source
                result: object = call_source(**delivery.data)
            else:
                result = target.invoke(buffer, delivery.routine_id)
            refuse_awaitable(result)
        except BaseException as error:  # user code: any failure is handled
            context._routine = None
            if end is not None:
                end(error, self.monotonic() - started)
            if not self.failed(job, plan, delivery, ready, emissions, error, started):
                raise
            return
        duration = self.monotonic() - started
        context._routine = None
        if end is not None:
            end(None, duration)
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
        if target.group_sources is not None:  # a correlated join
            return self._prepare_group(job, plan, delivery, target)
        buffers = job.slot_buffers
        old = buffers.get(target.key)
        data = delivery.data
        if target.merge_override:
            buffer = {**old, **data} if old else dict(data)
        else:
            try:
                buffer = target.slot.merge(old, data)
            except Exception as error:  # noqa: BLE001  a user's merge function failed
                self._fail(job, plan, delivery, target.routine, state, error, 0.0)
                return None
        buffers[target.key] = buffer
        if (
            target.join_sources
            and connection >= 0
            and not _joined(job, target, connection)
        ):
            self._record(job, state, delivery, BUFFERED, self.monotonic(), 0.0)
            return None
        return (target.routine, state, target, old, buffer)

    def _prepare_group(
        self, job: JobState, plan: Plan, delivery: Delivery, target: Target
    ) -> Ready | None:
        """Add a delivery to its correlated join's group; see :func:`gather`."""
        state = job.routine_states[delivery.routine_id]  # prepare made it
        try:
            found = gather(job, target, delivery)
        except Exception as error:  # noqa: BLE001  a key or merge function failed
            self._fail(job, plan, delivery, target.routine, state, error, 0.0)
            return None
        if found is None:
            self._record(job, state, delivery, BUFFERED, self.monotonic(), 0.0)
            return None
        return (target.routine, state, target, *found)

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
            self._fail(job, plan, delivery, routine, state, error, duration, started)
            return
        if target is not None and target.group_sources is not None:
            close_group(job, target, ready[3])
        elif target is not None and target.join_sources:
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
        plan: Plan,
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
            delivery_failed(job, delivery, error, retried=True)
            self._record(job, state, delivery, RETRIED, started, duration)
            delivery.attempt += 1
            job.pending.append(delivery)
            return
        record = error_record(delivery, error, self.clock)
        # Given up for good: a failure route, if any, handles it (fallback.py).
        routed = route_failure(job, plan, delivery, record, state)  # the run's plan
        outcome = ROUTED if routed else FAILED
        self._record(job, state, delivery, outcome, started, duration)
        delivery_failed(job, delivery, error, retried=False)
        record_error(job, record, error)
        if routed:
            return
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
        return routine._error_handler or self.setup.error_handler or STOP_HANDLER

    def undo_merge(self, job: JobState, delivery: Delivery, ready: Ready) -> None:
        """Undo a delivery's merge after its handler was interrupted."""
        rollback(job, delivery, ready)

    def retry_delay(self, delivery: Delivery) -> float:
        """Return how long to wait before a retried delivery's next attempt."""
        handler = self._handler_for(self.setup.plan().routines[delivery.routine_id])
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
            errors_from=job.error_count,
        )

    def checkpoint(
        self, job: JobState, plan: Plan, delivery: Delivery, change: Change | None
    ) -> None:
        """Commit a finished delivery to the job's store (durable jobs only)."""
        if self.journal is None or change is None:
            return
        snapshot_routine(job, plan, delivery.routine_id)
        self.commit(job, delivery, change)

    def commit(self, job: JobState, delivery: Delivery, change: Change) -> None:
        """Write a checkpoint whose routine's stats snapshot is taken (any thread)."""
        assert self.journal is not None  # noqa: S101  durable jobs only
        try:
            self.journal.commit(job, change)
        except SerializationError:
            self.unsaved = delivery  # the run stores the job failed on it
            raise

    def honour_stop_request(
        self, job: JobState, delivery: Delivery | None = None
    ) -> None:
        """Pause, cancel or fail ``job`` as a pending request asks.

        A request to fail (too much pending work) is recorded as the error of
        ``delivery``, the next one due, when there is one.
        """
        assert job._stop_request is not None  # noqa: S101  checked by the caller
        status, reason, checkpoint = job._stop_request
        job._stop_request = None
        if status is JOB_FAILED and delivery is not None:
            self._fail_job(job, delivery, ExecutionError(reason))
            return
        job.status = status
        if status is JobStatus.PAUSED:
            point = PausePoint(reason, checkpoint, self.clock.now(), job.delivery_count)
            job.pause_points.append(point)

    def fail_on_limit(self, job: JobState, delivery: Delivery) -> None:
        """Fail ``job``: it needs more deliveries than the flow allows."""
        limit = self.setup.max_deliveries
        error = ExecutionError(
            f"{limit_reached(job)}{limit} deliveries; a cycle may never end. Add "
            "a stop condition, or raise Flow(max_deliveries=...)"
        )
        self._fail_job(job, delivery, error)

    def _fail_job(self, job: JobState, delivery: Delivery, error: Exception) -> None:
        """Fail ``job`` for a limit it reached, recording ``error`` on ``delivery``."""
        routine_id = delivery.routine_id
        state = job.routine_states.get(routine_id)
        if state is None:
            state = job.routine_states[routine_id] = RoutineState(routine_id)
        record_error(job, error_record(delivery, error, self.clock), error)
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
        job._history.append(
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
        if outcome in _RUNS:
            job.tracker._record_run(delivery.routine_id, outcome, duration)


def rollback(job: JobState, delivery: Delivery, ready: Ready) -> None:
    """Undo a failed delivery's merge so a retry or resume merges it once."""
    _, _, target, old, buffer = ready
    if target is None or target.group_sources is not None:
        return  # a correlated join's groups change only when its handler succeeds
    target.slot._unmerge(buffer, delivery.data)
    if old is None:
        del job.slot_buffers[target.key]
    else:
        job.slot_buffers[target.key] = old
    if target.join_sources and delivery.connection >= 0:
        job.join_arrivals[target.key].discard(delivery.connection)


def _joined(job: JobState, target: Target, connection: int) -> bool:
    """Note a join's arrival from ``connection``; say whether all have delivered."""
    arrived = job.join_arrivals.get(target.key)
    if arrived is None:
        arrived = job.join_arrivals[target.key] = set()
    arrived.add(connection)
    # Arrivals come only from the join's sources, so counting suffices.
    return len(arrived) >= len(target.join_sources)


def stopped_by_limit(job: JobState, error: ErrorRecord) -> bool:
    """Say whether ``error`` is the delivery limit's, which no handler raised."""
    return error.error_type == "ExecutionError" and error.message.startswith(
        limit_reached(job)
    )


def drop_pending(job: JobState, now: float) -> None:
    """Record a cancelled job's pending deliveries in its history, then drop them.

    ``now`` is the time to record, in seconds since the epoch.
    """
    for delivery in reversed(job.pending):
        job._history.append(
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
