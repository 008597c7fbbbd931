"""The shape of a flow definition, its fingerprint, and what changed between two.

A job records the shape of the flow it started on, so that resuming it on a
flow whose routines, slots, events or connections differ is refused with a
message saying what changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowforge.connection import Connection
    from flowforge.routine import Routine

__all__ = ["describe_changes", "fingerprint", "flow_shape"]

Shape = dict[str, object]


def flow_shape(
    routines: Mapping[str, Routine],
    connections: Sequence[Connection],
    failures: Mapping[str, tuple[str, str]] | None = None,
) -> Shape:
    """Return the parts of a flow that a job's pending data depends on.

    Failure routes are a part only when the flow has some, so that a flow
    without any keeps the fingerprint it had before they existed.
    """
    names = _Names()
    shape: Shape = {
        "routines": {
            routine_id: {
                "type": routine._type_name,
                "slots": names(routine.slots),
                "joins": names(n for n, s in routine.slots.items() if s.is_join),
                "events": names(routine.events),
                **_correlated(routine),
            }
            for routine_id, routine in routines.items()
        },
        "connections": [_edge(c.serialize()) for c in connections],
    }
    if failures:
        shape["failures"] = [
            f"{source} -> {target}.{slot} on failure"
            for source, (target, slot) in failures.items()
        ]
    return shape


class _Names(dict[tuple[str, ...], list[str]]):
    """Sorted name lists, one list object per distinct list (never changed).

    Most routines of a flow have the same few ports: sharing their lists
    saves about 200 bytes per routine of a large flow.
    """

    def __call__(self, names: Iterable[str]) -> list[str]:
        key = tuple(sorted(names))
        found = self.get(key)
        if found is None:
            found = self[key] = list(key)
        return found


def _correlated(routine: Routine) -> Shape:
    """Name the routine's correlated joins, if any (older shapes have none)."""
    names = sorted(n for n, s in routine.slots.items() if s.correlate is not None)
    return {"correlated": names} if names else {}


def fingerprint(shape: Mapping[str, object]) -> str:
    """Return a short, stable hash of a flow shape."""
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_changes(
    saved: Mapping[str, object], current: Mapping[str, object]
) -> list[str]:
    """Return one sentence per difference between two flow shapes."""
    changes: list[str] = []
    old = _mapping(saved.get("routines"))
    new = _mapping(current.get("routines"))
    changes += [f"routine {rid!r} was removed" for rid in old if rid not in new]
    changes += [f"routine {rid!r} was added" for rid in new if rid not in old]
    for rid in sorted(old.keys() & new.keys()):
        before, after = _mapping(old[rid]), _mapping(new[rid])
        for part in ("type", "slots", "joins", "correlated", "events"):
            if before.get(part) != after.get(part):
                changes.append(
                    f"routine {rid!r}: {part} changed from {before.get(part)!r} "
                    f"to {after.get(part)!r}"
                )
    for part, name in (("connections", "connection"), ("failures", "failure route")):
        old_edges = [str(e) for e in _list(saved.get(part))]
        new_edges = [str(e) for e in _list(current.get(part))]
        changes += [f"{name} {e} was removed" for e in old_edges if e not in new_edges]
        changes += [f"{name} {e} was added" for e in new_edges if e not in old_edges]
        if not changes and old_edges != new_edges:
            changes.append(f"{part} were reordered")
    return changes


def _edge(data: Mapping[str, object]) -> str:
    mapping = data["param_mapping"]
    suffix = f" {json.dumps(mapping, sort_keys=True)}" if mapping else ""
    source = f"{data['source_id']}.{data['event']}"
    return f"{source} -> {data['target_id']}.{data['slot']}{suffix}"


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
