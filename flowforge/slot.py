"""Slot: a named input port of a routine, with its merge rule and handler binding.

A slot keeps no data itself: the running job owns each slot's buffer, so that
two jobs of one flow never see each other's inputs. The slot knows how to merge
new data into a buffer and how to call its handler with it.
"""

from __future__ import annotations

import reprlib
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from types import FunctionType
from typing import Final, final

from flowforge._names import check_name, check_type
from flowforge.exceptions import (
    ArgumentTypeError,
    DefinitionError,
    SerializationError,
)
from flowforge.serialization import FORMAT_VERSION, check_version, read
from flowforge.types import Handler, MergeFunction, MergeStrategy, Payload

Correlate = str | Callable[[Payload], object]
"""A correlated join's key: a payload key, or a function of the payload."""

__all__ = ["Slot"]

MERGE_STRATEGIES: Final = ("override", "append")

Invoker = Callable[[Payload, str], object]
"""Calls a handler with a buffer; the ``str`` is the routine id for errors."""


@final
class Slot:
    """A named input of a routine.

    Args:
        name: The slot's name, a Python identifier.
        handler: Called with the slot's buffer after each arrival (or, for a
            join, once every connected event has delivered). ``None`` makes a
            slot that only collects data.
        merge_strategy: ``"override"`` (later values replace earlier ones key by
            key), ``"append"`` (each key collects a list of every value), or a
            callable ``merge(old, new) -> buffer`` that must not mutate ``old``.
        join: Wait for every connected event before calling the handler; a
            bool.
        correlate: For a join: group its inputs by a key and call the
            handler once per key, when every connected event has delivered
            for that key, with that key's inputs only. A payload key (a
            ``str``), or a function of the payload that returns the key; the
            key must be hashable and saveable (str, int, tuple, ...).
            ``None``: the join waits for one delivery of each connection.
        timeout: Seconds an ``async def`` handler may run; past them it is
            cancelled and the delivery fails with :class:`TimeoutError`,
            handled by the routine's error strategy. ``None``: no limit.

    A handler may be a plain function or an ``async def`` coroutine function,
    which the engine awaits. A generator or async generator function is
    refused: its body would never run.

    Thread safety: immutable after construction.
    """

    __slots__ = (
        "name",
        "handler",
        "merge_strategy",
        "is_join",
        "correlate",
        "is_async",
        "timeout",
        "_invoke",
        "_parameter",
    )

    def __init__(
        self,
        name: str,
        handler: Handler | None = None,
        merge_strategy: MergeStrategy = "override",
        *,
        join: bool = False,
        timeout: float | None = None,
        correlate: Correlate | None = None,
    ) -> None:
        """Validate the slot's definition and analyse its handler once."""
        self.name = check_name(name, "slot")
        if not callable(merge_strategy) and (
            not isinstance(merge_strategy, str)
            or merge_strategy not in MERGE_STRATEGIES
        ):
            raise DefinitionError(
                f"slot {name!r}: unknown merge_strategy "
                f"{reprlib.repr(merge_strategy)}; use "
                "'override', 'append' or a callable merge(old, new) -> dict"
            )
        if not isinstance(join, bool):
            raise ArgumentTypeError(
                f"slot {name!r}: join must be a bool, got {type(join).__name__} "
                f"{reprlib.repr(join)}"
            )
        if handler is not None and not callable(handler):
            raise ArgumentTypeError(
                f"slot {name!r}: handler must be callable or None, got "
                f"{reprlib.repr(handler)}"
            )
        self.handler = handler
        self.merge_strategy = merge_strategy
        self.is_join = join
        self.correlate = _check_correlate(correlate, name, join)
        self.is_async = handler is not None and awaits(handler, f"slot {name!r}")
        self.timeout = _check_timeout(timeout, name, self.is_async)
        self._invoke, self._parameter = _bind(handler, name)

    def merge(self, buffer: Payload | None, data: Mapping[str, object]) -> Payload:
        """Return the buffer after ``data`` arrives.

        ``"append"`` extends the lists of ``buffer`` in place (the engine
        undoes that when the handler fails); the other strategies return a
        new dict.

        Raises:
            ArgumentTypeError: If ``buffer`` is neither a mapping nor ``None``,
                or ``data`` is not a mapping.
        """
        if type(data) is not dict and not isinstance(data, Mapping):
            check_type(data, Mapping, "data", "a mapping of the arriving keys")
        if buffer is not None and type(buffer) is not dict:
            check_type(buffer, dict, "buffer", "a dict or None")
        strategy = self.merge_strategy
        if strategy == "override":
            return {**buffer, **data} if buffer else dict(data)
        if strategy == "append":
            merged: Payload = {} if buffer is None else buffer
            for key, value in data.items():
                values = merged.get(key)
                if isinstance(values, list):
                    values.append(value)
                else:
                    merged[key] = [value]
            return merged
        return _call_merge(strategy, buffer, data, self.name)  # type: ignore[arg-type]

    def _unmerge(self, buffer: Payload, data: Mapping[str, object]) -> None:
        """Undo an in-place ``"append"`` merge of ``data`` into ``buffer``.

        Each appended value is taken out again: the last item that is that
        very object, so the undo is right even if the handler reordered its
        lists. Whatever else the handler changed in its lists stays changed.
        If the handler removed its own value, an earlier one that is the same
        object (a small int, ``None``) is taken out instead: identity cannot
        tell them apart (the errors guide says so).
        """
        if self.merge_strategy != "append":
            return
        for key, value in data.items():
            values = buffer.get(key)
            if not isinstance(values, list):
                continue  # the handler replaced or deleted it
            for index in range(len(values) - 1, -1, -1):
                if values[index] is value:
                    del values[index]
                    break
            if not values:
                del buffer[key]

    def invoke(self, buffer: Payload, routine_id: str) -> object:
        """Call the handler with ``buffer``, binding keys to its parameters.

        Raises:
            ArgumentTypeError: If ``buffer`` is not a mapping or
                ``routine_id`` is not a str.
            DefinitionError: If a required parameter has no key in ``buffer``.
        """
        check_type(buffer, Mapping, "buffer", "a mapping of the slot's keys")
        check_type(routine_id, str, "routine_id", "a str")
        return self._invoke(buffer, routine_id)

    def serialize(self) -> dict[str, object]:
        """Return the slot's definition as a versioned dict of JSON types.

        A handler or merge function is saved by name: ``{"method": name}``
        for a method of the routine, which :meth:`deserialize` can restore,
        and ``{"function": qualname}`` for anything else, which only the
        routine's constructor can recreate.
        """
        strategy = self.merge_strategy
        return {
            "version": FORMAT_VERSION,
            "name": self.name,
            "handler": None if self.handler is None else _callable_ref(self.handler),
            "merge_strategy": (
                strategy if isinstance(strategy, str) else _callable_ref(strategy)
            ),
            "join": self.is_join,
            **({} if self.timeout is None else {"timeout": self.timeout}),
            **_correlate_data(self.correlate),
        }

    @classmethod
    def deserialize(cls, data: object, owner: object = None) -> Slot:
        """Rebuild a slot, taking methods named in ``data`` from ``owner``.

        Raises:
            SerializationError: If the data is malformed, or names a function
                that is not a method of ``owner`` and so cannot be restored.
        """
        where = "slot"
        data = check_version(data, where)
        name = read(data, "name", str, where)
        where = f"slot {name!r}"
        handler = _restore_callable(
            data.get("handler"), owner, f"{where} field 'handler'"
        )
        saved = data.get("merge_strategy")
        strategy: MergeStrategy
        if isinstance(saved, str):
            strategy = saved
        else:
            merge = _restore_callable(saved, owner, f"{where} field 'merge_strategy'")
            if merge is None:
                raise SerializationError(f"{where}: field 'merge_strategy' is missing")
            # A restored method's return type is unknown until it runs;
            # _call_merge checks that it returns a dict.
            strategy = merge  # type: ignore[assignment]
        timeout = data.get("timeout")
        if timeout is not None and not isinstance(timeout, (int, float)):
            raise SerializationError(f"{where}: field 'timeout' must be a number")
        join = read(data, "join", bool, where)
        saved = data.get("correlate")
        correlate = (
            saved
            if saved is None or isinstance(saved, str)
            else _restore_callable(saved, owner, f"{where} field 'correlate'")
        )
        try:
            return cls(
                name, handler, strategy, join=join, timeout=timeout, correlate=correlate
            )
        except (DefinitionError, TypeError) as error:
            raise SerializationError(f"{where}: {error}") from error

    def __eq__(self, other: object) -> bool:
        """Compare name, handler, merge strategy and join flag."""
        if not isinstance(other, Slot):
            return NotImplemented
        return (
            self.name,
            self.handler,
            self.merge_strategy,
            self.is_join,
            self.timeout,
            self.correlate,
        ) == (
            other.name,
            other.handler,
            other.merge_strategy,
            other.is_join,
            other.timeout,
            other.correlate,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable handlers: not hashable

    def __repr__(self) -> str:
        """Return the slot's name and options."""
        handler = getattr(self.handler, "__qualname__", repr(self.handler))
        correlate = self.correlate
        if correlate is not None and not isinstance(correlate, str):
            correlate = getattr(correlate, "__qualname__", repr(correlate))
        return (
            f"Slot({self.name!r}, handler={handler}, "
            f"merge_strategy={self.merge_strategy!r}, join={self.is_join}"
            + ("" if correlate is None else f", correlate={correlate!r}")
            + ")"
        )


def awaits(function: Callable[..., object], where: str) -> bool:
    """Return whether calling ``function`` gives a coroutine the engine must await.

    Raises:
        DefinitionError: If ``function`` is a generator or async generator
            function, whose body a call would never run.
    """
    target = function
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        if isinstance(target, functools.partial):
            target = target.func
        elif not inspect.isroutine(target):
            target = type(target).__call__  # a callable object
    # A decorated function (functools.wraps) is judged by the one it wraps.
    target = inspect.unwrap(target) if callable(target) else target
    if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
        raise DefinitionError(
            f"{where}: {getattr(function, '__qualname__', function)!r} is a "
            "generator function, so calling it would not run its body; return "
            "or emit() the values instead of yielding them"
        )
    return inspect.iscoroutinefunction(target)


def _check_timeout(timeout: object, name: str, is_async: bool) -> float | None:
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout < math.inf
    ):
        raise DefinitionError(
            f"slot {name!r}: timeout must be a positive number of seconds or "
            f"None, got {reprlib.repr(timeout)}"
        )
    if not is_async:
        raise DefinitionError(
            f"slot {name!r}: a timeout needs an async def handler; a plain "
            "function cannot be interrupted while it runs, so the limit could "
            "not be enforced (make the handler async, or drop timeout)"
        )
    return float(timeout)


