"""A job state cut into rows, and put back together: shared by row-based stores.

A job's small, rarely changing fields form its *header*; its pending
deliveries, slot buffers, routine states, errors and history are rows, so
that a checkpoint after one delivery writes only the rows that delivery
changed. Every row is JSON text. The header names the flow's shape by id
(see :mod:`flowforge.store._shapes`); the store keeps the shape apart, once.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from flowforge._codec import encode
from flowforge._error_log import new_errors
from flowforge.exceptions import SerializationError
from flowforge.job_state import JobState
from flowforge.record import Delivery, delivery_to_data, error_to_data
from flowforge.store._json import dumps, loads
from flowforge.store._shapes import StoredShape, join_shape, split_shape
from flowforge.store.base import Change

__all__ = [
    "BufferKey",
    "ChangeRows",
    "JobRows",
    "assemble",
    "assemble_rows",
    "buffer_data",
    "change_rows",
    "dumps",
    "job_rows",
    "pending_data",
    "routine_data",
]

ROW_KEYS: Final = (
    "routine_states",
    "pending",
    "slot_buffers",
    "join_arrivals",
    "errors",
    "history",
)
COUNTER_KEYS: Final = ("status", "delivery_count", "next_seq", "history_total")

BufferKey = tuple[str, str]


@dataclass(slots=True)
class JobRows:
    """A whole job state as a header and rows of JSON text."""

    header: str
    counters: dict[str, object]
    pending: list[str]
    buffers: dict[BufferKey, tuple[str | None, str | None]]
    routines: dict[str, str]
    errors: list[str]
    history: list[tuple[int, str]]
    shape: StoredShape | None = None
    """The flow's shape, which the header names by id (kept apart, once)."""


@dataclass(slots=True)
class ChangeRows:
    """The rows one delivery changed (see :class:`~flowforge.store.base.Change`)."""

    counters: dict[str, object]
    pending_from: int
    pending: list[str]
    routine: tuple[str, str] | None
    buffer: tuple[BufferKey, str | None, str | None] | None
    errors: list[tuple[int, str]]
    history: list[tuple[int, str]]
    history_floor: int = field(default=0)


def counters_of(job: JobState) -> dict[str, object]:
    """Return the fields every checkpoint rewrites."""
    return {
        "status": job.status.value,
        "delivery_count": job.delivery_count,
        "next_seq": job.next_seq,
        "history_total": job.history_total,
    }


def job_rows(job: JobState, held: Container[str] = ()) -> JobRows:
    """Cut a whole job state into a header and rows.

    ``held`` holds the ids of the flow shapes the store holds right: the
    shape's text is written out unless it is one of them (see
    :func:`~flowforge.store._shapes.stored_shape`).
    """
    data = job.serialize()
    header = {k: v for k, v in data.items() if k not in ROW_KEYS + COUNTER_KEYS}
    shape = split_shape(header, held)
    arrivals = {(rid, slot): seen for rid, slot, seen in _rows(data, "join_arrivals")}
    buffers: dict[BufferKey, tuple[str | None, str | None]] = {
        (rid, slot): (dumps(buffer), _arrivals(arrivals.pop((rid, slot), None)))
        for rid, slot, buffer in _rows(data, "slot_buffers")
    }
    for key, seen in arrivals.items():
        buffers[key] = (None, _arrivals(seen))
    first = job.history_total - len(job._history)
    return JobRows(
        header=dumps(header),
        counters=counters_of(job),
        pending=[dumps(row) for row in _rows(data, "pending")],
        buffers=buffers,
        routines={rid: _routine_row(job, rid) for rid in job.routine_states},
        errors=[dumps(row) for row in _rows(data, "errors")],
        history=[
            (first + i, dumps(row)) for i, row in enumerate(_rows(data, "history"))
        ],
        shape=shape,
    )


def change_rows(job: JobState, change: Change) -> ChangeRows:
    """Return the rows that ``change`` touched, read from ``job``."""
    history = job._history
    new_history = min(job.history_total - change.history_from, len(history))
    records = [history[-k] for k in range(new_history, 0, -1)]
    first = job.history_total - len(records)
    routine = None
    if change.routine_id is not None:
        routine = (change.routine_id, _routine_row(job, change.routine_id))
    return ChangeRows(
        counters=counters_of(job),
        pending_from=change.pending_from,
        pending=[
            dumps(delivery_to_data(d)) for d in job.pending[change.pending_from :]
        ],
        routine=routine,
        buffer=(
            None if change.buffer_key is None else _buffer_row(job, change.buffer_key)
        ),
        errors=[
            (n, dumps(error_to_data(record)))
            for n, record in new_errors(job.errors, job.error_count, change.errors_from)
        ],
        history=[(first + i, dumps(list(raw))) for i, raw in enumerate(records)],
        history_floor=job.history_total - job.history_limit,
    )


