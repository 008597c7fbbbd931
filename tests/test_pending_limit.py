"""A job that makes work faster than it does it fails before it fills the memory.

A cycle that emits twice per delivery doubles its pending work at each step;
``Flow(max_pending=...)`` bounds it with a clear failure, in every strategy.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowforge import (
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    ExecutionError,
    Flow,
    JobState,
    JobStatus,
    Routine,
)
from flowforge.store import MemoryStore, SqliteStore, Store


class Doubler(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.double)
        self.define_event("output")

    def double(self, n: int) -> None:
        self.emit("output", n=n + 1)
        self.emit("output", n=n + 1)


def doubling_flow(strategy: str, max_pending: int) -> Flow:
    flow = Flow("doubling", execution_strategy=strategy, max_pending=max_pending)
    flow.add_routine(Doubler(), "double")
    flow.connect("double", "output", "double", "input")
    return flow


def run(flow: Flow, mode: str) -> JobState:
    if mode == "async":
        return asyncio.run(flow.execute_async("double", {"n": 0}))
    return flow.execute("double", {"n": 0})


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_job_that_holds_too_much_pending_work_fails_clearly(
    strategy: str, mode: str
) -> None:
    flow = doubling_flow(strategy, max_pending=50)

    job = run(flow, mode)

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "reached the flow's limit of 50 pending deliveries" in job.error.message
    assert "Flow(max_pending=...)" in job.error.message
    assert len(job.pending) <= 60
    assert job.delivery_count < 100


def test_max_pending_survives_the_flow_round_trip() -> None:
    flow = doubling_flow("sequential", max_pending=7)

    assert Flow.deserialize(flow.serialize()).max_pending == 7


def test_max_pending_must_be_a_positive_int() -> None:
    with pytest.raises(DefinitionError, match="max_pending must be a positive int"):
        Flow(max_pending=0)


def test_the_delivery_limit_still_applies_under_a_generous_pending_bound() -> None:
    flow = doubling_flow("sequential", max_pending=10**6)
    flow.max_deliveries = 200

    job = flow.execute("double", {"n": 0})

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "limit of 200 deliveries" in job.error.message


class Flood(Routine):
    """Emit ``count`` times in one handler call, counting the emits that passed."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.flood)
        self.define_event("output")

    def flood(self, count: int) -> None:
        for n in range(count):
            self.emit("output", n=n)
            self.increment_stat("emitted")


class Counter(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.count)

    def count(self, n: int) -> None:
        self.increment_stat("received")


def flooding_flow(strategy: str, max_pending: int) -> tuple[Flow, Flood, Counter]:
    flood, counter = Flood(), Counter()
    flow = Flow("flood", execution_strategy=strategy, max_pending=max_pending)
    flow.add_routine(flood, "flood")
    flow.add_routine(counter, "counter")
    flow.connect("flood", "output", "counter", "input")
    return flow, flood, counter


def run_flood(flow: Flow, mode: str, count: int, store: Store | None) -> JobState:
    if mode == "async":
        return asyncio.run(flow.execute_async("flood", {"count": count}, store=store))
    return flow.execute("flood", {"count": count}, store=store)


ENGINES = [
    pytest.param("sequential", "sync", False, id="sequential"),
    pytest.param("sequential", "async", False, id="sequential-async"),
    pytest.param("concurrent", "sync", False, id="concurrent"),
    pytest.param("concurrent", "async", False, id="concurrent-async"),
    pytest.param("sequential", "sync", True, id="sequential-durable"),
    pytest.param("concurrent", "sync", True, id="concurrent-durable"),
    pytest.param("sequential", "async", True, id="async-durable"),
]


@pytest.mark.parametrize(("strategy", "mode", "durable"), ENGINES)
def test_one_call_emitting_past_max_pending_fails_at_the_emit_that_crosses_it(
    strategy: str, mode: str, durable: bool
) -> None:
    flow, flood, counter = flooding_flow(strategy, max_pending=5)
    store = MemoryStore() if durable else None

    job = run_flood(flow, mode, 6, store)

    assert flood.stats() == {"emitted": 5}  # the 6th emit raised
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.message.startswith(
        f"job {job.job_id!r} reached the flow's limit of 5 pending deliveries: "
        "routine 'flood' emitted 'output' after 5 emissions in one handler call"
    )
    assert "Flow(max_pending=...)" in job.error.message
    assert counter.stats() == {}
    assert "counter" not in job.routine_states
    assert [(d.routine_id, d.data) for d in job.pending] == [("flood", {"count": 6})]
    if store is not None:
        stored = store.load(job.job_id)
        assert stored.status is JobStatus.FAILED
        assert [d.routine_id for d in stored.pending] == ["flood"]
        assert "counter" not in stored.routine_states


