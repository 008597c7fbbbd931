"""Flow shapes stored once per flow definition, named by a content id.

A job state carries the shape of the flow it started on (routines, slots,
events, connections): for a 100,000-routine flow, megabytes that every job
of that flow repeats. Stores keep each distinct shape once, keyed by its
*shape id* (the SHA-256 of its JSON text), and a stored job names its shape
by id under :data:`ID_KEY` in place of the shape itself. Loading puts the
shape back, so a loaded job equals the saved one.

Writing a shape's text is what makes a store hold it right: the text is
written (replacing what the store held under that id, which is safe, since
the id is the hash of the text) the first time a store object of this
process stores a job of that shape, and whenever the job's shape was not
remembered; the id the job names is then the hash of the text just written.
After that, the store object knows it holds the shape (:class:`ShapeIds`),
and jobs of it only name the id. So a stored shape damaged behind the
store's back is mended by the next process to store a job of it.

The engine hands every job of a flow the same shape object, so the id of a
shape is remembered by object identity: only the first job of a flow writes
its shape out as JSON text. A remembered shape is let go once nothing but
this memory holds it (checked at every job stored, by reference count), so a
flow no longer in use keeps no shape alive past the next job any store
writes. A shape changed in place after its job was stored keeps the id it
had in the stores that hold that id (its jobs load with the shape they were
stored with); a store that does not hold it stores the changed shape under
the id of its new text.

A stored shape is never deleted: jobs that name it may be created
at any moment by other processes, and a shape is one row per flow definition.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Final

from flowforge.exceptions import SerializationError
from flowforge.store._json import dumps, loads

__all__ = [
    "ID_KEY",
    "SHAPE_KEY",
    "ShapeIds",
    "StoredShape",
    "is_shape_id",
    "join_shape",
    "split_shape",
    "stored_shape",
]

SHAPE_KEY: Final = "flow_shape"
"""Where a serialized job state holds its flow's shape."""
ID_KEY: Final = "flow_shape_id"
"""Where a stored job names its shape instead."""
REMEMBERED: Final = 16
"""At most how many shape objects' ids are remembered at once."""
_ID_LENGTH: Final = 64

_Known = tuple[Mapping[str, object], str]
_known: OrderedDict[int, _Known] = OrderedDict()
_lock = threading.Lock()


def _references(known: _Known) -> int:
    """Return how many references the remembered shape of ``known`` has."""
    return sys.getrefcount(known[0])


_ALONE: Final = _references(({}, ""))
"""The references a shape that only this memory holds has."""


class ShapeIds:
    """The ids of the shapes a store object wrote, so it holds them right.

    A store adds an id once the text it wrote under it is committed; ids
    are a few dozen bytes, one per flow definition, and never forgotten.
    Thread safety: safe to share between threads.
    """

    def __init__(self) -> None:
        """Start knowing of no shape."""
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def __contains__(self, shape_id: object) -> bool:
        """Return whether the store wrote the shape of ``shape_id``."""
        with self._lock:
            return shape_id in self._ids

    def add(self, shape: StoredShape | None) -> None:
        """Note that the text of ``shape``, if it was written, is committed."""
        if shape is not None and shape.text is not None:
            with self._lock:
                self._ids.add(shape.shape_id)


@dataclass(frozen=True, slots=True)
class StoredShape:
    """A flow shape's id, with its JSON text if the store must write it."""

    shape_id: str
    text: str | None


def stored_shape(shape: Mapping[str, object], held: Container[str] = ()) -> StoredShape:
    """Return the id of ``shape``, with its text unless ``held`` holds that id.

    ``held`` holds the ids of the shapes the store already holds right. The
    id of ``shape`` is remembered, or computed afresh from its text written
    out; the text is returned, for the store to write, if ``held`` lacks that
    id.
    """
    shape_id = _remembered(shape)
    if shape_id is None or shape_id not in held:
        text = dumps(shape)
        shape_id = _digest(text)
        with _lock:
            _known[id(shape)] = (shape, shape_id)
            _known.move_to_end(id(shape))
            while len(_known) > REMEMBERED:
                _known.popitem(last=False)
        if shape_id not in held:
            return StoredShape(shape_id, text)
    return StoredShape(shape_id, None)


def _remembered(shape: Mapping[str, object]) -> str | None:
    """Return the remembered id of ``shape``; let go of shapes no one else holds."""
    with _lock:
        for key, entry in list(_known.items()):
            if entry[0] is not shape and _references(entry) <= _ALONE:
                del _known[key]
        known = _known.get(id(shape))
        if known is None or known[0] is not shape:
            return None
        _known.move_to_end(id(shape))
        return known[1]


def split_shape(data: dict[str, object], held: Container[str] = ()) -> StoredShape:
    """Replace the shape in serialized job ``data`` by its id; return the shape.

    See :func:`stored_shape` for ``held``.
    """
    shape = data.pop(SHAPE_KEY)
    assert isinstance(shape, dict)  # noqa: S101  JobState.serialize makes a dict
    stored = stored_shape(shape, held)
    data[ID_KEY] = stored.shape_id
    return stored


def is_shape_id(value: object) -> bool:
    """Return whether ``value`` may be a shape id (64 lowercase hex digits)."""
    return (
        isinstance(value, str)
        and len(value) == _ID_LENGTH
        and all(c in "0123456789abcdef" for c in value)
    )


def join_shape(
    data: dict[str, object], find: Callable[[str], str | None], where: str
) -> None:
    """Put the shape a stored job names back into its ``data``, in place.

    Data without :data:`ID_KEY` holds its shape itself (as stores wrote
    before shapes were kept apart) and is left as it is.

    Raises:
        SerializationError: If the id is malformed, the store does not hold
            that shape, or its text is not the shape of that id.
    """
    if ID_KEY not in data:
        return
    shape_id = data.pop(ID_KEY)
    if not is_shape_id(shape_id):
        raise SerializationError(
            f"{where} names a malformed flow shape id {shape_id!r}"
        )
    assert isinstance(shape_id, str)  # noqa: S101  is_shape_id checked it
    text = find(shape_id)
    if text is None:
        raise SerializationError(
            f"{where} names flow shape {shape_id!r}, which the store does not "
            "hold: the store is damaged (restore the shape, or delete the job)"
        )
    if _digest(text) != shape_id:
        raise SerializationError(
            f"flow shape {shape_id!r} of {where} is corrupted: its text does not "
            "match its id"
        )
    try:
        shape = loads(text)
    except (ValueError, TypeError, RecursionError) as error:
        raise SerializationError(
            f"flow shape {shape_id!r} of {where} is corrupted: {error}"
        ) from error
    if not isinstance(shape, dict):
        raise SerializationError(
            f"flow shape {shape_id!r} of {where} is corrupted: not a JSON object"
        )
    data[SHAPE_KEY] = shape


def _digest(text: object) -> str:
    """Return the id of shape ``text``; ``""`` for what no shape was written as."""
    if not isinstance(text, str):  # a blob, in a damaged database
        return ""
    try:
        return hashlib.sha256(text.encode()).hexdigest()
    except UnicodeEncodeError:  # a lone surrogate, in damaged text
        return ""
