"""A flow's routing table, compiled once per change of the flow.

The scheduler reads everything it needs per delivery from here: the target
routine, slot and handler binding of each connection, the edges each event
fans out to, the sources each join waits for, and each routine's failure
route (an edge numbered after the connections). Compiling is pure: it reads
the flow and calls no user code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final, final

from flowforge.engine.fingerprint import flow_shape
from flowforge.routine import Routine
from flowforge.slot import awaits

if TYPE_CHECKING:
    from flowforge.connection import Connection
    from flowforge.slot import Slot
    from flowforge.types import Payload

__all__ = [
    "Edge",
    "EntryPlans",
    "Plan",
    "PlanCache",
    "Route",
    "Target",
    "compile_plan",
    "is_async_source",
    "is_source",
]

ENTRY_PLANS: Final = 16
"""How many entries' plans a flow keeps (each copies the plan's ``direct``)."""


@final
@dataclass(frozen=True, slots=True)
class Target:
    """A slot resolved to what the loop needs to deliver to it."""

    routine_id: str
    routine: Routine
    slot: Slot
    key: tuple[str, str]
    invoke: Callable[[Payload, str], object]
    merge_override: bool
    join_sources: frozenset[int]
    direct: bool
    """An override slot that is no join: the loop's inlined common case."""
    handler: Callable[..., object] | None
    parameter: str | None
    """The handler's one positional parameter, if that is all it takes."""
    is_async: bool
    """The handler is an ``async def`` function: a call returns a coroutine."""
    timeout: float | None
    """How long an async handler may run, in seconds."""
    group_sources: tuple[int, ...] | None = None
    """A correlated join's sources in connection order; ``None`` for any other
    slot (see :mod:`flowforge.engine.correlate`)."""
    routes: Mapping[str, Route] = field(default_factory=dict, compare=False)
    """The routine's routes by event, the same mapping as ``Plan.routes[id]``:
    a hop reaches them from its target, not through a dict of every routine."""


@final
@dataclass(frozen=True, slots=True)
class Edge:
    """A connection with its index in ``flow.connections`` and its target."""

    index: int
    target: Target
    apply: Callable[[Payload], Payload] | None
    target_id: str
    slot_name: str
    order: int = 0
    """Position among its event's edges: the offset of its delivery's seq."""
    hop: Target | None = field(init=False, compare=False, repr=False)
    """``target`` if it is ``direct``, else ``None``: what ``Plan.direct`` holds
    at ``index``, read by the loop from the edge it routed along."""

    def __post_init__(self) -> None:
        """Note the target the loop's inlined path takes, if any."""
        object.__setattr__(self, "hop", self.target if self.target.direct else None)


@final
@dataclass(frozen=True, slots=True)
class Route:
    """Where one event of one routine goes: its edges in connection order."""

    key: tuple[str, str]
    edges: tuple[Edge, ...]
    targets: tuple[tuple[str, str], ...]
    index: int
    """Position of ``key`` in ``Plan.event_targets``."""
    single: Edge | None
    """The only edge, if there is exactly one: the scheduler's common case."""


@final
@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the scheduler looks up, by connection index and by routine."""

    routines: Mapping[str, Routine]
    edges: tuple[Edge, ...]
    routes: Mapping[str, Mapping[str, Route]]
    targets: Mapping[tuple[str, str], Target]
    shape: dict[str, object]
    event_targets: dict[tuple[str, str], tuple[tuple[str, str], ...]]
    """Where each ``(routine_id, event)`` goes, for the job's tracker, in the
    order of ``Route.index``: the tracker counts emissions by that position."""
    direct: tuple[Target | None, ...]
    """Each connection's target if it is ``direct``, else ``None``; one more
    ``None`` at the end is what index -1, a delivery from no connection, reads."""
    has_async: bool = False
    """Some handler or source is ``async def``: jobs run on an event loop."""
    event_keys: tuple[tuple[str, str], ...] = ()
    """The keys of ``event_targets`` in order: the key of each route index."""
    event_positions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Each routine's route indexes, for reading its counts without a scan."""
    failures: Mapping[str, Edge] = field(default_factory=dict)
    """Each routine's failure route by its id, an edge in ``edges`` after the
    connections' (its index is ``len(connections)`` or more)."""
    stats: tuple[dict[str, object], ...] = ()
    """Each routine's stats dict (``Routine._stats``, which it changes in place),
    so that a job's end sees at once whether any routine recorded stats."""

    def target(self, routine_id: str, slot: str) -> Target:
        """Return the target for a delivery that came from no connection."""
        return self.targets[(routine_id, slot)]


