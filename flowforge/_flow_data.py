"""A flow's definition as versioned data: written from its parts, read into them.

:meth:`Flow.serialize <flowforge.Flow.serialize>` and
:meth:`Flow.deserialize <flowforge.Flow.deserialize>` use these; the flow
then wires the parts read here through its own checked methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, final

from flowforge.connection import Connection
from flowforge.error_handler import ErrorHandler
from flowforge.exceptions import (
    DefinitionError,
    SerializationError,
    UnknownRoutineTypeError,
)
from flowforge.job_state import DEFAULT_MAX_PENDING
from flowforge.routine import Routine
from flowforge.serialization import (
    FORMAT_VERSION,
    check_registry,
    check_version,
    read,
)

__all__ = ["FlowParts", "flow_to_data", "read_flow_data", "wire_flow"]

T = TypeVar("T")


class Wirable(Protocol):
    """What :func:`wire_flow` calls on the flow it makes: the checked wiring."""

    def add_routine(self, routine: Routine, routine_id: str | None = None) -> str:
        """Add a routine under an id."""

    def connect(
        self,
        source_id: str,
        event: str,
        target_id: str,
        slot: str,
        param_mapping: Mapping[str, str] | None = None,
    ) -> Connection:
        """Connect an event to a slot."""

    def connect_failures(self, source_id: str, target_id: str, slot: str) -> None:
        """Route a routine's final failures to a slot."""


W = TypeVar("W", bound=Wirable)


@final
@dataclass(slots=True)
class FlowParts:
    """What a flow's data holds, read and checked, ready to be wired."""

    flow_id: str
    error_handler: ErrorHandler | None
    max_deliveries: int
    max_pending: int
    history_limit: int
    execution_strategy: str
    max_workers: int
    routines: list[tuple[str, Routine]] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)


def flow_to_data(
    flow_id: str,
    options: Mapping[str, object],
    routines: Mapping[str, Routine],
    connections: Sequence[Connection],
    failures: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, object]:
    """Return a flow's definition as a versioned dict of JSON types.

    ``options`` holds ``error_handler`` (an ``ErrorHandler`` or ``None``) and
    the flow's int and str settings, written as they are. ``failures`` (source
    id -> target id and slot) is written as ``"failures"``, a list of
    ``[source_id, target_id, slot]``, only when there are some: data without
    it (as from flows made before failure routes existed) has none.

    Raises:
        SerializationError: If a routine holds a value that cannot be saved;
            the message names the routine and the field.
    """
    saved = []
    for routine_id, routine in routines.items():
        try:
            saved.append({"id": routine_id, "routine": routine.serialize()})
        except SerializationError as error:
            raise SerializationError(f"routine {routine_id!r}: {error}") from error
    handler = options.get("error_handler")
    settings = {key: value for key, value in options.items() if key != "error_handler"}
    data: dict[str, object] = {
        "version": FORMAT_VERSION,
        "flow_id": flow_id,
        **settings,
        "error_handler": (
            handler.serialize() if isinstance(handler, ErrorHandler) else None
        ),
        "routines": saved,
        "connections": [c.serialize() for c in connections],
    }
    if failures:
        data["failures"] = [[s, t, slot] for s, (t, slot) in failures.items()]
    return data


def read_flow_data(
    data: object, registry: Mapping[str, type] | None = None
) -> FlowParts:
    """Read :func:`flow_to_data`'s dict into parts, checking every field.

    Raises:
        UnknownRoutineTypeError: If a routine class is not registered.
        SerializationError: If the data is malformed.
    """
    where = "flow"
    check_registry(registry)
    data = check_version(data, where)
    handler = data.get("error_handler")
    parts = FlowParts(
        flow_id=read(data, "flow_id", str, where),
        error_handler=(
            None if handler is None else ErrorHandler.deserialize(handler, registry)
        ),
        max_deliveries=read(data, "max_deliveries", int, where),
        max_pending=_optional(data, "max_pending", int, DEFAULT_MAX_PENDING),
        history_limit=read(data, "history_limit", int, where),
        # Data written before these were saved runs with the defaults.
        execution_strategy=_optional(data, "execution_strategy", str, "sequential"),
        max_workers=_optional(data, "max_workers", int, 8),
    )
    for index, item in enumerate(read(data, "routines", list, where)):
        parts.routines.append(_routine(item, f"{where} routines[{index}]", registry))
    for index, item in enumerate(read(data, "connections", list, where)):
        try:
            parts.connections.append(Connection.deserialize(item))
        except SerializationError as error:
            raise SerializationError(
                f"{where} connections[{index}]: {error}"
            ) from error
    parts.failures = _failures(data, where)
    return parts


def _failures(data: Mapping[str, object], where: str) -> dict[str, tuple[str, str]]:
    """Read the failure routes; data without them has none."""
    routes: dict[str, tuple[str, str]] = {}
    items = read(data, "failures", list, where) if "failures" in data else []
    for index, item in enumerate(items):
        source_id, end = _failure(item, f"{where} failures[{index}]")
        if source_id in routes:
            raise SerializationError(
                f"{where} failures[{index}]: routine {source_id!r} has a failure "
                "route already; a routine has one"
            )
        routes[source_id] = end
    return routes


def _failure(item: object, where: str) -> tuple[str, tuple[str, str]]:
    if (
        not isinstance(item, list)
        or len(item) != 3
        or not all(isinstance(part, str) for part in item)
    ):
        raise SerializationError(
            f"{where} must be a list [source_id, target_id, slot] of str, "
            f"got {item!r}"
        )
    source_id, target_id, slot = item
    return source_id, (target_id, slot)


def _optional(data: Mapping[str, object], key: str, kind: type[T], default: T) -> T:
    return read(data, key, kind, "flow") if key in data else default


def _routine(
    item: object, where: str, registry: Mapping[str, type] | None
) -> tuple[str, Routine]:
    if not isinstance(item, Mapping):
        raise SerializationError(
            f"{where} must be a dict with 'id' and 'routine', got "
            f"{type(item).__name__}"
        )
    routine_id = read(item, "id", str, where)
    try:
        return routine_id, Routine.deserialize(item.get("routine"), registry)
    except UnknownRoutineTypeError as error:
        raise UnknownRoutineTypeError(
            type_name=error.type_name, routine_id=routine_id
        ) from None
    except SerializationError as error:
        raise SerializationError(f"routine {routine_id!r}: {error}") from error


def wire_flow(parts: FlowParts, make: Callable[..., W]) -> W:
    """Make a flow with ``make`` from the settings read, then wire its parts.

    Raises:
        SerializationError: If the parts cannot be wired (the data names a
            port that does not exist, say); the message says why.
    """
    try:
        flow = make(
            parts.flow_id,
            error_handler=parts.error_handler,
            max_deliveries=parts.max_deliveries,
            max_pending=parts.max_pending,
            history_limit=parts.history_limit,
            execution_strategy=parts.execution_strategy,
            max_workers=parts.max_workers,
        )
        for routine_id, routine in parts.routines:
            flow.add_routine(routine, routine_id)
        for c in parts.connections:
            flow.connect(c.source_id, c.event, c.target_id, c.slot, c.param_mapping)
        for source_id, (target_id, slot) in parts.failures.items():
            flow.connect_failures(source_id, target_id, slot)
    except DefinitionError as error:
        raise SerializationError(f"flow: {error}") from error
    return flow
