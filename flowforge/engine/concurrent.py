"""The concurrent strategy: independent deliveries on a thread pool, one coordinator.

The thread that called ``execute`` coordinates: it alone reads and writes the
job's state, merges slot buffers, routes emissions and checkpoints. Pool
threads only run handlers. Each routine has a queue of its deliveries in
sequence order and runs one at a time, so deliveries along a connection keep
their order; a routine waiting for a retry holds no thread, only its queue.
"""

from __future__ import annotations

import heapq
import queue
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from flowforge._context import CURRENT, DeliveryContext
from flowforge.engine.observe import delivery_started
from flowforge.engine.routing import JOB_RUNNING, refuse_awaitable, request_overflow
from flowforge.job_state import JobState, JobStatus
from flowforge.record import Delivery

if TYPE_CHECKING:
    from flowforge.engine.observe import Ending, Observers
    from flowforge.engine.plan import Plan
    from flowforge.engine.runtime import Ready, Runtime
    from flowforge.store.base import Change
    from flowforge.types import Payload

__all__ = ["ConcurrentLoop", "HandlerCancelled", "Launch", "Outcome", "Wait"]


Outcome = tuple[
    Delivery, "Ready", list[tuple[str, "Payload"]], BaseException | None, float, float
]
Launch = Callable[[JobState, Delivery, "Ready"], None]
"""Starts one handler; its outcome reaches the coordinator through ``report``."""


class HandlerCancelled(BaseException):
    """An awaiting handler was cancelled because its job was cancelled."""


@final
@dataclass(slots=True)  # not frozen: one is made per step, and frozen is slower
class Wait:
    """What the coordinator waits for: a retry's delay, or a handler's outcome."""

    sleep: float | None
    """Seconds until the next retry is due, when no handler runs."""
    timeout: float | None
    """How long to wait for an outcome before releasing due retries."""


