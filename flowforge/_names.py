"""Validation of the names and ids users give: routines, slots, events, flows, jobs."""

from __future__ import annotations

import keyword
import re
from collections.abc import Container

from flowforge.exceptions import ArgumentTypeError, DefinitionError


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
        raise DefinitionError(f"{what} must be a non-empty str, got {value!r}")
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


def check_positive(value: object, name: str) -> int:
    """Return ``value`` if it is a positive int (not a bool), else raise.

    Raises:
        DefinitionError: Naming the setting ``name`` and the value given.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DefinitionError(f"{name} must be a positive int, got {value!r}")
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
