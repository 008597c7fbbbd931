"""JobState and its records: the progress of one job, as plain data."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Final, NamedTuple, final

from flowforge._atomic import write_atomically
from flowforge._codec import decode, encode
from flowforge.exceptions import SerializationError, UnknownPortError
from flowforge.execution_tracker import ExecutionTracker
from flowforge.serialization import (
    FORMAT_VERSION,
    check_version,
    read,
    read_optional,
)
from flowforge.types import Payload

__all__ = [
    "Delivery",
    "ErrorRecord",
    "HistoryRecord",
    "JobState",
    "JobStatus",
    "PausePoint",
    "RoutineState",
    "RoutineStatus",
]

DEFAULT_HISTORY_LIMIT: Final = 1000
FILE_KIND: Final = "flowforge.job_state"


class JobStatus(StrEnum):
    """Where a job is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RoutineStatus(StrEnum):
    """What happened to a routine in one job, so far."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


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
    ``"retried"``, ``"failed"``, ``"dropped"`` (its routine was skipped) or
    ``"cancelled"`` (still pending when the job was cancelled).
    """

    seq: int
    routine_id: str
    slot: str | None
    outcome: str
    attempt: int
    started_at: datetime
    duration: float


RawRecord = tuple[int, str, "str | None", str, int, float, float]


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
@dataclass(slots=True)
class JobState:
    """The record of one job: status, progress, errors and what is still pending.

    ``pending`` is a stack: its last delivery runs next. ``slot_buffers`` maps
    ``(routine_id, slot)`` to the slot's merged data, and ``join_arrivals`` the
    same key to the connections a waiting join has heard from. The history
    keeps the last ``history_limit`` handled deliveries. Two job states are
    equal when all of their data is.

    Thread safety: the scheduler alone writes a running job's state; read it
    from other threads only once the job has ended or paused.
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
    flow_shape: dict[str, object] = field(default_factory=dict, repr=False)
    tracker: ExecutionTracker = field(default_factory=ExecutionTracker, repr=False)
    history_raw: deque[RawRecord] = field(init=False, repr=False)
    wall_offset: float = field(default=0.0, repr=False, compare=False)
    stats_restored: bool = field(default=True, repr=False, compare=False)
    stop_request: tuple[JobStatus, str, object] | None = field(
        default=None, repr=False, compare=False
    )

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

    @property
    def is_finished(self) -> bool:
        """Whether the job has ended for good: completed or cancelled."""
        return self.status in (JobStatus.COMPLETED, JobStatus.CANCELLED)

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
        return [
            _history_record(raw)
            for raw in self.history_raw
            if routine_id is None or raw[1] == routine_id
        ]

    def serialize(self) -> dict[str, object]:
        """Return the whole job state as a versioned dict of JSON types.

        Raises:
            SerializationError: If a payload holds a value that cannot be
                saved; the message names where it is.
        """
        return _job_to_dict(self)

    @classmethod
    def deserialize(cls, data: object) -> JobState:
        """Rebuild a job state from :meth:`serialize`'s dict.

        Raises:
            SerializationError: If the data is malformed or of another version.
        """
        return _job_from_dict(data)

    def save(self, path: str | Path) -> None:
        """Write the job state to ``path`` as JSON, atomically.

        The data goes to a temporary file in the same folder, is flushed to
        disk, then renamed over ``path``: a crash leaves the old file or the
        new one, never a torn one.
        """
        text = json.dumps(
            {"kind": FILE_KIND, "job_state": self.serialize()}, allow_nan=False
        )
        write_atomically(Path(path), text.encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> JobState:
        """Read a job state written by :meth:`save`.

        Raises:
            SerializationError: If the file is missing, empty, truncated, not
                JSON, not a FlowForge job state, or of a newer version; the
                message names the file.
        """
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise SerializationError(
                f"cannot read job state file {str(path)!r}: {error}"
            ) from error
        if not text.strip():
            raise SerializationError(f"job state file {str(path)!r} is empty")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise SerializationError(
                f"job state file {str(path)!r} is not valid JSON (truncated or "
                f"corrupted?): {error}"
            ) from error
        if not isinstance(document, dict) or document.get("kind") != FILE_KIND:
            raise SerializationError(f"{str(path)!r} is not a FlowForge job state file")
        try:
            return cls.deserialize(document.get("job_state"))
        except SerializationError as error:
            raise SerializationError(
                f"job state file {str(path)!r}: {error}"
            ) from error

    def __repr__(self) -> str:
        """Return the job's identity and progress."""
        return (
            f"JobState(job_id={self.job_id!r}, flow_id={self.flow_id!r}, "
            f"status={self.status.value!r}, deliveries={self.delivery_count}, "
            f"pending={len(self.pending)}, errors={len(self.errors)})"
        )