@final
class EntryPlans:
    """A flow's plans for its entries, for the current plan only.

    The sequential loop takes a delivery on its inlined path when
    ``direct[connection]`` is its target; the entry's delivery, from no
    connection, reads index -1, which is ``None`` in the flow's plan. The
    plan for an entry has that slot's target there instead. Threads may
    share one: each plan's entries are kept with it, so a thread holding an
    older plan (its job started before the flow changed) never mixes them.
    """

    __slots__ = ("_kept",)

    def __init__(self) -> None:
        """Keep no plans yet."""
        # One attribute, so that a thread sees the plan and its entries that
        # go together, whatever another thread stores meanwhile.
        self._kept: tuple[Plan | None, dict[tuple[str, str], Plan]] = (None, {})

    def get(self, plan: Plan, routine_id: str, slot: str) -> Plan:
        """Return ``plan`` with the target of ``(routine_id, slot)`` at ``direct[-1]``.

        Returns ``plan`` itself when that target is no direct one, or when
        ``ENTRY_PLANS`` entries are kept already.
        """
        kept_for, plans = self._kept
        if kept_for is not plan:  # the flow changed: forget the old entries
            plans = {}
            self._kept = (plan, plans)
        found = plans.get((routine_id, slot))
        if found is None:
            target = plan.targets.get((routine_id, slot))
            if target is None or not target.direct or len(plans) >= ENTRY_PLANS:
                return plan
            found = replace(plan, direct=(*plan.direct[:-1], target))
            plans[(routine_id, slot)] = found
        return found


