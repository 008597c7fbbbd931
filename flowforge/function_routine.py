"""Function routines: ``@step`` turns a function into a one-slot ``Routine`` class.

The decorated function's parameters are the keys of its slot (the usual
handler binding), and what it returns is emitted on its event: ``None`` emits
nothing, a ``dict`` emits its keys, anything else is emitted under the event's
name. The class is made with ``type()`` from a fixed base,
:class:`FunctionRoutine`, and joins the routine registry like any subclass.
"""

from __future__ import annotations

import reprlib
import functools
import inspect
from collections.abc import Callable
from typing import Any, ClassVar, overload

from flowforge._names import check_name
from flowforge.event import Event
from flowforge.exceptions import ArgumentTypeError, DefinitionError
from flowforge.routine import Routine
from flowforge.slot import Correlate, Slot
from flowforge.types import Handler, MergeStrategy

SlotOptions = tuple[MergeStrategy, bool, float | None, Correlate | None]
"""The slot's merge strategy, join, timeout and correlation key."""

__all__ = ["FunctionRoutine", "step"]


class FunctionRoutine(Routine):
    """The base of every class ``@step`` makes: one slot calls the function.

    Do not subclass it yourself; decorate a function with :func:`~flowforge.step`.
    Thread safety: as for any routine.
    """

    function: ClassVar[Callable[..., object]]
    """The decorated function, unchanged, to call directly in unit tests."""
    _slot_name: ClassVar[str]
    _event_name: ClassVar[str | None]
    _slot_options: ClassVar[SlotOptions]
    _input: ClassVar[str | None]
    """The one parameter a value emitted by a previous step binds to, if any."""

    def __init__(self) -> None:
        """Declare the slot that calls the function and the event it emits."""
        super().__init__()
        cls = type(self)
        if cls is FunctionRoutine:
            raise DefinitionError(
                "FunctionRoutine is the base of the classes @step makes: decorate "
                "a function with flowforge.step instead of using it directly"
            )
        merge_strategy, join, timeout, correlate = cls._slot_options
        handler = _emitting_handler(self, cls.function)
        self.define_slot(
            cls._slot_name,
            handler,
            merge_strategy,
            join=join,
            timeout=timeout,
            correlate=correlate,
        )
        if cls._event_name is not None:
            self.define_event(cls._event_name)

    def _emit_result(self, result: object) -> None:
        """Emit what the function returned, by the rule in :func:`step`."""
        if result is None:
            return
        event = type(self)._event_name
        if event is None:
            raise DefinitionError(
                f"step {type(self).__qualname__!r} returned {type(result).__name__} "
                "but declares no event (emits=None): return None, or declare an "
                "event with @step(emits='name')"
            )
        if not isinstance(result, dict):
            self.emit(event, **{event: result})
            return
        bad = [key for key in result if not isinstance(key, str)]
        if bad:
            raise DefinitionError(
                f"step {type(self).__qualname__!r} returned a dict with the key "
                f"{bad[0]!r}: a returned dict is emitted key by key, so its keys "
                f"must be str; return {{{event!r}: value}} to emit it as one value"
            )
        self.emit(event, **result)


Decorator = Callable[[Callable[..., object]], type[FunctionRoutine]]
"""What ``step(...)`` with options returns: it makes the class of a function."""


