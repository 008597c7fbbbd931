"""One run of a job: set it up, hand it to a scheduler loop, settle and save it.

A run starts a pending, paused, failed or interrupted job, runs its pending
deliveries with the sequential loop (or the concurrent one, when the runtime
has an executor) until the job ends or pauses, and then records its wall time,
its routines' stats snapshots and, for a durable job, its final state.
"""

from __future__ import annotations

import asyncio
import reprlib
from concurrent.futures import Executor
from contextvars import Token
from typing import TYPE_CHECKING, Final

from flowforge._context import CURRENT, DeliveryContext
from flowforge.engine.awaiting import run_async_loop, run_concurrent_async
from flowforge.engine.concurrent import ConcurrentLoop
from flowforge.engine.observe import for_run, job_ended, job_started
from flowforge.engine.routing import JOB_RUNNING
from flowforge.engine.runtime import Runtime, drop_pending
from flowforge.engine.sequential import run_loop
from flowforge.engine.setup import SEQUENTIAL, STRATEGIES
from flowforge.engine.stats import snapshot_stats
from flowforge.exceptions import (
    DefinitionError,
    ExecutionError,
    FlowForgeError,
    SerializationError,
    StoreError,
)
from flowforge.job_state import JobState, JobStatus

if TYPE_CHECKING:
    from flowforge.engine.journal import Journal
    from flowforge.engine.plan import Plan
    from flowforge.engine.setup import FlowSetup

__all__ = [
    "check_no_running_loop",
    "check_strategy",
    "new_runtime",
    "run_job",
    "run_job_async",
]

# Enum members read once: an Enum class attribute is slow to read on CPython
# 3.11, and each job reads these a few times.
JOB_PAUSED: Final = JobStatus.PAUSED
JOB_COMPLETED: Final = JobStatus.COMPLETED
JOB_CANCELLED: Final = JobStatus.CANCELLED
JOB_FAILED: Final = JobStatus.FAILED


def check_strategy(strategy: str) -> str:
    """Return ``strategy`` if FlowForge knows it.

    Raises:
        DefinitionError: If it is neither ``"sequential"`` nor ``"concurrent"``.
    """
    if not (isinstance(strategy, str) and strategy in STRATEGIES):
        raise DefinitionError(
            f"unknown execution strategy {reprlib.repr(strategy)}; use 'sequential' or "
            "'concurrent'"
        )
    return strategy


def new_runtime(
    setup: FlowSetup,
    *,
    journal: Journal | None = None,
    strategy: str | None = None,
    on_loop: bool = False,
) -> Runtime:
    """Return a runtime for one job run of ``setup``'s flow with ``strategy``.

    A run on an event loop (``on_loop``, or a flow with async handlers) runs
    its concurrent deliveries as tasks, so it gets no thread pool. (Callers
    check :func:`check_no_running_loop` first, before a job is stored.)
    """
    strategy = setup.strategy if strategy is None else check_strategy(strategy)
    if strategy == SEQUENTIAL:
        return Runtime(setup, journal=journal)
    tasks = on_loop or setup.plan().has_async
    executor: Executor | None = None if tasks else setup.executor()
    return Runtime(
        setup,
        journal=journal,
        executor=executor,
        max_workers=setup.max_workers,
        strategy=strategy,
    )


def run_job(runtime: Runtime, job: JobState) -> JobState:
    """Run ``job``'s pending deliveries until it ends or pauses; return it.

    A flow with ``async def`` handlers runs on a private event loop.

    Raises:
        ExecutionError: If the flow has async handlers and this thread runs
            an event loop already: ``await`` the async entry point instead.
    """
    plan = runtime.setup.plan()
    if plan.has_async:
        return _run_on_private_loop(runtime, job)
    run = _begin(runtime, job, plan)
    try:
        if runtime.executor is None:
            run_loop(runtime, job, _loop_plan(runtime, job, plan), run[0])
        else:
            ConcurrentLoop(runtime, None, runtime.max_workers).run(job, plan)
    except BaseException as error:
        _stopped(runtime, job, plan, run, error)
        raise
    _ended(runtime, job, plan, run)
    return job


