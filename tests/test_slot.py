"""Slot: merge strategies, handler binding, and how both behave inside a job."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import pytest

from flowforge import DefinitionError, ErrorHandler, Flow, JobStatus, Routine, Slot
from flowforge.testing import Recorder

# -- handlers of every shape the binding rules cover -----------------------------


def takes_every_key(**data: object) -> object:
    return data


def takes_a_and_b(a: object, b: object) -> object:
    return {"a": a, "b": b}


def takes_a_and_optional_b(a: object, b: object = "default") -> object:
    return {"a": a, "b": b}


def takes_payload(payload: object) -> object:
    return payload


def takes_a(a: object) -> object:
    return a


def takes_nothing() -> object:
    return "called"


def takes_a_and_b_keyword_only(*, a: object, b: object) -> object:
    return {"a": a, "b": b}


def takes_a_keyword_only(*, a: object) -> object:
    return a


def takes_a_positional_only(a: object, /) -> object:
    return a


def takes_a_and_the_rest(a: object, **rest: object) -> object:
    return {"a": a, "rest": rest}


def takes_a_and_b_positional_only(a: object, b: object, /) -> object:
    return (a, b)


# -- routines ---------------------------------------------------------------------


class Burst(Routine):
    """A source that emits each dict of ``batches`` on ``output``, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self, batches: Sequence[dict[str, object]] = ()) -> None:
        for batch in batches:
            self.emit("output", **batch)


class AppendSink(Routine):
    """Record a deep copy of its ``append`` buffer on every arrival."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, object]] = []
        self.define_slot("input", self.collect, merge_strategy="append")

    def collect(self, **data: object) -> None:
        self.received.append(copy.deepcopy(data))


def add_numbers(old: dict[str, object], new: dict[str, object]) -> dict[str, object]:
    merged = dict(old)
    for key, value in new.items():
        previous = merged.get(key, 0)
        assert isinstance(previous, int) and isinstance(value, int)
        merged[key] = previous + value
    return merged


class SumSink(Routine):
    """Sum numbers per key with a custom merge function."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, object]] = []
        self.define_slot("input", self.collect, merge_strategy=add_numbers)

    def collect(self, **data: object) -> None:
        self.received.append(dict(data))


def merge_into_list(old: dict[str, object], new: dict[str, object]) -> list[object]:
    return [old, new]


class BadMergeSink(Routine):
    """A slot whose merge function returns a list instead of a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot(
            "input",
            self.collect,
            merge_strategy=merge_into_list,  # type: ignore[arg-type]  # on purpose
        )

    def collect(self, **data: object) -> None:
        self.set_stat("called", True)


class NeedsAB(Routine):
    """A handler that requires keys ``a`` and ``b``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, a: object, b: object) -> None:
        self.set_stat("called", True)


