"""Run whole jobs on a Dask cluster: one task per job, durable through a shared store.

Needs the optional extra ``flowforge[dask]`` (Dask distributed); the rest of
FlowForge never imports this module. A worker rebuilds the flow from its
serialized definition, so the modules that define its routine classes must be
importable on every worker: name them in ``preload``.
"""

from __future__ import annotations

import importlib
import json
import logging
import pickle
import reprlib
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

try:
    from distributed import Client, Future, WorkerPlugin, get_worker
except ImportError as error:  # pragma: no cover - tested in a subprocess
    raise ImportError(
        "flowforge.dask needs Dask distributed, an optional extra: "
        'pip install "flowforge[dask]"'
    ) from error

from flowforge._names import check_type
from flowforge.engine.entry import check_entry_params
from flowforge.engine.jobs import check_store, resume_job, start_job
from flowforge.engine.journal import DEFAULT_LEASE_SECONDS
from flowforge.exceptions import (
    ArgumentTypeError,
    DefinitionError,
    JobNotFoundError,
    JobStateError,
    StoreError,
    UnknownRoutineTypeError,
)
from flowforge.flow import Flow
from flowforge.job_state import JobState, JobStatus

if TYPE_CHECKING:
    from distributed import Worker

    from flowforge.store.base import Store

__all__ = ["DaskRunner"]

logger = logging.getLogger(__name__)

OWNED: Final = (JobStatus.PENDING, JobStatus.RUNNING)
"""Stored statuses of a job that a worker owns, or owned until it died."""
MAX_POLL_SECONDS: Final = 0.5


@final
@dataclass(frozen=True, slots=True)
class _Request:
    """What the jobs of one ``submit`` or ``map`` call share, as sent to workers."""

    flow: str
    """The flow's definition, ``flow.serialize()`` as JSON text."""
    entry_routine_id: str
    entry_slot: str | None
    store: bytes | None
    """The pickled store: each task opens (and closes) a copy of its own."""
    lease_seconds: float
    execution_strategy: str
    max_workers: int


@final
@dataclass(frozen=True, slots=True)
class _Job:
    """One job's own input; an opaque object, so Dask never looks inside params."""

    job_id: str
    entry_params: Mapping[str, object] | None


