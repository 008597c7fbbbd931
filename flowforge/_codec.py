"""Turn payload values into JSON data and back, keeping their exact types.

Payloads (entry params, emitted data, slot buffers, pending deliveries) are saved
with :func:`encode` and restored with :func:`decode`. Dicts with str keys stay JSON
objects, lists stay arrays; str, bool, None, finite floats (-0.0 too) and ints in
the signed 64-bit range stay scalars. Anything else becomes ``{"__ff__": tag, "v":
payload}``:

=============  ====================================================================
Tag            Payload
=============  ====================================================================
``int``        ``hex(value)``, for ints outside the signed 64-bit range
``float``      ``"nan"``, ``"inf"`` or ``"-inf"`` (a NaN's sign bit is not kept)
``tuple``      list of the encoded items
``set``        list of the encoded items, sorted by their :func:`json.dumps` text
``frozenset``  same as ``set``
``dict``       ``[key, value]`` pairs in order, when a key is not a str or is
               ``"__ff__"`` (so a user dict never passes for a tag)
``bytes``      standard base64 text; ``bytearray`` likewise
``datetime``   ISO 8601 text; a ``ZoneInfo`` is kept by key after the offset,
               ``2024-10-27T02:30:00+01:00[Europe/Paris]``
``date``       ISO 8601 text; ``time`` likewise, with its offset if any
``timedelta``  ``[days, seconds, microseconds]``
``decimal``    ``str(value)``, which keeps the exponent: ``"1.10"``
``uuid``       ``str(value)``
``payload``    ``[name, {field: value}]`` for a value of a class registered with
               :func:`~flowforge.register_payload_type` (see
               :mod:`flowforge._payload_types`); loading finds the class by name
=============  ====================================================================

Only exact types are saved: subclasses (enums, named tuples, ``OrderedDict``) are
refused unless their class is registered, as they would load as their base type.
A tzinfo must be a ``datetime.timezone`` (its name is not kept) or, in a
datetime, a ``ZoneInfo`` with a key; ``fold`` is kept only where it changes the
UTC offset. Values nest at most :data:`MAX_DEPTH` containers deep, so
:mod:`json` can always write and read them.

Errors name the bad value's place in Python subscript syntax after the caller's
``path``: ``entry_params['rows'][3]``; a set element is ``{...}`` and an unsavable
dict key ``[<key>]``, as in ``entry_params['tags']{...}``. Both functions are pure
and safe to call from any thread.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from flowforge._payload_types import BY_NAME, BY_TYPE, KINDS, PayloadType
from flowforge._payload_types import is_registrable as _registrable
from flowforge.exceptions import SerializationError

__all__ = ["MARKER", "MAX_DEPTH", "decode", "encode"]

MARKER: Final = "__ff__"  # the key of a tagged value
MAX_DEPTH: Final = 100  # containers; each adds up to three JSON levels

_PAYLOAD: Final = "v"
_LOW: Final = -(2**63)  # ints from _LOW to _HIGH (signed 64-bit) stay plain
_HIGH: Final = 2**63 - 1
_PLAIN: Final = frozenset({str, bool, type(None)})
_JSON_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_SUPPORTED: Final = (
    "JSON types (dict, list, str, int, float, bool, None), tuple, set, frozenset, "
    "bytes, bytearray, datetime, date, time, timedelta, Decimal or UUID"
)
_REGISTER: Final = "flowforge.register_payload_type"
_REGISTRABLE: Final = f"{KINDS} class with {_REGISTER}(cls)"
_REGISTERED: Final = "payload"  # the tag of a value of a registered class


class _Failure(Exception):
    """Why a value failed, with the path back to the root, innermost first."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.segments: list[str] = []

    def error(self, path: str) -> SerializationError:
        where = path + "".join(reversed(self.segments))
        return SerializationError(f"{where}: {self}")


def encode(value: object, path: str = "value") -> object:
    """Return ``value`` as JSON data that :func:`decode` turns back into it.

    Args:
        value: A payload value; see the module docstring for supported types.
        path: How the caller names ``value`` in error messages.

    Returns:
        JSON types only; the same value always gives the same data.

    Raises:
        SerializationError: If ``value`` holds an unsupported type or nests too
            deep; the message names where, such as ``entry_params['rows'][3]``.
    """
    try:
        # A dict (most payloads) skips _encode's checks of the scalar types.
        return _encode_dict(value, 0) if type(value) is dict else _encode(value, 0)
    except _Failure as failure:
        raise failure.error(path) from failure.__cause__