class PositionalOnly(Routine):
    """A handler that takes several positional-only parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, a: object, b: object, /) -> None:
        self.set_stat("called", True)


# -- construction -----------------------------------------------------------------


def test_slot_keeps_its_definition() -> None:
    slot = Slot("input", takes_a, "append", join=True)

    assert (slot.name, slot.handler, slot.merge_strategy, slot.is_join) == (
        "input",
        takes_a,
        "append",
        True,
    )


def test_slot_defaults_to_override_without_join() -> None:
    slot = Slot("input")

    assert (slot.handler, slot.merge_strategy, slot.is_join) == (
        None,
        "override",
        False,
    )


@pytest.mark.parametrize(
    "name",
    ["has space", "1abc", "class", "", "with-dash"],
    ids=["space", "leading_digit", "keyword", "empty", "dash"],
)
def test_slot_rejects_a_name_that_is_not_an_identifier(name: str) -> None:
    with pytest.raises(DefinitionError, match="slot name .* is not valid"):
        Slot(name)


def test_slot_rejects_a_handler_that_is_not_callable() -> None:
    with pytest.raises(TypeError, match="handler must be callable"):
        Slot("input", handler=42)  # type: ignore[arg-type]  # wrong on purpose


def test_slot_rejects_an_unknown_merge_strategy_name() -> None:
    with pytest.raises(DefinitionError, match="unknown merge_strategy 'sum'"):
        Slot("input", merge_strategy="sum")


def test_define_slot_rejects_an_unknown_merge_strategy_name() -> None:
    routine = Recorder()

    with pytest.raises(DefinitionError, match="unknown merge_strategy 'latest'"):
        routine.define_slot("other", merge_strategy="latest")


def test_slot_repr_shows_name_handler_and_options() -> None:
    slot = Slot("input", takes_a, "append")

    text = repr(slot)

    assert "'input'" in text
    assert "takes_a" in text
    assert "'append'" in text


# -- merge strategies, unit level ---------------------------------------------------


def test_override_merge_replaces_earlier_values_key_by_key() -> None:
    slot = Slot("input")

    merged = slot.merge({"a": 1, "b": 1}, {"a": 2})

    assert merged == {"a": 2, "b": 1}


def test_override_merge_leaves_the_old_buffer_unchanged() -> None:
    slot = Slot("input")
    old: dict[str, object] = {"a": 1}

    slot.merge(old, {"a": 2})

    assert old == {"a": 1}


def test_append_merge_collects_every_value_in_a_list() -> None:
    slot = Slot("input", merge_strategy="append")
    first = slot.merge(None, {"a": 1})

    merged = slot.merge(first, {"a": 2, "b": 3})

    assert merged == {"a": [1, 2], "b": [3]}


def test_custom_merge_receives_an_empty_old_buffer_on_first_arrival() -> None:
    seen: list[tuple[dict[str, object], dict[str, object]]] = []

    def remember(old: dict[str, object], new: dict[str, object]) -> dict[str, object]:
        seen.append((dict(old), dict(new)))
        return new

    slot = Slot("input", merge_strategy=remember)

    slot.merge(None, {"a": 1})

    assert seen == [({}, {"a": 1})]


def test_custom_merge_result_becomes_the_buffer() -> None:
    slot = Slot("input", merge_strategy=add_numbers)

    merged = slot.merge({"n": 1}, {"n": 2})

    assert merged == {"n": 3}


def test_custom_merge_returning_a_non_dict_raises_type_error() -> None:
    slot = Slot("input", merge_strategy=merge_into_list)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="returned list; it must return"):
        slot.merge(None, {"a": 1})


# -- merge strategies inside a job --------------------------------------------------


def test_override_buffer_persists_across_deliveries_of_one_job(flow: Flow) -> None:
    flow.add_routine(Burst(), "source")
    sink = Recorder()
    flow.add_routine(sink, "sink")
    flow.connect("source", "output", "sink", "input")

    flow.execute("source", {"batches": [{"a": 1, "b": 1}, {"a": 2}]})

    assert sink.received == [{"a": 1, "b": 1}, {"a": 2, "b": 1}]


def test_append_buffer_lists_every_value_of_one_job(flow: Flow) -> None:
    flow.add_routine(Burst(), "source")
    sink = AppendSink()
    flow.add_routine(sink, "sink")
    flow.connect("source", "output", "sink", "input")

    flow.execute("source", {"batches": [{"v": 1}, {"v": 2}]})

    assert sink.received == [{"v": [1]}, {"v": [1, 2]}]


def test_custom_merge_function_builds_the_buffer_in_a_job(flow: Flow) -> None:
    flow.add_routine(Burst(), "source")
    sink = SumSink()
    flow.add_routine(sink, "sink")
    flow.connect("source", "output", "sink", "input")

    flow.execute("source", {"batches": [{"n": 1}, {"n": 2}, {"n": 4}]})

    assert sink.received == [{"n": 1}, {"n": 3}, {"n": 7}]


def test_custom_merge_returning_a_non_dict_fails_the_delivery(flow: Flow) -> None:
    flow.add_routine(BadMergeSink(), "sink")

    job = flow.execute("sink", {"a": 1})

    assert job.status is JobStatus.FAILED
    assert [error.error_type for error in job.errors] == ["TypeError"]


def test_slot_without_handler_only_collects_data(flow: Flow) -> None:
    routine = Recorder()
    routine.define_slot("collect")
    flow.add_routine(routine, "sink")

    job = flow.execute("sink", {"a": 1}, entry_slot="collect")

    assert job.status is JobStatus.COMPLETED
    assert job.slot_buffers[("sink", "collect")] == {"a": 1}


# -- handler binding ------------------------------------------------------------------

BINDING_CASES = [
    pytest.param(
        takes_every_key, {"a": 1, "z": 2}, {"a": 1, "z": 2}, id="var_keyword_every_key"
    ),
    pytest.param(takes_a_and_b, {"b": 2, "a": 1}, {"a": 1, "b": 2}, id="by_name"),
    pytest.param(
        takes_a_and_b, {"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2}, id="extra_ignored"
    ),
    pytest.param(
        takes_a_and_optional_b, {"a": 1, "b": 2}, {"a": 1, "b": 2}, id="optional_given"
    ),
    pytest.param(
        takes_a_and_optional_b,
        {"a": 1},
        {"a": 1, "b": "default"},
        id="optional_missing",
    ),
    pytest.param(
        takes_payload, {"a": 1, "b": 2}, {"a": 1, "b": 2}, id="single_unmatched_dict"
    ),
    pytest.param(takes_a, {"a": 1, "b": 2}, 1, id="single_matched_value"),
    pytest.param(takes_nothing, {"a": 1}, "called", id="zero_params"),
    pytest.param(
        takes_a_and_b_keyword_only,
        {"a": 1, "b": 2},
        {"a": 1, "b": 2},
        id="keyword_only",
    ),
    pytest.param(takes_a_keyword_only, {"a": 1, "b": 2}, 1, id="single_keyword_only"),
    pytest.param(takes_a_positional_only, {"a": 1}, 1, id="single_positional_only"),
    pytest.param(
        takes_a_and_the_rest,
        {"a": 1, "b": 2},
        {"a": 1, "rest": {"b": 2}},
        id="named_and_var_keyword",
    ),
]


@pytest.mark.parametrize(("handler", "buffer", "expected"), BINDING_CASES)
def test_slot_binds_buffer_keys_to_handler_parameters(
    handler: Callable[..., object], buffer: dict[str, object], expected: object
) -> None:
    slot = Slot("input", handler)

    result = slot.invoke(buffer, "worker")

    assert result == expected


@pytest.mark.parametrize(
    "handler",
    [takes_a_and_b, takes_a_and_b_keyword_only, takes_a_and_the_rest],
    ids=["by_name", "keyword_only", "with_var_keyword"],
)
def test_missing_required_key_raises_definition_error_naming_routine_slot_key(
    handler: Callable[..., object],
) -> None:
    slot = Slot("input", handler)

    with pytest.raises(DefinitionError, match=r"'worker'.*'input'.*'a'"):
        slot.invoke({"b": 2}, "worker")


def test_missing_required_key_fails_the_delivery_with_a_recorded_error(
    flow: Flow,
) -> None:
    flow.add_routine(NeedsAB(), "worker")

    job = flow.execute("worker", {"a": 1})

    assert job.status is JobStatus.FAILED
    assert job.errors[0].error_type == "DefinitionError"
    assert "'worker'" in job.errors[0].message
    assert "'input'" in job.errors[0].message
    assert "'b'" in job.errors[0].message


def test_missing_required_key_never_calls_the_handler(flow: Flow) -> None:
    routine = NeedsAB()
    flow.add_routine(routine, "worker")

    flow.execute("worker", {"a": 1})

    assert routine.stats() == {}


def test_bound_method_handler_gets_values_by_name(flow: Flow) -> None:
    routine = NeedsAB()
    flow.add_routine(routine, "worker")

    job = flow.execute("worker", {"a": 1, "b": 2, "c": 3})

    assert job.status is JobStatus.COMPLETED
    assert routine.stats() == {"called": True}


def test_several_positional_only_parameters_are_refused_at_define_slot() -> None:
    with pytest.raises(DefinitionError, match="positional-only parameters"):
        PositionalOnly()


def test_slot_refuses_a_plain_function_with_several_positional_only_params() -> None:
    with pytest.raises(DefinitionError, match="slot 'input'.*positional-only"):
        Slot("input", takes_a_and_b_positional_only)


# -- undoing a failed attempt's append ----------------------------------------------


class Emitter(Routine):
    """Emits each of ``values`` as ``v``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("out", ["v"])

    def __call__(self, values: list[int]) -> None:
        for value in values:
            self.emit("out", v=value)


