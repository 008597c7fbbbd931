"""The routine harness of ``flowforge.testing``: ``deliver`` and ``deliver_async``."""

from __future__ import annotations

import asyncio

import pytest

from flowforge import (
    ArgumentTypeError,
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    ExecutionError,
    Routine,
    UnknownPortError,
    current_delivery,
    step,
)
from flowforge.testing import Outcome, Recorder, deliver, deliver_async


class Scale(Routine):
    """Two slots: ``input`` scales a value, ``every`` sums what it collected."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.scale)
        self.define_slot("every", self.total, merge_strategy="append")
        self.define_event("scaled", ["value"])

    def scale(self, value: int) -> None:
        self.increment_stat("calls")
        self.emit("scaled", value=value * 10)

    def total(self, value: list[int]) -> None:
        if len(value) > 3:
            raise ValueError("too many values")
        self.emit("scaled", value=sum(value))


class Source(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("out")

    def __call__(self, count: int = 2) -> None:
        for n in range(count):
            self.emit("out", n=n)


@step(emits="text")
def clean(text: str) -> str:
    return text.strip()


@step
async def slow_upper(text: str) -> str:
    await asyncio.sleep(0)
    return text.upper()


def test_deliver_returns_emissions_stats_and_no_error() -> None:
    outcome = deliver(Scale(), {"value": 2}, slot="input")

    assert outcome == Outcome(
        emissions=[("scaled", {"value": 20})],
        error=None,
        stats={"calls": 1},
        buffer={"value": 2},
    )


def test_deliver_to_a_step_returns_its_value_as_emitted() -> None:
    outcome = deliver(clean(), {"text": "  hi "})

    assert outcome.payloads("text") == [{"text": "hi"}]
    assert outcome.payloads("other") == []


def test_deliver_runs_an_async_handler_on_a_private_loop() -> None:
    outcome = deliver(slow_upper(), {"text": "a"})

    assert outcome.emissions == [("output", {"output": "A"})]


def test_deliver_async_awaits_on_the_running_loop() -> None:
    async def main() -> Outcome:
        return await deliver_async(slow_upper(), {"text": "b"})

    assert asyncio.run(main()).emissions == [("output", {"output": "B"})]


def test_deliver_async_runs_plain_handlers_too() -> None:
    outcome = asyncio.run(deliver_async(clean(), {"text": " c "}))

    assert outcome.emissions == [("text", {"text": "c"})]


def test_deliver_refuses_an_async_handler_inside_a_running_loop() -> None:
    async def main() -> None:
        deliver(slow_upper(), {"text": "a"})

    with pytest.raises(ExecutionError, match="await deliver_async"):
        asyncio.run(main())


def test_deliver_returns_the_error_and_discards_the_emissions() -> None:
    outcome = deliver(Scale(), {"value": 4}, slot="every", buffer={"value": [1, 2, 3]})

    assert isinstance(outcome.error, ValueError)
    assert str(outcome.error) == "too many values"
    assert outcome.emissions == []
    assert outcome.buffer == {"value": [1, 2, 3]}


def test_deliver_merges_into_the_given_buffer_without_changing_it() -> None:
    buffer = {"value": [1, 2]}

    outcome = deliver(Scale(), {"value": 3}, slot="every", buffer=buffer)

    assert outcome.emissions == [("scaled", {"value": 6})]
    assert outcome.buffer == {"value": [1, 2, 3]}
    assert buffer == {"value": [1, 2]}


def test_deliver_checks_emissions_like_a_job() -> None:
    class Undeclared(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.handle)
            self.define_event("out", ["a"])

        def handle(self, a: int) -> None:
            self.emit("out", a=a, b=2)

    outcome = deliver(Undeclared(), {"a": 1})

    assert isinstance(outcome.error, DefinitionError)
    assert "undeclared keys ['b']" in str(outcome.error)


def test_deliver_reports_a_missing_parameter_as_the_job_would() -> None:
    outcome = deliver(Scale(), {"other": 1}, slot="input")

    assert isinstance(outcome.error, TypeError)


def test_deliver_reports_a_plain_handler_that_returns_an_awaitable() -> None:
    class Forgetful(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.handle)

        def handle(self, **data: object) -> object:
            return asyncio.sleep(0)

    outcome = deliver(Forgetful(), {})

    assert isinstance(outcome.error, ExecutionError)
    assert "cannot await" in str(outcome.error)


def test_deliver_calls_a_source_with_keyword_arguments() -> None:
    outcome = deliver(Source(), {"count": 3})

    assert outcome.payloads("out") == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert outcome.buffer is None


def test_deliver_makes_the_delivery_known_to_the_handler() -> None:
    seen = []

    class Who(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.handle)

        def handle(self, **data: object) -> None:
            delivery = current_delivery()
            seen.append((delivery.delivery_key, delivery.slot, delivery.attempt))

    deliver(Who(), {})

    assert seen == [(("test-job", "who", 0), "input", 0)]


def test_deliver_does_not_apply_the_routines_error_handler() -> None:
    recorder = Recorder()
    recorder.set_config(fail_times=1)
    recorder.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, retry_delay=0))

    outcome = deliver(recorder, {"n": 1})

    assert isinstance(outcome.error, RuntimeError)
    assert deliver(recorder, {"n": 2}).error is None
    assert recorder.received == [{"n": 2}]


def test_deliver_fires_a_join_at_once() -> None:
    @step(join=True)
    def pair(left: int, right: int) -> int:
        return left + right

    outcome = deliver(pair(), {"left": 1, "right": 2})

    assert outcome.emissions == [("output", {"output": 3})]


def test_deliver_applies_an_async_slots_timeout() -> None:
    @step(timeout=0.01)
    async def stuck() -> None:
        await asyncio.sleep(10)

    outcome = deliver(stuck(), {})

    assert isinstance(outcome.error, TimeoutError)
    assert "took longer than its slot 'input' allows" in str(outcome.error)


def test_deliver_leaves_no_delivery_behind() -> None:
    deliver(clean(), {"text": "x"})

    with pytest.raises(ExecutionError, match="no delivery is being handled"):
        current_delivery()


def test_deliver_needs_a_slot_name_when_there_are_several() -> None:
    with pytest.raises(DefinitionError, match=r"several slots \['input', 'every'\]"):
        deliver(Scale(), {"value": 1})


def test_deliver_refuses_an_unknown_slot() -> None:
    with pytest.raises(UnknownPortError, match="no slot 'missing'"):
        deliver(Scale(), {}, slot="missing")


def test_deliver_refuses_what_is_not_a_routine() -> None:
    with pytest.raises(ArgumentTypeError, match="deliver expects a Routine"):
        deliver(clean, {})  # type: ignore[arg-type]


def test_deliver_refuses_data_with_keys_that_are_not_str() -> None:
    with pytest.raises(ArgumentTypeError, match="data must be a mapping with str"):
        deliver(clean(), {1: "x"})  # type: ignore[dict-item]


def test_deliver_refuses_a_buffer_that_is_not_a_mapping() -> None:
    with pytest.raises(ArgumentTypeError, match="buffer must be a mapping with str"):
        deliver(clean(), {"text": "x"}, buffer=["x"])  # type: ignore[arg-type]


def test_deliver_reports_a_failing_merge_function_and_keeps_the_buffer() -> None:
    def merge(old: dict[str, object], new: dict[str, object]) -> dict[str, object]:
        raise ValueError("cannot merge")

    @step(merge_strategy=merge)
    def echo(text: str) -> str:
        return text

    outcome = deliver(echo(), {"text": "b"}, buffer={"text": "a"})

    assert isinstance(outcome.error, ValueError)
    assert outcome.buffer == {"text": "a"} and outcome.emissions == []


def test_deliver_with_override_merges_new_keys_over_the_buffer() -> None:
    @step
    def describe(name: str, greeting: str = "hello") -> str:
        return f"{greeting} {name}"

    outcome = deliver(describe(), {"name": "ada"}, buffer={"greeting": "hi"})

    assert outcome.payloads("output") == [{"output": "hi ada"}]
    assert outcome.buffer == {"greeting": "hi", "name": "ada"}


def test_deliver_refuses_a_routine_whose_init_skipped_super() -> None:
    class Broken(Routine):
        def __init__(self) -> None:
            pass

    with pytest.raises(DefinitionError, match="did not call super"):
        deliver(Broken(), {})


def test_deliver_keeps_a_timeout_error_the_handler_raised_itself() -> None:
    @step(timeout=5.0)
    async def gives_up() -> None:
        raise TimeoutError("upstream timed out")

    outcome = deliver(gives_up(), {})

    assert isinstance(outcome.error, TimeoutError)
    assert str(outcome.error) == "upstream timed out"


def test_deliver_awaits_an_async_source() -> None:
    class AsyncSource(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_event("out")

        async def __call__(self, n: int = 1) -> None:  # type: ignore[override]  # async
            await asyncio.sleep(0)
            self.emit("out", n=n)

    outcome = deliver(AsyncSource(), {"n": 5})

    assert outcome.emissions == [("out", {"n": 5})]