def _check_correlate(correlate: object, name: str, join: bool) -> Correlate | None:
    if correlate is None:
        return None
    if not join:
        raise DefinitionError(
            f"slot {name!r}: correlate groups a join's inputs by key, so it needs "
            "join=True"
        )
    if isinstance(correlate, str):
        if not correlate:
            raise DefinitionError(f"slot {name!r}: correlate must name a payload key")
        return correlate
    if not callable(correlate):
        raise ArgumentTypeError(
            f"slot {name!r}: correlate must be a payload key (str) or a function "
            f"of the payload, got {type(correlate).__name__} "
            f"{reprlib.repr(correlate)}"
        )
    if awaits(correlate, f"slot {name!r} correlate"):
        raise DefinitionError(
            f"slot {name!r}: correlate must return the key, not a coroutine; make "
            "it a plain function"
        )
    key_function: Correlate = correlate
    return key_function


def _correlate_data(correlate: Correlate | None) -> dict[str, object]:
    if correlate is None:
        return {}
    if isinstance(correlate, str):
        return {"correlate": correlate}
    return {"correlate": _callable_ref(correlate)}


def _callable_ref(function: Callable[..., object]) -> dict[str, str]:
    name = getattr(function, "__name__", None)
    if getattr(function, "__self__", None) is not None and isinstance(name, str):
        return {"method": name}
    return {"function": getattr(function, "__qualname__", repr(function))}


