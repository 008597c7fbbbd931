"""Slot: a named input port of a routine, with its merge rule and handler binding.

A slot keeps no data itself: the running job owns each slot's buffer, so that
two jobs of one flow never see each other's inputs. The slot knows how to merge
new data into a buffer and how to call its handler with it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Final, final

from flowforge._names import check_name
from flowforge.exceptions import DefinitionError
from flowforge.types import Handler, MergeFunction, MergeStrategy, Payload

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
        join: Wait for every connected event before calling the handler.

    Thread safety: immutable after construction.
    """

    __slots__ = ("name", "handler", "merge_strategy", "is_join", "_invoke")

    def __init__(
        self,
        name: str,
        handler: Handler | None = None,
        merge_strategy: MergeStrategy = "override",
        *,
        join: bool = False,
    ) -> None:
        """Validate the slot's definition and analyse its handler once."""
        self.name = check_name(name, "slot")
        if not callable(merge_strategy) and merge_strategy not in MERGE_STRATEGIES:
            raise DefinitionError(
                f"slot {name!r}: unknown merge_strategy {merge_strategy!r}; use "
                "'override', 'append' or a callable merge(old, new) -> dict"
            )
        if handler is not None and not callable(handler):
            raise TypeError(f"slot {name!r}: handler must be callable or None")
        self.handler = handler
        self.merge_strategy = merge_strategy
        self.is_join = join
        self._invoke = _bind(handler, name)

    def merge(self, buffer: Payload | None, data: Mapping[str, object]) -> Payload:
        """Return the buffer after ``data`` arrives.

        ``"append"`` extends the lists of ``buffer`` in place (undo it with
        :meth:`unmerge`); the other strategies return a new dict.
        """
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

    def unmerge(self, buffer: Payload, data: Mapping[str, object]) -> None:
        """Undo an in-place ``"append"`` merge of ``data`` into ``buffer``."""
        if self.merge_strategy != "append":
            return
        for key in data:
            values = buffer[key]
            assert isinstance(values, list)  # noqa: S101  merge() put a list here
            values.pop()
            if not values:
                del buffer[key]

    def invoke(self, buffer: Payload, routine_id: str) -> object:
        """Call the handler with ``buffer``, binding keys to its parameters.

        Raises:
            DefinitionError: If a required parameter has no key in ``buffer``.
        """
        return self._invoke(buffer, routine_id)

    def __repr__(self) -> str:
        """Return the slot's name and options."""
        handler = getattr(self.handler, "__qualname__", repr(self.handler))
        return (
            f"Slot({self.name!r}, handler={handler}, "
            f"merge_strategy={self.merge_strategy!r}, join={self.is_join})"
        )


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


def _bind(handler: Handler | None, slot_name: str) -> Invoker:
    """Analyse ``handler``'s signature once and return how to call it."""
    if handler is None:
        return lambda buffer, routine_id: None
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature take the dict
        return lambda buffer, routine_id: handler(buffer)
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return lambda buffer, routine_id: handler(**buffer)
    named = [p for p in parameters if p.kind is not p.VAR_POSITIONAL]
    if not named:
        return lambda buffer, routine_id: handler()
    if len(named) == 1:
        return _bind_single(handler, named[0].name)
    if any(p.kind is p.POSITIONAL_ONLY for p in named):
        raise DefinitionError(
            f"slot {slot_name!r}: handler {handler!r} has positional-only "
            "parameters; FlowForge passes values by name, so drop the '/'"
        )
    required = tuple(p.name for p in named if p.default is p.empty)
    optional = tuple(p.name for p in named if p.default is not p.empty)
    return _bind_by_name(handler, slot_name, required, optional)


def _bind_single(handler: Handler, name: str) -> Invoker:
    def invoke(buffer: Payload, routine_id: str) -> object:
        if name in buffer:
            return handler(buffer[name])
        return handler(buffer)

    return invoke


def _bind_by_name(
    handler: Handler,
    slot_name: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
) -> Invoker:
    def invoke(buffer: Payload, routine_id: str) -> object:
        try:
            kwargs = {name: buffer[name] for name in required}
        except KeyError as exc:
            raise DefinitionError(
                f"routine {routine_id!r}, slot {slot_name!r}: handler parameter "
                f"{exc.args[0]!r} is required but the data has no such key "
                f"(keys: {sorted(buffer)}); rename it with param_mapping or give "
                "the parameter a default"
            ) from exc
        for name in optional:
            if name in buffer:
                kwargs[name] = buffer[name]
        return handler(**kwargs)

    return invoke