async def run_job_async(runtime: Runtime, job: JobState) -> JobState:
    """Run ``job`` on the running event loop, awaiting async handlers; return it."""
    plan = runtime.setup.plan()
    run = _begin(runtime, job, plan)
    try:
        if runtime.strategy == SEQUENTIAL:
            await run_async_loop(runtime, job, plan)
        else:
            await run_concurrent_async(runtime, job, plan, runtime.max_workers)
    except BaseException as error:
        _stopped(runtime, job, plan, run, error)
        raise
    _ended(runtime, job, plan, run)
    return job


def _run_on_private_loop(runtime: Runtime, job: JobState) -> JobState:
    check_no_running_loop(runtime.setup)
    return asyncio.run(run_job_async(runtime, job))


def check_no_running_loop(setup: FlowSetup) -> None:
    """Refuse to run a flow with async handlers from a thread that runs a loop.

    Raises:
        ExecutionError: If ``setup``'s flow has async handlers and this
            thread runs an event loop (``execute`` would block it).
    """
    if not setup.plan().has_async:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # none runs here: the usual case
        return
    raise ExecutionError(
        f"flow {setup.flow_id!r} has async handlers and this thread runs an "
        "event loop: use 'await flow.execute_async(...)' (or resume_async) instead "
        "of execute, which would block the loop; recover from another thread "
        "with 'await asyncio.to_thread(flow.recover, store)'"
    )


Run = tuple[DeliveryContext, float, Token[DeliveryContext | None], bool]
"""A run begun by ``_begin``: its context, start time, context token, and
whether its end is reported however it ends.

A run's loop sits between ``_begin`` and ``_ended`` (or ``_stopped``, if an
exception stops it), written out in ``run_job`` rather than in a context
manager, which would cost a few calls per job.
"""


def _ended(runtime: Runtime, job: JobState, plan: Plan, run: Run) -> None:
    """Settle a run whose loop returned, and save the job, as it ended."""
    try:
        _settle(runtime, job)
    except BaseException as error:  # an interrupt, say: release what the run holds
        _stopped(runtime, job, plan, run, error)
        raise
    try:
        _finish(runtime, job, plan, run, write=True)
    except BaseException as failure:
        job_ended(runtime.observers, job, failure)
        raise
    if run[3] or job.status is JOB_FAILED:  # else its end is not reported
        job_ended(runtime.observers, job, None)


def _stopped(
    runtime: Runtime,
    job: JobState,
    plan: Plan,
    run: Run,
    error: BaseException,
) -> None:
    """Save a run that ``error`` stopped, unless a store failed; log and observe it.

    A run stopped by an exception is saved as it stands (unless the store
    itself failed), so that a resume continues it.
    """
    failed = _failed_unsaved(runtime, job, error)
    try:
        write = _writes_after(error)
        _finish(runtime, job, plan, run, write=write, saved=failed)
    except BaseException as failure:
        job_ended(runtime.observers, job, failure)
        raise
    job_ended(runtime.observers, job, error)


def _begin(runtime: Runtime, job: JobState, plan: Plan) -> Run:
    """Mark the job running, save it if durable, and note it as running.

    The run's start is logged and told to the flow's observers (see
    ``observe``), as its end will be.
    """
    status, job.status = job.status, JOB_RUNNING
    now = runtime.now()
    job.started_at = job.started_at or now
    job._wall_offset = now.timestamp() - runtime.monotonic()
    context = DeliveryContext(job)
    job._max_pending = runtime.setup.max_pending
    job.tracker._know_routes(plan.event_targets, plan.event_keys, plan.event_positions)
    began = runtime.monotonic()
    journal = runtime.journal
    try:
        if journal is not None:
            journal.begin(job)
        runtime.setup.jobs.add(job, exclusive=journal is None)
    except BaseException:
        job.status = status  # not started: resumable as it was
        raise
    token = CURRENT.set(context)
    runtime.observers = observers = for_run(runtime.observers, plan.failures)
    return context, began, token, job_started(observers, job)


