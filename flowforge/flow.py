"""Flow: routines and the connections between them; the entry point to run jobs.

A flow is a reusable definition. It validates every name as it is wired and
hands jobs to :class:`~flowforge.runtime.Runtime`, which alone calls user code.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, final

from flowforge._context import CURRENT
from flowforge._names import check_name
from flowforge.connection import Connection
from flowforge.error_handler import ErrorHandler
from flowforge.exceptions import (
    DefinitionError,
    DuplicateNameError,
    ExecutionError,
    JobStateError,
    UnknownPortError,
)
from flowforge.job_state import JobState, JobStatus
from flowforge.routine import Routine
from flowforge.runtime import Plan, Runtime, compile_plan

if TYPE_CHECKING:
    from flowforge.types import Clock

__all__ = ["Flow"]

DEFAULT_MAX_DELIVERIES: Final = 10_000_000
DEFAULT_HISTORY_LIMIT: Final = 1000


@final
class Flow:
    """A graph of routines wired event -> slot, many to many.

    Args:
        flow_id: The flow's id; a random one when omitted.
        error_handler: Used for routines that have no handler of their own;
            without either, a failure stops the job.
        max_deliveries: A job that needs more deliveries fails with a clear
            error, so that a runaway cycle ends instead of hanging.
        history_limit: How many handled deliveries each job's history keeps.
        clock: The time seam (monotonic clock, wall clock, sleep); tests
            pass a fake one.

    Thread safety: wire the flow from one thread, before running it. Once
    wired, any number of threads may run jobs of it at the same time.
    """

    def __init__(
        self,
        flow_id: str | None = None,
        *,
        error_handler: ErrorHandler | None = None,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        clock: Clock | None = None,
    ) -> None:
        """Create an empty flow."""
        self.flow_id = uuid.uuid4().hex if flow_id is None else _check_flow_id(flow_id)
        self.error_handler: ErrorHandler | None = None
        self.set_error_handler(error_handler)
        self.max_deliveries = _positive(max_deliveries, "max_deliveries")
        self.history_limit = _positive(history_limit, "history_limit")
        self.clock = clock
        self._routines: dict[str, Routine] = {}
        self._connections: list[Connection] = []
        self._plan: Plan | None = None
        self._plan_lock = threading.Lock()

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
        if not isinstance(routine, Routine):
            raise TypeError(f"add_routine expects a Routine, got {routine!r}")
        if not hasattr(routine, "_slots"):
            raise DefinitionError(
                f"{type(routine).__qualname__}.__init__ must call super().__init__()"
            )
        for known_id, known in self._routines.items():
            if known is routine:
                raise DefinitionError(
                    f"this routine is already in the flow as {known_id!r}"
                )
        if routine_id is None:
            routine_id = self._free_id(type(routine).__name__)
        elif routine_id in self._routines:
            raise DuplicateNameError(
                f"flow already has a routine with id {routine_id!r}"
            )
        self._routines[_check_id(routine_id)] = routine
        self._plan = None
        return routine_id

    def get_routine(self, routine_id: str) -> Routine:
        """Return the routine with id ``routine_id``.

        Raises:
            UnknownPortError: If the flow has no such routine.
        """
        try:
            return self._routines[routine_id]
        except KeyError:
            raise UnknownPortError(
                f"flow {self.flow_id!r} has no routine {routine_id!r}; "
                f"routines: {sorted(self._routines)}"
            ) from None

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
        declared = self.get_routine(source_id).get_event(event).output_params
        self.get_routine(target_id).get_slot(slot)
        connection = Connection(source_id, event, target_id, slot, param_mapping or {})
        unknown = [
            k for k in connection.param_mapping if declared and k not in declared
        ]
        if unknown:
            raise DefinitionError(
                f"param_mapping keys {unknown} are not output params of "
                f"{source_id!r}.{event!r}, which declares {list(declared or ())}"
            )
        for known in self._connections:
            if (known.source_id, known.event, known.target_id, known.slot) == (
                source_id,
                event,
                target_id,
                slot,
            ):
                raise DefinitionError(
                    f"{source_id!r}.{event!r} is already connected to "
                    f"{target_id!r}.{slot!r}; connect a pair once"
                )
        self._connections.append(connection)
        self._plan = None
        return connection

    def set_error_handler(self, handler: ErrorHandler | None) -> None:
        """Use ``handler`` for routines without their own; ``None`` means STOP."""
        if handler is not None and not isinstance(handler, ErrorHandler):
            raise TypeError(f"expected an ErrorHandler or None, got {handler!r}")
        self.error_handler = handler

    def plan(self) -> Plan:
        """Return the flow's routing table, rebuilt after each change."""
        with self._plan_lock:
            if self._plan is None:
                self._plan = compile_plan(self)
            return self._plan

    def execute(
        self,
        entry_routine_id: str,
        entry_params: Mapping[str, object] | None = None,
        *,
        entry_slot: str | None = None,
        job_id: str | None = None,
    ) -> JobState:
        """Run a job from ``entry_routine_id`` to its end and return its state.

        A source routine (one that overrides ``__call__``) is called with
        ``entry_params`` as keyword arguments; any other routine receives them
        on ``entry_slot``, or on its only slot.

        Raises:
            UnknownPortError: If the entry routine or slot does not exist.
            DefinitionError: If the entry slot is ambiguous.
        """
        return Runtime(self).start(
            entry_routine_id, entry_params, entry_slot=entry_slot, job_id=job_id
        )

    def pause(
        self,
        job_state: JobState | None = None,
        reason: str = "",
        checkpoint: object = None,
    ) -> None:
        """Ask a running job to pause at the next delivery boundary.

        Without ``job_state``, acts on the job whose handler is calling.

        Raises:
            JobStateError: If the job is not running.
        """
        job = self._control_target(job_state, "pause")
        job.stop_request = (JobStatus.PAUSED, reason, checkpoint)

    def cancel(self, job_state: JobState | None = None, reason: str = "") -> None:
        """Ask a running job to stop for good at the next delivery boundary.

        Raises:
            JobStateError: If the job has already ended.
        """
        job = self._control_target(job_state, "cancel")
        if job.status is JobStatus.PAUSED:
            job.status = JobStatus.CANCELLED
            return
        job.stop_request = (JobStatus.CANCELLED, reason, None)

    def resume(self, job_state: JobState) -> JobState:
        """Continue a paused or failed job from its pending deliveries; return it.

        A failed job runs its failed delivery again first. The entry routine
        is never run again.

        Raises:
            JobStateError: If the job is completed, cancelled or running.
        """
        if job_state.status not in (JobStatus.PAUSED, JobStatus.FAILED):
            raise JobStateError(
                "only a paused or failed job can be resumed",
                job_id=job_state.job_id,
                status=job_state.status.value,
            )
        if job_state.status is JobStatus.FAILED and job_state.pending:
            job_state.pending[-1].attempt = 0
        return Runtime(self).run(job_state)

    def _control_target(self, job_state: JobState | None, action: str) -> JobState:
        if job_state is None:
            context = CURRENT.get()
            if context is None:
                raise ExecutionError(
                    f"{action}() without a job_state works only inside a handler"
                )
            job_state = context.job
        allowed: tuple[JobStatus, ...] = (JobStatus.RUNNING, JobStatus.PENDING)
        if action == "cancel":
            allowed += (JobStatus.PAUSED,)
        if job_state.status not in allowed:
            raise JobStateError(
                f"cannot {action} it",
                job_id=job_state.job_id,
                status=job_state.status.value,
            )
        return job_state

    def _free_id(self, class_name: str) -> str:
        base = re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
        candidate, number = base, 1
        while candidate in self._routines:
            number += 1
            candidate = f"{base}_{number}"
        return candidate

    def __repr__(self) -> str:
        """Return the flow's id and size."""
        return (
            f"Flow(flow_id={self.flow_id!r}, routines={len(self._routines)}, "
            f"connections={len(self._connections)})"
        )


def _check_id(value: str) -> str:
    return check_name(value, "routine id")


def _check_flow_id(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DefinitionError(f"flow_id must be a non-empty str, got {value!r}")
    return value


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DefinitionError(f"{name} must be a positive int, got {value!r}")
    return value
