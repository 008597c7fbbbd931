"""Flow shapes stored once per flow definition, named by a content id.

A job state carries the shape of the flow it started on (routines, slots,
events, connections): for a 100,000-routine flow, megabytes that every job
of that flow repeats. Stores keep each distinct shape once, keyed by its
*shape id* (the SHA-256 of its JSON text), and a stored job names its shape
by id under :data:`ID_KEY` in place of the shape itself. Loading puts the
shape back, so a loaded job equals the saved one.

The engine hands every job of a flow the same shape object, so the id of a
shape is remembered by object identity (a few, most recent first): only the
first job of a flow writes its shape out as JSON text. The shape objects
kept here are never changed by FlowForge; one changed in place after its job
was saved keeps the id it had.

A shape is written once and never deleted: jobs that name it may be created
at any moment by other processes, and a shape is one row per flow definition.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from flowforge.exceptions import SerializationError
from flowforge.store._json import dumps, loads

__all__ = [
    "ID_KEY",
    "SHAPE_KEY",
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
"""How many shape objects' ids are remembered (each keeps its shape alive)."""
_ID_LENGTH: Final = 64

_known: OrderedDict[int, tuple[Mapping[str, object], str]] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class StoredShape:
    """A flow shape with its id, and its JSON text if it was just written out."""

    shape_id: str
    shape: Mapping[str, object]
    written: str | None

    def text(self) -> str:
        """Return the JSON of the shape, written out now if it was remembered."""
        return dumps(self.shape) if self.written is None else self.written


def stored_shape(shape: Mapping[str, object]) -> StoredShape:
    """Return ``shape`` with its id, written out only if its id is not remembered."""
    key = id(shape)
    with _lock:
        known = _known.get(key)
        if known is not None and known[0] is shape:
            _known.move_to_end(key)
            return StoredShape(known[1], shape, None)
    text = dumps(shape)
    shape_id = _digest(text)
    with _lock:
        _known[key] = (shape, shape_id)
        _known.move_to_end(key)
        while len(_known) > REMEMBERED:
            _known.popitem(last=False)
    return StoredShape(shape_id, shape, text)


def split_shape(data: dict[str, object]) -> StoredShape:
    """Replace the shape in serialized job ``data`` by its id; return the shape."""
    shape = data.pop(SHAPE_KEY)
    assert isinstance(shape, dict)  # noqa: S101  JobState.serialize makes a dict
    stored = stored_shape(shape)
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
