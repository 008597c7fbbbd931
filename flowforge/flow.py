"""Flow: routines and the connections between them; the entry point to run jobs.

A flow is a reusable definition. It validates every name as it is wired,
compiles the wiring into a plan, and hands each job to the engine
(:mod:`flowforge.engine`) with a setup: the plan, the flow's settings and its
registry of running jobs. The engine alone calls user code.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Self, final

from flowforge._chain import chain
from flowforge._diagram import to_dot, to_mermaid
from flowforge._flow_data import flow_to_data, read_flow_data, wire_flow
from flowforge._flow_settings import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_WORKERS,
    MAX_WORKERS,
    SAVED_SETTINGS,
    flow_settings,
)
from flowforge._setting import refuse_copy
from flowforge._validate import Finding, validate
from flowforge._wiring import Wiring
from flowforge._names import check_positive
from flowforge.connection import Connection
from flowforge.engine.clock import SystemClock
from flowforge.engine.jobs import (
    Start,
    cancel_paused,
    control_target,
    recover_jobs,
    request_cancel,
    resume_job,
    resume_job_async,
    start_job,
    start_job_async,
)
from flowforge.engine.observe import add_observer, remove_observer, resolve_observers
from flowforge.engine.plan import PlanCache
from flowforge.engine.run import check_strategy
from flowforge.engine.setup import SEQUENTIAL, FlowSetup, JobRegistry, WorkerPool
from flowforge.error_handler import ErrorHandler
from flowforge.job_state import DEFAULT_MAX_PENDING, JobState, JobStatus
from flowforge.routine import Routine

if TYPE_CHECKING:
    from flowforge.store.base import Store
    from flowforge.types import Clock

__all__ = ["Flow"]


@final
class Flow:
    """A graph of routines wired event -> slot, many to many.

    Args:
        flow_id: The flow's id; a random one when omitted.
        error_handler: Used for routines that have no handler of their own;
            without either, a failure stops the job.
        max_deliveries: A job that needs more deliveries fails with a clear
            error, so that a runaway cycle ends instead of hanging.
        max_pending: A job that holds more deliveries waiting fails with a
            clear error, so that a cycle that emits faster than it works
            cannot fill the memory first.
        history_limit: How many handled deliveries each job's history keeps.
        clock: The time seam (monotonic clock, wall clock, sleep); tests
            pass a fake one.
        execution_strategy: ``"sequential"`` (the default: every handler on
            the calling thread, in a fixed depth-first order) or
            ``"concurrent"`` (independent deliveries on a thread pool).
        max_workers: How many handlers of one job may run at once in the
            concurrent strategy, and the size of the flow's own pool.
        executor: A :class:`concurrent.futures.Executor` to run handlers on
            instead of the flow's own pool; the flow never shuts it down.

    The flow's own pool is created on first concurrent use and released by
    :meth:`close` (or leaving a ``with`` block); a flow that is garbage
    collected releases it too, and an idle pool never delays interpreter exit.

    Thread safety: wire the flow from one thread, before running it. Once
    wired, any number of threads may run jobs of it at the same time.
    """

    def __init__(
        self,
        flow_id: str | None = None,
        *,
        error_handler: ErrorHandler | None = None,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        max_pending: int = DEFAULT_MAX_PENDING,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        clock: Clock | None = None,
        execution_strategy: str = SEQUENTIAL,
        max_workers: int = DEFAULT_MAX_WORKERS,
        executor: Executor | None = None,
    ) -> None:
        """Create an empty flow."""
        self._lock = threading.Lock()
        self.flow_id = uuid.uuid4().hex if flow_id is None else flow_id
        self._wiring = Wiring()
        self._routines = self._wiring.routines
        self._connections = self._wiring.connections
        self._failures = self._wiring.failures
        self._plans = PlanCache(self._routines, self._connections, self._failures)
        self._jobs = JobRegistry()
        self._setup: FlowSetup | None = None
        self._workers = WorkerPool(executor, DEFAULT_MAX_WORKERS)
        self._observers: tuple[object, ...] = ()
        self.error_handler = error_handler
        self.max_deliveries = max_deliveries
        self.max_pending = max_pending
        self.history_limit = history_limit
        self.clock = clock
        self.execution_strategy = execution_strategy
        self.max_workers = max_workers

    # The settings: checked when set, each documented (see _flow_settings).
    (
        flow_id,
        error_handler,
        max_deliveries,
        max_pending,
        history_limit,
        clock,
        execution_strategy,
        max_workers,
    ) = flow_settings()
    # A copy would share the routines, jobs and pool: say how to copy instead.
    __copy__ = __deepcopy__ = __reduce_ex__ = refuse_copy

    def _set(self, name: str, value: object) -> None:
        """Change a setting; the next job gets a setup that has it."""
        with self._lock:  # never between a setup's reads and its store
            setattr(self, name, value)
            self._setup = None
        if name == "_max_workers":
            self._workers.resize(self.max_workers)

    @property
    def routines(self) -> Mapping[str, Routine]:
        """The flow's routines by id, in the order they were added (read-only)."""
        return MappingProxyType(self._routines)

    @property
    def connections(self) -> tuple[Connection, ...]:
        """The flow's connections, in the order they were made."""
        return tuple(self._connections)

    def add_routine(self, routine: Routine, routine_id: str | None = None) -> str:
        """Add ``routine`` under ``routine_id`` (derived from its class when omitted).

        Returns:
            The routine's id in this flow.

        Raises:
            DuplicateNameError: If the id is taken.
            DefinitionError: If the routine is already in the flow, or its
                ``__init__`` did not call ``super().__init__()``.
        """
        routine_id = self._wiring.add(routine, routine_id)
        routine._watch_ports(self._plans.invalidate)
        self._plans.invalidate()
        return routine_id

    def get_routine(self, routine_id: str) -> Routine:
        """Return the routine with id ``routine_id``.

        Raises:
            UnknownPortError: If the flow has no such routine.
        """
        return self._wiring.get(routine_id, self.flow_id)

    def connect(
        self,
        source_id: str,
        event: str,
        target_id: str,
        slot: str,
        param_mapping: Mapping[str, str] | None = None,
    ) -> Connection:
        """Deliver every emission of ``source_id.event`` to ``target_id.slot``.

        Args:
            source_id: Id of the emitting routine.
            event: Name of its event.
            target_id: Id of the receiving routine.
            slot: Name of its slot.
            param_mapping: Renames ``{event_key: slot_key}``; see
                :class:`~flowforge.Connection`.

        Returns:
            The new connection.

        Raises:
            UnknownPortError: If a routine, event or slot does not exist.
            DefinitionError: If the pair is already connected, or the mapping
                names a key the event does not declare.
        """
        ends = (source_id, event, target_id, slot)
        connection = self._wiring.connect(self.flow_id, ends, param_mapping)
        self._plans.invalidate()
        return connection

    def disconnect(
        self,
        source_id: str | Connection,
        event: str | None = None,
        target_id: str | None = None,
        slot: str | None = None,
    ) -> Connection:
        """Remove a connection, named as for :meth:`connect` or given; return it.

        Raises:
            UnknownPortError: If a routine, event or slot does not exist.
            DefinitionError: If the pair is not connected.
            JobStateError: If a job of the flow runs in this process.
        """
        rest = (event, target_id, slot)
        connection = self._wiring.disconnect(self.flow_id, self._jobs, source_id, rest)
        self._plans.invalidate()
        return connection

    def remove_routine(self, routine_id: str) -> tuple[Connection, ...]:
        """Remove a routine and every connection to or from it; return those.

        Its failure route, and any route to it, go too.

        Raises:
            UnknownPortError: If the flow has no such routine.
            JobStateError: If a job of the flow runs in this process.
        """
        removed = self._wiring.remove(routine_id, self.flow_id, self._jobs)
        self._plans.invalidate()
        return removed

    def validate(self) -> list[Finding]:
        """Return every problem of the wiring at once, errors first; never raise."""
        return validate(self._routines, self._connections)

    def chain(self, *routines: Routine) -> list[str]:
        """Add ``routines`` (those not in the flow yet) and connect each to the next.

        Each routine's only event feeds the next one's only slot; a value a
        step returns is renamed to the next step's parameter. Returns their
        ids, in order. The flow is left unchanged when a link cannot be made.

        Raises:
            ArgumentTypeError: If an item is not a routine.
            DefinitionError: If a linked routine has several events or slots
                (use :meth:`connect`), or a link already exists.
        """
        return chain(self, routines)

    def connect_failures(self, source_id: str, target_id: str, slot: str) -> None:
        """Send each delivery that ``source_id``'s error strategy gives up on to a slot.

        ``target_id.slot`` gets ``{"error": record_as_data, "payload": data}``
        and the failure is handled: the job goes on. See :doc:`/guide/errors`.

        Raises:
            UnknownPortError: If a routine or the slot does not exist.
            DefinitionError: If ``source_id`` routes its failures already, or
                the slot is a join or its handler cannot take those keys.
        """
        self._wiring.connect_failures(self.flow_id, source_id, target_id, slot)
        self._plans.invalidate()

    @property
    def failure_routes(self) -> dict[str, tuple[str, str]]:
        """The failure routes, as ``{source_id: (target_id, slot)}``."""
        return dict(self._failures)

    def set_error_handler(self, handler: ErrorHandler | None) -> None:
        """Use ``handler`` for routines without their own; ``None`` means STOP."""
        self.error_handler = handler

    def set_execution_strategy(
        self, strategy: str, *, max_workers: int | None = None
    ) -> None:
        """Choose how jobs run: ``"sequential"`` or ``"concurrent"``.

        Args:
            strategy: The strategy for later jobs; ``execute`` can override it
                per call.
            max_workers: How many handlers of one job may run at once.

        Raises:
            DefinitionError: If the strategy is unknown or ``max_workers`` is
                not a positive int.
        """
        check_strategy(strategy)  # both checked before either is set
        if max_workers is not None:
            check_positive(max_workers, "max_workers", MAX_WORKERS)
        self.execution_strategy = strategy
        if max_workers is not None:
            self.max_workers = max_workers

    def add_observer(self, observer: object) -> Callable[[], None]:
        """Tell ``observer`` (a :class:`~flowforge.Observer`) about later jobs.

        Returns:
            A callable that removes it again, as :meth:`remove_observer` does.

        Raises:
            ArgumentTypeError: If ``observer`` has none of the callbacks.
            DefinitionError: If it observes this flow already.
        """
        self._set("_observers", add_observer(self._observers, observer))
        return partial(self.remove_observer, observer)

    def remove_observer(self, observer: object) -> None:
        """Stop telling ``observer`` about later jobs (DefinitionError if unknown)."""
        self._set("_observers", remove_observer(self._observers, observer))

    def close(self) -> None:
        """Release the flow's own thread pool; later concurrent jobs make a new one."""
        self._workers.close()

    def __enter__(self) -> Self:
        """Return the flow; leaving the block calls :meth:`close`."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Release the flow's own thread pool."""
        self.close()

    def _engine_setup(self) -> FlowSetup:
        """Return what the engine needs to run this flow's jobs."""
        setup = self._setup
        if setup is not None:
            return setup
        with self._lock:
            if self._setup is not None:
                return self._setup
            self._setup = FlowSetup(
                flow_id=self.flow_id,
                plan=self._plans.get,
                entry_plans=self._plans.entries,
                jobs=self._jobs,
                max_deliveries=self.max_deliveries,
                max_pending=self.max_pending,
                history_limit=self.history_limit,
                error_handler=self.error_handler,
                clock=self.clock or SystemClock(),
                strategy=self.execution_strategy,
                max_workers=self.max_workers,
                executor=self._workers.get,
                observers=resolve_observers(
                    self._observers, self.error_handler, self._failures
                ),
            )
            return self._setup

    def execute(
        self,
        entry_routine_id: str,
        entry_params: Mapping[str, object] | None = None,
        *,
        entry_slot: str | None = None,
        job_id: str | None = None,
        store: Store | None = None,
        execution_strategy: str | None = None,
    ) -> JobState:
        """Run a job from ``entry_routine_id`` to its end and return its state.

        A source routine (one that overrides ``__call__``) is called with
        ``entry_params`` as keyword arguments; any other routine receives them
        on ``entry_slot``, or on its only slot.

        Args:
            entry_routine_id: Where the job starts.
            entry_params: The job's input, as keyword names to values.
            entry_slot: The entry routine's slot that receives the params.
            job_id: The job's id; a random one when omitted.
            store: Makes the job durable: it is saved before it starts and
                after every delivery, and can be resumed after a crash. If the
                store already holds ``job_id``, that job is returned when it
                has ended, and never run twice.
            execution_strategy: Overrides the flow's strategy for this job.

        Raises:
            UnknownPortError: If the entry routine or slot does not exist.
            DefinitionError: If the entry slot is ambiguous, or ``job_id``
                is not a non-empty str that UTF-8 can encode (without NUL).
            JobStateError: If the store holds ``job_id`` and the job has not
                ended.
            StoreError: If the store fails; the job stays in the store as of
                its last checkpoint, ready for :meth:`resume`.
        """
        return start_job(
            self._engine_setup(),
            entry_routine_id,
            entry_params,
            entry_slot=entry_slot,
            job_id=job_id,
            store=store,
            strategy=execution_strategy,
        )

    async def execute_async(
        self,
        entry_routine_id: str,
        entry_params: Mapping[str, object] | None = None,
        *,
        entry_slot: str | None = None,
        job_id: str | None = None,
        store: Store | None = None,
        execution_strategy: str | None = None,
    ) -> JobState:
        """Run a job like :meth:`execute`, on the running event loop; return its state.

        ``async def`` handlers are awaited; plain ones are called on the
        loop's thread, so a handler that blocks blocks the loop (wrap such
        work in ``asyncio.to_thread``). The ``"sequential"`` strategy
        awaits one handler at a time in :meth:`execute`'s order; the
        ``"concurrent"`` one runs independent deliveries as tasks, at most
        ``max_workers`` at once. Cancelling the task that awaits this leaves
        a durable job resumable, as ``KeyboardInterrupt`` does for
        :meth:`execute`. Arguments and errors are :meth:`execute`'s.
        """
        start = Start(entry_slot, job_id, store, execution_strategy)
        setup = self._engine_setup()
        return await start_job_async(setup, entry_routine_id, entry_params, start)

    def pause(
        self,
        job_state: JobState | str | None = None,
        reason: str = "",
        checkpoint: object = None,
    ) -> None:
        """Ask a running job to pause at the next delivery boundary.

        ``execute`` (or ``resume``) then returns the paused state, with its
        pending deliveries and slot buffers, ready for :meth:`resume`.

        Args:
            job_state: The job, or the id of one of this flow's running jobs;
                ``None`` inside a handler means the handler's own job.
            reason: Why, kept in the job's pause points.
            checkpoint: Any saveable value, kept with the pause point.

        Raises:
            JobStateError: If the job is not running.
        """
        job = control_target(self._engine_setup(), job_state, "pause", reason)
        job._stop_request = (JobStatus.PAUSED, reason, checkpoint)

    def cancel(
        self,
        job_state: JobState | str | None = None,
        reason: str = "",
        *,
        store: Store | None = None,
    ) -> None:
        """Stop a job for good at the next delivery boundary.

        Its pending deliveries are dropped and recorded in its history with
        the outcome ``"cancelled"``. A paused job is cancelled at once (and,
        with ``store``, saved there, under the job's lease like a resume).

        Raises:
            JobStateError: If the job has already completed, failed or been
                cancelled; with ``store``, also if a live process runs the job
                or the store holds another state of it (the job is then left
                unchanged).
        """
        setup = self._engine_setup()
        job = control_target(setup, job_state, "cancel", reason, store)
        if job.status is JobStatus.PAUSED:
            cancel_paused(setup, job, store)
            return
        request_cancel(job, reason)

    def resume(
        self,
        job_state: JobState | str,
        *,
        store: Store | None = None,
        force: bool = False,
    ) -> JobState:
        """Continue a paused, failed or interrupted job; return its final state.

        The job continues from its pending deliveries: a failed job runs its
        failed delivery again first, with a fresh retry count, and the entry
        routine never runs again. A job state loaded from data brings back
        each routine's stats snapshot.

        Args:
            job_state: The job, or with ``store`` the id of a stored job
                (paused, failed, or left running by a process that died).
            store: Keeps the job durable while it runs.
            force: Resume even if this flow's definition differs from the
                one the job started on.

        Raises:
            JobStateError: If the job is completed, cancelled, or owned by a
                live process; or, for a job state with ``store``, if the store
                holds another state of that job (another run moved it on).
            InvalidFlowError: If the flow's routines, slots, events or
                connections differ from the job's and ``force`` is false.
            JobNotFoundError: If the store holds no such job.
        """
        return resume_job(self._engine_setup(), job_state, store=store, force=force)

    async def resume_async(
        self,
        job_state: JobState | str,
        *,
        store: Store | None = None,
        force: bool = False,
    ) -> JobState:
        """Continue a job like :meth:`resume`, on the running event loop."""
        setup = self._engine_setup()
        return await resume_job_async(setup, job_state, store=store, force=force)

    def recover(self, store: Store) -> list[JobState]:
        """Resume every job of this flow that a dead process left running.

        A job counts as abandoned when its owner's lease has expired, or when
        its owner was a process on this machine that no longer exists. A job
        whose owner still runs is left alone, so several processes may call
        ``recover`` at once: each job is resumed by exactly one of them.

        A job that cannot be read (its stored data is corrupted) or that
        started on another definition of this flow is left in the store as
        it is, with a :class:`~flowforge.FlowForgeWarning` naming it and why;
        the other jobs are still recovered. So is a job whose store fails
        while it runs; one holding a value that cannot be saved is stored
        failed with the reason (see :doc:`/guide/persistence`).

        Returns:
            The recovered jobs' final states.
        """
        return recover_jobs(self._engine_setup(), store)

    def serialize(self) -> dict[str, object]:
        """Return the flow's definition and its routines' config and stats as data.

        The data keeps the flow's settings (error handler, delivery and
        history limits, execution strategy and ``max_workers``); a clock or an
        executor is code, so a rebuilt flow uses the defaults.

        Raises:
            SerializationError: If a routine holds a value that cannot be
                saved; the message names the routine and the field.
        """
        options = {name: getattr(self, name) for name in SAVED_SETTINGS}
        parts = (self._routines, self._connections, self._failures)
        return flow_to_data(self.flow_id, options, *parts)

    @classmethod
    def deserialize(
        cls, data: object, registry: Mapping[str, type] | None = None
    ) -> Flow:
        """Rebuild a flow from :meth:`serialize`'s dict.

        Routine classes come from the registry every ``Routine`` subclass
        joins when defined, or from ``registry``; no module named in the data
        is imported.

        Raises:
            UnknownRoutineTypeError: If a routine class is not registered.
            SerializationError: If the data is malformed.
        """
        return wire_flow(read_flow_data(data, registry), cls)

    def to_mermaid(self) -> str:
        """Return a Mermaid flowchart of the routines, ports and connections."""
        return to_mermaid(
            self.flow_id, self._routines, self._connections, self._failures
        )

    def to_dot(self) -> str:
        """Return a Graphviz DOT digraph of the routines, ports and connections."""
        return to_dot(self.flow_id, self._routines, self._connections, self._failures)

    def __repr__(self) -> str:
        """Return the flow's id and size."""
        return (
            f"Flow(flow_id={self.flow_id!r}, routines={len(self._routines)}, "
            f"connections={len(self._connections)})"
        )
