"""Routine: the class users subclass to declare slots, events and handlers."""

from __future__ import annotations

import reprlib
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import MethodType
from typing import Any, ClassVar, cast

from flowforge._codec import decode, encode
from flowforge._context import CURRENT, check_emission
from flowforge.error_handler import ErrorHandler, ErrorStrategy
from flowforge.event import Event
from flowforge.exceptions import (
    ArgumentTypeError,
    DefinitionError,
    DuplicateNameError,
    ExecutionError,
    SerializationError,
    UnknownPortError,
    UnknownRoutineTypeError,
)
from flowforge.serialization import (
    FORMAT_VERSION,
    ROUTINE_TYPES,
    check_registry,
    check_version,
    read,
    type_name,
)
from flowforge.slot import Correlate, Slot
from flowforge.types import Handler, MergeStrategy

__all__ = ["Routine"]


class Routine:
    """A unit of work with named input slots and output events.

    Subclass it, call ``super().__init__()``, then declare ports in
    ``__init__`` with :meth:`define_slot` and :meth:`define_event`. The
    constructor takes no arguments, so any routine can be rebuilt from data;
    settings go through :meth:`set_config`. A subclass that overrides
    ``__call__`` is a *source*: as a job's entry it is called with the entry
    params as keyword arguments.

    ``stats()`` holds only what your code stores with the stat helpers; the
    framework's figures live in the job's :class:`~flowforge.JobState` and
    :class:`~flowforge.ExecutionTracker`.

    Thread safety: FlowForge never runs two handlers of one routine at once in
    the concurrent strategy; the stat helpers are atomic.
    """

    _type_name: ClassVar[str] = "flowforge.routine:Routine"

    def __init_subclass__(cls, **kwargs: Any) -> None:  # Any: forwarded as is
        """Register the subclass under ``module:QualName``."""
        super().__init_subclass__(**kwargs)
        cls._type_name = type_name(cls)
        ROUTINE_TYPES[cls._type_name] = cls

    def __init__(self) -> None:
        """Create a routine with no ports, stats or config."""
        self._slots: dict[str, Slot] = {}
        self._events: dict[str, Event] = {}
        self._stats: dict[str, object] = {}
        self._config: dict[str, object] = {}
        self._error_handler: ErrorHandler | None = None
        self._lock = threading.Lock()
        self._handler_lock = threading.Lock()
        self._port_watchers: list[tuple[weakref.ref[object], Callable[..., None]]] = []

    # Any: a source routine declares whatever parameters its entry params need,
    # and only an ``*args: Any, **params: Any`` base accepts every override.
    def __call__(self, *args: Any, **params: Any) -> None:
        """Start a job as its entry; override it to make a source routine.

        An override may call ``super().__call__(**params)``: it does nothing.

        Raises:
            NotImplementedError: If the class does not override it.
        """
        if type(self).__call__ is Routine.__call__:
            raise NotImplementedError(
                f"{type(self).__qualname__} is not a source routine: override "
                "__call__ to make it one, or start the job on one of its slots"
            )

    # -- ports -------------------------------------------------------------------

    def define_slot(
        self,
        name: str,
        handler: Handler | None = None,
        merge_strategy: MergeStrategy = "override",
        *,
        join: bool = False,
        timeout: float | None = None,
        correlate: Correlate | None = None,
    ) -> Slot:
        """Declare an input slot; see :class:`~flowforge.Slot` for the options.

        A flow that holds the routine already sees the new slot in its next
        job (a job that runs does not).

        Raises:
            DuplicateNameError: If the routine already has a slot ``name``.
            DefinitionError: If ``__init__`` did not call ``super().__init__()``
                first.
        """
        slot = Slot(
            name,
            handler,
            merge_strategy,
            join=join,
            timeout=timeout,
            correlate=correlate,
        )
        if name in self.slots:
            raise DuplicateNameError(f"{self!r} already has a slot named {name!r}")
        self._slots[name] = slot
        self._ports_changed()
        return slot

    def define_event(
        self, name: str, output_params: Iterable[str] | None = None
    ) -> Event:
        """Declare an output event, optionally fixing the keys it may carry.

        A flow that holds the routine already sees the new event in its next
        job; in a job that runs, its emissions go nowhere.

        Raises:
            DuplicateNameError: If the routine already has an event ``name``.
            DefinitionError: If ``__init__`` did not call ``super().__init__()``
                first.
        """
        event = Event(name, output_params)
        if name in self.events:
            raise DuplicateNameError(f"{self!r} already has an event named {name!r}")
        self._events[name] = event
        self._ports_changed()
        return event

    def _watch_ports(self, changed: Callable[[], None]) -> None:
        """Call ``changed`` (a bound method, held weakly) when a port is defined.

        A flow that holds the routine uses it to rebuild its plan. The
        method's object is held by a plain weak reference, which CPython
        shares among all the routines of a flow: a ``WeakMethod`` per routine
        cost about 380 bytes.
        """
        method = cast(MethodType, changed)
        self._port_watchers.append((weakref.ref(method.__self__), method.__func__))

    def _ports_changed(self) -> None:
        for owner, function in vars(self).get("_port_watchers", ()):
            target = owner()
            if target is not None:
                function(target)

    def get_slot(self, name: str) -> Slot:
        """Return the slot ``name``.

        Raises:
            UnknownPortError: If there is no such slot.
        """
        port = self._slots.get(name) if isinstance(name, str) else None
        if port is None:
            raise _no_port(self, "slot", name, self._slots)
        return port

    def get_event(self, name: str) -> Event:
        """Return the event ``name``.

        Raises:
            UnknownPortError: If there is no such event.
        """
        port = self._events.get(name) if isinstance(name, str) else None
        if port is None:
            raise _no_port(self, "event", name, self._events)
        return port

    @property
    def slots(self) -> Mapping[str, Slot]:
        """The routine's slots by name, in definition order."""
        try:
            return self._slots
        except AttributeError:
            raise self._not_initialised() from None

    @property
    def events(self) -> Mapping[str, Event]:
        """The routine's events by name, in definition order."""
        try:
            return self._events
        except AttributeError:
            raise self._not_initialised() from None

    def _not_initialised(self) -> DefinitionError:
        """Say what to do when ``__init__`` forgot ``super().__init__()``.

        Only the entry points such a routine reaches first check for it (its
        ports, config and stats); the hot paths pay nothing.
        """
        name = type(self).__qualname__
        return DefinitionError(
            f"{name}.__init__ did not call super().__init__(): call it first in "
            f"{name}.__init__, before defining slots and events or setting config"
        )

    def emit(self, event_name: str, **data: object) -> None:
        """Record an emission of ``event_name``, delivered when the handler returns.

        Raises:
            UnknownPortError: If the routine has no such event.
            DefinitionError: If ``data`` has a key the event does not declare.
            ExecutionError: If called outside one of this routine's handlers, or
                if the deliveries this call's emissions make (one per edge of
                each emitted event) would pass the flow's ``max_pending``.
                Unless the handler catches it, the delivery then fails and
                its emissions are discarded.
        """
        context = CURRENT.get()
        if context is None or context._routine is not self:
            raise ExecutionError(
                f"{self!r}.emit({reprlib.repr(event_name)}) called outside one of "
                "its handlers; emit only from a slot handler or a source routine's "
                "__call__"
            )
        try:  # cheaper than .get() on CPython 3.11 when the name is there
            event = self._events[event_name]
        except Exception:  # missing, unhashable, or a hash that raises
            event = self.get_event(event_name)  # raises UnknownPortError
        if event.output_params is not None:
            event.check(data, context.routine_id)
        emissions = context._emissions
        # An empty list's truth costs less than len(): the usual one emission
        # per call pays only that. The bound counts each emission's fan-out
        # (one delivery per edge); check_emission says when to look again.
        if emissions:
            made = len(emissions)
            if (
                made == 1
                or made >= context._check_at
                or event_name != context._check_event
            ):
                check_emission(context, event_name)
        emissions.append((event_name, data))

    # -- user statistics ---------------------------------------------------------

    def stats(self) -> dict[str, object]:
        """Return a copy of the statistics your code recorded."""
        try:
            lock = self._lock
        except AttributeError:
            raise self._not_initialised() from None
        with lock:
            return dict(self._stats)

    def set_stat(self, key: str, value: object) -> None:
        """Set statistic ``key`` to ``value``."""
        _check_key("stat", key)
        with self._lock:
            self._stats[key] = value

    def get_stat(self, key: str, default: object = None) -> object:
        """Return statistic ``key``, or ``default`` when unset."""
        _check_key("stat", key)
        with self._lock:
            return self._stats.get(key, default)

    def increment_stat(self, key: str, amount: int | float = 1) -> int | float:
        """Add ``amount`` to statistic ``key`` (0 when unset); return the new value.

        Raises:
            ArgumentTypeError: If ``amount`` or the current value is not a number.
        """
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise ArgumentTypeError(
                f"amount must be a number, got {reprlib.repr(amount)}"
            )
        _check_key("stat", key)
        with self._lock:
            current = self._stats.get(key, 0)
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise ArgumentTypeError(
                    f"stat {key!r} holds {reprlib.repr(current)}, not a number"
                )
            value = current + amount
            self._stats[key] = value
            return value

    def reset_stats(self) -> None:
        """Remove every statistic."""
        with self._lock:
            self._stats.clear()

    # -- configuration -----------------------------------------------------------

    def set_config(self, **config: object) -> None:
        """Store configuration values, replacing those with the same keys."""
        try:
            self._config.update(config)
        except AttributeError:
            raise self._not_initialised() from None

    def get_config(self, key: str, default: object = None) -> object:
        """Return configuration value ``key``, or ``default`` when unset."""
        _check_key("config", key)
        return self._config.get(key, default)

    def config(self) -> dict[str, object]:
        """Return a copy of the configuration."""
        try:
            return dict(self._config)
        except AttributeError:
            raise self._not_initialised() from None

    # -- error handling ----------------------------------------------------------

    def set_error_handler(self, handler: ErrorHandler | None) -> None:
        """Use ``handler`` for this routine's failures; ``None`` defers to the flow."""
        if handler is not None and not isinstance(handler, ErrorHandler):
            raise ArgumentTypeError(
                "handler: expected an ErrorHandler or None, got "
                f"{reprlib.repr(handler)}"
            )
        self._error_handler = handler

    def get_error_handler(self) -> ErrorHandler | None:
        """Return this routine's own error handler, if it has one."""
        return self._error_handler

    def set_as_optional(
        self, strategy: ErrorStrategy | str = ErrorStrategy.CONTINUE
    ) -> None:
        """Let the job go on when this routine fails for good.

        The routine gets an optional :class:`ErrorHandler` with ``strategy``
        (``CONTINUE`` by default, ``SKIP``, or ``RETRY`` with default retry
        options): a final failure is recorded and never fails the job.
        """
        self.set_error_handler(ErrorHandler(strategy, is_optional=True))

    def set_as_critical(
        self,
        *,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
    ) -> None:
        """Retry this routine's failures, then fail the job once retries run out."""
        self.set_error_handler(
            ErrorHandler(
                ErrorStrategy.RETRY,
                max_retries=max_retries,
                retry_delay=retry_delay,
                retry_backoff=retry_backoff,
                is_critical=True,
            )
        )

    # -- serialization -----------------------------------------------------------

    def serialize(self) -> dict[str, object]:
        """Return the routine's class, config, stats, handler and ports as data.

        Raises:
            SerializationError: If a config value or stat cannot be saved; the
                message names it.
        """
        handler = self._error_handler
        return {
            "version": FORMAT_VERSION,
            "type": self._type_name,
            "config": encode(self._config, "config"),
            "stats": encode(self.stats(), "stats"),
            "error_handler": None if handler is None else handler.serialize(),
            "slots": [slot.serialize() for slot in self._slots.values()],
            "events": [event.serialize() for event in self._events.values()],
        }

    @classmethod
    def deserialize(
        cls, data: object, registry: Mapping[str, type] | None = None
    ) -> Routine:
        """Rebuild a routine: construct its class, then restore config and stats.

        The class is looked up by ``module:QualName`` in ``registry``, then in
        the registry every subclass joins when defined; no module is imported.
        Slots and events are recreated by the class's ``__init__``; one that
        was added later is restored when its handler is a method.

        Raises:
            UnknownRoutineTypeError: If the class is not registered.
            SerializationError: If the data is malformed or does not match
                what the class defines.
        """
        check_registry(registry)
        data = check_version(data, "routine")
        name = read(data, "type", str, "routine")
        routine_cls = (registry or {}).get(name) or ROUTINE_TYPES.get(name)
        if not (isinstance(routine_cls, type) and issubclass(routine_cls, Routine)):
            raise UnknownRoutineTypeError(type_name=name)
        try:
            routine = routine_cls()
            if "_slots" not in vars(routine):
                raise routine._not_initialised()
        except Exception as error:
            raise SerializationError(f"{name}() raised {error!r}") from error
        routine._restore(data, registry)
        return routine

    def _restore(
        self, data: Mapping[str, object], registry: Mapping[str, type] | None
    ) -> None:
        where = f"routine {self._type_name!r}"
        config = decode(read(data, "config", dict, where), "config")
        stats = decode(read(data, "stats", dict, where), "stats")
        assert isinstance(config, dict) and isinstance(stats, dict)  # noqa: S101
        self._config.update(config)
        self._stats = stats
        handler = data.get("error_handler")
        self._error_handler = (
            None if handler is None else ErrorHandler.deserialize(handler, registry)
        )
        for slot_data in read(data, "slots", list, where):
            name = read(check_version(slot_data, where), "name", str, where)
            known = self._slots.get(name)
            if known is None:
                self._slots[name] = Slot.deserialize(slot_data, self)
            elif known.serialize() != slot_data:
                raise SerializationError(
                    f"{where} field 'slots': slot {name!r} was saved as "
                    f"{slot_data!r} but the class now defines {known.serialize()!r}"
                )
        for event_data in read(data, "events", list, where):
            event = Event.deserialize(event_data)
            if self._events.setdefault(event.name, event) != event:
                raise SerializationError(
                    f"{where} field 'events': event {event.name!r} was saved as "
                    f"{event!r} but the class now defines {self._events[event.name]!r}"
                )

    def __repr__(self) -> str:
        """Return the class name and port names."""
        ports = vars(self)  # not self._slots: a repr must work before __init__
        return (
            f"{type(self).__qualname__}(slots={list(ports.get('_slots', ()))}, "
            f"events={list(ports.get('_events', ()))})"
        )


def _check_key(what: str, key: object) -> None:
    """Refuse a stat or config key that is not a str, before it is hashed."""
    if not isinstance(key, str):
        raise ArgumentTypeError(
            f"{what} key must be a str, got {type(key).__name__} {reprlib.repr(key)}"
        )


ROUTINE_TYPES[Routine._type_name] = Routine


def _no_port(
    routine: Routine, kind: str, name: object, ports: Mapping[str, object]
) -> UnknownPortError:
    """Say that ``routine`` has no such port; never call a non-text name's methods."""
    if not isinstance(name, str):
        return UnknownPortError(
            f"{routine!r} has no such {kind}: {kind} names are str, got "
            f"{type(name).__name__}; {kind}s: {sorted(ports)}"
        )
    return UnknownPortError(
        f"{routine!r} has no {kind} {name!r}; {kind}s: {sorted(ports)}"
    )
