"""A flow's wiring: its routines, connections and failure routes, each one checked.

:class:`~flowforge.Flow` keeps one :class:`Wiring` and answers ``add_routine``,
``get_routine``, ``connect``, ``disconnect`` and ``remove_routine`` with it;
the engine's plan is compiled from the dict and the list it holds, which it
changes in place. A flow is edited only while none of its jobs runs.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import final

from flowforge._failure_route import check_failure_slot
from flowforge._names import check_name, check_type, free_id
from flowforge.connection import Connection
from flowforge.engine.setup import JobRegistry
from flowforge.exceptions import (
    ArgumentTypeError,
    DefinitionError,
    DuplicateNameError,
    JobStateError,
    UnknownPortError,
)
from flowforge.routine import Routine
from flowforge.slot import awaits

__all__ = ["Ends", "Wiring", "refuse_while_running"]

Ends = tuple[str, str, str, str]
"""A connection's ends: source id, event, target id, slot."""


@final
class Wiring:
    """The routines and connections of one flow, checked as they are added.

    Thread safety: wire from one thread, before jobs run.
    """

    __slots__ = ("routines", "connections", "failures", "_ids", "_counters", "_edges")

    def __init__(self) -> None:
        """Start with no routines and no connections."""
        self.routines: dict[str, Routine] = {}
        self.connections: list[Connection] = []
        self.failures: dict[str, tuple[str, str]] = {}
        """Failure routes: source routine id -> (target routine id, slot)."""
        self._ids: dict[int, str] = {}
        self._counters: dict[str, int] = {}
        self._edges: set[tuple[str, str, str, str]] = set()

    def add(self, routine: Routine, routine_id: str | None) -> str:
        """Add ``routine``; return its id. See :meth:`Flow.add_routine`."""
        if not isinstance(routine, Routine):
            raise ArgumentTypeError(
                f"add_routine expects a Routine, got {reprlib.repr(routine)}"
            )
        if not hasattr(routine, "_slots"):
            raise DefinitionError(
                f"{type(routine).__qualname__}.__init__ must call super().__init__()"
            )
        if type(routine).__call__ is not Routine.__call__:  # refuse a generator
            awaits(routine.__call__, f"source {type(routine).__qualname__}")
        known_id = self._ids.get(id(routine))
        if known_id is not None:
            raise DefinitionError(
                f"this routine is already in the flow as {known_id!r}"
            )
        if routine_id is None:
            routine_id = free_id(type(routine).__name__, self.routines, self._counters)
        elif check_name(routine_id, "routine id") in self.routines:
            raise DuplicateNameError(
                f"flow already has a routine with id {routine_id!r}"
            )
        self.routines[routine_id] = routine
        self._ids[id(routine)] = routine_id
        return routine_id

    def get(self, routine_id: str, flow_id: str) -> Routine:
        """Return the routine ``routine_id``. See :meth:`Flow.get_routine`."""
        try:
            return self.routines[check_type(routine_id, str, "routine_id", "a str")]
        except KeyError:
            raise UnknownPortError(
                f"flow {flow_id!r} has no routine {routine_id!r}; "
                f"routines: {sorted(self.routines)}"
            ) from None

    def connect(
        self,
        flow_id: str,
        ends: Ends,
        param_mapping: Mapping[str, str] | None,
    ) -> Connection:
        """Add the connection ``ends`` (source, event, target, slot); return it."""
        source_id, event, target_id, slot = ends
        declared = self.get(source_id, flow_id).get_event(event).output_params
        self.get(target_id, flow_id).get_slot(slot)
        mapping = {} if param_mapping is None else param_mapping
        connection = Connection(source_id, event, target_id, slot, mapping)
        unknown = [
            k
            for k in connection.param_mapping
            if declared is not None and k not in declared
        ]
        if unknown:
            raise DefinitionError(
                f"param_mapping keys {unknown} are not output params of "
                f"{source_id!r}.{event!r}, which declares {list(declared or ())}"
            )
        if ends in self._edges:
            raise DefinitionError(
                f"{source_id!r}.{event!r} is already connected to "
                f"{target_id!r}.{slot!r}; connect a pair once"
            )
        self._edges.add(ends)
        self.connections.append(connection)
        return connection

    def disconnect(
        self,
        flow_id: str,
        jobs: JobRegistry,
        given: Connection | str,
        rest: tuple[str | None, ...],
    ) -> Connection:
        """Remove the connection ``given`` (or ``given, *rest``); return it.

        See :meth:`Flow.disconnect`.
        """
        refuse_while_running(jobs, flow_id, "disconnect")
        ends = _ends(given, rest)
        source_id, event, target_id, slot = ends
        self.get(source_id, flow_id).get_event(event)
        self.get(target_id, flow_id).get_slot(slot)
        if ends not in self._edges:
            raise DefinitionError(
                f"{source_id!r}.{event!r} is not connected to {target_id!r}.{slot!r} "
                f"in flow {flow_id!r}; see flow.connections"
            )
        self._edges.discard(ends)
        index = next(i for i, c in enumerate(self.connections) if _ends_of(c) == ends)
        return self.connections.pop(index)

    def remove(
        self, routine_id: str, flow_id: str, jobs: JobRegistry
    ) -> tuple[Connection, ...]:
        """Remove a routine and its connections; see :meth:`Flow.remove_routine`."""
        refuse_while_running(jobs, flow_id, "remove a routine")
        routine = self.get(routine_id, flow_id)
        removed: list[Connection] = []
        kept: list[Connection] = []
        for c in self.connections:
            ends = (c.source_id, c.target_id)
            (removed if routine_id in ends else kept).append(c)
        self.connections[:] = kept  # in place: the plan cache reads this list
        self._edges = {_ends_of(c) for c in kept}
        for source_id, (target_id, _) in list(self.failures.items()):
            if routine_id in (source_id, target_id):
                del self.failures[source_id]  # in place, as above
        del self.routines[routine_id]
        del self._ids[id(routine)]
        return tuple(removed)

    def connect_failures(
        self, flow_id: str, source_id: str, target_id: str, slot: str
    ) -> None:
        """Route ``source_id``'s final failures. See :meth:`Flow.connect_failures`."""
        self.get(source_id, flow_id)
        target = self.get(target_id, flow_id)
        check_type(slot, str, "slot", "a slot name (a str)")
        where = f"failure route {source_id!r} -> {target_id!r}.{slot!r}"
        check_failure_slot(target.get_slot(slot), where)
        known = self.failures.get(source_id)
        if known is not None:
            raise DefinitionError(
                f"routine {source_id!r} already routes its failures to "
                f"{known[0]!r}.{known[1]!r}; a routine has one failure route"
            )
        self.failures[source_id] = (target_id, slot)


def refuse_while_running(jobs: JobRegistry, flow_id: str, action: str) -> None:
    """Refuse to edit a flow while one of its jobs runs in this process.

    Raises:
        JobStateError: Naming the first running job.
    """
    running = jobs.running()
    if running:
        raise JobStateError(
            f"cannot {action} while it runs in flow {flow_id!r} ({len(running)} "
            "job(s) running); edit a flow only between jobs",
            job_id=running[0],
            status="running",
        )


def _ends(given: Connection | str, rest: tuple[str | None, ...]) -> Ends:
    if isinstance(given, Connection) and not any(part is not None for part in rest):
        return _ends_of(given)
    ends = (given, *rest)
    if not all(isinstance(part, str) for part in ends):
        raise ArgumentTypeError(
            "disconnect expects a Connection, or source_id, event, target_id and "
            f"slot as str, got {reprlib.repr(ends)}"
        )
    return ends  # type: ignore[return-value]  # four str, checked above


def _ends_of(connection: Connection) -> Ends:
    return (
        connection.source_id,
        connection.event,
        connection.target_id,
        connection.slot,
    )