@pytest.mark.parametrize(("strategy", "mode", "durable"), ENGINES)
def test_one_call_may_emit_exactly_max_pending_times(
    strategy: str, mode: str, durable: bool
) -> None:
    flow, _, counter = flooding_flow(strategy, max_pending=5)
    store = MemoryStore() if durable else None

    job = run_flood(flow, mode, 5, store)

    assert job.status is JobStatus.COMPLETED
    assert counter.stats() == {"received": 5}


def test_a_source_emitting_past_max_pending_fails_clearly() -> None:
    class Spring(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_event("output")

        def __call__(self, count: int) -> None:
            for n in range(count):
                self.emit("output", n=n)

    flow = Flow("spring", max_pending=3)
    flow.add_routine(Spring(), "spring")
    flow.add_routine(Counter(), "counter")
    flow.connect("spring", "output", "counter", "input")

    job = flow.execute("spring", {"count": 4})

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "routine 'spring' emitted 'output' after 3 emissions" in job.error.message
    assert "counter" not in job.routine_states


def test_the_emit_past_max_pending_raises_an_execution_error_in_the_handler() -> None:
    caught: list[BaseException] = []

    class Careful(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.flood)
            self.define_event("output")

        def flood(self, count: int) -> None:
            try:
                for n in range(count):
                    self.emit("output", n=n)
            except ExecutionError as error:
                caught.append(error)

    flow = Flow("careful", max_pending=2)
    flow.add_routine(Careful(), "careful")
    flow.add_routine(Counter(), "counter")
    flow.connect("careful", "output", "counter", "input")

    job = flow.execute("careful", {"count": 3})

    assert len(caught) == 1
    with pytest.raises(ExecutionError, match="limit of 2 pending deliveries"):
        raise caught[0]
    assert job.status is JobStatus.COMPLETED  # it caught the error: 2 were sent
    assert job.routine_states["counter"].deliveries == 2


def test_a_call_emitting_past_max_pending_leaves_the_sqlite_store_as_it_was(
    tmp_path: Path,
) -> None:
    flow, _, _ = flooding_flow("sequential", max_pending=5)
    store = SqliteStore(tmp_path / "jobs.db")

    try:
        job = run_flood(flow, "sync", 6, store)
        stored = store.load(job.job_id)
    finally:
        store.close()

    assert stored.status is JobStatus.FAILED
    assert stored.error is not None
    assert "after 5 emissions in one handler call" in stored.error.message
    assert [(d.routine_id, d.data) for d in stored.pending] == [("flood", {"count": 6})]
    assert "counter" not in stored.routine_states
    assert stored.delivery_count == job.delivery_count


def fanning_flow(strategy: str, max_pending: int, sinks: int) -> tuple[Flow, Flood]:
    flood = Flood()
    flow = Flow("fan", execution_strategy=strategy, max_pending=max_pending)
    flow.add_routine(flood, "flood")
    for n in range(sinks):
        flow.add_routine(Counter(), f"sink{n}")
        flow.connect("flood", "output", f"sink{n}", "input")
    return flow, flood


@pytest.mark.parametrize(("strategy", "mode", "durable"), ENGINES)
def test_the_bound_counts_each_emissions_fan_out_not_just_the_emissions(
    strategy: str, mode: str, durable: bool
) -> None:
    flow, flood = fanning_flow(strategy, max_pending=100, sinks=10)
    store = MemoryStore() if durable else None

    job = run_flood(flow, mode, 100, store)  # 100 emits would make 1,000 deliveries

    assert flood.stats() == {"emitted": 10}  # the 11th would make 110
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.message.startswith(
        f"job {job.job_id!r} reached the flow's limit of 100 pending deliveries: "
        "routine 'flood' emitted 'output' after 10 emissions in one handler call "
        "(making 100 deliveries), so the delivery fails"
    )
    assert [(d.routine_id, d.data) for d in job.pending] == [("flood", {"count": 100})]
    assert not any(rid.startswith("sink") for rid in job.routine_states)
    if store is not None:
        assert [d.routine_id for d in store.load(job.job_id).pending] == ["flood"]


@pytest.mark.parametrize(("strategy", "mode", "durable"), ENGINES)
def test_a_fanning_call_may_make_exactly_max_pending_deliveries(
    strategy: str, mode: str, durable: bool
) -> None:
    flow, _ = fanning_flow(strategy, max_pending=30, sinks=3)
    store = MemoryStore() if durable else None

    job = run_flood(flow, mode, 10, store)

    assert job.status is JobStatus.COMPLETED
    assert job.delivery_count == 1 + 30


def test_emissions_of_an_unconnected_event_count_toward_the_bound() -> None:
    class Chatty(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.chat)
            self.define_event("output")
            self.define_event("unheard")

        def chat(self, count: int) -> None:
            self.emit("output", n=0)
            for n in range(count):
                self.emit("unheard", n=n)

    flow = Flow("chatty", max_pending=4)
    flow.add_routine(Chatty(), "chatty")
    flow.add_routine(Counter(), "counter")
    flow.connect("chatty", "output", "counter", "input")

    assert flow.execute("chatty", {"count": 3}).status is JobStatus.COMPLETED
    job = flow.execute("chatty", {"count": 4})
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "emitted 'unheard' after 4 emissions in one handler call," in (
        job.error.message
    )


def test_a_retried_call_counts_its_fan_out_afresh() -> None:
    attempts: list[int] = []

    class Flaky(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.flood)
            self.define_event("output")
            self.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, max_retries=1))

        def flood(self, count: int) -> None:
            attempts.append(count)
            for n in range(count):
                self.emit("output", n=n)
            if len(attempts) == 1:
                raise ValueError("first try fails after its emits")

    flow = Flow("flaky", max_pending=6)
    flow.add_routine(Flaky(), "flaky")
    for n in range(2):
        flow.add_routine(Counter(), f"sink{n}")
        flow.connect("flaky", "output", f"sink{n}", "input")

    job = flow.execute("flaky", {"count": 3})

    assert attempts == [3, 3]
    assert job.status is JobStatus.COMPLETED
    assert job.delivery_count == 1 + 6