def decode(data: object, path: str = "value") -> object:
    """Rebuild the value that :func:`encode` turned into ``data``.

    Args:
        data: JSON data made by :func:`encode`, possibly after a JSON round trip.
        path: How the caller names ``data`` in error messages.

    Returns:
        A value equal to the encoded one, with the same types throughout.

    Raises:
        SerializationError: If ``data`` is malformed: not JSON data, an unknown
            tag, a payload of the wrong shape, or nesting too deep.
    """
    try:
        return _decode(data, 0)
    except _Failure as failure:
        raise failure.error(path) from failure.__cause__


def _deeper(depth: int) -> int:
    if depth >= MAX_DEPTH:
        raise _Failure(f"data nests more than {MAX_DEPTH} containers deep; flatten it")
    return depth + 1


def _tag(name: str, payload: object) -> dict[str, object]:
    return {MARKER: name, _PAYLOAD: payload}


def _encode(value: object, depth: int) -> object:
    if type(value) in _PLAIN:
        return value
    if type(value) is int:
        return value if _LOW <= value <= _HIGH else _tag("int", hex(value))
    if type(value) is float:
        return value if math.isfinite(value) else _tag("float", repr(value))
    if type(value) is dict:
        return _encode_dict(value, depth)
    if type(value) is list:
        return _encode_items(value, depth)
    scalar = _SCALAR_ENCODERS.get(type(value))
    if scalar is not None:
        return _tag(scalar[0], scalar[1](value))
    container = _CONTAINER_ENCODERS.get(type(value))
    if container is not None:
        return _tag(container[0], container[1](value, depth))
    registered = BY_TYPE.get(type(value))
    if registered is None:
        raise _Failure(_unsupported(value))
    return _tag(
        _REGISTERED, [registered.name, _encode_fields(registered, value, depth)]
    )


def _encode_fields(registered: PayloadType, value: object, depth: int) -> object:
    depth = _deeper(depth)
    out: dict[str, object] = {}
    for key, item in registered.fields(value).items():
        try:
            out[key] = _encode(item, depth)
        except _Failure as failure:
            failure.segments.append(f".{key}")
            raise
    return out


def _encode_items(
    items: Iterable[object], depth: int, unordered: bool = False
) -> list[object]:
    depth = _deeper(depth)
    out: list[object] = []
    append = out.append
    try:
        for item in items:
            if (
                type(item) in _PLAIN
                or (type(item) is int and _LOW <= item <= _HIGH)
                or (type(item) is float and item - item == 0.0)  # finite
            ):
                append(item)
            else:
                append(_encode(item, depth))
    except _Failure as failure:
        failure.segments.append("{...}" if unordered else f"[{len(out)}]")
        raise
    return out


def _encode_set(items: Iterable[object], depth: int) -> list[object]:
    return sorted(_encode_items(items, depth, unordered=True), key=json.dumps)


def _encode_dict(value: dict[object, object], depth: int) -> object:
    if MARKER in value:
        return _encode_pairs(value, depth)
    if depth >= MAX_DEPTH:  # as _deeper, without its call for each dict
        _deeper(depth)
    depth += 1
    out: dict[str, object] = {}
    try:
        for key, item in value.items():
            if type(key) is not str:
                break
            if (
                type(item) in _PLAIN
                or (type(item) is int and _LOW <= item <= _HIGH)
                or (type(item) is float and item - item == 0.0)  # finite
            ):
                out[key] = item
            else:
                out[key] = _encode(item, depth)
        else:
            return out
    except _Failure as failure:
        failure.segments.append(f"[{key!r}]")
        raise
    return _encode_pairs(value, depth - 1)


def _encode_pairs(value: dict[object, object], depth: int) -> dict[str, object]:
    depth = _deeper(depth)
    pairs: list[object] = []
    for key, item in value.items():
        at_key = True
        try:
            pair = [_encode(key, depth)]
            at_key = False
            pair.append(_encode(item, depth))
        except _Failure as failure:
            failure.segments.append("[<key>]" if at_key else f"[{key!r}]")
            raise
        pairs.append(pair)
    return _tag("dict", pairs)


