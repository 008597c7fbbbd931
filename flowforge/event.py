"""Event: a named output port of a routine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import final

from flowforge._names import check_name, check_type
from flowforge.exceptions import (
    ArgumentTypeError,
    DefinitionError,
    SerializationError,
)
from flowforge.serialization import FORMAT_VERSION, check_version, read

__all__ = ["Event"]


@final
class Event:
    """A named output of a routine.

    Args:
        name: The event's name, a Python identifier.
        output_params: The keys an emission may carry; ``None`` allows any.

    Thread safety: immutable after construction.
    """

    __slots__ = ("name", "output_params")

    def __init__(self, name: str, output_params: Iterable[str] | None = None) -> None:
        """Validate the event's name and its declared keys."""
        self.name = check_name(name, "event")
        if isinstance(output_params, str) or not isinstance(
            output_params, Iterable | None
        ):
            raise ArgumentTypeError(
                f"event {name!r}: output_params must be a list of names, "
                f"not a {type(output_params).__name__}"
            )
        self.output_params: tuple[str, ...] | None = (
            None
            if output_params is None
            else tuple(check_name(p, "output parameter") for p in output_params)
        )

    def check(self, data: Mapping[str, object], routine_id: str) -> None:
        """Raise if ``data`` carries a key outside the declared output params.

        Raises:
            ArgumentTypeError: If ``data`` is not a mapping or ``routine_id``
                is not a str.
            DefinitionError: If a key is not declared.
        """
        if type(data) is not dict and not isinstance(data, Mapping):
            check_type(data, Mapping, "data", "a mapping of the emitted keys")
        if type(routine_id) is not str:
            check_type(routine_id, str, "routine_id", "a str")
        if self.output_params is None:
            return
        extra = [key for key in data if key not in self.output_params]
        if extra:
            raise DefinitionError(
                f"routine {routine_id!r} emitted {self.name!r} with undeclared "
                f"keys {extra}; declared: {list(self.output_params)}. Add them "
                "to define_event(..., output_params=[...]) or stop sending them"
            )

    def serialize(self) -> dict[str, object]:
        """Return the event's definition as a versioned dict of JSON types."""
        params = None if self.output_params is None else list(self.output_params)
        return {"version": FORMAT_VERSION, "name": self.name, "output_params": params}

    @classmethod
    def deserialize(cls, data: object) -> Event:
        """Rebuild an event from :meth:`serialize`'s dict.

        Raises:
            SerializationError: If the data is malformed.
        """
        data = check_version(data, "event")
        name = read(data, "name", str, "event")
        params = data.get("output_params")
        if params is not None and not isinstance(params, list):
            raise SerializationError(f"event {name!r}: output_params must be a list")
        try:
            return cls(name, params)
        except (DefinitionError, TypeError) as error:
            raise SerializationError(f"event {name!r}: {error}") from error

    def __eq__(self, other: object) -> bool:
        """Compare name and declared keys."""
        if not isinstance(other, Event):
            return NotImplemented
        return (self.name, self.output_params) == (other.name, other.output_params)

    def __hash__(self) -> int:
        """Hash name and declared keys."""
        return hash((self.name, self.output_params))

    def __repr__(self) -> str:
        """Return the event's name and declared keys."""
        return f"Event({self.name!r}, output_params={self.output_params!r})"
