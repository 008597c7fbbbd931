"""A flow's wiring: its routines, connections and failure routes, each one checked.

:class:`~flowforge.Flow` keeps one :class:`Wiring` and answers ``add_routine``,
``get_routine`` and ``connect`` with it; the engine's plan is compiled from
the dict and the list it holds, which it changes in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

from flowforge._failure_route import check_failure_slot
from flowforge._names import check_name, check_type, free_id
from flowforge.connection import Connection
from flowforge.exceptions import (
    ArgumentTypeError,
    DefinitionError,
    DuplicateNameError,
    UnknownPortError,
)
from flowforge.routine import Routine
from flowforge.slot import awaits

__all__ = ["Wiring"]


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
            raise ArgumentTypeError(f"add_routine expects a Routine, got {routine!r}")
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
        ends: tuple[str, str, str, str],
        param_mapping: Mapping[str, str] | None,
    ) -> Connection:
        """Add the connection ``ends`` (source, event, target, slot); return it."""
        source_id, event, target_id, slot = ends
        declared = self.get(source_id, flow_id).get_event(event).output_params
        self.get(target_id, flow_id).get_slot(slot)
        connection = Connection(source_id, event, target_id, slot, param_mapping or {})
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

    def connect_failures(
        self, flow_id: str, source_id: str, target_id: str, slot: str
    ) -> None:
        """Route ``source_id``'s final failures. See :meth:`Flow.connect_failures`."""
        self.get(source_id, flow_id)
        where = f"failure route {source_id!r} -> {target_id!r}.{slot!r}"
        check_failure_slot(self.get(target_id, flow_id).get_slot(slot), where)
        known = self.failures.get(source_id)
        if known is not None:
            raise DefinitionError(
                f"routine {source_id!r} already routes its failures to "
                f"{known[0]!r}.{known[1]!r}; a routine has one failure route"
            )
        self.failures[source_id] = (target_id, slot)
