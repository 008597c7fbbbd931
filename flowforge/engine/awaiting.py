"""The asyncio scheduler: a job's handlers awaited on the caller's event loop.

Both async loops keep the thread engine's rules: :class:`Runtime` decides
whether a delivery may run, merges it, records its outcome and routes its
emissions, and the concurrent coordinator is the thread strategy's
:class:`ConcurrentLoop`, driven here with tasks instead of pool threads. Only
the call differs: a coroutine that a handler returns is awaited within its
slot's timeout, and each delivery gets a context of its own, so tasks that a
handler starts see their own delivery.

``flow.cancel`` from outside the job cancels the handlers that await (they see
:class:`asyncio.CancelledError`, and their deliveries are recorded as
cancelled). Cancelling the task that runs the job puts the deliveries in flight
back on the stack, as ``KeyboardInterrupt`` does in the thread engine, so a
durable job stays resumable.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

from flowforge._context import CURRENT, DeliveryContext
from flowforge.engine.clock import sleep_on_loop
from flowforge.engine.concurrent import ConcurrentLoop, HandlerCancelled, Outcome
from flowforge.engine.observe import delivery_started
from flowforge.engine.routing import JOB_RUNNING, RUNNING, SKIPPED
from flowforge.engine.sequential import finisher
from flowforge.engine.writer import Writer
from flowforge.exceptions import ExecutionError
from flowforge.job_state import JobStatus
from flowforge.record import Delivery, RoutineState

if TYPE_CHECKING:
    from flowforge.engine.plan import Plan, Target
    from flowforge.engine.runtime import Ready, Runtime
    from flowforge.job_state import JobState
    from flowforge.routine import Routine
    from flowforge.types import Payload

__all__ = ["run_async_loop", "run_concurrent_async"]

_new: Final = object.__new__
CANCELLING: Final = JobStatus.CANCELLED
ENDED: Final = object()
"""What a delivery's context points at once its handler returned: tasks the
handler started still see their delivery, but can no longer emit (the
handler's emissions were committed when it returned)."""


async def call(
    routine: Routine, target: Target | None, delivery: Delivery, buffer: Payload
) -> None:
    """Call a delivery's handler (or source) and await what it returns, if async.

    A :class:`asyncio.CancelledError` that the handler raises while nothing
    cancels the task running it (it awaited a future someone else cancelled)
    is the delivery's failure, an :class:`ExecutionError` its error strategy
    handles; otherwise it would look like the cancelling of the whole job.
    """
    try:
        if target is None:
            # An async def __call__ returns a coroutine, whatever Routine says.
            call_source = routine.__call__
            result: object = call_source(**delivery.data)
            if asyncio.iscoroutine(result):
                await result
            return
        result = target.invoke(buffer, delivery.routine_id)
        # A decorated async def may look plain: await whatever is awaitable.
        if target.is_async or (result is not None and inspect.isawaitable(result)):
            await _within_timeout(result, target, delivery)
    except asyncio.CancelledError as error:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # the job is cancelled, or the task awaiting it
        raise ExecutionError(
            f"routine {delivery.routine_id!r} raised CancelledError on slot "
            f"{delivery.slot!r}, but nothing cancelled its job: something it "
            "awaited was cancelled"
        ) from error


async def _within_timeout(result: object, target: Target, delivery: Delivery) -> None:
    """Await an async handler's coroutine, within its slot's timeout if any."""
    if target.timeout is None:
        await result  # type: ignore[misc]  # an async def handler's coroutine
        return
    limit = asyncio.timeout(target.timeout)
    try:
        async with limit:
            await result  # type: ignore[misc]  # as above
    except TimeoutError as error:
        if limit.expired():  # say what timed out, not just TimeoutError()
            raise _timed_out(target, delivery) from error
        raise
    if limit.expired():  # the handler swallowed its timeout's cancel
        raise _timed_out(target, delivery)


def _timed_out(target: Target, delivery: Delivery) -> TimeoutError:
    """Return the error of a handler that ran past its slot's timeout."""
    return TimeoutError(
        f"routine {delivery.routine_id!r} took longer than its slot "
        f"{delivery.slot!r} allows (timeout={target.timeout} s)"
    )


def call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Run ``callback`` on ``loop`` soon (any thread); nothing if the loop closed.

    ``flow.cancel`` may read a job's hook just before the job ends and its
    private loop closes: the job it would cancel has ended, so that is no error.
    """
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:
        if not loop.is_closed():
            raise


@final
class Interrupt:
    """Cancels the awaiting handler of a sequential async job, from any thread.

    The request runs on the job's event loop, and cancels the job's task
    only while it awaits a handler, never between deliveries.
    """

    __slots__ = ("loop", "task", "awaiting", "cancelled")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object]):
        """Watch ``task``, which runs the job on ``loop``."""
        self.loop, self.task = loop, task
        self.awaiting = self.cancelled = False

    def request(self) -> None:
        """Ask for the awaiting handler to be cancelled (any thread)."""
        call_soon(self.loop, self._cancel)

    def _cancel(self) -> None:
        if self.awaiting and not self.cancelled:
            self.cancelled = True
            self.task.cancel()

    def took_effect(self) -> bool:
        """Say, once, whether this interrupt cancelled the handler just awaited."""
        if not self.cancelled:
            return False
        self.cancelled = False
        self.task.uncancel()
        return True


async def run_async_loop(runtime: Runtime, job: JobState, plan: Plan) -> None:
    """Run a job's pending deliveries one at a time, awaiting each handler.

    The order and history are the sequential strategy's: depth first in
    connection order.
    """
    task = asyncio.current_task()
    assert task is not None  # noqa: S101  run_job_async runs in a task
    interrupt = Interrupt(asyncio.get_running_loop(), task)
    job._interrupt = interrupt.request
    with Writer(runtime) as writer:
        await _run_deliveries(runtime, job, plan, interrupt, writer)


async def _run_deliveries(
    runtime: Runtime, job: JobState, plan: Plan, interrupt: Interrupt, writer: Writer
) -> None:
    pending, states, buffers = job.pending, job.routine_states, job.slot_buffers
    limit, monotonic = runtime.setup.max_deliveries, runtime.monotonic
    # A durable or observed job's deliveries all take the general path.
    general = runtime.journal is not None or runtime.observers is not None
    direct = (None,) * len(plan.direct) if general else plan.direct
    finished = finisher(job, plan)
    while pending and job.status is JOB_RUNNING:
        delivery = pending.pop()
        stop = job._stop_request is not None or job.delivery_count >= limit
        if (stop or delivery.attempt) and not await _admit(runtime, job, delivery):
            return
        rid, target = delivery.routine_id, direct[delivery.connection]
        state = states.get(rid)
        if target is None or (state is not None and state.status is SKIPPED):
            change = runtime.change_before(job, delivery)
            await _deliver(runtime, job, plan, delivery, interrupt)
            await writer.checkpoint(job, plan, delivery, change)
            continue
        if state is None:  # RoutineState(rid), without its slow generic call
            state = states[rid] = _new(RoutineState)
            state.routine_id, state.status, state.deliveries = rid, RUNNING, 0
            state._errors = state._stats = state._error_counts = None
        old, data = buffers.get(target.key), delivery.data
        buffer = {**old, **data} if old else dict(data)
        buffers[target.key] = buffer
        ready = (target.routine, state, target, old, buffer)
        outcome = await _run(runtime, job, plan, delivery, ready, interrupt)
        if outcome is not None:
            emissions, started = outcome
            finished(delivery, state, started, monotonic() - started, emissions)


async def _admit(runtime: Runtime, job: JobState, delivery: Delivery) -> bool:
    """Say whether a delivery may run, awaiting a retry's delay first."""
    delay = runtime.admit(job, delivery)
    if delay is None:
        return False
    if delivery.attempt:
        try:
            await sleep_on_loop(runtime.clock, delay)
        except BaseException:
            job.pending.append(delivery)
            raise
    return True


async def _deliver(
    runtime: Runtime,
    job: JobState,
    plan: Plan,
    delivery: Delivery,
    interrupt: Interrupt,
) -> None:
    """Handle any delivery: prepare it, run it, record what it did."""
    ready = runtime.prepare(job, plan, delivery)
    if ready is None:
        return
    outcome = await _run(runtime, job, plan, delivery, ready, interrupt)
    if outcome is not None:
        emissions, started = outcome
        duration = runtime.monotonic() - started
        runtime.complete(job, plan, delivery, ready, emissions, None, started, duration)


async def _run(
    runtime: Runtime,
    job: JobState,
    plan: Plan,
    delivery: Delivery,
    ready: Ready,
    interrupt: Interrupt,
) -> tuple[list[tuple[str, Payload]], float] | None:
    """Run a prepared delivery's handler; return its emissions and start time.

    ``None`` means the handler did not complete: its failure was handled,
    or the job's cancel stopped it (the delivery is then back on the stack).
    """
    routine, _, target, _, buffer = ready
    emissions: list[tuple[str, Payload]] = []
    context = DeliveryContext(job, routine, delivery, emissions)
    # Each delivery has a context of its own, which tasks the handler starts
    # copy; the job's own context is restored for what runs between handlers.
    token = CURRENT.set(context)
    end = delivery_started(runtime.observers, job, delivery, routine)
    started = runtime.monotonic()
    interrupt.awaiting = True
    try:
        await call(routine, target, delivery, buffer)
    except BaseException as error:  # user code: any failure is handled
        interrupt.awaiting = False
        context._routine = ENDED
        if end is not None:
            end(error, runtime.monotonic() - started)
        CURRENT.reset(token)
        if interrupt.took_effect():
            runtime.undo_merge(job, delivery, ready)
            job.pending.append(delivery)
            runtime.honour_stop_request(job)
            return None
        if not runtime.failed(job, plan, delivery, ready, emissions, error, started):
            raise
        return None
    interrupt.awaiting = False
    context._routine = ENDED
    if end is not None:
        end(None, runtime.monotonic() - started)
    CURRENT.reset(token)
    interrupt.took_effect()  # the handler finished despite a late cancel
    return emissions, started


_LOCKS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Routine, asyncio.Lock]
] = weakref.WeakKeyDictionary()
"""One lock per routine and event loop: concurrent async jobs of one flow
never run two handlers of a routine at once, as pool threads never do. Jobs on
different loops (threads) are kept apart by the routine's thread lock too."""