def _restore_callable(ref: object, owner: object, where: str) -> Handler | None:
    if ref is None:
        return None
    if isinstance(ref, dict) and isinstance(ref.get("method"), str):
        return _restore_method(owner, ref["method"], where)
    if isinstance(ref, dict) and isinstance(ref.get("function"), str):
        raise SerializationError(
            f"{where}: {ref['function']!r} is not a method of the routine, so it "
            "cannot be restored from data; define the slot in the routine's "
            "__init__ or use a method as the handler"
        )
    raise SerializationError(
        f"{where}: expected {{'method': name}}, got {reprlib.repr(ref)}"
    )


def _restore_method(owner: object, name: str, where: str) -> Handler:
    """Return ``owner``'s method ``name``, if data may name it.

    Data may name only a public method that the routine's own classes define:
    those before :class:`~flowforge.Routine` (the first class of
    ``flowforge.routine``) in ``type(owner).__mro__``, or before ``object``
    for an owner that is not a routine. Anything else (``set_config``,
    ``__init__``, a private helper, an attribute) could let crafted data call
    into the routine's machinery with job data.

    Raises:
        SerializationError: If ``name`` is private, inherited from the
            framework, not a method, or missing.
    """
    cls = type(owner)
    refusal = f"{where}: cannot restore method {name!r} of {cls.__qualname__}"
    if name.startswith("_"):
        raise SerializationError(f"{refusal}: data may name only public methods")
    mro = cls.__mro__
    stop = next(
        (i for i, base in enumerate(mro) if base.__module__ == "flowforge.routine"),
        len(mro) - 1,
    )
    definer = next((base for base in mro[:stop] if name in vars(base)), None)
    if definer is None:
        if hasattr(cls, name):
            raise SerializationError(
                f"{refusal}: it is inherited from {mro[stop].__qualname__}, and data "
                "may name only methods that the routine's own class defines"
            )
        raise SerializationError(f"{refusal}: the routine has no such method")
    attribute = vars(definer)[name]
    if not isinstance(attribute, (FunctionType, classmethod)):
        raise SerializationError(
            f"{refusal}: {definer.__qualname__}.{name} is a "
            f"{type(attribute).__name__}, not a method"
        )
    method: Handler = attribute.__get__(owner, cls)
    return method


