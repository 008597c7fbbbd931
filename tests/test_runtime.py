"""Running a job: entry rules, order, joins, isolation, stats, limits, scale."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence

import pytest

from flowforge import (
    DefinitionError,
    ErrorHandler,
    Flow,
    JobState,
    JobStatus,
    Routine,
    UnknownPortError,
    current_delivery,
)
from flowforge.testing import Recorder


class Greeter(Routine):
    """A source routine: records each call's arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.define_event("output")

    def __call__(self, name: str, punctuation: str = "!") -> None:
        self.calls.append((name, punctuation))


class Script(Routine):
    """A source that emits the ``(event, data)`` pairs it is given, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")
        self.define_event("left")
        self.define_event("right")

    def __call__(self, emissions: Sequence[tuple[str, dict[str, object]]] = ()) -> None:
        for event, data in emissions:
            self.emit(event, **data)


class TwoSlots(Routine):
    """A routine with two slots that records which one received what."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[str, dict[str, object]]] = []
        self.define_slot("left", self.on_left)
        self.define_slot("right", self.on_right)

    def on_left(self, **data: object) -> None:
        self.received.append(("left", data))

    def on_right(self, **data: object) -> None:
        self.received.append(("right", data))


class Portless(Routine):
    """A routine with neither a slot nor a ``__call__``."""


class Node(Routine):
    """Append its routine id to the ``log`` it receives, then pass it on."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, log: list[str]) -> None:
        log.append(current_delivery().routine_id)
        self.emit("output", log=log)


class EmitThenFail(Routine):
    """Emit its input on ``output``, then raise."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, **data: object) -> None:
        self.emit("output", **data)
        raise RuntimeError("failed after emitting")


class FailingSource(Routine):
    """A source that emits its params, then raises."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self, **params: object) -> None:
        self.emit("output", **params)
        raise RuntimeError("source failed after emitting")


class AppendSink(Routine):
    """Record a deep copy of its ``append`` buffer; wait on a barrier if given."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, object]] = []
        self.define_slot("input", self.collect, merge_strategy="append")

    def collect(self, **data: object) -> None:
        barrier = self.get_config("barrier")
        if isinstance(barrier, threading.Barrier):
            barrier.wait()
        self.received.append(copy.deepcopy(data))


class Counter(Routine):
    """Count its runs in its own stats."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.count)

    def count(self) -> None:
        self.increment_stat("count")


class Joiner(Routine):
    """A join slot that records each time it fires."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, object]] = []
        self.define_slot("inputs", self.handle, join=True)

    def handle(self, **data: object) -> None:
        self.calls.append(dict(data))


class Link(Routine):
    """One link of a long chain: pass ``hops + 1`` on."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, hops: int) -> None:
        self.emit("output", hops=hops + 1)


class Countdown(Routine):
    """Emit ``n - 1`` to itself until ``n`` reaches 1."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("again")

    def handle(self, n: int) -> None:
        if n > 1:
            self.emit("again", n=n - 1)


