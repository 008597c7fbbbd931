"""Chaining: routines wired one after another, each one's event into the next's slot.

:meth:`Flow.chain <flowforge.Flow.chain>` delegates here. Each link is worked
out, and every routine checked, before the flow changes, so a chain that
cannot be wired leaves the flow as it was.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from typing import Protocol

from flowforge._flow_data import Wirable
from flowforge.connection import Connection
from flowforge.exceptions import ArgumentTypeError, DefinitionError
from flowforge.function_routine import FunctionRoutine
from flowforge.routine import Routine

__all__ = ["Chainable", "chain"]

Link = tuple[str, str, dict[str, str]]
"""How one routine feeds the next: its event, the next one's slot, a renaming."""


class Chainable(Wirable, Protocol):
    """What chaining needs of a flow: its routines, connections and wiring."""

    @property
    def routines(self) -> Mapping[str, Routine]:
        """The flow's routines by id."""

    @property
    def connections(self) -> tuple[Connection, ...]:
        """The flow's connections."""


def chain(flow: Chainable, routines: Sequence[object]) -> list[str]:
    """Add the routines not yet in ``flow`` and connect each one to the next.

    Returns:
        The routines' ids, in the order given.

    Raises:
        ArgumentTypeError: If an item is not a routine (a routine class, say).
        DefinitionError: If there is no routine, a routine that feeds the next
            has not exactly one event, a routine fed by the previous one has
            not exactly one slot, a routine follows itself, or a link is
            already connected.
    """
    chained = [_checked(item, index) for index, item in enumerate(routines)]
    if not chained:
        raise DefinitionError("chain needs at least one routine")
    links = [_link(a, b, i) for i, (a, b) in enumerate(zip(chained, chained[1:]))]
    known = {id(routine): routine_id for routine_id, routine in flow.routines.items()}
    _refuse_repeats(flow, chained, links, known)
    ids = []
    for routine in chained:
        if id(routine) not in known:
            known[id(routine)] = flow.add_routine(routine)
        ids.append(known[id(routine)])
    for (event, slot, mapping), source, target in zip(links, ids, ids[1:]):
        flow.connect(source, event, target, slot, mapping)
    return ids


def _checked(item: object, index: int) -> Routine:
    if isinstance(item, Routine):
        item.slots  # noqa: B018  raises if __init__ skipped super().__init__()
        return item
    if isinstance(item, type) and issubclass(item, Routine):
        name = item.__qualname__
        raise ArgumentTypeError(
            f"chain item {index} is the class {name}, not a routine: pass an "
            f"instance, {name}()"
        )
    raise ArgumentTypeError(
        f"chain item {index} must be a Routine, got {reprlib.repr(item)}"
    )


def _link(source: Routine, target: Routine, index: int) -> Link:
    """Return how ``source`` (item ``index``) feeds ``target``, or raise."""
    events, slots = list(source.events), list(target.slots)
    if len(events) != 1:
        raise DefinitionError(
            f"chain cannot feed item {index + 1} from item {index}, {source!r}: "
            f"it has {len(events)} events, and chain links routines through one "
            "event each; connect it with flow.connect(...) instead"
        )
    if len(slots) != 1:
        raise DefinitionError(
            f"chain cannot feed item {index + 1}, {target!r}: it has {len(slots)} "
            "slots, and chain links routines into one slot each; connect it "
            "with flow.connect(...) instead"
        )
    return events[0], slots[0], _renaming(source, events[0], target)


def _renaming(source: Routine, event: str, target: Routine) -> dict[str, str]:
    """Rename the key of the value ``source`` emits to ``target``'s parameter.

    The key is known when ``source`` is a step (its event's name) or its
    event declares exactly one output param; the parameter when ``target``
    is a step with a single (required) parameter.
    """
    declared = source.get_event(event).output_params
    if isinstance(source, FunctionRoutine):
        key: str | None = event
    else:
        key = declared[0] if declared is not None and len(declared) == 1 else None
    parameter = target._input if isinstance(target, FunctionRoutine) else None
    if key is None or parameter is None or key == parameter:
        return {}
    return {key: parameter}


def _refuse_repeats(
    flow: Chainable,
    chained: list[Routine],
    links: list[Link],
    known: dict[int, str],
) -> None:
    """Refuse a link made twice in the chain or already in ``flow``, or a self-link."""
    existing = {(c.source_id, c.event, c.target_id, c.slot) for c in flow.connections}
    seen: set[tuple[int, str, int, str]] = set()
    for index, ((event, slot, _), source, target) in enumerate(
        zip(links, chained, chained[1:])
    ):
        if source is target:
            raise DefinitionError(
                f"chain item {index + 1} is item {index} again, {source!r}: "
                "chain would connect it to itself, a loop; pass another "
                "routine, or connect a loop on purpose with flow.connect(...)"
            )
        ends = (id(source), event, id(target), slot)
        source_id, target_id = known.get(id(source)), known.get(id(target))
        if ends in seen or (source_id, event, target_id, slot) in existing:
            raise DefinitionError(
                f"chain would connect {source!r}.{event!r} to {target!r}.{slot!r} "
                "twice; connect a pair once"
            )
        seen.add(ends)