def _call_merge(
    merge: MergeFunction, buffer: Payload | None, data: Mapping[str, object], name: str
) -> Payload:
    result = merge({} if buffer is None else buffer, dict(data))
    if not isinstance(result, dict):
        raise TypeError(
            f"merge function of slot {name!r} returned {type(result).__name__}; "
            "it must return the new buffer as a dict"
        )
    return result


def _bind(handler: Handler | None, slot_name: str) -> tuple[Invoker, str | None]:
    """Analyse ``handler``'s signature once and return how to call it.

    Returns the invoker and, when the handler takes one parameter that can
    be passed by position, its name: the scheduler then calls the handler
    with ``buffer[name] if name in buffer else buffer`` itself, as the
    invoker would, saving a call.
    """
    if handler is None:
        return (lambda buffer, routine_id: None), None
    parameters = _parameters(handler)
    if parameters is None:  # builtins without a signature take the dict
        return (lambda buffer, routine_id: handler(buffer)), None
    named = [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    takes_all = any(p.kind is p.VAR_KEYWORD for p in parameters)
    if not named:
        if takes_all:
            return (lambda buffer, routine_id: handler(**buffer)), None
        return (lambda buffer, routine_id: handler()), None
    if len(named) == 1 and not takes_all:
        single = named[0]
        by_position = single.kind is not single.KEYWORD_ONLY
        return _bind_single(handler, single), single.name if by_position else None
    if any(p.kind is p.POSITIONAL_ONLY for p in named):
        raise DefinitionError(
            f"slot {slot_name!r}: handler {handler!r} has positional-only "
            "parameters; FlowForge passes values by name, so drop the '/'"
        )
    required = tuple(p.name for p in named if p.default is p.empty)
    optional = tuple(p.name for p in named if p.default is not p.empty)
    return _bind_by_name(handler, slot_name, required, optional, takes_all), None


def _parameters(handler: Handler) -> tuple[inspect.Parameter, ...] | None:
    """Return the parameters a call must fill, analysing each function once.

    Every instance of a routine class shares its methods' functions, so the
    analysis of a bound method is cached on the function and ``self`` dropped.
    """
    function = getattr(handler, "__func__", None)
    if inspect.isfunction(function) and getattr(handler, "__self__", None) is not None:
        parameters = _function_parameters(function)
        return None if parameters is None else parameters[1:]
    return _signature_parameters(handler)


@functools.lru_cache(maxsize=4096)
def _function_parameters(function: Handler) -> tuple[inspect.Parameter, ...] | None:
    return _signature_parameters(function)


def _signature_parameters(handler: Handler) -> tuple[inspect.Parameter, ...] | None:
    try:
        return tuple(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return None


def _bind_single(handler: Handler, parameter: inspect.Parameter) -> Invoker:
    name = parameter.name
    if parameter.kind is parameter.KEYWORD_ONLY:

        def invoke_by_keyword(buffer: Payload, routine_id: str) -> object:
            return handler(**{name: buffer[name] if name in buffer else buffer})

        return invoke_by_keyword

    def invoke(buffer: Payload, routine_id: str) -> object:
        return handler(buffer[name] if name in buffer else buffer)

    return invoke


def _bind_by_name(
    handler: Handler,
    slot_name: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    takes_all: bool,
) -> Invoker:
    def invoke(buffer: Payload, routine_id: str) -> object:
        missing = [name for name in required if name not in buffer]
        if missing:
            raise DefinitionError(
                f"routine {routine_id!r}, slot {slot_name!r}: handler parameter "
                f"{missing[0]!r} is required but the data has no such key "
                f"(keys: {sorted(buffer)}); rename it with param_mapping or give "
                "the parameter a default"
            )
        if takes_all:
            return handler(**buffer)
        kwargs = {name: buffer[name] for name in required}
        for name in optional:
            if name in buffer:
                kwargs[name] = buffer[name]
        return handler(**kwargs)

    return invoke
