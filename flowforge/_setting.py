"""Setting: a checked, documented attribute of a flow whose change reaches later jobs.

Each of a flow's settings is one line in its class instead of a property
pair: the descriptor checks a new value, stores it on the flow, and tells the
flow its engine setup is out of date (``owner._set``).
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from typing import Any, Generic, NoReturn, Protocol, Self, TypeVar, overload

from flowforge.exceptions import ArgumentTypeError, DefinitionError

__all__ = ["Setting", "optional", "refuse_copy"]

T = TypeVar("T")


class _Owner(Protocol):
    def _set(self, name: str, value: object) -> None: ...


class Setting(Generic[T]):
    """A setting of a flow: read as a plain attribute, checked when assigned.

    Args:
        check: Returns the value to store, or raises a clear error.
        doc: The setting's one-line documentation.
    """

    def __init__(self, check: Callable[[Any], T], doc: str) -> None:
        """Make a setting that stores what ``check`` returns."""
        self._check = check
        self._name = ""
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        """Store the value under ``_<name>`` on each instance."""
        self._name = f"_{name}"

    @overload
    def __get__(self, instance: None, owner: type) -> Self: ...  # noqa: D105

    @overload
    def __get__(self, instance: object, owner: type) -> T: ...  # noqa: D105

    def __get__(self, instance: object, owner: type) -> T | Self:
        """Return the instance's value (the descriptor itself on the class)."""
        if instance is None:
            return self
        value: T = getattr(instance, self._name)
        return value

    def __set__(self, instance: _Owner, value: T) -> None:
        """Check ``value`` and store it; the owner's next job sees it."""
        instance._set(self._name, self._check(value))

    def __delete__(self, instance: object) -> NoReturn:
        """Refuse: a flow always has each setting."""
        name = self._name[1:]
        raise DefinitionError(
            f"{name} cannot be deleted: a flow always has it; "
            f"set flow.{name} to a new value instead"
        )


def refuse_copy(flow: object, *args: object) -> NoReturn:
    """Refuse to copy or pickle a flow: a copy would share its routines and jobs.

    Raises:
        DefinitionError: Saying how to copy a flow's definition instead.
    """
    raise DefinitionError(
        f"a {type(flow).__name__} cannot be copied or pickled (it holds its "
        "jobs, lock and pool); copy its definition with "
        "Flow.deserialize(flow.serialize())"
    )


def optional(kind: type[T], name: str) -> Callable[[object], T | None]:
    """Return a check that accepts ``None`` or an instance of ``kind``.

    The check raises :class:`~flowforge.ArgumentTypeError` naming the setting
    ``name`` for anything else.
    """

    def check(value: object) -> T | None:
        if value is not None and not isinstance(value, kind):
            raise ArgumentTypeError(
                f"{name}: expected an {kind.__name__} or None, got "
                f"{reprlib.repr(value)}"
            )
        return value

    return check
