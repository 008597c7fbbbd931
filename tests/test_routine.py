"""Routine: ports, emit, user statistics, configuration and error handlers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

import pytest

from flowforge import (
    DefinitionError,
    DuplicateNameError,
    ErrorHandler,
    ErrorStrategy,
    Event,
    ExecutionError,
    Flow,
    JobStatus,
    Routine,
    SerializationError,
    Slot,
    UnknownPortError,
)
from flowforge.testing import Recorder


class Emitter(Routine):
    """Emit what its config says: ``event`` with ``data``, then succeed."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output", ["a"])

    def handle(self) -> None:
        event = self.get_config("event", "output")
        data = self.get_config("data", {})
        assert isinstance(event, str) and isinstance(data, dict)
        self.emit(event, **data)


class EmitsForAnother(Routine):
    """A handler that tries to emit on another routine's behalf."""

    def __init__(self) -> None:
        super().__init__()
        self.other = Recorder()
        self.define_slot("input", self.handle)

    def handle(self) -> None:
        self.other.emit("output", a=1)


def wire_emitter(flow: Flow, **config: object) -> Recorder:
    emitter = Emitter()
    emitter.set_config(**config)
    sink = Recorder()
    flow.add_routine(emitter, "emitter")
    flow.add_routine(sink, "sink")
    flow.connect("emitter", "output", "sink", "input")
    return sink


# -- ports ----------------------------------------------------------------------------


def test_define_slot_returns_the_slot_it_declares() -> None:
    routine = Recorder()

    slot = routine.define_slot("extra", merge_strategy="append", join=True)

    assert (slot.name, slot.merge_strategy, slot.is_join) == ("extra", "append", True)
    assert routine.get_slot("extra") is slot


def test_define_event_returns_the_event_it_declares() -> None:
    routine = Recorder()

    event = routine.define_event("extra", ["a"])

    assert isinstance(event, Event)
    assert routine.get_event("extra") is event


def test_define_slot_rejects_a_duplicate_name() -> None:
    routine = Recorder()

    with pytest.raises(DuplicateNameError, match="already has a slot named 'input'"):
        routine.define_slot("input")


def test_define_event_rejects_a_duplicate_name() -> None:
    routine = Recorder()

    with pytest.raises(DuplicateNameError, match="already has an event named 'output'"):
        routine.define_event("output")


def test_get_slot_of_an_unknown_name_lists_the_slots() -> None:
    routine = Recorder()

    with pytest.raises(UnknownPortError, match=r"no slot 'nope'; slots: \['input'\]"):
        routine.get_slot("nope")


def test_get_event_of_an_unknown_name_lists_the_events() -> None:
    routine = Recorder()

    with pytest.raises(
        UnknownPortError, match=r"no event 'nope'; events: \['output'\]"
    ):
        routine.get_event("nope")


def test_slots_and_events_are_listed_in_definition_order() -> None:
    routine = Recorder()
    routine.define_slot("b_slot")
    routine.define_slot("a_slot")
    routine.define_event("z_event")

    assert list(routine.slots) == ["input", "b_slot", "a_slot"]
    assert list(routine.events) == ["output", "z_event"]
    assert all(isinstance(slot, Slot) for slot in routine.slots.values())


def test_routine_repr_shows_class_and_ports() -> None:
    routine = Recorder()

    assert repr(routine) == "Recorder(slots=['input'], events=['output'])"


# -- emit -----------------------------------------------------------------------------


def test_emit_delivers_declared_keys(flow: Flow) -> None:
    sink = wire_emitter(flow, data={"a": 1})

    job = flow.execute("emitter")

    assert job.status is JobStatus.COMPLETED
    assert sink.received == [{"a": 1}]


def test_emit_of_an_undeclared_event_fails_the_handler(flow: Flow) -> None:
    wire_emitter(flow, event="nope")

    job = flow.execute("emitter")

    assert job.status is JobStatus.FAILED
    assert job.errors[0].error_type == "UnknownPortError"
    assert "'nope'" in job.errors[0].message


def test_emit_of_an_undeclared_key_fails_the_handler(flow: Flow) -> None:
    sink = wire_emitter(flow, data={"a": 1, "zzz": 2})

    job = flow.execute("emitter")

    assert job.status is JobStatus.FAILED
    assert job.errors[0].error_type == "DefinitionError"
    assert "'zzz'" in job.errors[0].message
    assert sink.received == []


