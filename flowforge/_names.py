"""Validation of the names users give to routines, slots and events."""

from __future__ import annotations

import keyword

from flowforge.exceptions import DefinitionError


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is a valid identifier, else raise.

    Names are used as keyword arguments and as keys in saved data, so they must
    be Python identifiers (Unicode letters are fine) and not keywords.

    Raises:
        TypeError: If ``name`` is not a string.
        DefinitionError: If ``name`` is not an identifier or is a keyword.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a str, got {type(name).__name__}")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise DefinitionError(
            f"{what} name {name!r} is not valid: use a Python identifier such as "
            "'load_rows' (letters, digits and underscores, not starting with a digit)"
        )
    return name
