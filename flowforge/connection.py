"""Connection: one edge that delivers an event's emissions to a slot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import final

from flowforge._names import check_name
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
        """Copy and check the mapping so later changes to it cannot leak in."""
        mapping = dict(self.param_mapping)
        for key, value in mapping.items():
            check_name(key, "param_mapping key")
            check_name(value, "param_mapping value")
        object.__setattr__(self, "param_mapping", mapping)

    def apply(self, data: Payload) -> Payload:
        """Return ``data`` as the target slot receives it."""
        mapping = self.param_mapping
        if not mapping:
            return data
        moved = {key: value for key, value in data.items() if key not in mapping}
        for key, new_key in mapping.items():
            if key in data:
                moved[new_key] = data[key]
        return moved

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