@final
class PlanCache:
    """A flow's plan, compiled on first use after each change of its wiring.

    Args:
        routines: The flow's routines by id, a mapping the flow changes in place.
        connections: The flow's connections, a list the flow changes in place.
        failures: The flow's failure routes, source id -> (target id, slot),
            a dict the flow changes in place.

    Thread safety: :meth:`get` may be called from any thread; the flow calls
    :meth:`invalidate` while it is wired, before jobs run.
    """

    __slots__ = (
        "_routines",
        "_connections",
        "_failures",
        "_plan",
        "_lock",
        "entries",
        "__weakref__",
    )

    def __init__(
        self,
        routines: Mapping[str, Routine],
        connections: Sequence[Connection],
        failures: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        """Keep the flow's live routines and connections; compile nothing yet."""
        self._routines = routines
        self._connections = connections
        self._failures: Mapping[str, tuple[str, str]] = (
            {} if failures is None else failures
        )
        self._plan: Plan | None = None
        self._lock = threading.Lock()
        self.entries = EntryPlans()

    def get(self) -> Plan:
        """Return the current plan, compiling it if the wiring changed."""
        # Every job reads it: once built, no lock. A change sets it to None,
        # and only building it needs the lock (so that it is built once).
        plan = self._plan
        if plan is not None:
            return plan
        with self._lock:
            if self._plan is None:
                self._plan = compile_plan(
                    self._routines, self._connections, self._failures
                )
            return self._plan

    def invalidate(self) -> None:
        """Forget the plan: the wiring changed."""
        self._plan = None


def compile_plan(
    routines: Mapping[str, Routine],
    connections: Sequence[Connection],
    failures: Mapping[str, tuple[str, str]] | None = None,
) -> Plan:
    """Return the routing table of a flow's routines, connections, failure routes."""
    routines = dict(routines)
    joins: dict[tuple[str, str], set[int]] = {}
    for index, connection in enumerate(connections):
        joins.setdefault((connection.target_id, connection.slot), set()).add(index)
    routes: dict[str, dict[str, Route]] = {rid: {} for rid in routines}
    targets = {  # each target shares its routine's routes, filled below
        (rid, name): _target(
            rid, routine, slot, joins.get((rid, name), set()), routes[rid]
        )
        for rid, routine in routines.items()
        for name, slot in routine.slots.items()
    }
    edges = tuple(
        Edge(index, targets[(c.target_id, c.slot)], _applier(c), c.target_id, c.slot)
        for index, c in enumerate(connections)
    )
    failed = _failure_edges(targets, len(edges), failures or {})
    fan_out: dict[tuple[str, str], list[Edge]] = {}
    for edge, connection in zip(edges, connections, strict=True):
        fan_out.setdefault((connection.source_id, connection.event), []).append(edge)
    route_keys = tuple(
        (rid, event) for rid, routine in routines.items() for event in routine.events
    )
    for index, (rid, event) in enumerate(route_keys):
        routes[rid][event] = _route(rid, event, fan_out.get((rid, event), []), index)
    event_targets = {(rid, e): routes[rid][e].targets for rid, e in route_keys}
    edges += tuple(failed.values())
    direct = (*(edge.target if edge.target.direct else None for edge in edges), None)
    shape = flow_shape(routines, connections, failures)
    has_async = any(t.is_async for t in targets.values()) or any(
        is_async_source(routine) for routine in routines.values()
    )
    positions: dict[str, list[int]] = {}
    for index, (rid, _) in enumerate(route_keys):
        positions.setdefault(rid, []).append(index)
    return Plan(
        routines,
        edges,
        routes,
        targets,
        shape,
        event_targets,
        direct,
        has_async,
        route_keys,
        {rid: tuple(indexes) for rid, indexes in positions.items()},
        failed,
        tuple(routine._stats for routine in routines.values()),
    )


def is_source(routine: Routine) -> bool:
    """Return whether ``routine``'s class overrides ``__call__``."""
    return type(routine).__call__ is not Routine.__call__


def is_async_source(routine: Routine) -> bool:
    """Return whether ``routine`` is a source whose ``__call__`` is ``async def``.

    Raises:
        DefinitionError: If its ``__call__`` is a generator function.
    """
    return is_source(routine) and awaits(
        routine.__call__, f"source {type(routine).__qualname__}"
    )


def _target(
    rid: str,
    routine: Routine,
    slot: Slot,
    sources: set[int],
    routes: Mapping[str, Route],
) -> Target:
    override = slot.merge_strategy == "override"
    return Target(
        routine_id=rid,
        routine=routine,
        slot=slot,
        key=(rid, slot.name),
        invoke=slot._invoke,
        merge_override=override,
        join_sources=frozenset(sources) if slot.is_join else frozenset(),
        direct=override and not slot.is_join,
        handler=slot.handler,
        parameter=slot._parameter,
        is_async=slot.is_async,
        timeout=slot.timeout,
        group_sources=None if slot.correlate is None else tuple(sorted(sources)),
        routes=routes,
    )


def _failure_edges(
    targets: Mapping[tuple[str, str], Target],
    first: int,
    failures: Mapping[str, tuple[str, str]],
) -> dict[str, Edge]:
    """Return each failure route as an edge, numbered from ``first`` in order."""
    return {
        source_id: Edge(first + number, targets[end], None, *end)
        for number, (source_id, end) in enumerate(failures.items())
    }


def _applier(connection: Connection) -> Callable[[Payload], Payload] | None:
    return connection.apply if connection.param_mapping else None


def _route(rid: str, event: str, edges: list[Edge], index: int) -> Route:
    ordered = tuple(
        Edge(e.index, e.target, e.apply, e.target_id, e.slot_name, order)
        for order, e in enumerate(edges)
    )
    targets = tuple((e.target.routine_id, e.target.slot.name) for e in edges)
    single = ordered[0] if len(ordered) == 1 else None
    return Route((rid, event), ordered, targets, index, single)