def test_emit_outside_a_handler_raises_execution_error() -> None:
    routine = Recorder()

    with pytest.raises(ExecutionError, match="outside one of its handlers"):
        routine.emit("output", a=1)


def test_emit_on_another_routine_from_a_handler_fails_the_handler(
    flow: Flow,
) -> None:
    flow.add_routine(EmitsForAnother(), "meddler")

    job = flow.execute("meddler")

    assert job.status is JobStatus.FAILED
    assert job.errors[0].error_type == "ExecutionError"


def test_emit_after_the_job_ended_raises_execution_error(flow: Flow) -> None:
    routine = Recorder()
    flow.add_routine(routine, "sink")
    flow.execute("sink", {"a": 1})

    with pytest.raises(ExecutionError, match="outside one of its handlers"):
        routine.emit("output", a=2)


# -- user statistics ------------------------------------------------------------------


def test_new_routine_has_no_stats() -> None:
    routine = Recorder()

    assert routine.stats() == {}


def test_set_stat_then_get_stat_returns_the_value() -> None:
    routine = Recorder()

    routine.set_stat("last", "x")

    assert routine.get_stat("last") == "x"


def test_get_stat_returns_the_default_when_unset() -> None:
    routine = Recorder()

    assert routine.get_stat("missing", 7) == 7


def test_increment_stat_starts_from_zero_and_returns_the_new_value() -> None:
    routine = Recorder()

    values = [routine.increment_stat("count"), routine.increment_stat("count", 2.5)]

    assert values == [1, 3.5]
    assert routine.stats() == {"count": 3.5}


@pytest.mark.parametrize("value", ["three", None, True], ids=["str", "none", "bool"])
def test_increment_stat_on_a_non_number_raises_type_error(value: object) -> None:
    routine = Recorder()
    routine.set_stat("count", value)

    with pytest.raises(TypeError, match="stat 'count' holds .*, not a number"):
        routine.increment_stat("count")


def test_reset_stats_removes_every_stat() -> None:
    routine = Recorder()
    routine.set_stat("a", 1)
    routine.increment_stat("b")

    routine.reset_stats()

    assert routine.stats() == {}


def test_stats_returns_a_copy_that_user_changes_do_not_affect() -> None:
    routine = Recorder()
    routine.set_stat("a", 1)

    copied = routine.stats()
    copied["a"] = 99
    copied["b"] = 2

    assert routine.stats() == {"a": 1}


# -- configuration --------------------------------------------------------------------


def test_set_config_replaces_values_with_the_same_key() -> None:
    routine = Recorder()
    routine.set_config(a=1, b=2)

    routine.set_config(a=3)

    assert routine.config() == {"a": 3, "b": 2}


def test_get_config_returns_the_default_when_unset() -> None:
    routine = Recorder()

    assert routine.get_config("missing", "fallback") == "fallback"


def test_config_returns_a_copy_that_user_changes_do_not_affect() -> None:
    routine = Recorder()
    routine.set_config(a=1)

    copied = routine.config()
    copied["a"] = 99

    assert routine.get_config("a") == 1


# -- error handlers -------------------------------------------------------------------


def test_routine_has_no_error_handler_of_its_own_by_default() -> None:
    routine = Recorder()

    assert routine.get_error_handler() is None


def test_set_error_handler_keeps_the_handler() -> None:
    routine = Recorder()
    handler = ErrorHandler("skip")

    routine.set_error_handler(handler)

    assert routine.get_error_handler() is handler


def test_set_error_handler_none_defers_to_the_flow_again() -> None:
    routine = Recorder()
    routine.set_error_handler(ErrorHandler("skip"))

    routine.set_error_handler(None)

    assert routine.get_error_handler() is None


def test_set_error_handler_rejects_anything_else() -> None:
    routine = Recorder()

    with pytest.raises(TypeError, match="expected an ErrorHandler or None"):
        routine.set_error_handler("continue")  # type: ignore[arg-type]  # on purpose


def test_set_as_optional_continues_by_default() -> None:
    routine = Recorder()

    routine.set_as_optional()

    assert routine.get_error_handler() == ErrorHandler(
        ErrorStrategy.CONTINUE, is_optional=True
    )


def test_set_as_critical_retries_then_stops() -> None:
    routine = Recorder()

    routine.set_as_critical(max_retries=2, retry_delay=0.5)

    handler = routine.get_error_handler()
    assert handler is not None
    assert (handler.strategy, handler.max_retries, handler.retry_delay) == (
        ErrorStrategy.RETRY,
        2,
        0.5,
    )
    assert handler.final_strategy() is ErrorStrategy.STOP