def _emitting_handler(routine: FunctionRoutine, function: Handler) -> Handler:
    """Return a handler with ``function``'s signature that emits its result."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def handle_async(*args: Any, **kwargs: Any) -> None:  # as function's
            routine._emit_result(await function(*args, **kwargs))

        return handle_async

    @functools.wraps(function)
    def handle(*args: Any, **kwargs: Any) -> None:  # Any: function's own parameters
        routine._emit_result(function(*args, **kwargs))

    return handle


@overload
def step(function: Callable[..., object], /) -> type[FunctionRoutine]: ...


@overload
def step(
    *,
    emits: str | None = "output",
    slot: str = "input",
    merge_strategy: MergeStrategy = "override",
    join: bool = False,
    timeout: float | None = None,
    correlate: Correlate | None = None,
) -> Decorator: ...


def step(
    function: Callable[..., object] | None = None,
    /,
    *,
    emits: str | None = "output",
    slot: str = "input",
    merge_strategy: MergeStrategy = "override",
    join: bool = False,
    timeout: float | None = None,
    correlate: Correlate | None = None,
) -> type[FunctionRoutine] | Decorator:
    """Turn a function (plain or ``async def``) into a routine class with one slot.

    Use it bare (``@step``) or with options (``@step(emits="text")``). The
    decorated name is then a :class:`~flowforge.Routine` subclass: create
    routines with ``clean()``, add them to flows, chain them with
    :meth:`Flow.chain <flowforge.Flow.chain>`. Its class is registered as
    ``module:QualName`` of the function, so flows of it serialize and jobs of
    it resume in a new process; the original function stays callable as
    ``clean.function``.

    This is the one class factory in FlowForge, kept as plain as it can be:
    the class it makes has a fixed base,
    :class:`~flowforge.function_routine.FunctionRoutine`, and holds only the
    function and these options; it has no methods of its own.

    The slot binds data to the function's parameters like any handler (see
    the routines guide). The return value is emitted on the event when the
    function returns:

    - ``None`` emits nothing;
    - a ``dict`` is emitted as it is, each key a key of the emission (its keys
      must be ``str``);
    - any other value ``v`` is emitted as ``{emits: v}``: name the event after
      the parameter of the step that reads it, or let ``Flow.chain`` rename it.

    Args:
        function: The function, when used bare as ``@step``.
        emits: The event's name; ``None`` declares no event (a sink), and then
            returning anything but ``None`` fails the delivery.
        slot: The slot's name.
        merge_strategy: The slot's merge strategy, as for ``define_slot``.
        join: Make the slot a join, as for ``define_slot``.
        timeout: Seconds an ``async def`` function may run, as for
            ``define_slot``.
        correlate: For a join, the key that groups its inputs, as for
            ``define_slot``.

    Returns:
        The routine class, or with options only, a decorator that makes it.

    Raises:
        ArgumentTypeError: If ``function`` is not a function made with ``def``
            or ``async def`` (a lambda, a class, a ``functools.partial``), or
            is a method (defined in a class, with ``self`` or ``cls`` first).
        DefinitionError: If a name or option is invalid, or ``function`` is a
            generator function.

    Example:
        >>> from flowforge import Flow, step
        >>> @step(emits="text")
        ... def clean(text):
        ...     return text.strip()
        >>> flow = Flow()
        >>> flow.add_routine(clean())
        'clean'
        >>> clean.function("  hi ")
        'hi'
    """
    options = (emits, slot, (merge_strategy, join, timeout, correlate))

    def decorate(function: Callable[..., object]) -> type[FunctionRoutine]:
        return _routine_class(function, *options)

    return decorate if function is None else decorate(function)


def _routine_class(
    function: Callable[..., object],
    emits: str | None,
    slot: str,
    slot_options: SlotOptions,
) -> type[FunctionRoutine]:
    if not inspect.isfunction(function) or function.__name__ == "<lambda>":
        raise ArgumentTypeError(
            f"@step decorates a function made with def or async def, got "
            f"{reprlib.repr(function)}; wrap it in a def if needed"
        )
    _refuse_method(function)
    if emits is not None:
        Event(emits)  # checks the name
    merge_strategy, join, timeout, correlate = slot_options
    # A slot built now checks the name, options and signature once, with the
    # rules every routine's slots follow; each routine then builds its own.
    Slot(
        check_name(slot, "slot"),
        function,
        merge_strategy,
        join=join,
        timeout=timeout,
        correlate=correlate,
    )
    namespace: dict[str, object] = {
        "__module__": function.__module__,
        "__qualname__": function.__qualname__,
        "__doc__": function.__doc__,
        "function": staticmethod(function),
        "_slot_name": slot,
        "_event_name": emits,
        "_slot_options": slot_options,
        "_input": _input_name(function),
    }
    return type(function.__name__, (FunctionRoutine,), namespace)


def _refuse_method(function: Callable[..., object]) -> None:
    """Refuse a function defined in a class body whose first parameter is ``self``.

    A step is called with the slot's keys only, never with an instance, so
    such a method could never be bound.
    """
    scopes = function.__qualname__.split(".")
    parameters = list(inspect.signature(function).parameters)
    in_class = len(scopes) > 1 and scopes[-2] != "<locals>"
    if in_class and parameters[:1] in (["self"], ["cls"]):
        raise ArgumentTypeError(
            f"@step decorates a plain function, and {function.__qualname__!r} is "
            f"a method (its first parameter is {parameters[0]!r}), which a step "
            "has no instance to call with; define the function at module level, "
            "or write a Routine subclass"
        )


def _input_name(function: Callable[..., object]) -> str | None:
    """Return the parameter one emitted value binds to, if there is one.

    That is the only parameter, else the only required one; ``None`` when the
    function takes ``**kwargs`` or has no such parameter.
    """
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    named = [p for p in parameters if p.kind is not p.VAR_POSITIONAL]
    required = [p for p in named if p.default is p.empty]
    for candidates in (named, required):
        if len(candidates) == 1:
            return candidates[0].name
    return None
