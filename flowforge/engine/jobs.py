"""Starting, resuming, pausing, cancelling and recovering jobs: rules around Runtime.

A job without a store runs in this process only. With a store it is
*durable*: it is saved before it starts, checkpointed after every delivery,
and owned through a lease, so that a job id never runs twice and a job left
behind by a dead process can be recovered.
"""

from __future__ import annotations

import reprlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final, final

from flowforge._context import CURRENT
from flowforge._names import check_type
from flowforge.engine.fingerprint import describe_changes
from flowforge.engine.fit import describe, detach_routed_failures, misfits
from flowforge.engine.journal import DEFAULT_LEASE_SECONDS, Journal, is_dead_owner
from flowforge.engine.observe import job_not_recovered, job_taken_over
from flowforge.engine.stats import restore_stats
from flowforge.exceptions import (
    ArgumentTypeError,
    ExecutionError,
    FlowForgeWarning,
    InvalidFlowError,
    JobNotFoundError,
    JobStateError,
    SerializationError,
    StoreError,
)
from flowforge.job_state import JobState, JobStatus
from flowforge.record import Delivery, RoutineState, RoutineStatus
from flowforge.store.base import Store
from flowforge.engine.run import (
    check_no_running_loop,
    new_runtime,
    run_job,
    run_job_async,
)
from flowforge.engine.runtime import drop_pending, stopped_by_limit

if TYPE_CHECKING:
    from flowforge.engine.runtime import Runtime
    from flowforge.engine.setup import FlowSetup
    from flowforge.store.base import JobRecord

__all__ = [
    "Start",
    "cancel_paused",
    "check_store",
    "control_target",
    "recover_jobs",
    "request_cancel",
    "resume_job",
    "resume_job_async",
    "start_job",
    "start_job_async",
]

RESUMABLE = (JobStatus.PAUSED, JobStatus.FAILED)
_STAYS: Final = "stays in the store as of its last checkpoint, for a later recover"
_STORED_FAILED: Final = (
    "is stored failed with the reason, as of its last checkpoint; resume it by "
    "id once the value can be saved"
)
ACTIVE = (JobStatus.RUNNING, JobStatus.PENDING)