class Forever(Routine):
    """Emit to itself on every delivery, never stopping."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("again")

    def handle(self) -> None:
        self.emit("again")


def continue_on_errors(flow: Flow) -> Flow:
    flow.set_error_handler(ErrorHandler("continue"))
    return flow


# -- entry ----------------------------------------------------------------------------


def test_source_routine_is_called_with_entry_params_as_keywords(flow: Flow) -> None:
    greeter = Greeter()
    flow.add_routine(greeter, "greeter")

    job = flow.execute("greeter", {"name": "ada", "punctuation": "?"})

    assert job.status is JobStatus.COMPLETED
    assert greeter.calls == [("ada", "?")]


def test_source_routine_runs_without_entry_params(
    flow: Flow,
) -> None:
    script = Script()
    flow.add_routine(script, "script")

    job = flow.execute("script")

    assert job.status is JobStatus.COMPLETED


def test_entry_params_go_to_the_only_slot_of_a_non_source_routine(
    flow: Flow,
) -> None:
    sink = Recorder()
    flow.add_routine(sink, "sink")

    flow.execute("sink", {"a": 1})

    assert sink.received == [{"a": 1}]


def test_entry_slot_chooses_the_slot_that_receives_the_params(flow: Flow) -> None:
    routine = TwoSlots()
    flow.add_routine(routine, "two")

    flow.execute("two", {"a": 1}, entry_slot="right")

    assert routine.received == [("right", {"a": 1})]


def test_entry_with_several_slots_and_no_choice_lists_the_slots(flow: Flow) -> None:
    flow.add_routine(TwoSlots(), "two")

    with pytest.raises(DefinitionError, match=r"several slots \['left', 'right'\]"):
        flow.execute("two", {"a": 1})


def test_entry_without_slots_or_call_is_refused(flow: Flow) -> None:
    flow.add_routine(Portless(), "portless")

    with pytest.raises(DefinitionError, match="has no slots and does not override"):
        flow.execute("portless")


def test_entry_with_an_unknown_routine_is_refused(flow: Flow) -> None:
    with pytest.raises(UnknownPortError, match="no routine 'missing'"):
        flow.execute("missing")


def test_entry_with_an_unknown_slot_is_refused(flow: Flow) -> None:
    flow.add_routine(TwoSlots(), "two")

    with pytest.raises(UnknownPortError, match="no slot 'middle'"):
        flow.execute("two", entry_slot="middle")


@pytest.mark.parametrize(
    "params",
    [[("a", 1)], "a=1", {1: "a"}],
    ids=["list_of_pairs", "str", "non_str_key"],
)
def test_entry_params_must_be_a_mapping_with_str_keys(
    flow: Flow, params: object
) -> None:
    flow.add_routine(Recorder(), "sink")

    with pytest.raises(TypeError, match="entry_params must be a mapping"):
        flow.execute("sink", params)  # type: ignore[arg-type]  # wrong on purpose


def test_entry_params_are_copied_at_the_start(flow: Flow) -> None:
    sink = Recorder()
    flow.add_routine(sink, "sink")
    params: dict[str, object] = {"a": 1}

    job = flow.execute("sink", params)
    params["a"] = 2

    assert job.entry_params == {"a": 1}


# -- order ----------------------------------------------------------------------------


def wire_nodes(flow: Flow, edges: Sequence[tuple[str, str]]) -> None:
    for source, target in edges:
        for routine_id in (source, target):
            if routine_id not in flow.routines:
                flow.add_routine(Node(), routine_id)
        flow.connect(source, "output", target, "input")


def test_deliveries_run_depth_first_in_connection_order(flow: Flow) -> None:
    edges = [("root", "a"), ("root", "b"), ("a", "a1"), ("a", "a2"), ("b", "b1")]
    wire_nodes(flow, edges)
    log: list[str] = []

    flow.execute("root", {"log": log})

    assert log == ["root", "a", "a1", "a2", "b", "b1"]


def test_connection_order_not_id_order_decides_siblings(flow: Flow) -> None:
    wire_nodes(flow, [("root", "zeta"), ("root", "alpha")])
    log: list[str] = []

    flow.execute("root", {"log": log})

    assert log == ["root", "zeta", "alpha"]


def test_a_whole_chain_finishes_before_the_next_branch(flow: Flow) -> None:
    edges = [("root", "c1"), ("root", "d"), ("c1", "c2"), ("c2", "c3")]
    wire_nodes(flow, edges)
    log: list[str] = []

    flow.execute("root", {"log": log})

    assert log == ["root", "c1", "c2", "c3", "d"]


def test_each_emission_runs_with_all_it_causes_before_the_next(flow: Flow) -> None:
    flow.add_routine(Script(), "script")
    wire_nodes(flow, [("a", "b")])
    flow.connect("script", "output", "a", "input")
    log: list[str] = []

    flow.execute("script", {"emissions": [("output", {"log": log})] * 2})

    assert log == ["a", "b", "a", "b"]


# -- emissions of a failed handler ----------------------------------------------------


def test_emissions_of_a_handler_that_raises_are_never_delivered(flow: Flow) -> None:
    continue_on_errors(flow)
    sink = Recorder()
    flow.add_routine(EmitThenFail(), "failing")
    flow.add_routine(sink, "sink")
    flow.connect("failing", "output", "sink", "input")

    job = flow.execute("failing", {"a": 1})

    assert sink.received == []
    assert job.status is JobStatus.COMPLETED
    assert [error.error_type for error in job.errors] == ["RuntimeError"]


def test_emissions_of_a_source_that_raises_are_never_delivered(flow: Flow) -> None:
    continue_on_errors(flow)
    sink = Recorder()
    flow.add_routine(FailingSource(), "source")
    flow.add_routine(sink, "sink")
    flow.connect("source", "output", "sink", "input")

    flow.execute("source", {"a": 1})

    assert sink.received == []


def test_a_failed_handler_does_not_stop_its_siblings_under_continue(
    flow: Flow,
) -> None:
    continue_on_errors(flow)
    sink = Recorder()
    flow.add_routine(Script(), "script")
    flow.add_routine(EmitThenFail(), "failing")
    flow.add_routine(sink, "sink")
    flow.connect("script", "output", "failing", "input")
    flow.connect("script", "output", "sink", "input")

    flow.execute("script", {"emissions": [("output", {"a": 1})]})

    assert sink.received == [{"a": 1}]


def test_a_failure_under_stop_runs_nothing_more(flow: Flow) -> None:
    sink = Recorder()
    flow.add_routine(Script(), "script")
    flow.add_routine(EmitThenFail(), "failing")
    flow.add_routine(sink, "sink")
    flow.connect("script", "output", "failing", "input")
    flow.connect("script", "output", "sink", "input")

    job = flow.execute("script", {"emissions": [("output", {"a": 1})]})

    assert job.status is JobStatus.FAILED
    assert sink.received == []


# -- joins ----------------------------------------------------------------------------


def wire_join(flow: Flow) -> Joiner:
    joiner = Joiner()
    flow.add_routine(Script(), "script")
    flow.add_routine(joiner, "joiner")
    flow.connect("script", "left", "joiner", "inputs")
    flow.connect("script", "right", "joiner", "inputs")
    return joiner


def test_join_fires_once_every_connected_event_has_delivered(flow: Flow) -> None:
    joiner = wire_join(flow)

    flow.execute("script", {"emissions": [("left", {"x": 1}), ("right", {"y": 2})]})

    assert joiner.calls == [{"x": 1, "y": 2}]


def test_join_does_not_fire_on_repeats_of_one_event(flow: Flow) -> None:
    joiner = wire_join(flow)

    flow.execute("script", {"emissions": [("left", {"x": 1}), ("left", {"x": 2})]})

    assert joiner.calls == []


def test_join_still_waiting_at_the_end_is_reported_and_the_job_completes(
    flow: Flow,
) -> None:
    joiner = wire_join(flow)

    job = flow.execute("script", {"emissions": [("left", {"x": 1})]})

    assert job.status is JobStatus.COMPLETED
    assert list(job.waiting_joins) == [("joiner", "inputs")]
    assert joiner.calls == []


def test_fired_join_is_not_reported_as_waiting(flow: Flow) -> None:
    wire_join(flow)

    job = flow.execute("script", {"emissions": [("left", {}), ("right", {})]})

    assert job.waiting_joins == {}


# -- per-job isolation and stats ------------------------------------------------------


def test_two_jobs_of_one_flow_never_share_slot_buffers(flow: Flow) -> None:
    sink = AppendSink()
    flow.add_routine(sink, "sink")

    flow.execute("sink", {"v": 1})
    flow.execute("sink", {"v": 2})

    assert sink.received == [{"v": [1]}, {"v": [2]}]


def test_jobs_running_at_the_same_time_never_share_slot_buffers(
    flow: Flow,
) -> None:
    sink = AppendSink()
    sink.set_config(barrier=threading.Barrier(2, timeout=10))
    flow.add_routine(sink, "sink")
    jobs: list[JobState] = []
    threads = [
        threading.Thread(target=lambda v=v: jobs.append(flow.execute("sink", {"v": v})))
        for v in (1, 2)
    ]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert [job.status for job in jobs] == [JobStatus.COMPLETED] * 2
    assert sorted(sink.received, key=repr) == [{"v": [1]}, {"v": [2]}]


def test_routine_stats_accumulate_across_jobs(flow: Flow) -> None:
    counter = Counter()
    flow.add_routine(counter, "counter")

    flow.execute("counter")
    flow.execute("counter")

    assert counter.stats() == {"count": 2}


def test_job_state_keeps_a_snapshot_of_each_routine_stats(flow: Flow) -> None:
    flow.add_routine(Counter(), "counter")

    first = flow.execute("counter")
    second = flow.execute("counter")

    assert first.routine_states["counter"].stats == {"count": 1}
    assert second.routine_states["counter"].stats == {"count": 2}


def test_stats_snapshot_is_not_changed_by_later_stat_updates(flow: Flow) -> None:
    counter = Counter()
    flow.add_routine(counter, "counter")
    job = flow.execute("counter")

    counter.set_stat("count", 100)

    assert job.routine_states["counter"].stats == {"count": 1}


def test_framework_never_writes_into_stats(flow: Flow) -> None:
    continue_on_errors(flow)
    flaky, sink = Recorder(), Recorder()
    flaky.set_config(fail_times=1)
    flow.add_routine(Script(), "script")
    flow.add_routine(flaky, "flaky")
    flow.add_routine(sink, "sink")
    flow.connect("script", "output", "flaky", "input")
    flow.connect("flaky", "output", "sink", "input")

    job = flow.execute("script", {"emissions": [("output", {"a": 1})] * 2})

    assert [flaky.stats(), sink.stats()] == [{}, {}]
    assert [state.stats for state in job.routine_states.values()] == [{}, {}, {}]


# -- limits and scale -----------------------------------------------------------------

CHAIN_LENGTH = 100_000
WIRING_BUDGET_SECONDS = 30.0


def test_chain_of_100_000_routines_completes(flow: Flow) -> None:
    started = time.monotonic()
    ids = [flow.add_routine(Link(), "link_0")]
    for index in range(1, CHAIN_LENGTH):
        ids.append(flow.add_routine(Link(), f"link_{index}"))
        flow.connect(ids[-2], "output", ids[-1], "input")
        if index % 1000 == 0 and time.monotonic() - started > WIRING_BUDGET_SECONDS:
            pytest.fail(
                f"wiring only {index} routines took over {WIRING_BUDGET_SECONDS} s: "
                "add_routine/connect cost grows with the size of the flow"
            )

    job = flow.execute("link_0", {"hops": 0})

    assert job.status is JobStatus.COMPLETED
    assert job.delivery_count == CHAIN_LENGTH
    assert job.routine_states[ids[-1]].deliveries == 1


def test_self_loop_runs_1_000_000_times_and_completes(flow: Flow) -> None:
    flow.add_routine(Countdown(), "loop")
    flow.connect("loop", "again", "loop", "input")

    job = flow.execute("loop", {"n": 1_000_000})

    assert job.status is JobStatus.COMPLETED
    assert job.delivery_count == 1_000_000


def test_unbounded_cycle_fails_at_the_delivery_limit() -> None:
    flow = Flow(max_deliveries=1000)
    flow.add_routine(Forever(), "forever")
    flow.connect("forever", "again", "forever", "input")

    job = flow.execute("forever")

    assert job.status is JobStatus.FAILED
    assert job.delivery_count == 1000
    assert job.error is not None
    assert "limit of 1000 deliveries" in job.error.message


def test_job_needing_exactly_the_delivery_limit_completes() -> None:
    flow = Flow(max_deliveries=3)
    flow.add_routine(Countdown(), "loop")
    flow.connect("loop", "again", "loop", "input")

    job = flow.execute("loop", {"n": 3})

    assert job.status is JobStatus.COMPLETED
