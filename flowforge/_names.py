"""Validation of the names and ids users give: routines, slots, events, flows, jobs."""

from __future__ import annotations

import keyword
import re
import reprlib
from collections.abc import Container
from typing import TypeVar

from flowforge.exceptions import ArgumentTypeError, DefinitionError

T = TypeVar("T")


def shown(value: object) -> str:
    """Return ``reprlib.repr(value)``, for an error message about ``value``.

    An int of more digits than Python turns into text (4300 by default) is
    shown by its type alone, so the message can still be made.
    """
    try:
        return reprlib.repr(value)
    except ValueError:
        return f"<{type(value).__name__} too long to print>"


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is a valid identifier, else raise.

    Names are used as keyword arguments and as keys in saved data, so they must
    be Python identifiers (Unicode letters are fine) and not keywords.

    Raises:
        ArgumentTypeError: If ``name`` is not a string.
        DefinitionError: If ``name`` is not an identifier or is a keyword.
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"{what} name must be a str, got {type(name).__name__}")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise DefinitionError(
            f"{what} name {name!r} is not valid: use a Python identifier such as "
            "'load_rows' (letters, digits and underscores, not starting with a digit)"
        )
    return name


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it can identify a flow or job in any store, else raise.

    Ids are free text, but they are stored as UTF-8 (file names, SQL text), so
    they must be non-empty strings that UTF-8 can encode, without NUL.

    Raises:
        DefinitionError: If ``value`` is not such a string.
    """
    if not isinstance(value, str) or not value.strip():
        raise DefinitionError(f"{what} must be a non-empty str, got {shown(value)}")
    try:
        value.encode()
    except UnicodeEncodeError as error:
        raise DefinitionError(
            f"{what} {value!r} cannot be stored: {error.reason} at position "
            f"{error.start}; use valid Unicode text"
        ) from error
    if "\x00" in value:
        raise DefinitionError(
            f"{what} {value!r} cannot be stored: it holds a NUL character "
            f"at position {value.index(chr(0))}"
        )
    return value


def check_positive(value: object, name: str, most: int = 2**62) -> int:
    """Return ``value`` if it is an int from 1 to ``most`` (not a bool), else raise.

    Raises:
        DefinitionError: Naming the setting ``name`` and the value given.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= most:
        shown_value = shown(value)
        raise DefinitionError(
            f"{name} must be a positive int of at most {most:,}, got {shown_value}"
        )
    return value


def free_id(class_name: str, taken: Container[str], counters: dict[str, int]) -> str:
    """Return a routine id derived from its class name that ``taken`` lacks.

    ``DataSource`` gives ``data_source``, then ``data_source_2`` and so on;
    ``counters`` remembers the last number used per name.
    """
    base = re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
    number = counters.get(base, 1)
    candidate = base if number == 1 else f"{base}_{number}"
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    counters[base] = number
    return candidate


def check_type(value: T, kinds: type | tuple[type, ...], name: str, what: str) -> T:
    """Return ``value`` if it is one of ``kinds``, else raise.

    Args:
        value: The argument.
        kinds: The types it may have.
        name: The argument's name, for the message.
        what: What it must be, in words (``"a JobState or a job id"``).

    Raises:
        ArgumentTypeError: Naming the argument, what it must be and what it is.
    """
    if not isinstance(value, kinds):
        raise ArgumentTypeError(
            f"{name} must be {what}, got {type(value).__name__} {shown(value)}"
        )
    return value
