"""Validation of the names and ids users give: routines, slots, events, flows, jobs."""

from __future__ import annotations

import keyword

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