def _history_record(raw: RawRecord) -> HistoryRecord:
    seq, routine_id, slot, outcome, attempt, at, duration = raw
    started_at = datetime.fromtimestamp(at, UTC)
    return HistoryRecord(seq, routine_id, slot, outcome, attempt, started_at, duration)


# -- dict format ----------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(data: Mapping[str, object], key: str, where: str) -> datetime | None:
    text = read_optional(data, key, str, where)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as error:
        raise SerializationError(f"{where}: field {key!r}: {error}") from error


def _error_to_dict(record: ErrorRecord) -> dict[str, object]:
    return {
        "routine_id": record.routine_id,
        "slot": record.slot,
        "seq": record.seq,
        "attempt": record.attempt,
        "error_type": record.error_type,
        "message": record.message,
        "traceback": record.traceback,
        "at": _time(record.at),
    }


def _error_from_dict(data: object, where: str) -> ErrorRecord:
    if not isinstance(data, dict):
        raise SerializationError(f"{where}: expected a dict, got {type(data).__name__}")
    return ErrorRecord(
        routine_id=read(data, "routine_id", str, where),
        slot=read_optional(data, "slot", str, where),
        seq=read(data, "seq", int, where),
        attempt=read(data, "attempt", int, where),
        error_type=read(data, "error_type", str, where),
        message=read(data, "message", str, where),
        traceback=read(data, "traceback", str, where),
        at=_required_time(data, "at", where),
    )


def _job_to_dict(job: JobState) -> dict[str, object]:
    return {
        "version": FORMAT_VERSION,
        "job_id": job.job_id,
        "flow_id": job.flow_id,
        "status": job.status.value,
        "entry_routine_id": job.entry_routine_id,
        "entry_params": encode(job.entry_params, "entry_params"),
        "entry_slot": job.entry_slot,
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "delivery_count": job.delivery_count,
        "next_seq": job.next_seq,
        "history_limit": job.history_limit,
        "flow_shape": job.flow_shape,
        "routine_states": [
            {
                "routine_id": state.routine_id,
                "status": state.status.value,
                "deliveries": state.deliveries,
                "errors": [_error_to_dict(e) for e in state.errors],
                "stats": encode(state.stats, f"routine_states[{rid!r}].stats"),
            }
            for rid, state in job.routine_states.items()
        ],
        "pending": [
            [
                d.seq,
                d.routine_id,
                d.slot,
                encode(d.data, f"pending[{i}].data"),
                d.connection,
                d.attempt,
            ]
            for i, d in enumerate(job.pending)
        ],
        "slot_buffers": [
            [rid, slot, encode(buffer, f"slot_buffers[{rid!r}, {slot!r}]")]
            for (rid, slot), buffer in job.slot_buffers.items()
        ],
        "join_arrivals": [
            [rid, slot, sorted(seen)] for (rid, slot), seen in job.join_arrivals.items()
        ],
        "errors": [_error_to_dict(e) for e in job.errors],
        "pause_points": [
            {
                "reason": p.reason,
                "checkpoint": encode(p.checkpoint, f"pause_points[{i}].checkpoint"),
                "at": _time(p.at),
                "deliveries": p.deliveries,
            }
            for i, p in enumerate(job.pause_points)
        ],
        "history": [list(raw) for raw in job.history_raw],
        "tracker": job.tracker.serialize(),
    }


