"""JobState and its records: the progress of one job, as plain data."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final, NamedTuple, final

from flowforge.exceptions import UnknownPortError

if TYPE_CHECKING:
    from flowforge.execution_tracker import ExecutionTracker
    from flowforge.types import Payload

__all__ = [
    "Delivery",
    "ErrorRecord",
    "HistoryRecord",
    "JobState",
    "JobStatus",
    "PausePoint",
    "RoutineState",
]

DEFAULT_HISTORY_LIMIT: Final = 1000


class JobStatus(StrEnum):
    """Where a job is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@final
@dataclass(slots=True)
class Delivery:
    """Data on its way to a slot (or, with ``slot=None``, a source routine's call).

    ``seq`` numbers deliveries in the order they were created in the job;
    ``connection`` is the index of the connection that made it in
    ``flow.connections``, or -1 for the job's entry; ``attempt`` counts retries.
    """

    seq: int
    routine_id: str
    slot: str | None
    data: Payload
    connection: int = -1
    attempt: int = 0


@final
@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """A failed delivery, as data: where, what, and when."""

    routine_id: str
    slot: str | None
    seq: int
    attempt: int
    error_type: str
    message: str
    traceback: str
    at: datetime


@final
@dataclass(frozen=True, slots=True)
class PausePoint:
    """Where and why a job was paused."""

    reason: str
    checkpoint: object
    at: datetime
    deliveries: int


class HistoryRecord(NamedTuple):
    """One handled delivery in a job's execution history.

    ``outcome`` is ``"completed"``, ``"buffered"`` (a join still waiting),
    ``"retried"``, ``"failed"`` or ``"dropped"`` (its routine was skipped).
    """

    seq: int
    routine_id: str
    slot: str | None
    outcome: str
    attempt: int
    started_at: datetime
    duration: float


class RoutineStatus(StrEnum):
    """What happened to a routine in one job, so far."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


@final
@dataclass(slots=True)
class RoutineState:
    """One routine's part in a job: deliveries handled, errors, stats snapshot."""

    routine_id: str
    status: RoutineStatus = RoutineStatus.RUNNING
    deliveries: int = 0
    errors: list[ErrorRecord] = field(default_factory=list)
    stats: dict[str, object] = field(default_factory=dict)


@final
@dataclass(slots=True, eq=False)
class JobState:
    """The record of one job: status, progress, errors and what is still pending.

    ``pending`` is a stack: its last delivery runs next. ``slot_buffers`` maps
    ``(routine_id, slot)`` to the slot's merged data, and ``join_arrivals`` the
    same key to the connections a waiting join has heard from. ``history``
    keeps the last ``history_limit`` handled deliveries.

    Thread safety: the scheduler alone writes a running job's state; read it
    from other threads only once ``execute`` has returned.
    """

    job_id: str
    flow_id: str
    entry_routine_id: str
    entry_params: Payload
    entry_slot: str | None
    created_at: datetime
    status: JobStatus = JobStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    routine_states: dict[str, RoutineState] = field(default_factory=dict)
    pending: list[Delivery] = field(default_factory=list)
    slot_buffers: dict[tuple[str, str], Payload] = field(default_factory=dict)
    join_arrivals: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    errors: list[ErrorRecord] = field(default_factory=list)
    pause_points: list[PausePoint] = field(default_factory=list)
    delivery_count: int = 0
    next_seq: int = 0
    history_limit: int = DEFAULT_HISTORY_LIMIT
    history_raw: deque[tuple[int, str, str | None, str, int, float, float]] = field(
        init=False, repr=False
    )
    tracker: ExecutionTracker | None = field(default=None, repr=False)
    started_monotonic: float = field(default=0.0, repr=False)
    stop_request: tuple[JobStatus, str, object] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Create the bounded history."""
        self.history_raw = deque(maxlen=self.history_limit)

    @property
    def error(self) -> ErrorRecord | None:
        """The error that failed the job, if it failed because of one."""
        if self.status is JobStatus.FAILED and self.errors:
            return self.errors[-1]
        return None

    @property
    def waiting_joins(self) -> dict[tuple[str, str], set[int]]:
        """Join slots that heard from some but not all of their connections."""
        return {key: set(seen) for key, seen in self.join_arrivals.items() if seen}

    def get_routine_state(self, routine_id: str) -> RoutineState:
        """Return what routine ``routine_id`` did in this job.

        Raises:
            UnknownPortError: If the routine has not run in this job.
        """
        try:
            return self.routine_states[routine_id]
        except KeyError:
            raise UnknownPortError(
                f"routine {routine_id!r} has not run in job {self.job_id!r}; "
                f"routines that ran: {sorted(self.routine_states)}"
            ) from None

    def get_execution_history(
        self, routine_id: str | None = None
    ) -> list[HistoryRecord]:
        """Return the retained history, oldest first, optionally for one routine."""
        origin = self.started_at or self.created_at
        base = self.started_monotonic
        return [
            HistoryRecord(
                seq,
                rid,
                slot,
                outcome,
                attempt,
                origin + timedelta(seconds=t - base),
                d,
            )
            for seq, rid, slot, outcome, attempt, t, d in self.history_raw
            if routine_id is None or rid == routine_id
        ]

    def __repr__(self) -> str:
        """Return the job's identity and progress."""
        return (
            f"JobState(job_id={self.job_id!r}, flow_id={self.flow_id!r}, "
            f"status={self.status.value!r}, deliveries={self.delivery_count}, "
            f"pending={len(self.pending)}, errors={len(self.errors)})"
        )