@final
class ConcurrentLoop:
    """Run one job's deliveries on ``executor``, at most ``max_workers`` at a time.

    Thread safety: create one per job run; only the coordinating thread calls
    :meth:`run`.
    """

    def __init__(
        self, runtime: Runtime, launch: Launch | None, max_workers: int
    ) -> None:
        """Prepare to run a job with ``runtime``'s rules.

        ``launch`` starts one handler and reports its outcome with
        :meth:`report`; ``None`` runs handlers on the runtime's executor.
        """
        self.runtime = runtime
        self.launch = launch or self._submit
        self.max_workers = max_workers
        self.queues: dict[str, deque[Delivery]] = {}
        self.ready: deque[str] = deque()
        self.queued = 0
        """How many deliveries wait in the queues, for the job's pending bound."""
        self.readied: set[str] = set()
        """The routines in ``ready``, for a membership test in constant time."""
        self.busy: set[str] = set()
        self.in_flight: dict[int, Delivery] = {}
        self.retries: list[tuple[float, int, Delivery]] = []
        self.failed: Delivery | None = None
        self.held: list[Delivery] = []
        self.fatal: BaseException | None = None
        self.write_failed = False
        self.defer_writes = False
        """Leave each checkpoint in ``write_due`` for the caller to write (async)."""
        self.write_due: tuple[Delivery, Change] | None = None
        self.results: queue.SimpleQueue[Outcome] = queue.SimpleQueue()

    def run(self, job: JobState, plan: Plan) -> None:
        """Run ``job`` until it ends, pauses or fails; leave its pending deliveries."""
        self.start(job)
        try:
            clock = self.runtime.clock
            while (wait := self.step(job, plan)) is not None:
                if wait.sleep is not None:
                    clock.sleep(wait.sleep)
                    self.release_due_retries()
                    continue
                try:
                    outcome = self.results.get(timeout=wait.timeout)
                except queue.Empty:
                    self.release_due_retries()
                    continue
                self.finish(job, plan, outcome)
            self.end(job)
        finally:
            self.materialize(job)

    def start(self, job: JobState) -> None:
        """Take the job's pending deliveries into the routines' queues."""
        for delivery in sorted(job.pending, key=lambda d: d.seq):
            self._enqueue(job, delivery)
        job.pending.clear()

    def step(self, job: JobState, plan: Plan) -> Wait | None:
        """Start what may start now; say what to wait for, or ``None`` when done."""
        stopping = self.stopping(job)
        if not stopping:
            self._dispatch(job, plan)
        if self.write_due is not None:
            return Wait(None, 0.0)  # the caller writes it, then steps again
        if self.in_flight:
            return Wait(None, self._wait_seconds())
        if stopping or (not self.ready and not self.retries):
            return None
        if self.ready:
            return self.step(job, plan)  # a retry was released: dispatch it
        clock = self.runtime.clock
        return Wait(max(0.0, self.retries[0][0] - clock.monotonic()), None)

    def stopping(self, job: JobState) -> bool:
        """Say whether the job stops: nothing more may start."""
        return (
            job._stop_request is not None
            or job.status is not JOB_RUNNING
            or self.fatal is not None
        )

    def end(self, job: JobState) -> None:
        """Raise what stopped the run, or honour the job's stop request."""
        if self.fatal is not None:
            raise self.fatal
        if job._stop_request is not None and job.status is JOB_RUNNING:
            queued = [d for q in self.queues.values() for d in q]
            first = min(queued, key=lambda d: d.seq) if queued else None
            self.runtime.honour_stop_request(job, first)

    def report(self, outcome: Outcome) -> None:
        """Hand a finished handler's outcome to the coordinator (any thread)."""
        self.results.put(outcome)

    def _submit(self, job: JobState, delivery: Delivery, ready: Ready) -> None:
        executor = self.runtime.executor
        assert executor is not None  # noqa: S101  the thread strategy has one
        runtime = self.runtime
        work = (job, delivery, ready, self.report, runtime.monotonic, runtime.observers)
        try:
            executor.submit(_run_handler, *work)
        except RuntimeError:  # the pool was shut down (flow.close()) mid-job
            _run_handler(*work)  # the job still ends: on this thread

    def _dispatch(self, job: JobState, plan: Plan) -> None:
        runtime = self.runtime
        limit = runtime.setup.max_deliveries
        while self.ready and len(self.in_flight) < self.max_workers:
            if self.stopping(job):  # a checkpoint may just have failed
                return
            routine_id = self.ready.popleft()
            self.readied.discard(routine_id)
            delivery = self.queues[routine_id].popleft()
            self.queued -= 1
            if (
                delivery.attempt == 0
                and job.delivery_count + len(self.in_flight) >= limit
            ):
                self.held.append(delivery)
                self.failed = delivery
                runtime.fail_on_limit(job, delivery)
                return
            change = runtime.change_before(job, delivery)
            ready = runtime.prepare(job, plan, delivery)
            if ready is None:
                self._collect(job, delivery)
                self._checkpoint(job, plan, delivery, change)
                self._wake(routine_id)
                if self.write_due is not None:
                    return  # nothing changes the job until it is written
                continue
            self.busy.add(routine_id)
            self.in_flight[delivery.seq] = delivery
            self.launch(job, delivery, ready)

    def finish(self, job: JobState, plan: Plan, outcome: Outcome) -> None:
        """Record a finished handler's outcome, then release the retries due."""
        self._record(job, plan, outcome)
        self.release_due_retries()

    def _record(self, job: JobState, plan: Plan, outcome: Outcome) -> None:
        delivery, ready, emissions, error, started, duration = outcome
        runtime = self.runtime
        del self.in_flight[delivery.seq]
        if error is not None and not isinstance(error, Exception):
            runtime.undo_merge(job, delivery, ready)
            self.held.append(delivery)
            self.busy.discard(delivery.routine_id)
            # A handler cancelled with its job goes back, like one not started.
            if self.fatal is None and not isinstance(error, HandlerCancelled):
                self.fatal = error
            return
        change = runtime.change_before(job, delivery)
        runtime.complete(
            job, plan, delivery, ready, emissions, error, started, duration
        )
        self.busy.discard(delivery.routine_id)
        self._collect(job, delivery)
        self._checkpoint(job, plan, delivery, change)
        self._wake(delivery.routine_id)

    def _checkpoint(
        self, job: JobState, plan: Plan, delivery: Delivery, change: Change | None
    ) -> None:
        """Commit a finished delivery, with every unfinished one as ``job.pending``.

        The queues hold the job's pending deliveries while it runs, so they
        are laid out on ``job.pending`` for the store, then taken off again.
        A failed write ends the writing: the coordinator stops dispatching,
        waits for the handlers still running, then raises it.
        """
        if change is None or self.write_failed:
            return
        if self.defer_writes:
            self.write_due = (delivery, change)
            return
        self.materialize(job)
        try:
            self.runtime.checkpoint(job, plan, delivery, change)
        except BaseException as error:  # noqa: B036  raised once the pool drains
            self.write_failed = True
            if self.fatal is None:
                self.fatal = error
        finally:
            job.pending.clear()

    def write_failure(self, error: BaseException) -> None:
        """Note that a deferred checkpoint failed: nothing more starts."""
        self.write_failed = True
        if self.fatal is None:
            self.fatal = error

    def _collect(self, job: JobState, finished: Delivery) -> None:
        """Move what the last delivery pushed on ``job.pending`` into the queues."""
        for delivery in reversed(job.pending):
            if delivery is not finished:
                self._enqueue(job, delivery)
            elif job.status is JobStatus.FAILED:
                self.held.append(delivery)
                if self.failed is None:
                    self.failed = delivery
            else:
                self._schedule_retry(delivery)
        job.pending.clear()

    def _schedule_retry(self, delivery: Delivery) -> None:
        runtime = self.runtime
        delay = runtime.retry_delay(delivery)
        due = runtime.clock.monotonic() + delay
        heapq.heappush(self.retries, (due, delivery.seq, delivery))
        self.busy.add(delivery.routine_id)

    def release_due_retries(self) -> None:
        """Put back on their queues the retries whose delay has passed."""
        now = self.runtime.clock.monotonic()
        while self.retries and self.retries[0][0] <= now:
            _, _, delivery = heapq.heappop(self.retries)
            self.queues[delivery.routine_id].appendleft(delivery)
            self.busy.discard(delivery.routine_id)
            self._wake(delivery.routine_id)

    def _wait_seconds(self) -> float | None:
        if not self.retries:
            return None
        return max(0.0, self.retries[0][0] - self.runtime.clock.monotonic())

    def _enqueue(self, job: JobState, delivery: Delivery) -> None:
        self.queued += 1
        if self.queued > job._max_pending:
            request_overflow(job, self.queued)
        routine_id = delivery.routine_id
        pending = self.queues.get(routine_id)
        if pending is None:
            pending = self.queues[routine_id] = deque()
        pending.append(delivery)
        if len(pending) == 1:
            self._wake(routine_id)

    def _wake(self, routine_id: str) -> None:
        """Mark a routine ready if it has work and nothing in flight or waiting."""
        if routine_id not in self.busy and self.queues.get(routine_id):
            if routine_id not in self.readied:
                self.readied.add(routine_id)
                self.ready.append(routine_id)

    def materialize(self, job: JobState) -> None:
        """Leave every unfinished delivery on ``job.pending``, lowest seq on top."""
        waiting = [d for queue_ in self.queues.values() for d in queue_]
        waiting += [d for _, _, d in self.retries]
        waiting += list(self.in_flight.values())
        waiting += [d for d in self.held if d is not self.failed]
        waiting.sort(key=lambda d: d.seq, reverse=True)
        if self.failed is not None:
            waiting.append(self.failed)
        job.pending[:] = waiting


