"""JobState and its records: the progress of one job, as plain data."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Final, final

from flowforge._job_file import read_job_file, write_job_file
from flowforge._codec import decode, encode
from flowforge._names import check_type
from flowforge._error_log import add_error, failing_record, failure, trim_errors
from flowforge.exceptions import (
    ArgumentTypeError,
    SerializationError,
    UnknownPortError,
)
from flowforge.execution_tracker import ExecutionTracker
from flowforge.record import (
    Delivery,
    ErrorRecord,
    HistoryRecord,
    PausePoint,
    RawRecord,
    RoutineState,
    delivery_from_data,
    delivery_to_data,
    error_from_data,
    error_to_data,
    history_from_data,
    payload_from_data,
    routine_state_from_data,
    routine_state_to_data,
    time_from_data,
    time_to_data,
)
from flowforge.serialization import (
    FORMAT_VERSION,
    check_version,
    read,
    read_optional,
)
from flowforge.types import Payload

__all__ = ["JobState", "JobStatus", "new_job_state", "record_error"]

DEFAULT_HISTORY_LIMIT: Final = 1000
DEFAULT_MAX_PENDING: Final = 1_000_000
MAX_HISTORY_LIMIT: Final = 100_000_000
"""The largest history a job may keep: more is a mistake, not a setting."""


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
class JobState:
    """The record of one job: status, progress, errors and what is still pending.

    ``execute`` and ``resume`` return one; a store saves and loads them. Its
    attributes are plain data (listed below); the history of handled
    deliveries is read with :meth:`get_execution_history`. Two job states are
    equal when all of their data is.

    Thread safety: the scheduler alone writes a running job's state; read it
    from other threads only once the job has ended or paused.
    """

    job_id: str
    """The job's id, unique in its store."""
    flow_id: str
    """The id of the flow the job runs on."""
    entry_routine_id: str
    """The routine the job started at."""
    entry_params: Payload
    """The job's input, as given to ``execute``."""
    entry_slot: str | None
    """The entry routine's slot that received the params; ``None`` for a source."""
    created_at: datetime
    """When the job was created (aware UTC)."""
    status: JobStatus = JobStatus.PENDING
    """Where the job is in its life."""
    started_at: datetime | None = None
    """When the job first ran, if it has."""
    finished_at: datetime | None = None
    """When the job completed, failed or was cancelled, if it has."""
    routine_states: dict[str, RoutineState] = field(default_factory=dict)
    """What each routine that ran did in this job, by routine id."""
    pending: list[Delivery] = field(default_factory=list)
    """Deliveries still to run, as a stack whose last item runs next."""
    slot_buffers: dict[tuple[str, str], Payload] = field(default_factory=dict)
    """Each slot's merged data, by ``(routine_id, slot)``. A correlated join's
    holds its waiting groups instead, ``{"groups": {key: {connection: [data,
    ...]}}}``: what each connection delivered for each key still waiting."""
    join_arrivals: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    """For each waiting join, by ``(routine_id, slot)``, the indexes of the
    connections it has heard from."""
    errors: list[ErrorRecord] = field(default_factory=list)
    """The failures recorded in this job, oldest first, bounded.

    The first 100 records and the most recent ``history_limit`` ones are kept;
    :attr:`error_totals` counts them all."""
    pause_points: list[PausePoint] = field(default_factory=list)
    """Where and why the job was paused, oldest first."""
    delivery_count: int = 0
    """How many deliveries reached an outcome (retried attempts not counted)."""
    next_seq: int = 0
    """The sequence number the job's next delivery gets."""
    history_limit: int = DEFAULT_HISTORY_LIMIT
    """How many handled deliveries the history keeps."""
    history_total: int = 0
    """How many handled deliveries were ever recorded, kept or not."""
    flow_shape: dict[str, object] = field(default_factory=dict, repr=False)
    """The shape of the flow definition the job started on."""
    tracker: ExecutionTracker = field(default_factory=ExecutionTracker, repr=False)
    """The job's counts and timings."""
    _history: deque[RawRecord] = field(init=False, repr=False)
    _wall_offset: float = field(default=0.0, init=False, repr=False, compare=False)
    _stats_restored: bool = field(default=True, init=False, repr=False, compare=False)
    _stop_request: tuple[JobStatus, str, object] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _interrupt: Callable[[], None] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _max_pending: int = field(
        default=DEFAULT_MAX_PENDING, init=False, repr=False, compare=False
    )
    """The run's bound on pending deliveries, from the flow's ``max_pending``."""
    """Cancels the handlers of a running async job that await (any thread)."""
    _error_total: int = field(default=0, init=False, repr=False, compare=False)
    """How many errors were recorded, kept or not."""
    _error_heads: dict[str, int] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """Each routine's records among the first kept ones, once errors drop."""
    _cause: tuple[ErrorRecord, BaseException] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """The last error record and its live exception: this process only."""

    def __post_init__(self) -> None:
        """Create the bounded history."""
        self._history = deque(maxlen=self.history_limit)

    @property
    def error(self) -> ErrorRecord | None:
        """The error that failed the job, if it failed because of one."""
        failed = self.status is JobStatus.FAILED
        return failing_record(self.errors, self.pending) if failed else None

    @property
    def error_count(self) -> int:
        """How many errors the job recorded, including those no longer kept."""
        return self._error_total

    @property
    def error_totals(self) -> dict[str, dict[str, int]]:
        """The exact error counts, by routine id, then by exception type name."""
        return {
            rid: dict(state._error_counts)
            for rid, state in self.routine_states.items()
            if state._error_counts
        }

    def raise_for_status(self) -> JobState:
        """Return this job unless it failed; raise :class:`JobFailedError` if it did.

        A completed, paused, cancelled or unfinished job is returned as it
        is. In the process that ran the job, the error's ``__cause__`` is the
        exception that failed it; a job loaded from a store or from data has
        only the recorded type, message and traceback text, which the
        message includes.

        Raises:
            JobFailedError: If the job failed; it names the job, the routine,
                the slot and the error.

        Example:
            ``job = flow.execute("start", params).raise_for_status()``
        """
        if self.status is not JobStatus.FAILED:
            return self
        error, cause = failure(self.job_id, self.error, self._cause)
        raise error from cause

    def __getstate__(self) -> object:
        """Return the state to pickle: the live exception stays in this process."""
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["_cause"] = None
        return (None, state)

    @property
    def waiting_joins(self) -> dict[tuple[str, str], set[int]]:
        """Join slots that heard from some but not all of their connections."""
        return {key: set(seen) for key, seen in self.join_arrivals.items() if seen}

    @property
    def waiting_groups(self) -> dict[tuple[str, str], dict[object, set[int]]]:
        """Correlated joins' incomplete groups, by ``(routine_id, slot)`` then key.

        Each waiting key maps to the indexes of the connections it has heard
        from; what they delivered is in :attr:`slot_buffers`. In data damaged
        since it was saved, what is no group is left out.
        """
        routines = self.flow_shape.get("routines")
        waiting: dict[tuple[str, str], dict[object, set[int]]] = {}
        for (rid, slot), buffer in self.slot_buffers.items():
            shape = routines.get(rid) if isinstance(routines, dict) else None
            groups = buffer.get("groups")
            if (
                isinstance(shape, dict)
                and slot in shape.get("correlated", ())
                and isinstance(groups, dict)
            ):
                waiting[(rid, slot)] = {  # what is no group (damaged data): left out
                    key: {c for c in seen if type(c) is int}
                    for key, seen in groups.items()
                    if isinstance(seen, dict)
                }
        return waiting

    @property
    def is_finished(self) -> bool:
        """Whether the job has ended for good (completed or cancelled)."""
        return self.status in (JobStatus.COMPLETED, JobStatus.CANCELLED)

    def get_routine_state(self, routine_id: str) -> RoutineState:
        """Return what routine ``routine_id`` did in this job.

        Raises:
            ArgumentTypeError: If ``routine_id`` is not a str.
            UnknownPortError: If the routine has not run in this job.
        """
        check_type(routine_id, str, "routine_id", "a str")
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
        if routine_id is not None and not isinstance(routine_id, str):
            raise ArgumentTypeError(
                f"routine_id must be a str or None, got {type(routine_id).__name__}"
            )
        return [
            _history_record(raw)
            for raw in self._history
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
        new one, never a torn one. The folder must exist: a typo in its name
        is reported, never turned into a new folder.

        Raises:
            SerializationError: If a payload cannot be saved, the folder does
                not exist (the message names it), or ``path`` names something
                that is no file (a folder, a device, a pipe), which is left as
                it is.
            OSError: If the file cannot be written (no permission, a full
                disk); an existing file is left as it was.
        """
        write_job_file(path, self.serialize())

    @classmethod
    def load(cls, path: str | Path) -> JobState:
        """Read a job state written by :meth:`save`.

        Raises:
            SerializationError: If the file is missing, empty, truncated, not
                JSON, not a FlowForge job state, or of a newer version; the
                message names the file.
        """
        where, data = read_job_file(path)
        try:
            return cls.deserialize(data)
        except SerializationError as error:
            raise SerializationError(f"job state file {where!r}: {error}") from error

    def __repr__(self) -> str:
        """Return the job's identity and progress."""
        return (
            f"JobState(job_id={self.job_id!r}, flow_id={self.flow_id!r}, "
            f"status={self.status.value!r}, deliveries={self.delivery_count}, "
            f"pending={len(self.pending)}, errors={len(self.errors)})"
        )


# Calling a dataclass with keywords and default factories is slow on CPython
# 3.11, and every job starts with one JobState: new_job_state builds it field
# by field. tests/test_fast_path.py checks that it sets every field as the
# constructor does.

_new = object.__new__
PENDING: Final = JobStatus.PENDING


def new_job_state(
    job_id: str,
    flow_id: str,
    entry_routine_id: str,
    entry_params: Payload,
    entry_slot: str | None,
    created_at: datetime,
    history_limit: int,
    flow_shape: dict[str, object],
) -> JobState:
    """Return a pending ``JobState`` with these fields (by keyword), built faster."""
    job: JobState = _new(JobState)
    job.job_id, job.flow_id = job_id, flow_id
    job.entry_routine_id, job.entry_params = entry_routine_id, entry_params
    job.entry_slot, job.created_at = entry_slot, created_at
    job.status, job.started_at, job.finished_at = PENDING, None, None
    job.routine_states, job.pending = {}, []
    job.slot_buffers, job.join_arrivals = {}, {}
    job.errors, job.pause_points = [], []
    job.delivery_count = job.next_seq = job.history_total = 0
    job.history_limit, job.flow_shape = history_limit, flow_shape
    job.tracker = ExecutionTracker()
    job._history = deque((), history_limit)
    job._wall_offset, job._stats_restored, job._stop_request = 0.0, True, None
    job._interrupt, job._max_pending = None, DEFAULT_MAX_PENDING
    job._error_total, job._error_heads, job._cause = 0, None, None
    return job


def record_error(
    job: JobState, record: ErrorRecord, cause: BaseException | None = None
) -> None:
    """Add ``record`` to the job's bounded errors and its routine's counts.

    The routine must have a state in the job. ``cause`` is the live
    exception, kept (for :meth:`JobState.raise_for_status`) until the next
    record.
    """
    job._error_heads = add_error(
        job.errors, job.routine_states, record, job.history_limit, job._error_heads
    )
    job._error_total += 1
    if job.status is not JobStatus.FAILED:  # keep the one that failed it
        job._cause = None if cause is None else (record, cause)


def _history_record(raw: RawRecord) -> HistoryRecord:
    seq, routine_id, slot, outcome, attempt, at, duration = raw
    started_at = datetime.fromtimestamp(at, UTC)
    return HistoryRecord(seq, routine_id, slot, outcome, attempt, started_at, duration)


# -- dict format ----------------------------------------------------------------


def _job_to_dict(job: JobState) -> dict[str, object]:
    return {
        "version": FORMAT_VERSION,
        "job_id": job.job_id,
        "flow_id": job.flow_id,
        "status": job.status.value,
        "entry_routine_id": job.entry_routine_id,
        "entry_params": encode(job.entry_params, "entry_params"),
        "entry_slot": job.entry_slot,
        "created_at": time_to_data(job.created_at),
        "started_at": time_to_data(job.started_at),
        "finished_at": time_to_data(job.finished_at),
        "delivery_count": job.delivery_count,
        "next_seq": job.next_seq,
        "history_limit": job.history_limit,
        "history_total": job.history_total,
        "flow_shape": job.flow_shape,
        "pause_points": [
            {
                "reason": p.reason,
                "checkpoint": encode(p.checkpoint, f"pause_points[{i}].checkpoint"),
                "at": time_to_data(p.at),
                "deliveries": p.deliveries,
            }
            for i, p in enumerate(job.pause_points)
        ],
        "tracker": job.tracker.serialize(),
        "routine_states": [
            routine_state_to_data(state) for state in job.routine_states.values()
        ],
        "pending": [delivery_to_data(d) for d in job.pending],
        "slot_buffers": [
            [rid, slot, encode(buffer, f"slot_buffers[{rid!r}, {slot!r}]")]
            for (rid, slot), buffer in job.slot_buffers.items()
        ],
        "join_arrivals": [
            [rid, slot, sorted(seen)] for (rid, slot), seen in job.join_arrivals.items()
        ],
        "errors": [error_to_data(e) for e in job.errors],
        "history": [list(raw) for raw in job._history],
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
    history_limit = read(data, "history_limit", int, where)
    if not 1 <= history_limit <= MAX_HISTORY_LIMIT:  # before a deque of that size
        raise SerializationError(
            f"{where}: field 'history_limit' must be from 1 to "
            f"{MAX_HISTORY_LIMIT:,}, got {history_limit}"
        )
    job = JobState(
        job_id=read(data, "job_id", str, where),
        flow_id=read(data, "flow_id", str, where),
        entry_routine_id=read(data, "entry_routine_id", str, where),
        entry_params=payload_from_data(
            read(data, "entry_params", dict, where), "entry_params"
        ),
        entry_slot=read_optional(data, "entry_slot", str, where),
        created_at=time_from_data(data, "created_at", where),
        status=JobStatus(read(data, "status", str, where)),
        started_at=_optional_time(data, "started_at", where),
        finished_at=_optional_time(data, "finished_at", where),
        delivery_count=read(data, "delivery_count", int, where),
        next_seq=read(data, "next_seq", int, where),
        history_limit=history_limit,
        history_total=read(data, "history_total", int, where),
        flow_shape=read(data, "flow_shape", dict, where),
        tracker=ExecutionTracker.deserialize(data.get("tracker")),
    )
    job._stats_restored = False
    _check_counts(job, where)
    job.errors = [
        error_from_data(e, f"{where} errors") for e in read(data, "errors", list, where)
    ]
    trim_errors(job.errors, history_limit)  # a store may hold dropped records
    for item in read(data, "routine_states", list, where):
        state = routine_state_from_data(item, job.errors, f"{where} routine state")
        job.routine_states[state.routine_id] = state
        job._error_total += sum(state.error_counts.values())
    job.pending = [
        delivery_from_data(row, f"{where} pending")
        for row in read(data, "pending", list, where)
    ]
    for rid, slot, buffer in read(data, "slot_buffers", list, where):
        key = _slot_key(rid, slot, f"{where} slot_buffers")
        job.slot_buffers[key] = payload_from_data(buffer, f"slot_buffers[{key!r}]")
    for rid, slot, seen in read(data, "join_arrivals", list, where):
        key = _slot_key(rid, slot, f"{where} join_arrivals")
        if not isinstance(seen, list) or not all(type(i) is int for i in seen):
            raise SerializationError(
                f"{where} join_arrivals: connection indexes must be ints, got {seen!r}"
            )
        job.join_arrivals[key] = set(seen)
    for item in read(data, "pause_points", list, where):
        job.pause_points.append(_pause_point(item, f"{where} pause point"))
    for row in read(data, "history", list, where):
        job._history.append(history_from_data(row, f"{where} history"))
    return job


def _check_counts(job: JobState, where: str) -> None:
    counts = {
        "delivery_count": job.delivery_count,
        "next_seq": job.next_seq,
        "history_total": job.history_total,
    }
    for name, value in counts.items():
        if value < 0:
            raise SerializationError(f"{where}: field {name!r} is negative ({value})")


def _slot_key(routine_id: object, slot: object, where: str) -> tuple[str, str]:
    if not (isinstance(routine_id, str) and isinstance(slot, str)):
        raise SerializationError(
            f"{where}: routine id and slot must be strings, "
            f"got {routine_id!r}, {slot!r}"
        )
    return (routine_id, slot)


def _optional_time(data: Mapping[str, object], key: str, where: str) -> datetime | None:
    return None if data.get(key) is None else time_from_data(data, key, where)


def _pause_point(item: object, where: str) -> PausePoint:
    if not isinstance(item, dict):
        raise SerializationError(f"{where}: expected a dict, got {type(item).__name__}")
    return PausePoint(
        reason=read(item, "reason", str, where),
        checkpoint=decode(item.get("checkpoint"), "checkpoint"),
        at=time_from_data(item, "at", where),
        deliveries=read(item, "deliveries", int, where),
    )