def _unsupported(value: object) -> str:
    cls = type(value)
    name = f"cannot save a value of type {cls.__qualname__!r}"
    base = next((b for b in cls.__mro__ if b in _SUPPORTED_TYPES), None)
    register = f"register its class to save it: {_REGISTER}({cls.__name__})"
    if base is not None:
        convert = f"convert it to {base.__qualname__!r}, its base, to save it"
        return f"{name}; {convert}" + (f", or {register}" if _registrable(cls) else "")
    if _registrable(cls):
        return f"{name}; {register}"
    return f"{name}; use {_SUPPORTED}, or register {_REGISTRABLE}"


def _base64(value: bytes | bytearray) -> str:
    return base64.b64encode(value).decode("ascii")


def _zoned_text(value: dt.datetime | dt.time) -> str:
    zone = value.tzinfo
    if zone is None or type(zone) is dt.timezone:
        return value.isoformat()
    if type(value) is dt.datetime and type(zone) is ZoneInfo and zone.key is not None:
        return f"{value.isoformat()}[{zone.key}]"
    raise _Failure(
        f"cannot save a {type(value).__name__} with tzinfo of type "
        f"{type(zone).__qualname__!r}; use datetime.timezone or, in a datetime, "
        "zoneinfo.ZoneInfo with a key"
    )


# Any: each entry takes the exact type it is keyed by, which a dict cannot express.
_SCALAR_ENCODERS: Final[dict[type, tuple[str, Callable[[Any], object]]]] = {
    bytes: ("bytes", _base64),
    bytearray: ("bytearray", _base64),
    dt.datetime: ("datetime", _zoned_text),
    dt.date: ("date", dt.date.isoformat),
    dt.time: ("time", _zoned_text),
    dt.timedelta: ("timedelta", lambda v: [v.days, v.seconds, v.microseconds]),
    Decimal: ("decimal", str),
    uuid.UUID: ("uuid", str),
}
_CONTAINER_ENCODERS: Final[dict[type, tuple[str, Callable[[Any, int], object]]]] = {
    tuple: ("tuple", _encode_items),
    set: ("set", _encode_set),
    frozenset: ("frozenset", _encode_set),
}
_SUPPORTED_TYPES: Final = frozenset(
    {str, bool, type(None), int, float, dict, list}
    | _SCALAR_ENCODERS.keys()
    | _CONTAINER_ENCODERS.keys()
)


def _decode(data: object, depth: int) -> object:
    if type(data) in _JSON_SCALARS:
        return data
    if type(data) is dict:
        return _decode_dict(data, depth)
    if type(data) is list:
        return _decode_items(data, depth)
    raise _Failure(f"not JSON data: found a value of type {type(data).__qualname__!r}")


def _decode_items(
    data: list[object], depth: int, unordered: bool = False
) -> list[object]:
    depth = _deeper(depth)
    out: list[object] = []
    append = out.append
    try:
        for item in data:
            append(item if type(item) in _JSON_SCALARS else _decode(item, depth))
    except _Failure as failure:
        failure.segments.append("{...}" if unordered else f"[{len(out)}]")
        raise
    return out


def _decode_dict(data: dict[object, object], depth: int) -> object:
    if MARKER in data:
        return _decode_tag(data, depth)
    depth = _deeper(depth)
    out: dict[str, object] = {}
    try:
        for key, item in data.items():
            if type(key) is not str:
                raise _Failure(f"object key must be a str, not {type(key).__name__!r}")
            out[key] = item if type(item) in _JSON_SCALARS else _decode(item, depth)
    except _Failure as failure:
        failure.segments.append(f"[{key!r}]")
        raise
    return out


def _decode_tag(data: dict[object, object], depth: int) -> object:
    name, payload = data[MARKER], data.get(_PAYLOAD)
    if len(data) != 2 or _PAYLOAD not in data or type(name) is not str:
        raise _Failure(
            f"a tagged value must be {{{MARKER!r}: <tag name>, {_PAYLOAD!r}: "
            f"<payload>}}, got keys {list(data)!r:.80} and tag {name!r:.80}"
        )
    entry = _DECODERS.get(name)
    if entry is None:
        raise _Failure(f"unknown tag {name!r:.80}; known tags: {', '.join(_DECODERS)}")
    if type(payload) is not entry[0]:
        kind = type(payload).__name__
        raise _Failure(f"{name!r} payload must be a {entry[0].__name__}, not {kind}")
    try:
        return entry[1](payload, depth)
    except (ValueError, ArithmeticError, LookupError) as exc:
        raise _Failure(f"bad {name!r} payload {payload!r:.80}: {exc}") from exc


