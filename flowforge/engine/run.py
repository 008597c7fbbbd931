"""One run of a job: set it up, hand it to a scheduler loop, settle and save it.

A run starts a pending, paused, failed or interrupted job, runs its pending
deliveries with the sequential loop (or the concurrent one, when the runtime
has an executor) until the job ends or pauses, and then records its wall time,
its routines' stats snapshots and, for a durable job, its final state.
"""

from __future__ import annotations

from concurrent.futures import Executor
from contextvars import Token
from typing import TYPE_CHECKING, Final

from flowforge._context import CURRENT, DeliveryContext
from flowforge.engine.concurrent import ConcurrentLoop
from flowforge.engine.routing import JOB_RUNNING
from flowforge.engine.runtime import Runtime, drop_pending
from flowforge.engine.sequential import run_loop
from flowforge.engine.setup import SEQUENTIAL, STRATEGIES
from flowforge.engine.stats import snapshot_stats
from flowforge.exceptions import DefinitionError, StoreError
from flowforge.job_state import JobState, JobStatus

if TYPE_CHECKING:
    from flowforge.engine.journal import Journal
    from flowforge.engine.plan import Plan
    from flowforge.engine.setup import FlowSetup

__all__ = ["check_strategy", "new_runtime", "run_job"]

# Enum members read once: an Enum class attribute is slow to read on CPython
# 3.11, and each job reads these a few times.
JOB_PAUSED: Final = JobStatus.PAUSED
JOB_COMPLETED: Final = JobStatus.COMPLETED
JOB_CANCELLED: Final = JobStatus.CANCELLED


def check_strategy(strategy: str) -> str:
    """Return ``strategy`` if FlowForge knows it.

    Raises:
        DefinitionError: If it is neither ``"sequential"`` nor ``"concurrent"``.
    """
    if strategy not in STRATEGIES:
        raise DefinitionError(
            f"unknown execution strategy {strategy!r}; use 'sequential' or "
            "'concurrent'"
        )
    return strategy


def new_runtime(
    setup: FlowSetup, *, journal: Journal | None = None, strategy: str | None = None
) -> Runtime:
    """Return a runtime for one job run of ``setup``'s flow with ``strategy``."""
    strategy = setup.strategy if strategy is None else check_strategy(strategy)
    if strategy == SEQUENTIAL:
        return Runtime(setup, journal=journal)
    executor: Executor = setup.executor()
    return Runtime(
        setup, journal=journal, executor=executor, max_workers=setup.max_workers
    )


def run_job(runtime: Runtime, job: JobState) -> JobState:
    """Run ``job``'s pending deliveries until it ends or pauses; return it."""
    plan = runtime.setup.plan()
    status, job.status = job.status, JOB_RUNNING
    now = runtime.clock.now()
    job.started_at = job.started_at or now
    job._wall_offset = now.timestamp() - runtime.monotonic()
    context = DeliveryContext(job)
    job.tracker._know_routes(plan.event_targets)
    began = runtime.monotonic()
    journal = runtime.journal
    if journal is not None:
        try:
            journal.begin(job)
        except BaseException:
            job.status = status  # not started: resumable as it was
            raise
    runtime.setup.jobs.add(job)
    token = CURRENT.set(context)
    try:
        if runtime.executor is None:
            run_loop(runtime, job, _loop_plan(runtime, job, plan), context)
        else:
            ConcurrentLoop(runtime, None, runtime.max_workers).run(job, plan)
    except StoreError:
        _finish(runtime, job, plan, began, token, write=False)
        raise
    except BaseException:
        _finish(runtime, job, plan, began, token, write=True)
        raise
    _settle(runtime, job)
    _finish(runtime, job, plan, began, token, write=True)
    return job


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
    began: float,
    token: Token[DeliveryContext | None],
    *,
    write: bool,
) -> None:
    """Release what the run held; save the job's state unless the store failed."""
    CURRENT.reset(token)
    runtime.setup.jobs.discard(job)
    job.tracker._add_wall_time(runtime.monotonic() - began)
    try:
        snapshot_stats(job, plan)
    finally:  # the lease is released even if a routine's stats cannot be
        if runtime.journal is not None:
            runtime.journal.end(job, write=write)


def _settle(runtime: Runtime, job: JobState) -> None:
    job._stop_request = None  # honoured, or moot once the job failed
    status = job.status
    if status is JOB_RUNNING and not job.pending:
        status = job.status = JOB_COMPLETED
    if status is not JOB_PAUSED:
        job.finished_at = runtime.clock.now()
    if status is JOB_CANCELLED:
        drop_pending(job, runtime.monotonic() + job._wall_offset)