@final
class DaskRunner:
    """Run jobs of flows on a Dask cluster, each job as one task on one worker.

    A worker rebuilds the flow from ``flow.serialize()``, as it is when the
    job is submitted, and runs the job from start to end on that copy. The
    routine objects in your process are never touched: what a job's routines
    put in their stats comes back in the returned
    :class:`~flowforge.JobState` (``routine_states[...].stats``), as the
    stats they had at submission plus what the job added.

    Routine classes are found on the workers by ``module:QualName`` in the
    registry that every ``Routine`` subclass joins when its module is
    imported, and FlowForge never imports a module named in data: a module
    defining routine classes must be importable on every worker, and named in
    ``preload`` (or in ``dask worker --preload``). Otherwise the job fails
    with :class:`~flowforge.UnknownRoutineTypeError`.

    With a store that every worker reaches, jobs are durable: a job whose
    worker dies, and which Dask runs again elsewhere, resumes from its last
    checkpoint, and a job id never runs twice. See each method.

    Args:
        client: A connected, synchronous ``distributed.Client`` (the
            default kind); the runner never closes it.
        preload: Modules that every worker imports, now and whenever a worker
            joins later (through a worker plugin): those that define your
            routine classes, and the exception classes their retry policies
            name.
        lease_seconds: How long a worker's claim on a durable job holds
            without renewal (it renews it every third of that while it
            runs). A job whose worker died on another host is taken over
            once its lease expires; on the same host, at once.
        retries: How many times Dask runs a job's task again after it
            raised (a store that failed, for example). A worker's death
            makes Dask run the task again without counting against this, up
            to its ``distributed.scheduler.allowed-failures`` setting.

    Raises:
        DefinitionError: If a ``preload`` module cannot be imported on a
            worker, or an option is out of range.

    Thread safety: safe to share between threads, like the client.
    """

    def __init__(
        self,
        client: Client,
        *,
        preload: Iterable[str] = (),
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        retries: int = 0,
    ) -> None:
        """Bind the runner to ``client`` and preload modules on its workers."""
        self.client = check_type(client, Client, "client", "a distributed.Client")
        self.preload = _preload(preload)
        self.lease_seconds = _lease_seconds(lease_seconds)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise DefinitionError(f"retries must be an int >= 0, got {retries!r}")
        self.retries = retries
        if self.preload:
            _register_preload(client, self.preload)

    def submit(
        self,
        flow: Flow,
        entry_routine_id: str,
        entry_params: Mapping[str, object] | None = None,
        *,
        entry_slot: str | None = None,
        job_id: str | None = None,
        store: Store | None = None,
    ) -> Future[JobState]:
        """Run one job on the cluster; return a future of its final state.

        Args:
            flow: The flow; its definition is copied now, so later changes
                to it do not reach this job.
            entry_routine_id: Where the job starts, as in
                :meth:`Flow.execute <flowforge.Flow.execute>`.
            entry_params: The job's input; Dask pickles it.
            entry_slot: The entry routine's slot that receives the params.
            job_id: The job's id; a random one when omitted, chosen here so
                that a task Dask runs again runs the same job.
            store: Makes the job durable. It must pickle as a description of
                where it keeps jobs, so that every worker opens the same one,
                as :class:`~flowforge.store.SqliteStore` does (its path). A
                job id the store already holds is not run again: an ended,
                paused or failed job comes back as stored, a job whose owner
                died is resumed from its last checkpoint, and a job another
                worker runs is waited for (the waiting task holds its worker
                thread).

        Returns:
            A future resolving to the job's :class:`~flowforge.JobState`, or
            raising what the job's task raised on the worker.

        Raises:
            UnknownPortError: If the flow has no routine ``entry_routine_id``.
            SerializationError: If the flow cannot be serialized.
            StoreError: If ``store`` cannot be sent to the workers.
        """
        request = self._request(flow, entry_routine_id, entry_slot, store)
        check_entry_params(entry_params)
        job = _Job(_job_id(job_id), entry_params)
        return self.client.submit(
            _run_job, job, request=request, key=_key(job), retries=self.retries
        )

    def map(
        self,
        flow: Flow,
        entry_routine_id: str,
        params_list: Iterable[Mapping[str, object] | None],
        *,
        entry_slot: str | None = None,
        job_ids: Sequence[str] | None = None,
        store: Store | None = None,
    ) -> list[Future[JobState]]:
        """Run one job per item of ``params_list``; return their futures in order.

        Takes the same options as :meth:`submit`, with ``job_ids`` naming
        the jobs in order (random ones when omitted).

        Raises:
            DefinitionError: If ``job_ids`` has another length than
                ``params_list``, or repeats an id.
        """
        request = self._request(flow, entry_routine_id, entry_slot, store)
        check_type(params_list, Iterable, "params_list", "an iterable of params")
        params = list(params_list)
        for item in params:
            check_entry_params(item)
        if isinstance(job_ids, str) or not isinstance(job_ids, Sequence | None):
            raise ArgumentTypeError(
                f"job_ids must be a list of job ids or None, got {job_ids!r}"
            )
        jobs = _jobs(params, job_ids)
        return self.client.map(
            _run_job,
            jobs,
            request=request,
            key=[_key(job) for job in jobs],
            retries=self.retries,
        )

    def run_many(
        self,
        flow: Flow,
        entry_routine_id: str,
        params_list: Iterable[Mapping[str, object] | None],
        *,
        entry_slot: str | None = None,
        job_ids: Sequence[str] | None = None,
        store: Store | None = None,
    ) -> list[JobState]:
        """Run one job per item of ``params_list`` and wait for their final states.

        Same options as :meth:`map`. A job whose handler fails ends with
        status ``failed`` in its state, as with ``execute``. When the task of
        a job raises (a routine class missing on the workers, a store that
        failed), the error of the first such job in ``params_list`` is raised
        once every job has ended.
        """
        futures = self.map(
            flow,
            entry_routine_id,
            params_list,
            entry_slot=entry_slot,
            job_ids=job_ids,
            store=store,
        )
        # One round trip for all results. distributed leaves gather unannotated;
        # errors="skip" makes it wait for every job, not stop at the first error.
        gather = self.client.gather
        states: list[JobState] = gather(  # type: ignore[no-untyped-call]
            futures, errors="skip"
        )
        for future in futures:
            if future.status != "finished":
                future.result()  # raises the job's error
        return states

    def _request(
        self,
        flow: Flow,
        entry_routine_id: str,
        entry_slot: str | None,
        store: Store | None,
    ) -> _Request:
        check_type(flow, Flow, "flow", "a Flow")
        flow.get_routine(entry_routine_id)
        if entry_slot is not None:
            check_type(entry_slot, str, "entry_slot", "a slot name (a str) or None")
        if store is not None:
            check_store(store)
        text = json.dumps(flow.serialize(), separators=(",", ":"))
        return _Request(
            flow=text,
            entry_routine_id=entry_routine_id,
            entry_slot=entry_slot,
            store=None if store is None else _pack_store(store),
            lease_seconds=self.lease_seconds,
            execution_strategy=flow.execution_strategy,
            max_workers=flow.max_workers,
        )

    def __repr__(self) -> str:
        """Return the scheduler's address and the preloaded modules."""
        address = getattr(self.client.scheduler, "address", None)
        return (
            f"DaskRunner(scheduler={address!r}, preload={list(self.preload)!r}, "
            f"lease_seconds={self.lease_seconds!r})"
        )