def _lock_of(routine: Routine) -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    locks = _LOCKS.get(loop)
    if locks is None:
        locks = _LOCKS[loop] = weakref.WeakKeyDictionary()
    lock = locks.get(routine)
    if lock is None:
        lock = locks[routine] = asyncio.Lock()
    return lock


async def _acquire(lock: threading.Lock) -> None:
    """Take a routine's thread lock without blocking the loop while others hold it.

    The loop's own lock already lets one task per loop and routine get this
    far, so only jobs run on other threads' loops (``execute`` from several
    threads) or by the thread strategy contend here: a pool thread waits.
    """
    if lock.acquire(blocking=False):
        return
    taken = asyncio.get_running_loop().run_in_executor(None, lock.acquire)
    try:
        await asyncio.shield(taken)
    except BaseException:
        # Cancelled while waiting: the lock, once taken for no one, is let go.
        taken.add_done_callback(lambda _: lock.release())
        raise


async def run_concurrent_async(
    runtime: Runtime, job: JobState, plan: Plan, limit: int
) -> None:
    """Run a job's independent deliveries as tasks, at most ``limit`` at once."""
    outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()
    launched: dict[int, Ready] = {}
    loop = asyncio.get_running_loop()

    def launch(job: JobState, delivery: Delivery, ready: Ready) -> None:
        launched[delivery.seq] = ready
        task = loop.create_task(_handle(job, delivery, ready, outcomes, runtime))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def cancel_awaiting() -> None:
        for task in list(tasks):
            task.cancel()

    def interrupt() -> None:
        call_soon(loop, cancel_awaiting)

    coordinator = ConcurrentLoop(runtime, launch, limit)
    coordinator.start(job)
    job._interrupt = interrupt
    writer = Writer(runtime)
    coordinator.defer_writes = writer.offloads
    try:
        with writer:
            await _coordinate(coordinator, job, plan, (outcomes, launched), writer)
    except BaseException:
        cancel_awaiting()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The deliveries whose outcome was not recorded go back on the stack
        # (materialize), so their merges are undone: a resume merges them again.
        for seq, delivery in coordinator.in_flight.items():
            runtime.undo_merge(job, delivery, launched[seq])
        raise
    finally:
        coordinator.materialize(job)


