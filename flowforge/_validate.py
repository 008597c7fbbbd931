"""Flow.validate: every problem of a flow's wiring at once, as findings.

A flow wired with :meth:`~flowforge.Flow.connect` is never wrong name by
name (each name is checked as it is wired); what may still be wrong is the
whole: a slot nothing delivers to, an event nobody hears, a join that waits
for an input that can never come. :func:`validate` looks at the wiring only
(it calls no user code) and reports each such problem as a :class:`Finding`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Final, NamedTuple, final

from flowforge.connection import Connection
from flowforge.engine.plan import is_source
from flowforge.routine import Routine

__all__ = ["ERROR", "Finding", "WARNING", "validate"]

ERROR: Final = "error"
WARNING: Final = "warning"


@final
class Finding(NamedTuple):
    """One problem :meth:`Flow.validate <flowforge.Flow.validate>` found.

    Attributes:
        severity: ``"error"`` (a job cannot work as wired) or ``"warning"``
            (probably a mistake, but a job runs).
        code: What kind of problem, for filtering: ``"join-never-completes"``,
            ``"slot-never-delivered"`` or ``"event-never-heard"``.
        routine_id: The routine the problem is in.
        port: Its slot or event.
        message: What is wrong and how to fix it.
    """

    severity: str
    code: str
    routine_id: str
    port: str
    message: str


def validate(
    routines: Mapping[str, Routine], connections: Sequence[Connection]
) -> list[Finding]:
    """Return the findings of a flow's wiring: errors first, then in flow order."""
    findings = [
        *_joins(routines, connections),
        *_keys(routines, connections),
        *_slots(routines, connections),
        *_events(routines, connections),
    ]
    return sorted(findings, key=lambda finding: finding.severity != ERROR)


def _slots(
    routines: Mapping[str, Routine], connections: Sequence[Connection]
) -> Iterator[Finding]:
    """A slot nothing delivers to, on a routine that other slots are fed to.

    A routine none of whose slots is connected is an entry: ``execute``
    delivers to it. One that receives on some slots but not on others most
    likely lacks a connection.
    """
    fed = {(c.target_id, c.slot) for c in connections}
    for routine_id, routine in routines.items():
        names = list(routine.slots)
        if not any((routine_id, name) in fed for name in names):
            continue
        for name in names:
            if (routine_id, name) not in fed:
                yield Finding(
                    WARNING,
                    "slot-never-delivered",
                    routine_id,
                    name,
                    f"slot {routine_id!r}.{name!r} is connected to no event, while "
                    "other slots of the routine are: it receives only as a job's "
                    "entry (execute(..., entry_slot=...)); connect an event to it "
                    "or remove it",
                )


def _events(
    routines: Mapping[str, Routine], connections: Sequence[Connection]
) -> Iterator[Finding]:
    heard = {(c.source_id, c.event) for c in connections}
    for routine_id, routine in routines.items():
        for name in routine.events:
            if (routine_id, name) not in heard:
                yield Finding(
                    WARNING,
                    "event-never-heard",
                    routine_id,
                    name,
                    f"event {routine_id!r}.{name!r} is connected to no slot: what "
                    "it emits goes nowhere; connect it, or ignore this for the "
                    "last step of a flow",
                )


def _joins(
    routines: Mapping[str, Routine], connections: Sequence[Connection]
) -> Iterator[Finding]:
    """A join fires once every connected event delivered: all in one job.

    One job runs what its entry reaches, so the join completes only if some
    routine reaches every routine that emits to it. A routine whose one slot
    is the join emits only after the join fired, so it is no way there.
    """
    feeding: dict[str, set[str]] = {}
    inputs: dict[tuple[str, str], set[str]] = {}
    for c in connections:
        feeding.setdefault(c.target_id, set()).add(c.source_id)
        inputs.setdefault((c.target_id, c.slot), set()).add(c.source_id)
    for routine_id, routine in routines.items():
        for name, slot in routine.slots.items():
            sources = sorted(inputs.get((routine_id, name), ()))
            if not slot.is_join or len(sources) < 2:
                continue
            blocked = routine_id if _waits_only(routine) else None
            if not _common_ancestor(sources, feeding, blocked):
                loop = blocked is not None and _common_ancestor(sources, feeding, None)
                yield _never_completes(routine_id, name, sources, loop)


def _keys(
    routines: Mapping[str, Routine], connections: Sequence[Connection]
) -> Iterator[Finding]:
    """A join correlated on a payload key that an input's event never carries.

    An event that declares its keys (``output_params``) delivers those, renamed
    by the connection's ``param_mapping``; when the key is not among them, each
    of its deliveries fails, so no group of the join can complete.
    """
    for c in connections:
        slot = routines[c.target_id].get_slot(c.slot)
        key = slot.correlate
        declared = routines[c.source_id].get_event(c.event).output_params
        if not isinstance(key, str) or declared is None:
            continue
        mapping = c.param_mapping or {}
        if key not in {mapping.get(name, name) for name in declared}:
            yield Finding(
                ERROR,
                "join-never-completes",
                c.target_id,
                c.slot,
                f"join {c.target_id!r}.{c.slot!r} never completes: "
                f"{c.source_id!r}.{c.event!r} declares the keys {list(declared)}, "
                f"so it never carries its correlation key {key!r}; emit the key, "
                "or rename a key to it with param_mapping",
            )


def _waits_only(routine: Routine) -> bool:
    """Say whether ``routine`` runs only when its join fires (its only slot)."""
    return len(routine.slots) == 1 and not is_source(routine)


def _common_ancestor(
    sources: list[str], feeding: Mapping[str, set[str]], blocked: str | None
) -> bool:
    """Say whether one routine reaches every source, not through ``blocked``."""
    return bool(set.intersection(*(_ancestors(s, feeding, blocked) for s in sources)))


def _ancestors(
    start: str, feeding: Mapping[str, set[str]], blocked: str | None
) -> set[str]:
    """Return ``start`` and every routine that reaches it, not through ``blocked``."""
    if start == blocked:
        return set()
    seen = {start}
    stack = [start]
    while stack:
        for source in feeding.get(stack.pop(), ()):
            if source not in seen and source != blocked:
                seen.add(source)
                stack.append(source)
    return seen


def _never_completes(
    routine_id: str, slot: str, sources: list[str], loop: bool
) -> Finding:
    why = f" ({routine_id!r} itself runs only once the join fired)" if loop else ""
    return Finding(
        ERROR,
        "join-never-completes",
        routine_id,
        slot,
        f"join {routine_id!r}.{slot!r} waits for {sources}, but no entry reaches "
        f"them all in one job{why}: it can never fire. Feed every input from "
        "one entry, or make the slot no join",
    )