class _Preload(WorkerPlugin):
    """Imports the modules that define routine classes, on every worker."""

    idempotent = True

    def __init__(self, modules: tuple[str, ...]) -> None:
        self.modules = modules

    def setup(self, worker: Worker) -> None:
        """Import each module, or fail naming it and the worker."""
        for module in self.modules:
            try:
                importlib.import_module(module)
            except Exception as error:  # any failure of the import says the same
                raise DefinitionError(
                    f"preload module {module!r} cannot be imported on Dask worker "
                    f"{worker.address!r}: {type(error).__name__}: {error}. Install "
                    "it where the workers run, importable under that name"
                ) from error


def _register_preload(client: Client, modules: tuple[str, ...]) -> None:
    name = "flowforge-preload:" + ",".join(modules)
    try:
        client.register_plugin(_Preload(modules), name=name)
    except DefinitionError:
        # Workers that join later would fail the same way: forget the plugin.
        client.unregister_worker_plugin(name)  # type: ignore[no-untyped-call]
        raise


def _preload(preload: object) -> tuple[str, ...]:
    """Return ``preload`` as a tuple of module names, or refuse it."""
    if isinstance(preload, str) or not isinstance(preload, Iterable):
        raise ArgumentTypeError(
            f"preload must be a list of module names, got {reprlib.repr(preload)}"
        )
    return tuple(
        check_type(name, str, "preload item", "a module name (a str)")
        for name in preload
    )