async def _coordinate(
    coordinator: ConcurrentLoop,
    job: JobState,
    plan: Plan,
    running: tuple[asyncio.Queue[Outcome], dict[int, Ready]],
    writer: Writer,
) -> None:
    """Drive the coordinator until the job ends, pauses or fails.

    A checkpoint the coordinator leaves due (for a slow store) is written
    before anything else starts.
    """
    clock = coordinator.runtime.clock
    outcomes, launched = running
    while (wait := coordinator.step(job, plan)) is not None:
        if coordinator.write_due is not None:
            await writer.flush(coordinator, job, plan)
            continue
        if wait.sleep is not None:
            await sleep_on_loop(clock, wait.sleep)
            coordinator.release_due_retries()
            continue
        try:
            outcome = await asyncio.wait_for(outcomes.get(), wait.timeout)
        except TimeoutError:
            coordinator.release_due_retries()
            continue
        del launched[outcome[0].seq]
        coordinator.finish(job, plan, outcome)
        await writer.flush(coordinator, job, plan)
    coordinator.end(job)


async def _observed_call(
    runtime: Runtime, job: JobState, delivery: Delivery, ready: Ready
) -> Exception | None:
    """Call a delivery's handler as its task, observed; return what it raised.

    Anything else than an ``Exception`` (a cancel) propagates.
    """
    routine, _, target, _, buffer = ready
    end = delivery_started(runtime.observers, job, delivery, routine)
    started = runtime.monotonic()
    try:
        await call(routine, target, delivery, buffer)
    except BaseException as error:  # user code: reported as the outcome
        if end is not None:
            end(error, runtime.monotonic() - started)
        if isinstance(error, Exception):
            return error
        raise
    if end is not None:
        end(None, runtime.monotonic() - started)
    return None


async def _handle(
    job: JobState,
    delivery: Delivery,
    ready: Ready,
    outcomes: asyncio.Queue[Outcome],
    runtime: Runtime,
) -> None:
    """Run one handler as a task and report its outcome to the coordinator."""
    routine = ready[0]
    emissions: list[tuple[str, Payload]] = []
    context = DeliveryContext(job, routine, delivery, emissions)
    CURRENT.set(context)
    monotonic = runtime.monotonic
    started = duration = 0.0
    error: BaseException | None = None
    try:
        async with _lock_of(routine):
            await _acquire(routine._handler_lock)
            try:
                started = monotonic()
                try:
                    error = await _observed_call(runtime, job, delivery, ready)
                finally:
                    context._routine = ENDED
                duration = monotonic() - started
            finally:
                routine._handler_lock.release()
    except asyncio.CancelledError as cancelled:
        stop = job._stop_request
        cancelling = stop is not None and stop[0] is CANCELLING
        error = HandlerCancelled() if cancelling else cancelled
    except BaseException as fatal:  # noqa: B036  the coordinator re-raises it
        error = fatal
    outcomes.put_nowait((delivery, ready, emissions, error, started, duration))