def _run_handler(
    job: JobState,
    delivery: Delivery,
    ready: Ready,
    report: Callable[[Outcome], None],
    monotonic: Callable[[], float],
    observers: Observers | None,
) -> None:
    """Run one handler on a pool thread and report its outcome to the coordinator."""
    routine, _, target, _, buffer = ready
    end: Ending | None = None  # set once the routine's lock is held
    emissions: list[tuple[str, Payload]] = []
    context = DeliveryContext(job, routine, delivery, emissions)
    token = CURRENT.set(context)
    started = duration = 0.0
    error: BaseException | None = None
    try:
        with routine._handler_lock:
            end = delivery_started(observers, job, delivery, routine)
            started = monotonic()
            try:
                if target is None:
                    call_source = routine.__call__  # a source
                    result: object = call_source(**delivery.data)
                else:
                    result = target.invoke(buffer, delivery.routine_id)
                refuse_awaitable(result)
            except Exception as failure:  # noqa: BLE001  reported to the coordinator
                error = failure
            duration = monotonic() - started
    except BaseException as fatal:  # noqa: B036  the coordinator re-raises it
        error = fatal
    finally:
        context._routine = None
        if end is not None:
            end(error, duration)
        CURRENT.reset(token)
        report((delivery, ready, emissions, error, started, duration))
