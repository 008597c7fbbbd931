"""The stores' last step to and from JSON text: orjson when installed, else json.

Rows are already JSON data (:mod:`flowforge._codec` made them so), so this
only writes and reads text. orjson (the ``fast`` extra) writes a row about ten
times faster than the standard library. What orjson refuses (an integer
beyond 64 bits, a lone surrogate, a key that is not a string) goes to the
standard library, which writes it or raises the error it always raised. The
standard library reads every row back (orjson would read an integer beyond 64
bits as a float), so a store reads the same values with or without orjson.
One difference never arises: orjson writes a NaN as ``null``, but the codec
has already replaced every non-finite float by a tagged value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

__all__ = ["Codec", "codec", "dumps", "loads", "use"]

# Any: what JSON text holds is checked by whoever reads it, as with json.loads.
Codec = tuple[Callable[[object], str], Callable[[str], Any]]
"""A ``(dumps, loads)`` pair."""


def _refuse(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _standard() -> Codec:
    """Return one reusable compact encoder; rows are trees (no cycles to check).

    ``json.dumps`` with options builds a new encoder per call, which costs
    about as much as writing a small row; the C encoder behind it is reused
    here when the interpreter has it.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        encode = json.JSONEncoder(
            separators=(",", ":"), allow_nan=False, check_circular=False
        ).encode
        return encode, json.loads
    chunks = make(
        None,
        _refuse,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )  # markers, default, encoder, indent, separators, sort_keys, skipkeys, nan
    return (lambda value: "".join(chunks(value, 0))), json.loads


STANDARD: Final = _standard()


def _fast(orjson: ModuleType) -> Codec:
    """Return orjson's encoder, falling back to the standard one where it refuses.

    Reading stays with the standard library: orjson reads an integer beyond
    64 bits as a float, and reading is off the durable path's hot loop.
    """
    write, refused = orjson.dumps, orjson.JSONEncodeError
    # Types JSON has no name for go to _refuse (so to the standard encoder,
    # which refuses them too) instead of orjson's own formats.
    options = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    standard_dumps, standard_loads = STANDARD

    def dumps(value: object) -> str:
        try:
            text: str = write(value, _refuse, options).decode()
        except refused:
            return standard_dumps(value)
        return text

    return dumps, standard_loads


def _best() -> Codec:
    try:
        import orjson
    except ImportError:
        return STANDARD
    return _fast(orjson)


_codec: Codec = _best()


def codec() -> Codec:
    """Return the ``(dumps, loads)`` pair in use."""
    return _codec


def use(pair: Codec) -> Codec:
    """Write and read with ``pair`` from now on (tests); return the previous pair."""
    global _codec
    previous, _codec = _codec, pair
    return previous


def dumps(value: object) -> str:
    """Return compact JSON text of ``value``, which is JSON data already."""
    return _codec[0](value)


def loads(text: str) -> Any:  # as json.loads
    """Return the value of JSON ``text``.

    Raises:
        ValueError: If ``text`` is not JSON (``json.JSONDecodeError``).
    """
    return _codec[1](text)