def assemble(
    header: str,
    counters: Mapping[str, object],
    pending: Iterable[str],
    buffers: Iterable[tuple[str, str, str | None, str | None]],
    routines: Iterable[str],
    errors: Iterable[str],
    history: Iterable[str],
    shapes: Callable[[str], str | None],
) -> JobState:
    """Rebuild a job state from its header, counters and rows (in order).

    A history row is one record, or a batch: a JSON array of records.
    ``shapes`` returns the text of the flow shape of an id (``None`` if the
    store has none); a header written before shapes were kept apart holds
    its shape itself.

    Raises:
        SerializationError: If any part is not valid JSON or not a job state,
            or the header names a shape the store does not hold.
    """
    try:
        data = loads(header)
        buffer_rows = [(rid, slot, b, a) for rid, slot, b, a in buffers]
        data.update(counters)
        data["pending"] = [loads(row) for row in pending]
        data["slot_buffers"] = [
            [rid, slot, loads(b)] for rid, slot, b, _ in buffer_rows if b is not None
        ]
        data["join_arrivals"] = [
            [rid, slot, loads(a)] for rid, slot, _, a in buffer_rows if a is not None
        ]
        data["routine_states"] = [loads(row) for row in routines]
        data["errors"] = [loads(row) for row in errors]
        data["history"] = _records(history)
    except (ValueError, TypeError, AttributeError, RecursionError) as error:
        # ValueError: not JSON, or bytes that are not UTF-8 (from a damaged
        # database); RecursionError: JSON nested too deep to parse.
        raise SerializationError(f"stored job data is corrupted: {error}") from error
    if isinstance(data, dict):
        join_shape(data, shapes, f"stored job {data.get('job_id')!r}")
    job = JobState.deserialize(data)
    for row in data["routine_states"]:
        if isinstance(row, dict) and "tracker" in row:
            job.tracker._restore_routine_figures(str(row["routine_id"]), row["tracker"])
    return job


def assemble_rows(
    rows: JobRows, history: Mapping[int, str], shapes: Callable[[str], str | None]
) -> JobState:
    """Rebuild a job state from its rows, its history rows by number, and shapes.

    Raises:
        SerializationError: If any part is not valid JSON or not a job state.
    """
    return assemble(
        rows.header,
        rows.counters,
        rows.pending,
        [(r, s, b, a) for (r, s), (b, a) in rows.buffers.items()],
        rows.routines.values(),
        rows.errors,
        [history[n] for n in sorted(history)],
        shapes,
    )


def routine_data(job: JobState, routine_id: str) -> dict[str, object]:
    """Return a routine's state with its tracker figures, as JSON data.

    The same data as ``routine_state_to_data`` plus ``"tracker"``, built
    here because a checkpoint builds it after every delivery: empty stats
    and error counts skip the codec, and an error's path is worked out only
    when there is an error.
    """
    state = job.routine_states[routine_id]
    stats, counts = state._stats, state._error_counts
    return {
        "routine_id": state.routine_id,
        "status": str(state.status),  # a StrEnum's value, without .value's cost
        "deliveries": state.deliveries,
        "stats": (
            _encoded(stats, "routine_states[{!r}].stats", routine_id) if stats else {}
        ),
        "error_counts": dict(counts) if counts else {},
        "tracker": job.tracker._routine_figures(routine_id),
    }


def buffer_data(job: JobState, key: BufferKey) -> tuple[object, list[int] | None]:
    """Return a slot buffer and its join arrivals as JSON data (``None`` if absent)."""
    buffer = job.slot_buffers.get(key)
    seen = job.join_arrivals.get(key)
    try:  # as _encoded, written out: a checkpoint encodes a buffer each time
        data = None if buffer is None else encode(buffer)
    except SerializationError:
        data = encode(buffer, f"slot_buffers[{key!r}]")  # raises again, with the path
    return (data, None if seen is None else sorted(seen))


def pending_data(delivery: Delivery) -> list[object]:
    """Return a pending delivery as ``delivery_to_data`` does, for a checkpoint."""
    d = delivery
    try:  # as _encoded, written out: a checkpoint encodes each new delivery
        data = encode(d.data)
    except SerializationError:
        data = encode(d.data, f"pending[{d.seq}].data")  # raises again, with the path
    return [d.seq, d.routine_id, d.slot, data, d.connection, d.attempt]


def _encoded(value: object, path: str, name: object) -> object:
    """Return ``encode(value, path.format(name))``, formatting the path on error only.

    Raises:
        SerializationError: As ``encode``, naming where the bad value is.
    """
    if type(value) is dict and not value:
        return {}  # what encode returns for an empty dict
    try:
        return encode(value)
    except SerializationError:
        return encode(value, path.format(name))  # raises again, with the path


def _routine_row(job: JobState, routine_id: str) -> str:
    """A routine's state with its tracker figures, rewritten after each delivery."""
    return dumps(routine_data(job, routine_id))


def _buffer_row(
    job: JobState, key: BufferKey
) -> tuple[BufferKey, str | None, str | None]:
    buffer, seen = buffer_data(job, key)
    return (key, None if buffer is None else dumps(buffer), _arrivals(seen))


def _records(rows: Iterable[str]) -> list[object]:
    records: list[object] = []
    for row in rows:
        value = loads(row)
        # A record starts with its sequence number; a batch with a record.
        if isinstance(value, list) and value and isinstance(value[0], list):
            records.extend(value)
        else:
            records.append(value)
    return records


def _arrivals(seen: object) -> str | None:
    return None if seen is None else dumps(seen)


def _rows(data: Mapping[str, object], key: str) -> list:  # type: ignore[type-arg]
    value = data[key]
    assert isinstance(value, list)  # noqa: S101  JobState.serialize makes lists
    return value
