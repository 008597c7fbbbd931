"""Connection: one edge that delivers an event's emissions to a slot."""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import final

from flowforge._names import check_name, check_type
from flowforge.exceptions import (
    ArgumentTypeError,
    DefinitionError,
    SerializationError,
)
from flowforge.serialization import FORMAT_VERSION, check_version, read
from flowforge.types import Payload

__all__ = ["Connection"]


@final
@dataclass(frozen=True, slots=True)
class Connection:
    """An edge from ``source_id.event`` to ``target_id.slot``.

    ``param_mapping`` renames keys on the way: ``{event_key: slot_key}``. A
    mapped key arrives only under its new name, unmapped keys pass through
    unchanged, and when a mapped key collides with a passed-through one the
    mapped value wins.

    Thread safety: immutable.
    """

    source_id: str
    event: str
    target_id: str
    slot: str
    param_mapping: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the ends; copy and check the mapping so later changes cannot leak in.

        Raises:
            ArgumentTypeError: If a routine id is not a str, or a name or a
                mapped key is not a str.
            DefinitionError: If ``param_mapping`` is not a mapping, or holds
                a key or value that is not a valid name.
        """
        for what, value in (
            ("source_id", self.source_id),
            ("target_id", self.target_id),
        ):
            if not isinstance(value, str):
                raise ArgumentTypeError(
                    f"{what} must be a str, got {type(value).__name__} "
                    f"{reprlib.repr(value)}"
                )
        check_name(self.event, "event")
        check_name(self.slot, "slot")
        given = self.param_mapping
        if not isinstance(given, Mapping):
            raise DefinitionError(
                "param_mapping must be a mapping {event_key: slot_key}, got "
                f"{type(given).__name__} {reprlib.repr(given)}"
            )
        mapping = dict(self.param_mapping)
        for key, value in mapping.items():
            check_name(key, "param_mapping key")
            check_name(value, "param_mapping value")
        object.__setattr__(self, "param_mapping", mapping)

    def apply(self, data: Payload) -> Payload:
        """Return ``data`` as the target slot receives it.

        Raises:
            ArgumentTypeError: If ``data`` is not a mapping.
        """
        if type(data) is not dict and not isinstance(data, Mapping):
            check_type(data, Mapping, "data", "a mapping of the event's keys")
        mapping = self.param_mapping
        if not mapping:
            return data
        moved = {key: value for key, value in data.items() if key not in mapping}
        for key, new_key in mapping.items():
            if key in data:
                moved[new_key] = data[key]
        return moved

    def serialize(self) -> dict[str, object]:
        """Return the connection as a versioned dict of JSON types."""
        return {
            "version": FORMAT_VERSION,
            "source_id": self.source_id,
            "event": self.event,
            "target_id": self.target_id,
            "slot": self.slot,
            "param_mapping": dict(self.param_mapping),
        }

    @classmethod
    def deserialize(cls, data: object) -> Connection:
        """Rebuild a connection from :meth:`serialize`'s dict.

        Raises:
            SerializationError: If the data is malformed.
        """
        where = "connection"
        data = check_version(data, where)
        try:
            return cls(
                read(data, "source_id", str, where),
                read(data, "event", str, where),
                read(data, "target_id", str, where),
                read(data, "slot", str, where),
                read(data, "param_mapping", dict, where),
            )
        except (DefinitionError, TypeError) as error:
            raise SerializationError(f"{where}: {error}") from error

    def __hash__(self) -> int:
        """Hash the edge's ends; the mapping is left out (a dict)."""
        return hash((self.source_id, self.event, self.target_id, self.slot))

    def __repr__(self) -> str:
        """Return the edge as ``source.event -> target.slot``."""
        mapping = (
            f", param_mapping={dict(self.param_mapping)!r}"
            if self.param_mapping
            else ""
        )
        return (
            f"Connection({self.source_id!r}.{self.event!r} -> "
            f"{self.target_id!r}.{self.slot!r}{mapping})"
        )
