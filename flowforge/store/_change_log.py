"""A delivery's change as one JSON document, and the net effect of a log of them.

A store that checkpoints by appending writes one :class:`ChangeDocument` per
delivery (one row, one statement) instead of rewriting each row the delivery
touched. Every :data:`FOLD_EVERY` documents it folds its log into its rows, and
loading replays the documents not folded yet. A fold keeps only the net effect
(:class:`Net`): the last counters, the final pending tail, the last row of each
routine and slot buffer, and every new error and history record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NamedTuple

from flowforge._error_log import new_errors
from flowforge.exceptions import SerializationError
from flowforge.record import error_to_data
from flowforge.store._json import codec, dumps, loads
from flowforge.store._rows import BufferKey, buffer_data, pending_data, routine_data

if TYPE_CHECKING:
    from flowforge.job_state import JobState
    from flowforge.store._rows import JobRows
    from flowforge.store.base import Change

__all__ = [
    "FOLD_EVERY",
    "ChangeDocument",
    "Logged",
    "Net",
    "apply",
    "change_document",
    "checked",
    "fold",
    "fold_one",
    "log_change",
    "logged",
    "parse_document",
]

FOLD_EVERY: Final = 64
"""Documents a job's log holds before a checkpoint folds it into the rows.

Bigger logs mean fewer folds (each writes a few pages and deletes the log) but
more documents to replay on load; the cost per delivery does not depend on it."""


class ChangeDocument(NamedTuple):
    """What one delivery changed in a job, as JSON data (a JSON array when saved).

    ``pending`` replaces the pending deliveries from ``pending_from`` on;
    ``routine`` is ``[routine_id, row]`` and ``buffer`` is ``[routine_id, slot,
    buffer, arrivals]`` (``buffer`` and ``arrivals`` ``None`` when gone), each
    ``None`` when untouched; ``errors`` are the job's errors from
    ``errors_from`` on; ``history`` holds the newest history records, the last
    one numbered ``history_total - 1``.
    """

    status: str
    delivery_count: int
    next_seq: int
    history_total: int
    history_limit: int
    pending_from: int
    pending: list[object]
    routine: list[object] | None
    buffer: list[object] | None
    errors_from: int
    errors: list[object]
    history: list[object]


_INTS: Final = (1, 2, 3, 4, 5, 9)
_LISTS: Final = (6, 10, 11)
_OPTIONAL_LISTS: Final = (7, 8)


def change_document(job: JobState, change: Change) -> ChangeDocument:
    """Return what ``change`` touched in ``job``, as fresh JSON data.

    Raises:
        SerializationError: If a payload cannot be saved; the message says where.
    """
    history = job._history
    total = job.history_total
    new = min(total - change.history_from, len(history))
    routine_id = change.routine_id
    key = change.buffer_key
    pending_from = change.pending_from
    errors_from = change.errors_from
    count = job._error_total  # job.error_count, without the property's call
    # tuple.__new__ is what ChangeDocument(...) calls, without its Python frame.
    return _new_document(
        ChangeDocument,
        (
            str(job.status),  # a StrEnum's value, without .value's cost
            job.delivery_count,
            job.next_seq,
            total,
            job.history_limit,
            pending_from,
            list(map(pending_data, job.pending[pending_from:])),
            None if routine_id is None else [routine_id, routine_data(job, routine_id)],
            None if key is None else [*key, *buffer_data(job, key)],
            errors_from,
            (
                [
                    error_to_data(e)
                    for _, e in new_errors(job.errors, count, errors_from)
                ]
                if count > errors_from
                else []
            ),
            # History records are tuples of scalars: JSON writes them as arrays.
            [history[-1]] if new == 1 else [history[-k] for k in range(new, 0, -1)],
        ),
    )


_new_document: Final = tuple.__new__


class Logged(NamedTuple):
    """A logged change document with its history records as JSON text.

    A fold writes the texts of its documents' history records as they are,
    instead of writing their times again (most of the cost of a record).
    """

    document: ChangeDocument
    history: str


def log_change(job: JobState, change: Change) -> tuple[Logged, str]:
    """Return what ``change`` touched in ``job``, and the document's JSON text.

    Raises:
        SerializationError: If a payload cannot be saved; the message says where.
    """
    document = change_document(job, change)
    write = codec()[0]  # dumps, without its call for each of the two texts
    history = write(document.history)
    # The same text as dumps(document): the history is the document's last item.
    text = f"{write(document[:-1])[:-1]},{history}]"
    return _new_document(Logged, (document, history)), text


def logged(document: ChangeDocument) -> Logged:
    """Return a document read back from a store, ready to fold."""
    return Logged(document, dumps(document.history))


def parse_document(text: str, where: str) -> ChangeDocument:
    """Read a saved document back, checking its shape.

    Raises:
        SerializationError: If ``text`` is not a change document; the message
            says ``where`` it was found.
    """
    try:
        items = loads(text)
    except (ValueError, TypeError, RecursionError) as error:
        raise _corrupted(where, error) from error
    if not isinstance(items, list) or len(items) != len(ChangeDocument._fields):
        raise _corrupted(where, "not a change document")
    bad = [
        ChangeDocument._fields[i]
        for i, value in enumerate(items)
        if (i in _INTS and type(value) is not int)
        or (i in _LISTS and type(value) is not list)
        or (i in _OPTIONAL_LISTS and not (value is None or type(value) is list))
        or (i == 0 and type(value) is not str)
    ]
    if bad:
        raise _corrupted(where, f"bad fields {bad}")
    return ChangeDocument(*items)


@dataclass(slots=True)
class Net:
    """The net effect of consecutive change documents on a job's rows.

    ``pending`` replaces the pending deliveries from ``pending_from`` on;
    ``history`` holds the JSON texts of the new history records' arrays, the
    last record numbered ``last.history_total - 1``.
    """

    last: ChangeDocument
    pending_from: int
    pending: list[object] = field(default_factory=list)
    routines: dict[str, object] = field(default_factory=dict)
    buffers: dict[BufferKey, tuple[object, object]] = field(default_factory=dict)
    errors: dict[int, object] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)

    @property
    def history_floor(self) -> int:
        """Return the lowest history number the job still keeps."""
        return self.last.history_total - self.last.history_limit

    def counters(self) -> dict[str, object]:
        """Return the job's counters after the last document."""
        last = self.last
        return {
            "status": last.status,
            "delivery_count": last.delivery_count,
            "next_seq": last.next_seq,
            "history_total": last.history_total,
        }

    def routine_rows(self) -> list[tuple[str, str]]:
        """Return ``(routine_id, row)`` for each routine changed."""
        return [(rid, dumps(row)) for rid, row in self.routines.items()]

    def buffer_rows(self) -> list[tuple[BufferKey, str | None, str | None]]:
        """Return ``(key, buffer, arrivals)`` texts; both ``None`` for a gone buffer."""
        return [
            (key, _text(buffer), _text(arrivals))
            for key, (buffer, arrivals) in self.buffers.items()
        ]

    def error_rows(self) -> list[tuple[int, str]]:
        """Return ``(n, row)`` for each new error, in order."""
        return [(n, dumps(self.errors[n])) for n in sorted(self.errors)]

    def history_rows(self) -> list[tuple[int, str]]:
        """Return the new history records as one row, if any.

        The row is ``(n, batch)``: a JSON array of records, the last one
        numbered ``n`` (see :func:`~flowforge.store._rows.assemble`). It may
        start with records older than the job keeps; loading drops those.
        """
        if not self.history:
            return []
        records = ",".join(text[1:-1] for text in self.history)
        return [(self.last.history_total - 1, f"[{records}]")]