def _job_from_dict(data: object) -> JobState:
    where = "job state"
    data = check_version(data, where)
    try:
        return _build_job(data, where)
    except SerializationError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as error:
        raise SerializationError(f"{where}: malformed data: {error!r}") from error


def _build_job(data: Mapping[str, object], where: str) -> JobState:
    job = JobState(
        job_id=read(data, "job_id", str, where),
        flow_id=read(data, "flow_id", str, where),
        entry_routine_id=read(data, "entry_routine_id", str, where),
        entry_params=_payload(read(data, "entry_params", dict, where), "entry_params"),
        entry_slot=read_optional(data, "entry_slot", str, where),
        created_at=_required_time(data, "created_at", where),
        status=JobStatus(read(data, "status", str, where)),
        started_at=_parse_time(data, "started_at", where),
        finished_at=_parse_time(data, "finished_at", where),
        delivery_count=read(data, "delivery_count", int, where),
        next_seq=read(data, "next_seq", int, where),
        history_limit=read(data, "history_limit", int, where),
        flow_shape=read(data, "flow_shape", dict, where),
        tracker=ExecutionTracker.deserialize(data.get("tracker")),
        stats_restored=False,
    )
    for item in read(data, "routine_states", list, where):
        state = _routine_state(item, f"{where} routine state")
        job.routine_states[state.routine_id] = state
    for seq, rid, slot, payload, connection, attempt in read(
        data, "pending", list, where
    ):
        data_ = _payload(payload, f"pending[{seq}].data")
        job.pending.append(Delivery(seq, rid, slot, data_, connection, attempt))
    for rid, slot, buffer in read(data, "slot_buffers", list, where):
        job.slot_buffers[(rid, slot)] = _payload(buffer, f"slot_buffers[{rid!r}]")
    for rid, slot, seen in read(data, "join_arrivals", list, where):
        job.join_arrivals[(rid, slot)] = set(seen)
    job.errors = [_error_from_dict(e, where) for e in read(data, "errors", list, where)]
    for item in read(data, "pause_points", list, where):
        job.pause_points.append(_pause_point(item, f"{where} pause point"))
    for row in read(data, "history", list, where):
        seq, rid, slot, outcome, attempt, at, duration = row
        job.history_raw.append((seq, rid, slot, outcome, attempt, at, duration))
    return job


def _payload(value: object, path: str) -> Payload:
    decoded = decode(value, path)
    if not isinstance(decoded, dict):
        raise SerializationError(
            f"{path}: expected a dict, got {type(decoded).__name__}"
        )
    return decoded


def _required_time(data: Mapping[str, object], key: str, where: str) -> datetime:
    value = _parse_time(data, key, where)
    if value is None:
        raise SerializationError(f"{where}: field {key!r} is missing")
    return value


def _routine_state(item: object, where: str) -> RoutineState:
    if not isinstance(item, dict):
        raise SerializationError(f"{where}: expected a dict, got {type(item).__name__}")
    routine_id = read(item, "routine_id", str, where)
    return RoutineState(
        routine_id=routine_id,
        status=RoutineStatus(read(item, "status", str, where)),
        deliveries=read(item, "deliveries", int, where),
        errors=[_error_from_dict(e, where) for e in read(item, "errors", list, where)],
        stats=_payload(read(item, "stats", dict, where), f"{routine_id}.stats"),
    )


def _pause_point(item: object, where: str) -> PausePoint:
    if not isinstance(item, dict):
        raise SerializationError(f"{where}: expected a dict, got {type(item).__name__}")
    return PausePoint(
        reason=read(item, "reason", str, where),
        checkpoint=decode(item.get("checkpoint"), "checkpoint"),
        at=_required_time(item, "at", where),
        deliveries=read(item, "deliveries", int, where),
    )
