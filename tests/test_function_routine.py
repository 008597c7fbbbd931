"""Function routines (``@step``) and ``Flow.chain``."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import pytest

from flowforge import (
    ArgumentTypeError,
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobStatus,
    Routine,
    SerializationError,
    UnknownRoutineTypeError,
    step,
)
from flowforge.function_routine import FunctionRoutine
from flowforge.serialization import ROUTINE_TYPES
from flowforge.store import SqliteStore
from flowforge.testing import Recorder


@step(emits="text")
def read_text(path: str) -> str:
    return f"  the words of {path}  "


@step
def clean(text: str) -> str:
    return text.strip()


@step(emits="words")
async def split_words(text: str) -> list[str]:
    await asyncio.sleep(0)
    return text.split()


@step
def count(words: list[str]) -> dict[str, object]:
    return {"count": len(words), "first": words[0]}


@step(emits=None)
def nothing(value: object = None) -> None:
    return None


def sink_of(flow: Flow, *routines: Routine) -> Recorder:
    recorder = Recorder()
    flow.chain(*routines, recorder)
    return recorder


# -- the decorator -------------------------------------------------------------


def test_step_makes_a_routine_class_named_and_registered_like_the_function() -> None:
    routine = clean()

    assert issubclass(clean, Routine)
    assert clean.__name__ == "clean"
    assert ROUTINE_TYPES["test_function_routine:clean"] is clean
    assert list(routine.slots) == ["input"] and list(routine.events) == ["output"]


def test_step_keeps_the_function_callable_for_unit_tests() -> None:
    assert clean.function("  x ") == "x"
    assert clean().function("  y ") == "y"


def test_step_options_name_the_slot_and_event() -> None:
    @step(emits="total", slot="numbers")
    def add(a: int, b: int = 0) -> int:
        return a + b

    routine = add()

    assert list(routine.slots) == ["numbers"] and list(routine.events) == ["total"]


def test_step_without_event_declares_none() -> None:
    assert list(nothing().events) == []


def test_sync_step_emits_its_value_under_the_event_name() -> None:
    flow = Flow()
    sink = sink_of(flow, clean())

    job = flow.execute("clean", {"text": " hi "})

    assert job.status is JobStatus.COMPLETED
    assert sink.received == [{"output": "hi"}]


def test_async_step_is_awaited_by_execute_and_execute_async() -> None:
    flow = Flow()
    sink = sink_of(flow, split_words())

    flow.execute("split_words", {"text": "a b"})
    asyncio.run(flow.execute_async("split_words", {"text": "c"}))

    assert split_words().slots["input"].is_async
    assert sink.received == [{"words": ["a", "b"]}, {"words": ["c"]}]


def test_dict_return_is_emitted_key_by_key() -> None:
    flow = Flow()
    sink = sink_of(flow, count())

    flow.execute("count", {"words": ["x", "y"]})

    assert sink.received == [{"count": 2, "first": "x"}]


def test_none_return_emits_nothing() -> None:
    @step
    def maybe(n: int) -> int | None:
        return n if n > 0 else None

    flow = Flow()
    sink = sink_of(flow, maybe())

    flow.execute("maybe", {"n": 0})

    assert sink.received == []


def test_parameters_bind_like_any_handler_with_defaults_and_kwargs() -> None:
    @step
    def describe(name: str, greeting: str = "hello", **rest: object) -> str:
        return f"{greeting} {name} {sorted(rest)}"

    flow = Flow()
    sink = sink_of(flow, describe())

    flow.execute("describe", {"name": "ada", "age": 36})

    assert sink.received == [{"output": "hello ada ['age']"}]


def test_missing_required_parameter_fails_the_delivery_naming_the_key() -> None:
    @step
    def needs(a: int, b: int) -> int:
        return a + b

    flow = Flow()
    flow.add_routine(needs())

    job = flow.execute("needs", {"a": 1})

    assert job.status is JobStatus.FAILED
    assert "'b' is required" in job.errors[0].message


def test_a_value_from_a_step_without_event_fails_the_delivery() -> None:
    @step(emits=None)
    def sink(value: int) -> int:
        return value

    flow = Flow()
    flow.add_routine(sink())

    job = flow.execute("sink", {"value": 1})

    assert job.errors[0].error_type == "DefinitionError"
    assert "declares no event (emits=None)" in job.errors[0].message


def test_a_dict_with_non_str_keys_fails_the_delivery() -> None:
    @step
    def numbers(n: int) -> dict[int, int]:
        return {1: n}

    flow = Flow()
    flow.add_routine(numbers())

    job = flow.execute("numbers", {"n": 1})

    assert "returned a dict with the key 1" in job.errors[0].message


def test_step_raises_and_its_error_handler_applies() -> None:
    calls = []

    @step
    def flaky(n: int) -> int:
        calls.append(n)
        if len(calls) < 3:
            raise ValueError("not yet")
        return n

    routine = flaky()
    routine.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, retry_delay=0))
    flow = Flow()
    sink = sink_of(flow, routine)

    job = flow.execute("flaky", {"n": 7})

    assert job.status is JobStatus.COMPLETED
    assert calls == [7, 7, 7] and sink.received == [{"output": 7}]


def test_join_step_waits_for_every_connection() -> None:
    @step(join=True)
    def pair(left: int, right: int) -> int:
        return left * right

    @step(emits="left")
    def lefts(n: int) -> int:
        return n

    @step(emits="right")
    def rights(n: int) -> int:
        return n + 1

    flow = Flow()
    flow.chain(lefts(), pair())
    flow.chain(rights(), flow.routines["pair"])
    flow.chain(flow.routines["pair"], sink := Recorder())
    flow.connect("lefts", "left", "rights", "input", {"left": "n"})

    flow.execute("lefts", {"n": 2})

    assert sink.received == [{"output": 6}]


def test_async_step_timeout_fails_the_delivery() -> None:
    @step(timeout=0.01)
    async def slow() -> None:
        await asyncio.sleep(10)

    flow = Flow()
    flow.add_routine(slow())

    job = flow.execute("slow", {})

    assert job.errors[0].error_type == "TimeoutError"


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (lambda text: text, "function made with def"),
        (Recorder, "function made with def"),
        (functools.partial(print, "x"), "function made with def"),
        (len, "function made with def"),
    ],
    ids=["lambda", "class", "partial", "builtin"],
)
def test_step_refuses_what_is_not_a_def_function(target: object, match: str) -> None:
    with pytest.raises(ArgumentTypeError, match=match):
        step(target)  # type: ignore[call-overload]


def test_step_refuses_a_generator_function() -> None:
    def numbers() -> object:
        yield 1

    with pytest.raises(DefinitionError, match="generator function"):
        step(numbers)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"emits": "not valid"}, "event name 'not valid' is not valid"),
        ({"slot": "class"}, "slot name 'class' is not valid"),
        ({"merge_strategy": "newest"}, "unknown merge_strategy 'newest'"),
        ({"timeout": 1.0}, "a timeout needs an async def handler"),
    ],
    ids=["event-name", "slot-name", "merge-strategy", "timeout-on-sync"],
)
def test_step_refuses_bad_options_when_decorating(
    options: dict[str, object], match: str
) -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(DefinitionError, match=match):
        step(**options)(f)  # type: ignore[call-overload]


def test_the_base_class_cannot_be_used_directly() -> None:
    with pytest.raises(DefinitionError, match="decorate a function"):
        FunctionRoutine()


# -- serialization -------------------------------------------------------------


def test_flow_of_steps_round_trips_through_json_and_runs() -> None:
    flow = Flow("words")
    flow.chain(read_text(), clean(), split_words(), count())
    data = json.loads(json.dumps(flow.serialize()))

    rebuilt = Flow.deserialize(data)
    job = rebuilt.execute("read_text", {"path": "a.txt"})

    assert rebuilt.serialize() == flow.serialize()
    assert [type(r) for r in rebuilt.routines.values()] == [
        read_text,
        clean,
        split_words,
        count,
    ]
    assert job.status is JobStatus.COMPLETED and job.delivery_count == 4


def test_step_routine_keeps_config_stats_and_error_handler_in_its_data() -> None:
    routine = clean()
    routine.set_config(limit=3)
    routine.set_as_optional()

    rebuilt = Routine.deserialize(routine.serialize())

    assert type(rebuilt) is clean
    assert rebuilt.config() == {"limit": 3}
    assert rebuilt.get_error_handler() == routine.get_error_handler()


def test_unregistered_step_name_is_an_unknown_routine_type() -> None:
    data = clean().serialize()
    data["type"] = "test_function_routine:missing"

    with pytest.raises(UnknownRoutineTypeError, match="missing"):
        Routine.deserialize(data)


def test_deserializing_the_base_class_is_refused() -> None:
    data = clean().serialize()
    data["type"] = "flowforge.function_routine:FunctionRoutine"

    with pytest.raises(SerializationError, match="decorate a function"):
        Routine.deserialize(data)


def test_durable_job_of_steps_is_stored_and_resumed_from_the_store(
    tmp_path: Path,
) -> None:
    @step
    def fail_once(words: list[str]) -> int:
        if not failed:
            failed.append(True)
            raise RuntimeError("first run fails")
        return len(words)

    failed: list[bool] = []
    flow = Flow("durable_steps")
    flow.chain(read_text(), clean(), split_words(), fail_once())
    store = SqliteStore(tmp_path / "jobs.db")

    first = flow.execute("read_text", {"path": "x"}, job_id="j", store=store)
    resumed = flow.resume("j", store=store)

    assert first.status is JobStatus.FAILED
    assert resumed.status is JobStatus.COMPLETED
    assert store.load("j").delivery_count == 4
    store.close()


# -- chain ---------------------------------------------------------------------


def test_chain_adds_routines_connects_them_and_returns_their_ids() -> None:
    flow = Flow()

    ids = flow.chain(read_text(), clean(), split_words(), count())

    assert ids == ["read_text", "clean", "split_words", "count"]
    assert [(c.source_id, c.event, c.target_id, c.slot) for c in flow.connections] == [
        ("read_text", "text", "clean", "input"),
        ("clean", "output", "split_words", "input"),
        ("split_words", "words", "count", "input"),
    ]


def test_chain_renames_a_returned_value_to_the_next_steps_parameter() -> None:
    @step
    def shout(message: str) -> str:
        return message.upper()

    flow = Flow()
    flow.chain(clean(), shout(), sink := Recorder())

    flow.execute("clean", {"text": " hi "})

    assert flow.connections[0].param_mapping == {"output": "message"}
    assert sink.received == [{"output": "HI"}]


def test_chain_maps_a_routines_single_output_param_to_a_step() -> None:
    class Source(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_event("out", ["data"])

        def __call__(self, data: str = "") -> None:
            self.emit("out", data=data)

    flow = Flow()
    flow.chain(Source(), clean(), sink := Recorder())

    flow.execute("source", {"data": " x "})

    assert sink.received == [{"output": "x"}]


def test_chain_leaves_keys_alone_when_the_names_already_match() -> None:
    flow = Flow()

    flow.chain(read_text(), clean())

    assert flow.connections[0].param_mapping == {}


def test_chain_reuses_routines_already_in_the_flow_to_fan_out() -> None:
    flow = Flow()
    source = clean()
    flow.add_routine(source, "first")
    left, right = Recorder(), Recorder()

    flow.chain(source, left)
    ids = flow.chain(source, right)
    flow.execute("first", {"text": "a "})

    assert ids == ["first", "recorder_2"]
    assert left.received == right.received == [{"output": "a"}]


def test_chain_of_one_routine_only_adds_it() -> None:
    flow = Flow()

    assert flow.chain(clean()) == ["clean"]
    assert flow.connections == ()


def test_chain_refuses_nothing_to_chain() -> None:
    with pytest.raises(DefinitionError, match="at least one routine"):
        Flow().chain()


def test_chain_refuses_a_routine_class_and_says_to_call_it() -> None:
    flow = Flow()

    with pytest.raises(
        ArgumentTypeError, match=r"item 1 is the class clean.*clean\(\)"
    ):
        flow.chain(read_text(), clean)  # type: ignore[arg-type]

    assert flow.routines == {}


def test_chain_refuses_other_objects() -> None:
    with pytest.raises(ArgumentTypeError, match="item 0 must be a Routine"):
        Flow().chain("clean")  # type: ignore[arg-type]


def test_chain_refuses_a_routine_with_several_events_and_changes_nothing() -> None:
    class Two(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input")
            self.define_event("a")
            self.define_event("b")

    flow = Flow()

    with pytest.raises(DefinitionError, match="it has 2 events.*flow.connect"):
        flow.chain(clean(), Two(), Recorder())

    assert flow.routines == {} and flow.connections == ()


def test_chain_refuses_a_sink_step_in_the_middle() -> None:
    with pytest.raises(DefinitionError, match="it has 0 events"):
        Flow().chain(nothing(), clean())


def test_chain_refuses_a_routine_with_several_slots() -> None:
    class TwoSlots(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("a")
            self.define_slot("b")

    with pytest.raises(DefinitionError, match="it has 2 slots"):
        Flow().chain(clean(), TwoSlots())


def test_chain_refuses_a_link_made_twice() -> None:
    a, b = clean(), Recorder()
    flow = Flow()
    flow.chain(a, b)

    with pytest.raises(DefinitionError, match="twice"):
        flow.chain(a, b)
    with pytest.raises(DefinitionError, match="twice"):
        Flow().chain(a, b, a, b)


def test_chain_refuses_a_routine_whose_init_skipped_super() -> None:
    class Broken(Routine):
        def __init__(self) -> None:
            pass

    with pytest.raises(DefinitionError, match="did not call super"):
        Flow().chain(clean(), Broken())


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
@pytest.mark.parametrize("run_async", [False, True], ids=["execute", "execute_async"])
def test_chain_of_steps_gives_one_result_in_every_strategy(
    strategy: str, run_async: bool
) -> None:
    flow = Flow(execution_strategy=strategy)
    sink = sink_of(flow, read_text(), clean(), split_words(), count())
    params = {"path": "f.txt"}

    if run_async:
        job = asyncio.run(flow.execute_async("read_text", params))
    else:
        job = flow.execute("read_text", params)

    assert job.status is JobStatus.COMPLETED
    assert sink.received == [{"count": 4, "first": "the"}]
    flow.close()


def test_a_correlated_join_step_pairs_its_inputs_by_key() -> None:
    class Records(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_event("out")

        def __call__(self, ids: list[int]) -> None:
            for record_id in reversed(ids):
                self.emit("out", record_id=record_id)

    @step
    def left(record_id: int) -> dict[str, int]:
        return {"record_id": record_id, "left": record_id * 10}

    @step
    def right(record_id: int) -> dict[str, int]:
        if record_id == 2:
            raise ValueError("no right half for 2")
        return {"record_id": record_id, "right": -record_id}

    @step(join=True, correlate="record_id")
    def pair(record_id: int, left: int, right: int) -> list[int]:
        return [record_id, left, right]

    flow = Flow()
    flow.add_routine(Records(), "records")
    flow.add_routine(left())
    lenient = right()
    lenient.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(lenient)
    flow.add_routine(pair())
    for name in ("left", "right"):
        flow.connect("records", "out", name, "input")
        flow.connect(name, "output", "pair", "input")
    flow.chain(flow.routines["pair"], sink := Recorder())

    job = flow.execute("records", {"ids": [1, 2, 3]})

    assert job.status is JobStatus.COMPLETED
    assert sorted(str(r["output"]) for r in sink.received) == [
        "[1, 10, -1]",
        "[3, 30, -3]",
    ]
    assert job.waiting_groups == {("pair", "input"): {2: {1}}}  # left.output only