def _collect(
    build: Callable[[list[object]], object], data: list[object], depth: int
) -> object:
    items = _decode_items(data, depth, unordered=True)
    try:
        return build(items)
    except TypeError as exc:
        raise _Failure(f"a set element is not hashable: {exc}") from exc


def _decode_pairs(data: list[object], depth: int) -> dict[object, object]:
    depth = _deeper(depth)
    out: dict[object, object] = {}
    for index, pair in enumerate(data):
        if type(pair) is not list or len(pair) != 2:
            raise _Failure(f"'dict' entry {index} must be a [key, value] list")
        at_key = True
        try:
            key = _decode(pair[0], depth)
            at_key = False
            out[key] = _decode(pair[1], depth)
        except _Failure as failure:
            failure.segments.append("[<key>]" if at_key else f"[{key!r}]")
            raise
        except TypeError as exc:
            raise _Failure(f"'dict' key {key!r:.80} is not hashable") from exc
    return out


def _decode_registered(data: list[object], depth: int) -> object:
    name, fields = data if len(data) == 2 else (None, None)
    if not isinstance(name, str) or not isinstance(fields, dict):
        raise _Failure(
            f"a {_REGISTERED!r} payload must be [<type name>, {{field: value}}]"
        )
    registered = BY_NAME.get(name)
    if registered is None:
        raise _Failure(
            f"unknown payload type {name!r:.80}: no class is registered under this "
            "name; call flowforge.register_payload_type(cls) (with "
            f"name={name!r:.80} for a renamed class) before loading"
        )
    depth = _deeper(depth)
    values: dict[str, object] = {}
    for key, item in fields.items():
        try:
            values[key] = _decode(item, depth)
        except _Failure as failure:
            failure.segments.append(f".{key}")
            raise
    try:
        return registered.build(values)
    except Exception as exc:  # noqa: BLE001  user code: __init__, validators
        raise _Failure(
            f"cannot rebuild a {name!r} from its saved fields: {exc}"
        ) from exc


def _bytes(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _datetime(text: str) -> dt.datetime:
    text, bracket, key = text.partition("[")
    moment = _offset(dt.datetime.fromisoformat(text), text)
    if not bracket:
        return moment
    if not key.endswith("]"):
        raise ValueError("the zone key must end with ']'")
    local = moment.replace(tzinfo=ZoneInfo(key[:-1]))
    # The saved offset tells the first from the second of two equal wall times.
    return local if local.utcoffset() == moment.utcoffset() else local.replace(fold=1)


_Clock = TypeVar("_Clock", dt.datetime, dt.time)


def _offset(value: _Clock, text: str) -> _Clock:
    # CPython 3.11's fromisoformat reads "+00:00:00.000001" as UTC (gh-152079).
    sign, zero, micros = text[-16:-15], text[-15:-6], text[-6:]
    if value.utcoffset() != dt.timedelta(0) or zero != "00:00:00.":
        return value
    offset = dt.timedelta(microseconds=int(micros)) * (-1 if sign == "-" else 1)
    return value.replace(tzinfo=dt.timezone(offset))


def _timedelta(parts: list[object]) -> dt.timedelta:
    days_seconds_micros = [part for part in parts if type(part) is int]
    if len(parts) != 3 or len(days_seconds_micros) != 3:
        raise ValueError("expected [days, seconds, microseconds], three ints")
    return dt.timedelta(*days_seconds_micros)


# Any: each entry takes the payload type it names, which a dict cannot express.
_DECODERS: Final[dict[str, tuple[type, Callable[[Any, int], object]]]] = {
    "int": (str, lambda text, _: int(text, 16)),
    "float": (str, lambda text, _: float(text)),
    "tuple": (list, lambda items, depth: tuple(_decode_items(items, depth))),
    "set": (list, lambda items, depth: _collect(set, items, depth)),
    "frozenset": (list, lambda items, depth: _collect(frozenset, items, depth)),
    "dict": (list, _decode_pairs),
    "bytes": (str, lambda text, _: _bytes(text)),
    "bytearray": (str, lambda text, _: bytearray(_bytes(text))),
    "datetime": (str, lambda text, _: _datetime(text)),
    "date": (str, lambda text, _: dt.date.fromisoformat(text)),
    "time": (str, lambda text, _: _offset(dt.time.fromisoformat(text), text)),
    "timedelta": (list, lambda parts, _: _timedelta(parts)),
    "decimal": (str, lambda text, _: Decimal(text)),
    "uuid": (str, lambda text, _: uuid.UUID(text)),
    _REGISTERED: (list, _decode_registered),
}
