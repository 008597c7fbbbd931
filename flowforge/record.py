"""The plain-data records a job state is made of: deliveries, errors, history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, final

from flowforge._codec import decode, encode
from flowforge.exceptions import SerializationError
from flowforge.serialization import read, read_optional
from flowforge.types import Payload

__all__ = [
    "Delivery",
    "ErrorRecord",
    "HistoryRecord",
    "PausePoint",
    "RawRecord",
    "RoutineState",
    "RoutineStatus",
    "delivery_from_data",
    "delivery_to_data",
    "error_from_data",
    "error_to_data",
    "history_from_data",
    "new_delivery",
    "payload_from_data",
    "routine_state_from_data",
    "routine_state_to_data",
    "time_from_data",
    "time_to_data",
]


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
    ``flow.connections``, or -1 for the job's entry; an index past the
    connections is a failure route (the first one made is
    ``len(flow.connections)``); ``attempt`` counts retries.
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
    """A failed delivery, as data: where, what, when, and the payload it carried.

    ``payload`` is a copy of the failed delivery's data when ``payload_saved``
    is true. When the data holds a value that cannot be saved (as a pending
    delivery's data is saved), ``payload`` is its ``repr`` text instead and
    ``payload_saved`` is false; records saved before payloads were kept load
    with ``payload=None`` and ``payload_saved=False``.
    """

    routine_id: str
    slot: str | None
    seq: int
    attempt: int
    error_type: str
    message: str
    traceback: str
    at: datetime
    # Left out of the hash: a dict has none.
    payload: Payload | str | None = field(default=None, hash=False)
    payload_saved: bool = False


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
    ``"retried"``, ``"failed"``, ``"routed"`` (failed for good and sent to the
    routine's failure route), ``"dropped"`` (its routine was skipped) or
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
class RoutineState:
    """One routine's part in a job: deliveries finished, errors, stats snapshot.

    ``deliveries`` counts deliveries that reached an outcome: handled,
    failed for good, buffered by a join, or dropped because the routine was
    skipped. A delivery that stopped the job is not finished: it waits on the
    job's pending stack and counts once it runs again.

    ``errors`` (this routine's :class:`ErrorRecord` s kept in the job's
    bounded error log, oldest first), ``error_counts`` (how many errors the
    routine recorded in the job, by exception type, kept or not) and
    ``stats`` (the routine's stats when the job last stopped running) are
    made on first use: a job has a state for every routine it ran, and most
    never need them.
    """

    __slots__ = (
        "routine_id",
        "status",
        "deliveries",
        "_errors",
        "_stats",
        "_error_counts",
    )

    def __init__(
        self,
        routine_id: str,
        status: RoutineStatus = RoutineStatus.RUNNING,
        deliveries: int = 0,
        errors: list[ErrorRecord] | None = None,
        stats: dict[str, object] | None = None,
        error_counts: dict[str, int] | None = None,
    ) -> None:
        """Describe ``routine_id``'s part in a job."""
        self.routine_id = routine_id
        self.status = status
        self.deliveries = deliveries
        self._errors = errors
        self._stats = stats
        self._error_counts = error_counts

    @property
    def errors(self) -> list[ErrorRecord]:
        """This routine's errors in the job, oldest first."""
        if self._errors is None:
            self._errors = []
        return self._errors

    @errors.setter
    def errors(self, value: list[ErrorRecord]) -> None:
        self._errors = value

    @property
    def error_counts(self) -> dict[str, int]:
        """How many errors this routine recorded in the job, by exception type."""
        if self._error_counts is None:
            self._error_counts = {}
        return self._error_counts

    @property
    def stats(self) -> dict[str, object]:
        """The routine's stats when the job last stopped running."""
        if self._stats is None:
            self._stats = {}
        return self._stats

    @stats.setter
    def stats(self, value: dict[str, object]) -> None:
        self._stats = value

    def __eq__(self, other: object) -> bool:
        """Compare every field; missing errors or stats equal empty ones."""
        if not isinstance(other, RoutineState):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        """Show every field."""
        routine_id, status, deliveries, errors, stats, counts = self._fields()
        return (
            f"RoutineState(routine_id={routine_id!r}, status={status!r}, "
            f"deliveries={deliveries!r}, errors={errors!r}, stats={stats!r}, "
            f"error_counts={counts!r})"
        )

    def _fields(
        self,
    ) -> tuple[
        str, RoutineStatus, int, list[ErrorRecord], dict[str, object], dict[str, int]
    ]:
        return (
            self.routine_id,
            self.status,
            self.deliveries,
            self._errors or [],
            self._stats or {},
            self._error_counts or {},
        )


# -- fast construction for the scheduler ----------------------------------------
# Calling a dataclass runs its __init__ through a slow generic path on CPython
# 3.11; the scheduler makes a Delivery per connection per emission, so it
# builds them field by field instead. tests/test_fast_path.py checks that both
# ways make equal objects.

_new = object.__new__


class _MadeState(RoutineState):  # type: ignore[misc]  # final to users only
    """A :class:`RoutineState` the scheduler makes: ``_MadeState()``, then each field.

    Calling a class whose ``__init__`` is ``object.__init__`` costs about 20 ns
    less than ``object.__new__(RoutineState)`` and its free is cheaper too
    (together about 3% of a chain's hop, ``benchmarks/README.md``). It is a
    ``RoutineState`` in every other way (``isinstance``, equality, ``repr``), and
    pickles and copies as one. ``tests/test_fast_path.py`` checks that every
    field is set and equal to the constructor's.
    """

    __slots__ = ()
    __init__ = object.__init__  # the fields are set by whoever makes one

    def __reduce__(self) -> tuple[type[RoutineState], tuple[object, ...]]:
        """Pickle and copy as a plain :class:`RoutineState`."""
        return RoutineState, (
            self.routine_id,
            self.status,
            self.deliveries,
            self._errors,
            self._stats,
            self._error_counts,
        )


def new_delivery(
    seq: int, routine_id: str, slot: str | None, data: Payload, connection: int
) -> Delivery:
    """Return ``Delivery(seq, routine_id, slot, data, connection)``, built faster."""
    delivery: Delivery = _new(Delivery)
    delivery.seq = seq
    delivery.routine_id = routine_id
    delivery.slot = slot
    delivery.data = data
    delivery.connection = connection
    delivery.attempt = 0
    return delivery


# -- dict format of each record ---------------------------------------------------
# JobState.serialize() composes these; stores that save a job piece by piece
# (one row per pending delivery, per error, ...) use them directly.


def time_to_data(value: datetime | None) -> str | None:
    """Return an aware datetime as ISO 8601 text (``None`` stays ``None``)."""
    return None if value is None else value.isoformat()


def time_from_data(data: Mapping[str, object], key: str, where: str) -> datetime:
    """Return the ISO 8601 time at ``data[key]``.

    Raises:
        SerializationError: If it is missing or not a valid time.
    """
    text = read(data, key, str, where)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise SerializationError(f"{where}: field {key!r}: {error}") from error
    if value.tzinfo is None:
        raise SerializationError(
            f"{where}: field {key!r} is {text!r}, which has no time zone; "
            "FlowForge writes aware UTC times such as '2026-01-01T00:00:00+00:00'"
        )
    return value


def payload_from_data(value: object, path: str) -> Payload:
    """Decode a payload saved with ``encode`` and check that it is a dict.

    Raises:
        SerializationError: If it does not decode to a dict.
    """
    decoded = decode(value, path)
    if not isinstance(decoded, dict):
        raise SerializationError(
            f"{path}: expected a dict, got {type(decoded).__name__}"
        )
    return decoded


def delivery_to_data(delivery: Delivery) -> list[object]:
    """Return a delivery as ``[seq, routine_id, slot, data, connection, attempt]``."""
    d = delivery
    data = encode(d.data, f"pending[{d.seq}].data")
    return [d.seq, d.routine_id, d.slot, data, d.connection, d.attempt]


def delivery_from_data(row: object, where: str) -> Delivery:
    """Rebuild a delivery from :func:`delivery_to_data`'s list.

    Raises:
        SerializationError: If the row is malformed.
    """
    if not isinstance(row, list) or len(row) != 6:
        raise SerializationError(f"{where}: a pending delivery must be a list of 6")
    seq, routine_id, slot, data, connection, attempt = row
    fields = {"seq": seq, "connection": connection, "attempt": attempt}
    checked = {key: read(fields, key, int, where) for key in fields}
    if not isinstance(routine_id, str) or not (slot is None or isinstance(slot, str)):
        raise SerializationError(f"{where}: bad routine id or slot in {row[:3]!r}")
    payload = payload_from_data(data, f"pending[{seq}].data")
    return Delivery(
        checked["seq"],
        routine_id,
        slot,
        payload,
        checked["connection"],
        checked["attempt"],
    )


def error_to_data(record: ErrorRecord) -> dict[str, object]:
    """Return an error record as a dict of JSON types."""
    return {
        "routine_id": record.routine_id,
        "slot": record.slot,
        "seq": record.seq,
        "attempt": record.attempt,
        "error_type": record.error_type,
        "message": record.message,
        "traceback": record.traceback,
        "at": time_to_data(record.at),
        "payload": (
            encode(record.payload, f"errors[{record.seq}].payload")
            if record.payload_saved
            else record.payload
        ),
        "payload_saved": record.payload_saved,
    }


def error_from_data(data: object, where: str) -> ErrorRecord:
    """Rebuild an error record from :func:`error_to_data`'s dict.

    Raises:
        SerializationError: If the data is malformed.
    """
    if not isinstance(data, dict):
        raise SerializationError(f"{where}: expected a dict, got {type(data).__name__}")
    payload, saved = _payload_from_data(data, where)
    return ErrorRecord(
        routine_id=read(data, "routine_id", str, where),
        slot=read_optional(data, "slot", str, where),
        seq=read(data, "seq", int, where),
        attempt=read(data, "attempt", int, where),
        error_type=read(data, "error_type", str, where),
        message=read(data, "message", str, where),
        traceback=read(data, "traceback", str, where),
        at=time_from_data(data, "at", where),
        payload=payload,
        payload_saved=saved,
    )


def _payload_from_data(
    data: Mapping[str, object], where: str
) -> tuple[Payload | str | None, bool]:
    """Read an error's payload and whether it was saved; old data has neither."""
    if "payload_saved" in data and read(data, "payload_saved", bool, where):
        return payload_from_data(data.get("payload"), f"{where} payload"), True
    return read_optional(data, "payload", str, where), False


def routine_state_to_data(state: RoutineState) -> dict[str, object]:
    """Return a routine state (without its errors) as a dict of JSON types.

    A routine's errors are the job's errors with its id, so they are saved
    once, with the job.
    """
    return {
        "routine_id": state.routine_id,
        "status": state.status.value,
        "deliveries": state.deliveries,
        "stats": encode(state.stats, f"routine_states[{state.routine_id!r}].stats"),
        "error_counts": dict(state._error_counts or {}),
    }


def routine_state_from_data(
    data: object, errors: list[ErrorRecord], where: str
) -> RoutineState:
    """Rebuild a routine state; ``errors`` are the job's errors.

    Raises:
        SerializationError: If the data is malformed.
    """
    if not isinstance(data, dict):
        raise SerializationError(f"{where}: expected a dict, got {type(data).__name__}")
    routine_id = read(data, "routine_id", str, where)
    try:
        status = RoutineStatus(read(data, "status", str, where))
    except ValueError as error:
        raise SerializationError(f"{where}: {error}") from error
    kept = [e for e in errors if e.routine_id == routine_id]
    return RoutineState(
        routine_id=routine_id,
        status=status,
        deliveries=read(data, "deliveries", int, where),
        errors=kept,
        stats=payload_from_data(
            read(data, "stats", dict, where), f"{routine_id}.stats"
        ),
        error_counts=_error_counts(data, kept, where),
    )


def _error_counts(
    data: Mapping[str, object], kept: list[ErrorRecord], where: str
) -> dict[str, int]:
    """Read a routine's error counts; data saved before they existed counts ``kept``."""
    counts = read_optional(data, "error_counts", dict, where)
    if counts is None:  # saved before counts existed, when no error was dropped
        counts = {}
        for record in kept:
            counts[record.error_type] = counts.get(record.error_type, 0) + 1
        return counts
    if not all(type(n) is int and n > 0 for n in counts.values()):
        raise SerializationError(f"{where}: error counts must be positive ints")
    return {str(name): n for name, n in counts.items()}


def history_from_data(row: object, where: str) -> RawRecord:
    """Check and return one saved history row.

    Raises:
        SerializationError: If the row is malformed.
    """
    if not isinstance(row, list) or len(row) != 7:
        raise SerializationError(f"{where}: a history record must be a list of 7")
    seq, routine_id, slot, outcome, attempt, at, duration = row
    fields = {"seq": seq, "attempt": attempt, "at": at, "duration": duration}
    if not isinstance(routine_id, str) or not isinstance(outcome, str):
        raise SerializationError(f"{where}: bad routine id or outcome in {row!r}")
    if not (slot is None or isinstance(slot, str)):
        raise SerializationError(f"{where}: bad slot in {row!r}")
    return (
        read(fields, "seq", int, where),
        routine_id,
        slot,
        outcome,
        read(fields, "attempt", int, where),
        read(fields, "at", float, where),
        read(fields, "duration", float, where),
    )