def _lease_seconds(value: object) -> float:
    """Return ``value`` as a lease length, or refuse it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(
            f"lease_seconds must be a number of seconds, got {reprlib.repr(value)}"
        )
    if not 0 < value < float("inf"):
        raise DefinitionError(f"lease_seconds must be positive, got {value!r}")
    return float(value)


def _pack_store(store: Store) -> bytes:
    try:
        return pickle.dumps(store)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise StoreError(
            f"{store!r} cannot be sent to Dask workers ({error}). A store for a "
            "cluster must pickle as a description of where it keeps jobs, so "
            "that every worker opens the same one: SqliteStore does (its path)"
        ) from error


def _job_id(job_id: str | None) -> str:
    if job_id is None:
        return uuid.uuid4().hex
    if not isinstance(job_id, str) or not job_id:
        raise DefinitionError(f"job_id must be a non-empty str, got {job_id!r}")
    return job_id


def _jobs(
    params_list: list[Mapping[str, object] | None], job_ids: Sequence[str] | None
) -> list[_Job]:
    if job_ids is None:
        return [_Job(uuid.uuid4().hex, params) for params in params_list]
    ids = [_job_id(job_id) for job_id in job_ids]
    if len(ids) != len(params_list):
        raise DefinitionError(
            f"{len(ids)} job_ids for {len(params_list)} params: give one id per job"
        )
    repeated = sorted({job_id for job_id in ids if ids.count(job_id) > 1})
    if repeated:
        raise DefinitionError(f"job_ids repeat {repeated}: each job needs its own id")
    return [_Job(job_id, params) for job_id, params in zip(ids, params_list)]


def _key(job: _Job) -> str:
    """Return a task key of its own, so Dask never merges two submissions."""
    return f"flowforge-job-{job.job_id}-{uuid.uuid4().hex[:12]}"


# -- on the worker ------------------------------------------------------------------


def _run_job(job: _Job, *, request: _Request) -> JobState:
    """Run one job on a worker and return its final state: the task of a future."""
    with _rebuild(request) as flow:
        if request.store is None:
            return flow.execute(
                request.entry_routine_id,
                job.entry_params,
                entry_slot=request.entry_slot,
                job_id=job.job_id,
            )
        store: Store = pickle.loads(request.store)  # noqa: S301  sent by the client
        try:
            return _run_durable(flow, request, job, store)
        finally:
            store.close()


def _rebuild(request: _Request) -> Flow:
    try:
        flow = Flow.deserialize(json.loads(request.flow))
    except UnknownRoutineTypeError as error:
        raise _missing_on_worker(error) from error
    flow.set_execution_strategy(
        request.execution_strategy, max_workers=request.max_workers
    )
    return flow


def _run_durable(flow: Flow, request: _Request, job: _Job, store: Store) -> JobState:
    """Start the job, resume it after a dead owner, or wait for a live owner."""
    lease = request.lease_seconds
    # The engine, not Flow.execute, because the job's lease is the runner's.
    setup = flow._engine_setup()
    while True:
        try:
            status: JobStatus | None = store.get(job.job_id).status
        except JobNotFoundError:
            status = None
        try:
            if status is None:
                return start_job(
                    setup,
                    request.entry_routine_id,
                    job.entry_params,
                    entry_slot=request.entry_slot,
                    job_id=job.job_id,
                    store=store,
                    lease_seconds=lease,
                )
            if status in OWNED:
                return resume_job(
                    setup, job.job_id, store=store, force=False, lease_seconds=lease
                )
            return store.load(job.job_id)
        except JobStateError as error:
            # Another live worker holds the job: a second submission of it, or
            # Dask ran this task again while the first run still holds its lease.
            # Wait until that run ends or its lease expires, then look again.
            logger.debug("waiting for job %r: %s", job.job_id, error)
            time.sleep(min(MAX_POLL_SECONDS, lease / 10))


def _missing_on_worker(error: UnknownRoutineTypeError) -> UnknownRoutineTypeError:
    module = error.type_name.partition(":")[0]
    if module == "__main__":
        fix = (
            "it is defined in the script you run, and no worker can import a "
            "class by that name: move it to a module, then preload that module"
        )
    else:
        fix = (
            f"FlowForge never imports modules named in data, so the worker must "
            f"import {module!r} first: install it where the workers run and pass "
            f"DaskRunner(client, preload=[{module!r}]) (or start the workers with "
            f"`dask worker --preload {module}`)"
        )
    return UnknownRoutineTypeError(
        type_name=error.type_name,
        routine_id=error.routine_id,
        fix=f"{fix} (on Dask worker {get_worker().address!r})",
    )