class Batch(Routine):
    """An append slot whose first attempt on three values changes them, then raises."""

    def __init__(self, change: Callable[[list[int]], None]) -> None:
        super().__init__()
        self.change = change
        self.seen: list[list[int]] = []
        self.define_slot("input", self.handle, merge_strategy="append")

    def handle(self, v: list[int]) -> None:
        self.seen.append(list(v))
        if len(v) == 3 and not self.get_config("failed"):
            self.set_config(failed=True)
            self.change(v)
            raise ConnectionError("flaky")


def run_batch(change: Callable[[list[int]], None]) -> tuple[Flow, Batch]:
    flow = Flow()
    flow.add_routine(Emitter(), "source")
    batch = Batch(change)
    batch.set_error_handler(ErrorHandler("retry", max_retries=1, retry_delay=0))
    flow.add_routine(batch, "batch")
    flow.connect("source", "out", "batch", "input")
    return flow, batch


def test_retry_after_the_handler_reordered_its_list_sees_each_value_once() -> None:
    flow, batch = run_batch(lambda values: values.sort())

    job = flow.execute("source", {"values": [3, 1, 2]})

    assert job.status is JobStatus.COMPLETED
    assert batch.seen == [[3], [3, 1], [3, 1, 2], [1, 3, 2]]
    assert job.slot_buffers[("batch", "input")] == {"v": [1, 3, 2]}


def test_retry_after_the_handler_emptied_its_list_runs_on_what_is_left() -> None:
    flow, batch = run_batch(lambda values: values.clear())

    job = flow.execute("source", {"values": [3, 1, 2]})

    assert job.status is JobStatus.COMPLETED
    assert batch.seen[-1] == [2]


def test_retry_after_the_handler_took_out_its_own_value_does_not_take_another() -> None:
    flow, batch = run_batch(lambda values: values.remove(2))

    job = flow.execute("source", {"values": [3, 1, 2]})

    assert job.status is JobStatus.COMPLETED
    assert batch.seen[-1] == [3, 1, 2]