@pytest.mark.parametrize(
    ("pattern", "allowed"),
    [
        pytest.param("nnnnwwwww", 9, id="narrow-then-wide"),  # 4 + 5*4 = 24
        pytest.param("wwwwwnnnn", 9, id="wide-then-narrow"),
        pytest.param("nwnwnwnwnw", 9, id="alternating"),  # the 10th makes 26
        pytest.param("uuuuuuuuuwwwww", 10, id="unheard-then-wide"),  # 10 emissions
        pytest.param("wwwwwwn", 6, id="wide-past-the-bound"),  # 6*4 = 24, then 25
    ],
)
def test_the_bound_counts_mixed_events_by_each_ones_fan_out(
    pattern: str, allowed: int
) -> None:
    events = {"n": "narrow", "w": "wide", "u": "unheard"}

    class Mixed(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.mix)
            for event in events.values():
                self.define_event(event)

        def mix(self, pattern: str) -> None:
            for n, key in enumerate(pattern):
                self.emit(events[key], n=n)
                self.increment_stat("emitted")

    flow = Flow("mixed", max_pending=24 if "u" not in pattern else 10)
    mixed = Mixed()
    flow.add_routine(mixed, "mixed")
    flow.add_routine(Counter(), "narrow")
    flow.connect("mixed", "narrow", "narrow", "input")
    for n in range(4):
        flow.add_routine(Counter(), f"wide{n}")
        flow.connect("mixed", "wide", f"wide{n}", "input")

    job = flow.execute("mixed", {"pattern": pattern})

    assert mixed.stats() == {"emitted": allowed}
    expected = JobStatus.COMPLETED if allowed == len(pattern) else JobStatus.FAILED
    assert job.status is expected