def test_a_source_may_call_super_call_which_does_nothing() -> None:
    class Source(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_event("output")

        def __call__(self, **params: object) -> None:
            super().__call__(**params)
            self.emit("output", **params)

    flow = Flow()
    flow.add_routine(Source(), "source")
    flow.add_routine(Recorder(), "sink")
    flow.connect("source", "output", "sink", "input")

    job = flow.execute("source", {"n": 1})

    assert job.status is JobStatus.COMPLETED
    assert flow.routines["sink"].received == [{"n": 1}]  # type: ignore[attr-defined]


def test_calling_a_routine_that_is_no_source_says_how_to_make_one() -> None:
    with pytest.raises(NotImplementedError, match="override __call__ to make it one"):
        Recorder()()


# -- a subclass whose __init__ forgot super().__init__() -----------------------------


def wrong(value: object) -> Any:  # Any: lets a call pass what its types forbid
    """Return ``value`` typed so that mypy lets a test pass it anywhere."""
    return value


FORGOT = re.escape(
    "Forgetful.__init__ did not call super().__init__(): call it first in "
    "Forgetful.__init__"
)


class Forgetful(Routine):
    """Declares a port without calling ``super().__init__()`` first."""

    def __init__(self, port: str = "slot") -> None:
        if port == "slot":
            self.define_slot("input")
        elif port == "event":
            self.define_event("output")
        elif port == "config":
            self.set_config(size=3)


@pytest.mark.parametrize("port", ["slot", "event", "config"])
def test_defining_a_port_before_super_init_says_to_call_it_first(port: str) -> None:
    with pytest.raises(DefinitionError, match=FORGOT):
        Forgetful(port)


@pytest.mark.parametrize(
    "read",
    [
        lambda r: r.slots,
        lambda r: r.events,
        lambda r: r.stats(),
        lambda r: r.config(),
    ],
    ids=["slots", "events", "stats", "config"],
)
def test_reading_a_routine_that_skipped_super_init_says_to_call_it(
    read: Callable[[Routine], object],
) -> None:
    routine = Forgetful("none")

    with pytest.raises(DefinitionError, match=FORGOT):
        read(routine)

    assert repr(routine) == "Forgetful(slots=[], events=[])"


def test_deserializing_a_class_that_skips_super_init_raises_serialization_error() -> (
    None
):
    data = Recorder().serialize()
    data["type"] = Forgetful._type_name

    with pytest.raises(SerializationError, match=FORGOT):
        Routine.deserialize(data)


@pytest.mark.parametrize(
    "lookup",
    [lambda r: r.get_slot(wrong(["input"])), lambda r: r.get_event(wrong({}))],
    ids=["get_slot", "get_event"],
)
def test_looking_up_an_unhashable_port_name_raises_unknown_port_error(
    lookup: Callable[[Recorder], object],
) -> None:
    with pytest.raises(
        UnknownPortError,
        match=r"slot names are str, got list|event names are str, got dict",
    ):
        lookup(Recorder())


class Hostile:
    """A port name whose every method raises, as crafted input might."""

    def __repr__(self) -> str:
        raise RuntimeError("repr")

    def __hash__(self) -> int:
        raise RuntimeError("hash")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq")


@pytest.mark.parametrize("kind", ["slot", "event"])
def test_looking_up_a_port_by_a_hostile_name_never_calls_its_methods(
    kind: str,
) -> None:
    lookup = getattr(Recorder(), f"get_{kind}")
    with pytest.raises(UnknownPortError, match=f"{kind} names are str, got Hostile"):
        lookup(Hostile())


def test_emitting_a_hostile_event_name_fails_the_delivery_naming_its_type() -> None:
    class Emitter(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", handler=self.receive)
            self.define_event("output")
            self.errors: list[Exception] = []

        def receive(self, **_: object) -> None:
            names: list[Any] = [[1], Hostile()]
            for name in names:
                try:
                    self.emit(name)
                except UnknownPortError as error:
                    self.errors.append(error)

    emitter = Emitter()
    with pytest.raises(ExecutionError, match="called outside one of its handlers"):
        emitter.emit(cast(Any, Hostile()))
    flow = Flow("hostile_emit")
    flow.add_routine(emitter, "emitter")

    job = flow.execute("emitter", {})

    assert job.status is JobStatus.COMPLETED
    assert [str(e).split(": ", 1)[1].split(";")[0] for e in emitter.errors] == [
        "event names are str, got list",
        "event names are str, got Hostile",
    ]