def _failed_unsaved(
    runtime: Runtime, job: JobState, error: BaseException
) -> JobState | None:
    """Return the job as last saved, failed on the delivery it could not save.

    A value that cannot be saved (of a type not registered, say) fails every
    checkpoint that holds it, so the job could never go on: rather than left
    ``running`` in the store, it is stored failed with the reason, as of its
    last checkpoint, and a resume by id runs that delivery again. ``None``
    for any other error, or if the store cannot give the saved state.
    """
    journal, delivery = runtime.journal, runtime.unsaved
    if journal is None or delivery is None or not isinstance(error, SerializationError):
        return None
    try:
        stored = journal.store.load(job.job_id)
    except FlowForgeError:  # the job stays as of its last checkpoint
        return None
    saved = next((d for d in stored.pending if d.seq == delivery.seq), delivery)
    runtime._fail_job(stored, saved, error)
    stored.finished_at = runtime.clock.now()
    return stored


def _writes_after(error: BaseException) -> bool:
    """Say whether a run stopped by ``error`` saves its state over its checkpoints.

    Not after a store failure, and not after an interrupt (a
    ``KeyboardInterrupt`` or ``SystemExit``): one can land between any two
    lines, between a delivery's end and the routing of what it emitted say,
    so the state in memory may be half a step; a durable job stays as of its
    last checkpoint, which recovery continues exactly. A task's cancellation
    comes only at an ``await``, where the state is whole, and is saved.
    """
    if isinstance(error, StoreError):
        return False
    return isinstance(error, (Exception, asyncio.CancelledError))


def _loop_plan(runtime: Runtime, job: JobState, plan: Plan) -> Plan:
    """Return the plan the sequential loop reads for ``job``.

    A job about to run only its entry delivery (a new job, say) gets the
    flow's plan for that entry, so that the entry takes the loop's fast
    path: every other delivery of the run comes from a connection, so the
    entry is the only one that reads the plan's ``direct[-1]``.
    """
    pending = job.pending
    if len(pending) != 1 or runtime.journal is not None:
        return plan
    entry = pending[0]
    if entry.connection >= 0 or entry.slot is None:
        return plan
    return runtime.setup.entry_plans.get(plan, entry.routine_id, entry.slot)


def _finish(
    runtime: Runtime,
    job: JobState,
    plan: Plan,
    run: Run,
    *,
    write: bool,
    saved: JobState | None = None,
) -> None:
    """Release what the run held; save the job's state unless the store failed.

    ``saved`` is the state to save instead of ``job``'s, if given.
    """
    CURRENT.reset(run[2])
    job._interrupt = None
    runtime.setup.jobs.discard(job)
    job.tracker._add_wall_time(runtime.monotonic() - run[1])
    try:
        snapshot_stats(job, plan)
    finally:  # the lease is released even if a routine's stats cannot be
        if runtime.journal is not None:
            runtime.journal.end(job if saved is None else saved, write=write)


def _settle(runtime: Runtime, job: JobState) -> None:
    job._stop_request = None  # honoured, or moot once the job failed
    status = job.status
    if status is JOB_RUNNING and not job.pending:
        status = job.status = JOB_COMPLETED
    if status is not JOB_PAUSED:
        job.finished_at = runtime.now()
    if status is not JOB_FAILED:  # only a failed job's raise_for_status chains it
        job._cause = None  # the live exception holds its frames' locals
    if status is JOB_CANCELLED:
        drop_pending(job, runtime.monotonic() + job._wall_offset)