def start_job(
    setup: FlowSetup,
    entry_routine_id: str,
    entry_params: Mapping[str, object] | None,
    *,
    entry_slot: str | None,
    job_id: str | None,
    store: Store | None,
    strategy: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> JobState:
    """Create a job and run it; with a store, never run a job id twice."""
    if store is None and strategy is None:  # the usual job: what _start does
        check_no_running_loop(setup)
        runtime = new_runtime(setup)
        job = runtime.new_job(
            entry_routine_id, entry_params, entry_slot=entry_slot, job_id=job_id
        )
        return run_job(runtime, job)
    start = Start(entry_slot, job_id, store, strategy, lease_seconds, False)
    started = _start(setup, entry_routine_id, entry_params, start)
    return started if isinstance(started, JobState) else run_job(*started)


async def start_job_async(
    setup: FlowSetup,
    entry_routine_id: str,
    entry_params: Mapping[str, object] | None,
    start: Start,
) -> JobState:
    """Create a job and run it on the running event loop; see :func:`start_job`."""
    started = _start(setup, entry_routine_id, entry_params, start)
    if isinstance(started, JobState):
        return started
    return await run_job_async(*started)


@final
@dataclass(slots=True)
class Start:
    """How to start a job: its entry slot, id, store, strategy and lease."""

    entry_slot: str | None = None
    job_id: str | None = None
    store: Store | None = None
    strategy: str | None = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    on_loop: bool = True
    """The job runs on an event loop (``execute_async``): no thread pool."""


def _start(
    setup: FlowSetup,
    entry_routine_id: str,
    entry_params: Mapping[str, object] | None,
    start: Start,
) -> JobState | tuple[Runtime, JobState]:
    """Create a job; return it with its runtime, or the stored job if it exists."""
    if not start.on_loop:
        check_no_running_loop(setup)  # before anything is stored
    journal = _journal(start.store, start.lease_seconds)
    runtime = new_runtime(
        setup, journal=journal, strategy=start.strategy, on_loop=start.on_loop
    )
    job = runtime.new_job(
        entry_routine_id, entry_params, entry_slot=start.entry_slot, job_id=start.job_id
    )
    if journal is not None and not journal.create(job):
        return _existing(journal.store, job.job_id)
    return runtime, job


def resume_job(
    setup: FlowSetup,
    job: JobState | str,
    *,
    store: Store | None,
    force: bool,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> JobState:
    """Continue a paused, failed or interrupted job; see :meth:`Flow.resume`."""
    check_no_running_loop(setup)
    journal, job = _resumed(setup, job, store, force, lease_seconds)
    return _run_claimed(setup, journal, job, fresh_attempts=True)


async def resume_job_async(
    setup: FlowSetup, job: JobState | str, *, store: Store | None, force: bool
) -> JobState:
    """Continue a job on the running event loop; see :func:`resume_job`."""
    journal, job = _resumed(setup, job, store, force, DEFAULT_LEASE_SECONDS)
    with _claimed(setup, journal, job, fresh_attempts=True):
        runtime = new_runtime(setup, journal=journal, on_loop=True)
        return await run_job_async(runtime, job)


def _resumed(
    setup: FlowSetup,
    job: JobState | str,
    store: Store | None,
    force: bool,
    lease_seconds: float,
) -> tuple[Journal | None, JobState]:
    """Check that a job may be resumed and lease it; return its journal and it."""
    check_type(job, (JobState, str), "job_state", "a JobState or a job id")
    check_type(force, bool, "force", "a bool")
    journal = _journal(store, lease_seconds)
    if isinstance(job, str):
        if journal is None:
            raise ArgumentTypeError(
                "resume(job_id) needs store=...: where else is the job?"
            )
        return journal, _claim(journal, job, setup, force)
    given = _version(job)  # before another thread can move the job on
    _check_resumable(given[0], job.job_id, "paused or failed")
    _check_flow(setup, job, force)
    if journal is not None and not _take(journal, job, given):
        raise _busy(journal.store, job.job_id)
    return journal, job


def recover_jobs(
    setup: FlowSetup, store: Store, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> list[JobState]:
    """Resume every job of the flow left running by a dead or expired owner."""
    check_store(store)
    check_no_running_loop(setup)
    resumed: list[JobState] = []
    records = store.list_jobs(flow_id=setup.flow_id, status=JobStatus.RUNNING)
    # A pending job was saved by a process that died before starting it.
    records += store.list_jobs(flow_id=setup.flow_id, status=JobStatus.PENDING)
    for record in records:
        journal = Journal(store, lease_seconds=lease_seconds)
        try:
            job = _recoverable(journal, setup, record)
        except JobNotFoundError:  # deleted since list_jobs: nothing to recover
            continue
        except (StoreError, SerializationError, InvalidFlowError) as error:
            job_not_recovered(record.job_id, error)
            warnings.warn(
                f"job {record.job_id!r} was not recovered and stays in the store "
                f"as it is: {error}",
                FlowForgeWarning,
                stacklevel=3,
            )
            continue
        if job is None:
            continue
        try:
            resumed.append(_run_claimed(setup, journal, job, fresh_attempts=False))
        except (StoreError, SerializationError) as error:  # its lease is let go
            kept = store.get(record.job_id).status is JobStatus.FAILED
            warnings.warn(
                f"job {record.job_id!r} stopped: saving it failed ({error}); it "
                + (_STORED_FAILED if kept else _STAYS),
                FlowForgeWarning,
                stacklevel=3,
            )
    return resumed


def cancel_paused(setup: FlowSetup, job: JobState, store: Store | None) -> None:
    """Cancel a paused job at once, dropping its pending deliveries.

    With a store, the job is leased first, as for a resume: a job another
    process runs, or one the store holds in another state, is refused. The
    store is written first, so if it fails, ``job`` is left as it was.
    """
    finished_at = setup.clock.now()
    if store is not None:
        check_store(store)
        given = _version(job)
        if given[0] is not JobStatus.PAUSED:  # another thread resumed it
            raise JobStateError(
                "only a paused job can be cancelled at once",
                job_id=job.job_id,
                status=given[0].value,
            )
        journal = Journal(store)
        if not _take(journal, job, given):
            raise _busy(store, job.job_id)
        with _abandoning(journal, job.job_id):
            cancelled = JobState.deserialize(job.serialize())
            _cancel(cancelled, finished_at)
        journal.end(cancelled)
    _cancel(job, finished_at)


def control_target(
    setup: FlowSetup,
    job_state: JobState | str | None,
    action: str,
    reason: object,
    *more: object,
) -> JobState:
    """Return the job that ``flow.pause`` or ``flow.cancel`` (``action``) acts on.

    ``None`` means the job of the handler that calls; an id, one of the
    flow's jobs running in this process. ``reason`` (a str) and ``cancel``'s
    ``store`` (``more``) are checked first, whatever the job's status.

    Raises:
        ArgumentTypeError: If ``reason`` or ``store`` has the wrong type.
        ExecutionError: If ``job_state`` is ``None`` outside a handler.
        JobStateError: If no such job runs, or the job's status forbids it.
    """
    check_type(reason, str, "reason", "a str")
    if more and more[0] is not None:
        check_store(more[0])
    if job_state is None:
        context = CURRENT.get()
        if context is None:
            raise ExecutionError(
                f"{action}() without a job works only inside a handler; "
                "pass the JobState or the id of a running job"
            )
        job_state = context.job
    elif isinstance(job_state, str):
        found = setup.jobs.get(job_state)
        if found is None:
            raise JobStateError(
                f"cannot {action} it: no job with this id is running in flow "
                f"{setup.flow_id!r}",
                job_id=job_state,
                status="not running",
            )
        job_state = found
    else:
        check_type(job_state, JobState, "job_state", "a JobState, a job id or None")
    allowed: tuple[JobStatus, ...] = ACTIVE
    if action == "cancel":
        allowed += (JobStatus.PAUSED,)
    if job_state.status not in allowed:
        raise JobStateError(
            f"cannot {action} it",
            job_id=job_state.job_id,
            status=job_state.status.value,
        )
    return job_state


def check_store(store: object) -> Store:
    """Return ``store`` if it implements the :class:`Store` protocol.

    Raises:
        ArgumentTypeError: If it does not (a path, say).
    """
    if not isinstance(store, Store):
        raise ArgumentTypeError(
            f"store must be a Store (such as SqliteStore(path) or MemoryStore()), "
            f"got {type(store).__name__} {reprlib.repr(store)}"
        )
    return store


def _journal(store: Store | None, lease_seconds: float) -> Journal | None:
    """Return a journal on ``store`` (checked), or ``None`` for a job without one."""
    if store is None:
        return None
    return Journal(check_store(store), lease_seconds=lease_seconds)


def request_cancel(job: JobState, reason: str) -> None:
    """Ask a running job to stop for good at its next delivery boundary.

    An async job's handlers that await are cancelled now, unless the call
    comes from one of the job's own handlers, which then runs to its end.
    """
    job._stop_request = (JobStatus.CANCELLED, reason, None)
    interrupt = job._interrupt
    context = CURRENT.get()
    if interrupt is not None and (context is None or context.job is not job):
        interrupt()


def _cancel(job: JobState, finished_at: datetime) -> None:
    job.status = JobStatus.CANCELLED
    job.finished_at = finished_at
    drop_pending(job, finished_at.timestamp())


def _run_claimed(
    setup: FlowSetup, journal: Journal | None, job: JobState, *, fresh_attempts: bool
) -> JobState:
    """Run a job whose lease ``journal`` holds; if it never starts, free the lease."""
    with _claimed(setup, journal, job, fresh_attempts=fresh_attempts):
        return run_job(new_runtime(setup, journal=journal), job)


@contextmanager
def _claimed(
    setup: FlowSetup, journal: Journal | None, job: JobState, *, fresh_attempts: bool
) -> Iterator[None]:
    """Prepare a leased job for its run; if the run never starts, undo it all."""
    with _abandoning(journal, job.job_id):
        restore_stats(setup.plan().routines, job)
        undo = _fresh_attempts(job) if fresh_attempts else _nothing
        try:
            yield
        except BaseException:
            if journal is not None and not journal.began:
                undo()  # its first save failed: the job is as it was
            raise


@contextmanager
def _abandoning(journal: Journal | None, job_id: str) -> Iterator[None]:
    """Free ``journal``'s claim on the job if the block raises before its run began.

    Without this, a failure between taking the lease and starting the run
    (a load that fails, say) would leave the job leased to this live process
    until the lease expired, and every resume refused meanwhile.
    """
    try:
        yield
    except BaseException:
        if journal is not None:
            journal.abandon(job_id)  # a no-op once the run began: it releases
        raise


def _recoverable(
    journal: Journal, setup: FlowSetup, record: JobRecord
) -> JobState | None:
    """Lease an abandoned job of ``record`` and load it; ``None`` if not abandoned."""
    store = journal.store
    _check_flow(setup, store.load(record.job_id), force=False)
    dead = record.owner if is_dead_owner(record.owner) else None
    if not journal.acquire(record.job_id, replacing=dead):
        return None
    with _abandoning(journal, record.job_id):
        job = store.load(record.job_id)
        _check_flow(setup, job, force=False)  # it may have changed since
    if job.status not in ACTIVE:
        # Another process finished it since list_jobs: give the lease back.
        journal.end(job)
        return None
    job_taken_over(job.job_id, record.owner, dead is not None)
    return job


def _take(journal: Journal, job: JobState, given: Version) -> bool:
    """Lease a job held in memory: save it if new to the store, else acquire it.

    Raises:
        JobStateError: If the store holds another version of the job than
            ``given``, the one the caller checked (another run moved it on
            since): running or saving ``job`` would undo that run's work.
    """
    try:
        taken = journal.acquire(job.job_id)
    except JobNotFoundError:
        return journal.create(job)
    if taken:
        with _abandoning(journal, job.job_id):
            stored = journal.store.load(job.job_id)
        if _version(stored) != given:
            journal.end(stored)  # gives the lease back, the stored job unchanged
            raise _moved_on(stored, given, job.job_id)
    return taken


Version = tuple[JobStatus, int, int, int]
"""A job's status, next sequence number, history total and delivery count:
equal in two states of one job only if neither ran a delivery the other did not."""


def _version(job: JobState) -> Version:
    return (job.status, job.next_seq, job.history_total, job.delivery_count)


def _moved_on(stored: JobState, given: Version, job_id: str) -> JobStateError:
    return JobStateError(
        f"the store holds another state of it ({stored.status.value}, "
        f"{stored.delivery_count} deliveries) than the one given "
        f"({given[0].value}, {given[3]} deliveries); another run changed it "
        "since. Resume it by id, flow.resume(job_id, store=...), or load it "
        "with store.load(job_id)",
        job_id=job_id,
        status=stored.status.value,
    )


def _claim(journal: Journal, job_id: str, setup: FlowSetup, force: bool) -> JobState:
    """Lease a stored job for resuming, after checking it fits the flow."""
    store = journal.store
    record = store.get(job_id)
    if record.status in ACTIVE + RESUMABLE:
        _check_flow(setup, store.load(job_id), force)
    if record.status in ACTIVE:
        # PENDING: its owner died after saving it and before starting it.
        dead = record.owner if is_dead_owner(record.owner) else None
        if not journal.acquire(job_id, replacing=dead):
            raise _busy(store, job_id)
    else:
        _check_resumable(record.status, job_id)
        if not journal.acquire(job_id):
            raise _busy(store, job_id)
    with _abandoning(journal, job_id):
        job = store.load(job_id)
        if job.status in ACTIVE + RESUMABLE:
            _check_flow(setup, job, force)  # it may have changed since
    if job.status not in ACTIVE + RESUMABLE:
        # A cancel or another resume ended it since get(): give the lease back.
        journal.end(job)
        _check_resumable(job.status, job_id)
    return job


def _check_resumable(
    status: JobStatus, job_id: str, kinds: str = "paused, failed or interrupted"
) -> None:
    if status not in RESUMABLE:
        raise JobStateError(
            f"only a {kinds} job can be resumed",
            job_id=job_id,
            status=status.value,
        )


def _existing(store: Store, job_id: str) -> JobState:
    """Return a finished job already in the store, or refuse to run it again."""
    try:
        job = store.load(job_id)
    except JobNotFoundError:  # deleted between create and load: a race, say so
        raise JobStateError(
            "the store refused to create it but no longer holds it; try again",
            job_id=job_id,
            status="unknown",
        ) from None
    if job.status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        return job
    raise JobStateError(
        "the store already holds this job id and it has not ended; it is never "
        "run twice. Use flow.resume(job_id, store=...) to continue it",
        job_id=job_id,
        status=job.status.value,
    )


def _busy(store: Store, job_id: str) -> JobStateError:
    record = store.get(job_id)
    return JobStateError(
        f"it is leased to {record.owner!r} until {record.lease_until}; a job still "
        "owned by a live process is not taken over",
        job_id=job_id,
        status=record.status.value,
    )


def _check_flow(setup: FlowSetup, job: JobState, force: bool) -> None:
    """Refuse a job that started on another definition, or whose data does not fit.

    ``force`` runs a job on a changed definition; data that names routines,
    slots or connections the flow lacks is refused even then (it is damaged,
    or the definition changed too much), before the job is claimed.
    """
    plan = setup.plan()
    if job.flow_shape and job.flow_shape != plan.shape and force:
        detach_routed_failures(job)  # failure routes are numbered after connections
    elif job.flow_shape and job.flow_shape != plan.shape:
        changes = describe_changes(job.flow_shape, plan.shape)
        raise InvalidFlowError(
            f"job {job.job_id!r} started on a different definition of flow "
            f"{setup.flow_id!r}: {'; '.join(changes)}. Resume on the original "
            "flow, or force it: resume(..., force=True), or flowforge resume "
            "--force"
        )
    problems = misfits(plan, job, setup.error_handler)
    if problems:
        raise InvalidFlowError(
            f"job {job.job_id!r} does not fit flow {setup.flow_id!r}: "
            f"{describe(problems)}. Its data is damaged or the flow changed too "
            "much; it is left as it is"
        )


def _fresh_attempts(job: JobState) -> Callable[[], None]:
    """Give the deliveries that stopped a failed job fresh retries; return an undo.

    A delivery whose handler's failure stopped the job (several can, on the
    concurrent strategy) runs again now, so that failure was not for good:
    the tracker counts it as retried, and its routine is running again unless
    another of its deliveries failed for good. A delivery the delivery limit
    stopped never ran, so it has no failure to take back.
    """
    if job.status is not JobStatus.FAILED:
        return _nothing
    stopped = {e.seq for e in job.errors if not stopped_by_limit(job, e)}
    attempts: list[tuple[Delivery, int]] = []
    reopened: list[tuple[str, RoutineState | None, RoutineStatus | None]] = []
    for index, delivery in enumerate(job.pending):
        if delivery.seq in stopped or index == len(job.pending) - 1:
            attempts.append((delivery, delivery.attempt))
            delivery.attempt = 0
        if delivery.seq in stopped:
            reopened += _reopen(job, delivery.routine_id)

    def undo() -> None:
        for delivery, attempt in attempts:
            delivery.attempt = attempt
        for routine_id, state, status in reversed(reopened):
            job.tracker._reopen_failure(routine_id, undo=True)
            if state is not None and status is not None:
                state.status = status

    return undo


def _reopen(
    job: JobState, routine_id: str
) -> list[tuple[str, RoutineState | None, RoutineStatus | None]]:
    """Count a failure of ``routine_id`` as retried; return what was changed."""
    state = job.routine_states.get(routine_id)
    status = None if state is None else state.status
    left = job.tracker._reopen_failure(routine_id)
    if left < 0:
        return []
    if left == 0 and state is not None:
        state.status = RoutineStatus.RUNNING
    return [(routine_id, state, status)]


def _nothing() -> None:
    return