def fold(changes: Sequence[Logged], where: str) -> Net:
    """Return the net effect of logged ``changes`` (at least one), oldest first.

    Raises:
        SerializationError: If the documents are malformed or inconsistent.
    """
    first = changes[0].document
    net = Net(first, first.pending_from)
    try:
        _add_all(net, changes)
    except (TypeError, ValueError) as error:
        raise _corrupted(where, error) from error
    return checked(net, where)


def checked(net: Net, where: str) -> Net:
    """Return ``net`` once its routine and slot ids are checked.

    Raises:
        SerializationError: If an id is not a str.
    """
    try:
        for routine_id in net.routines:  # only the ids kept: most repeat
            _str(routine_id)
        for routine_id, slot in net.buffers:
            _str(routine_id)
            _str(slot)
    except TypeError as error:
        raise _corrupted(where, error) from error
    return net


def fold_one(net: Net | None, change: Logged) -> Net:
    """Return ``net`` (a new one if ``None``) with ``change`` added, ids unchecked.

    A store folds each change it logs as it goes, so that it keeps one net
    effect instead of every document until the fold.

    Raises:
        ValueError: If ``change`` does not follow ``net``.
    """
    if net is None:
        document = change.document
        net = Net(document, document.pending_from)
    _add_all(net, (change,))
    return net


def _add_all(net: Net, changes: Sequence[Logged]) -> None:
    """Add each document's effect to ``net``, in order (one loop: it runs a lot).

    Ids are checked by the caller, once per id kept.
    """
    pending, routines, buffers = net.pending, net.routines, net.buffers
    errors, history = net.errors, net.history
    pending_from = net.pending_from
    document = net.last
    for document, text in changes:
        start = document.pending_from
        if start < pending_from:
            pending_from = start
            pending.clear()
        elif start - pending_from > len(pending):
            raise ValueError(f"pending deliveries from {start} follow a gap")
        else:
            del pending[start - pending_from :]
        pending += document.pending
        if document.routine is not None:
            routine_id, row = document.routine
            # Ids are checked by fold() once each, after the loop.
            routines[routine_id] = row  # type: ignore[index]
        if document.buffer is not None:
            routine_id, slot, buffer, arrivals = document.buffer
            buffers[(routine_id, slot)] = (buffer, arrivals)  # type: ignore[index]
        if document.errors:
            for n, error in enumerate(document.errors, document.errors_from):
                errors[n] = error
        if document.history:
            history.append(text)
    net.last, net.pending_from = document, pending_from


def apply(net: Net, rows: JobRows, history: dict[int, str]) -> None:
    """Apply ``net`` to a job's rows, in place.

    ``history`` holds the job's history rows by number, in increasing order.

    Raises:
        SerializationError: If the rows and the net effect do not fit together.
    """
    rows.counters = net.counters()
    pending = rows.pending
    if net.pending_from > len(pending):
        raise _corrupted(
            "change log", f"pending from {net.pending_from} of {len(pending)}"
        )
    del pending[net.pending_from :]
    pending.extend(dumps(row) for row in net.pending)
    rows.routines.update(net.routine_rows())
    for key, buffer, arrivals in net.buffer_rows():
        if buffer is None and arrivals is None:
            rows.buffers.pop(key, None)
        else:
            rows.buffers[key] = (buffer, arrivals)
    errors = rows.errors
    for n, text in net.error_rows():
        if n < len(errors):
            errors[n] = text
        else:
            errors.append(text)
    history.update(net.history_rows())
    floor = net.history_floor
    while history and (first := next(iter(history))) < floor:
        del history[first]


def _text(value: object) -> str | None:
    return None if value is None else dumps(value)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected an id, got {value!r}")
    return value


def _corrupted(where: str, problem: object) -> SerializationError:
    return SerializationError(f"stored job data is corrupted: {where}: {problem}")
