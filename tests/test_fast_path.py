"""The scheduler's optimisations keep every observable behaviour.

Each test guards one shortcut of the sequential loop: the inlined common
case, the reused delivery of a one-to-one hop, the direct handler call, the
tracker's folded run times, and the emission counts kept by route position
whose targets come from the flow's plan. They assert behaviour, never speed.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime

import pytest

from flowforge import (
    ErrorHandler,
    ExecutionTracker,
    Flow,
    JobState,
    JobStatus,
    Routine,
    current_delivery,
)
from flowforge.engine.plan import Edge, Route
from flowforge._figures import SAMPLE_LIMIT
from flowforge.execution_tracker import FOLD_AT
from flowforge.record import (
    Delivery,
    RoutineState,
    RoutineStatus,
    new_delivery,
)
from flowforge.store import MemoryStore
from flowforge.testing import FakeClock


class Hop(Routine):
    """Record each delivery's key and attempt, then pass ``n`` on."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.seen: list[tuple[tuple[str, str, int], int]] = []
        self.define_slot("input", self.hop)
        self.define_event("output")

    def hop(self, n: int) -> None:
        context = current_delivery()
        self.seen.append((context.delivery_key, context.attempt))
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("flaky")
        self.emit("output", n=n + 1)


def chain(*hops: Hop) -> Flow:
    flow = Flow(flow_id="chain")
    for index, hop in enumerate(hops):
        flow.add_routine(hop, f"hop_{index}")
        if index:
            flow.connect(f"hop_{index - 1}", "output", f"hop_{index}", "input")
    return flow


def test_each_hop_of_a_chain_gets_its_own_delivery_key_and_first_attempt() -> None:
    hops = [Hop() for _ in range(4)]
    flow = chain(*hops)

    job = flow.execute("hop_0", {"n": 0}, job_id="j")

    assert [hop.seen for hop in hops] == [[(("j", f"hop_{i}", i), 0)] for i in range(4)]
    assert [(r.seq, r.routine_id) for r in job.get_execution_history()] == [
        (i, f"hop_{i}") for i in range(4)
    ]
    assert job.next_seq == 4


def test_an_entry_delivery_reaches_its_own_routine_whatever_the_last_edge() -> None:
    # A delivery from no connection has index -1 in the plan's table of
    # direct targets: that must be no connection's target, least of all
    # the last one's (here hop_2's, which is direct).
    hops = [Hop() for _ in range(3)]
    flow = chain(*hops)

    job = flow.execute("hop_1", {"n": 5}, job_id="j")

    assert [hop.seen for hop in hops] == [
        [],
        [(("j", "hop_1", 0), 0)],
        [(("j", "hop_2", 1), 0)],
    ]
    assert job.status is JobStatus.COMPLETED
    assert flow._plans.get().direct[-1] is None
    assert sorted(job.routine_states) == ["hop_1", "hop_2"]


class Interrupted(BaseException):
    """Not an Exception: the scheduler undoes the delivery and lets it through."""


class InterruptedHop(Hop):
    """Raise ``Interrupted`` on the first delivery, keeping the job it ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[JobState] = []

    def hop(self, n: int) -> None:
        if not self.jobs:
            self.jobs.append(current_delivery().job)
            raise Interrupted
        super().hop(n)


def test_a_base_exception_on_the_inlined_path_puts_the_delivery_back() -> None:
    # As on the general path: the merge is undone and the delivery goes back
    # on the stack before the exception leaves execute (a durable job would
    # be resumed from there; see docs/guide/errors.rst).
    interrupted = InterruptedHop()
    hops = [Hop(), interrupted, Hop()]
    flow = chain(*hops)

    with pytest.raises(Interrupted):
        flow.execute("hop_0", {"n": 0}, job_id="j")
    job = interrupted.jobs[0]

    assert [(d.routine_id, d.seq, d.data, d.attempt) for d in job.pending] == [
        ("hop_1", 1, {"n": 1}, 0)
    ]
    assert ("hop_1", "input") not in job.slot_buffers
    assert [r.routine_id for r in job.get_execution_history()] == ["hop_0"]
    assert job.delivery_count == 1
    assert (hops[1].seen, hops[2].seen) == ([], [])


def test_the_hop_after_a_retried_hop_starts_at_attempt_zero() -> None:
    flaky = Hop(fail_first=2)
    flaky.set_error_handler(ErrorHandler("retry", max_retries=3, retry_delay=0.0))
    hops = [Hop(), flaky, Hop()]
    flow = chain(*hops)

    job = flow.execute("hop_0", {"n": 0}, job_id="j")

    assert job.status is JobStatus.COMPLETED
    assert flaky.seen == [(("j", "hop_1", 1), attempt) for attempt in range(3)]
    assert hops[2].seen == [(("j", "hop_2", 2), 0)]
    assert [
        (r.routine_id, r.attempt, r.outcome) for r in job.get_execution_history()
    ] == [
        ("hop_0", 0, "completed"),
        ("hop_1", 0, "retried"),
        ("hop_1", 1, "retried"),
        ("hop_1", 2, "completed"),
        ("hop_2", 0, "completed"),
    ]


class Keep(Routine):
    """Keep what its one positional parameter receives."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[object] = []
        self.define_slot("input", self.keep)

    def keep(self, message: object) -> None:
        self.received.append(message)


class Send(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self, **data: object) -> None:
        self.emit("output", **data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"message": "hi", "other": 1}, "hi"),
        ({"text": "hi"}, {"text": "hi"}),
        ({"message": None}, None),
    ],
    ids=["named-key", "whole-dict", "none-value"],
)
def test_a_one_parameter_handler_gets_its_key_or_else_the_whole_dict(
    data: dict[str, object], expected: object
) -> None:
    flow = Flow()
    flow.add_routine(Send(), "send")
    keep = flow.add_routine(Keep(), "keep")
    flow.connect("send", "output", keep, "input")

    flow.execute("send", data)

    assert flow.routines["keep"].received == [expected]  # type: ignore[attr-defined]


def test_a_handler_changing_its_whole_dict_changes_no_other_target() -> None:
    class Spoil(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.spoil)

        def spoil(self, data: dict[str, object]) -> None:
            data["text"] = "spoiled"

    flow = Flow()
    flow.add_routine(Send(), "send")
    flow.add_routine(Spoil(), "spoil")
    flow.add_routine(Keep(), "keep")
    flow.connect("send", "output", "spoil", "input")
    flow.connect("send", "output", "keep", "input")

    flow.execute("send", {"text": "hi"})

    keep = flow.routines["keep"]
    assert isinstance(keep, Keep)
    assert keep.received == [{"text": "hi"}]


class Countdown(Routine):
    """Take ``clock_step * n`` seconds on the fake clock, then loop with n - 1."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.define_slot("input", self.tick)
        self.define_event("again")

    def tick(self, n: int) -> None:
        self.clock.advance(0.001 * (n % 7))
        if n:
            self.emit("again", n=n - 1)


def looped(runs: int) -> tuple[JobState, list[float]]:
    clock = FakeClock()
    flow = Flow(clock=clock)
    flow.add_routine(Countdown(clock), "loop")
    flow.connect("loop", "again", "loop", "input")
    job = flow.execute("loop", {"n": runs - 1})
    durations = [0.001 * (n % 7) for n in range(runs - 1, -1, -1)]
    return job, durations


@pytest.mark.parametrize("runs", [1, FOLD_AT - 1, FOLD_AT, 2 * FOLD_AT + 3])
def test_tracker_figures_are_exact_whenever_run_times_are_folded(runs: int) -> None:
    job, durations = looped(runs)

    figures = job.tracker.get_routine_performance("loop")

    assert (figures.runs, figures.successes, figures.failures) == (runs, runs, 0)
    assert figures.min_time == pytest.approx(min(durations))
    assert figures.max_time == pytest.approx(max(durations))
    assert figures.avg_time == pytest.approx(sum(durations) / runs)
    recent = sorted(durations[-SAMPLE_LIMIT:])
    assert figures.p50_time == pytest.approx(recent[max(1, -(-len(recent) // 2)) - 1])
    assert job.tracker.get_flow_performance().deliveries == runs


def test_a_folded_tracker_round_trips_and_keeps_only_recent_samples() -> None:
    job, durations = looped(FOLD_AT + 5)

    data = job.tracker.serialize()
    copy = ExecutionTracker.deserialize(data)

    samples = data["routines"]["loop"][6]  # type: ignore[index]
    assert samples == pytest.approx(durations[-SAMPLE_LIMIT:])
    assert copy == job.tracker
    assert copy.get_routine_performance("loop") == job.tracker.get_routine_performance(
        "loop"
    )


def test_a_tracker_saved_as_a_ring_is_read_oldest_first() -> None:
    # Earlier versions saved the samples as a ring whose oldest is at ``cursor``.
    data = {
        "version": 1,
        "wall_time": 1.0,
        "routines": {"r": [4, 0, 0, 10.0, 1.0, 4.0, [3.0, 4.0, 1.0, 2.0], 2]},
        "events": [],
    }

    tracker = ExecutionTracker.deserialize(data)

    assert tracker.serialize()["routines"] == {
        "r": [4, 0, 0, 10.0, 1.0, 4.0, [1.0, 2.0, 3.0, 4.0], 0, 0]
    }
    assert tracker.get_routine_performance("r").successes == 4


def test_event_targets_come_with_every_counted_event_and_survive_a_save() -> None:
    hops = [Hop() for _ in range(3)]
    flow = chain(*hops)
    flow.add_routine(Keep(), "tap")
    flow.connect("hop_0", "output", "tap", "input", param_mapping={"n": "message"})

    job = flow.execute("hop_0", {"n": 0})
    copy = JobState.deserialize(job.serialize())

    for tracker in (job.tracker, copy.tracker):
        assert tracker.get_event_counts() == {
            ("hop_0", "output"): 1,
            ("hop_1", "output"): 1,
            ("hop_2", "output"): 1,
        }
        assert tracker.get_event_targets("hop_0", "output") == (
            ("hop_1", "input"),
            ("tap", "input"),
        )
        assert tracker.get_event_targets("hop_1", "output") == (("hop_2", "input"),)
        assert tracker.get_event_targets("hop_2", "output") == ()
    assert flow.routines["tap"].received == [1]  # type: ignore[attr-defined]


def test_a_skipped_routine_still_drops_deliveries_on_the_inlined_path() -> None:
    broken = Hop(fail_first=1)
    broken.set_error_handler(ErrorHandler("skip"))
    flow = Flow()
    flow.add_routine(Send(), "send")
    flow.add_routine(broken, "broken")
    flow.connect("send", "output", "broken", "input")

    class Twice(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_event("output")

        def __call__(self) -> None:
            self.emit("output", n=1)
            self.emit("output", n=2)

    flow.add_routine(Twice(), "twice")
    flow.connect("twice", "output", "broken", "input")

    job = flow.execute("twice", {})

    assert [r.outcome for r in job.get_execution_history(routine_id="broken")] == [
        "failed",
        "dropped",
    ]
    assert len(broken.seen) == 1


def test_a_routine_keeps_a_bounded_number_of_run_times() -> None:
    job, _ = looped(3 * FOLD_AT + 1)

    kept = job.tracker._times_by_routine()["loop"]

    assert SAMPLE_LIMIT <= len(kept) < FOLD_AT
    assert job.tracker.get_routine_performance("loop").runs == 3 * FOLD_AT + 1


def test_the_scheduler_builds_deliveries_equal_to_their_constructor() -> None:
    delivery = new_delivery(3, "r", "input", {"a": 1}, 7)

    assert delivery == Delivery(3, "r", "input", {"a": 1}, 7)
    # Every field is set, so a field added to Delivery fails here.
    assert all(hasattr(delivery, field.name) for field in fields(delivery))


def test_the_inlined_path_builds_routine_states_equal_to_their_constructor() -> None:
    flow = Flow()
    flow.add_routine(Hop(), "first")
    flow.add_routine(Hop(), "second")
    flow.connect("first", "output", "second", "input")

    job = flow.execute("first", {"n": 1})

    state = job.get_routine_state("second")  # made on the inlined path
    assert state == RoutineState("second", RoutineStatus.COMPLETED, 1)
    # Every slot is set, so a slot added to RoutineState fails here.
    assert all(hasattr(state, name) for name in RoutineState.__slots__)
    assert (state.errors, state.stats) == ([], {})
    assert isinstance(state, RoutineState)
    assert repr(state) == repr(RoutineState("second", RoutineStatus.COMPLETED, 1))
    # Copies and pickles are plain RoutineStates, equal to the original.
    for copied in (pickle.loads(pickle.dumps(state)), copy.copy(state)):
        assert type(copied) is RoutineState
        assert copied == state
    assert type(copy.deepcopy(job).routine_states["second"]) is RoutineState


def test_a_route_names_its_single_edge_only_when_it_has_exactly_one() -> None:
    flow = Flow()
    for routine_id in ("one", "two", "a", "b"):
        flow.add_routine(Hop(), routine_id)
    flow.connect("one", "output", "a", "input")
    flow.connect("two", "output", "a", "input")
    flow.connect("two", "output", "b", "input")

    routes = flow._plans.get().routes

    assert routes["one"]["output"].single is routes["one"]["output"].edges[0]
    assert len(routes["two"]["output"].edges) == 2
    assert routes["two"]["output"].single is None
    assert routes["a"]["output"].single is None  # connected nowhere


class Gather(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.gather, join=True)

    def gather(self, n: int) -> None:
        pass


def test_each_edge_and_target_hold_what_the_plan_holds_for_them() -> None:
    # The inlined loop reads a routed hop's next target from its edge
    # (Edge.hop) and the routes from the target, instead of Plan.direct and
    # Plan.routes: they must be the same objects.
    flow = split_flow()
    flow.add_routine(Gather(), "gather")
    flow.connect("c", "output", "gather", "input")  # a join: no inlined target
    plan = flow._plans.get()
    edges = [*plan.edges, *(e for r in plan.routes.values() for e in _edges(r))]

    mismatched = [e for e in edges if e.hop is not plan.direct[e.index]]

    assert mismatched == []
    assert len(edges) == 2 * len(plan.edges)
    assert (plan.edges[-1].target_id, plan.edges[-1].hop) == ("gather", None)
    assert all(
        target.routes is plan.routes[rid] for (rid, _), target in plan.targets.items()
    )


def _edges(routes: Mapping[str, Route]) -> list[Edge]:
    return [edge for route in routes.values() for edge in route.edges]


def test_a_pickled_tracker_keeps_its_figures_but_not_the_flow_routes() -> None:
    flow = Flow()
    flow.add_routine(Hop(), "hop_0")
    for index in range(1, 2000):  # a big flow; the job runs one routine of it
        flow.add_routine(Hop(), f"hop_{index}")
        flow.connect(f"hop_{index - 1}", "output", f"hop_{index}", "input")
    job = flow.execute("hop_1999", {"n": 0})

    data = pickle.dumps(job.tracker)
    copied = pickle.loads(data)

    assert copied == job.tracker
    assert copied.get_event_targets("hop_1999", "output") == ()
    assert copied.get_event_counts() == {("hop_1999", "output"): 1}
    assert len(data) < 2000


class CountReader(Hop):
    """Read the job's event counts while it runs, then pass ``n`` on."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: list[dict[tuple[str, str], int]] = []

    def hop(self, n: int) -> None:
        self.counts.append(current_delivery().job.tracker.get_event_counts())
        super().hop(n)


def test_event_counts_read_while_a_job_runs_include_every_inlined_hop() -> None:
    # The inlined hops count emissions by route position, not in the
    # tracker's dict: every reader must see them added in.
    reader = CountReader()
    flow = chain(Hop(), Hop(), reader, Hop())

    job = flow.execute("hop_0", {"n": 0})

    assert reader.counts == [{("hop_0", "output"): 1, ("hop_1", "output"): 1}]
    expected = {(f"hop_{i}", "output"): 1 for i in range(4)}
    assert job.tracker.get_event_counts() == expected
    assert job.tracker.get_flow_performance().events_emitted == 4
    assert pickle.loads(pickle.dumps(job.tracker)).get_event_counts() == expected


class PauseOnce(Hop):
    """Ask for a pause on the first delivery, then pass ``n`` on."""

    def __init__(self) -> None:
        super().__init__()
        self.flow: Flow | None = None

    def hop(self, n: int) -> None:
        if self.flow is not None:
            self.flow.pause(reason="halfway")
            self.flow = None
        super().hop(n)


def test_a_pause_between_inlined_hops_keeps_the_next_delivery_and_the_counts() -> None:
    pausing = PauseOnce()
    hops = [Hop(), pausing, Hop(), Hop()]
    flow = chain(*hops)
    pausing.flow = flow

    job = flow.execute("hop_0", {"n": 0}, job_id="j")

    assert job.status is JobStatus.PAUSED
    assert [(d.routine_id, d.seq, d.data, d.attempt) for d in job.pending] == [
        ("hop_2", 2, {"n": 2}, 0)
    ]
    assert job.tracker.get_event_counts() == {
        ("hop_0", "output"): 1,
        ("hop_1", "output"): 1,
    }

    resumed = flow.resume(job)

    assert resumed.status is JobStatus.COMPLETED
    assert [hop.seen for hop in hops[2:]] == [
        [(("j", "hop_2", 2), 0)],
        [(("j", "hop_3", 3), 0)],
    ]
    assert resumed.tracker.get_event_counts() == {
        (f"hop_{i}", "output"): 1 for i in range(4)
    }
    assert resumed.delivery_count == 4


def reversed_chain(pause_at: str | None = None) -> tuple[Flow, list[Hop]]:
    """hop_0 -> hop_1 -> hop_2, added to the flow last routine first."""
    flow = Flow(flow_id="reversed", clock=FakeClock())
    hops = {f"hop_{i}": Hop() for i in range(3)}
    if pause_at is not None:
        pausing = PauseOnce()
        pausing.flow = flow
        hops[pause_at] = pausing
    for rid in reversed(hops):
        flow.add_routine(hops[rid], rid)
    flow.connect("hop_0", "output", "hop_1", "input")
    flow.connect("hop_1", "output", "hop_2", "input")
    return flow, list(hops.values())


def test_event_counts_are_sorted_however_the_job_ran() -> None:
    # Inlined hops count by route position, the others by key: the counts
    # must come out the same, in one order, whether the job paused or not.
    whole = reversed_chain()[0].execute("hop_0", {"n": 0}, job_id="j")
    flow, _ = reversed_chain(pause_at="hop_1")
    paused = flow.execute("hop_0", {"n": 0}, job_id="j")
    paused.tracker.serialize()  # a read while paused changes nothing
    resumed = flow.resume(paused)

    expected = [((f"hop_{i}", "output"), 1) for i in range(3)]
    for job in (whole, resumed):
        assert list(job.tracker.get_event_counts().items()) == expected
        events = job.tracker.serialize()["events"]
        assert isinstance(events, list)
        assert [row[:3] for row in events] == [
            [f"hop_{i}", "output", 1] for i in range(3)
        ]
    assert resumed.tracker == whole.tracker


def test_reading_event_counts_leaves_the_schedulers_counting_list_alone() -> None:
    # The scheduler keeps adding to the list know_routes gave it while a
    # job runs, possibly as another thread reads: a read must only look.
    tracker = ExecutionTracker()
    tracker._record_emission(("a", "out"), (("b", "in"),))
    tracker._know_routes({("a", "out"): (("b", "in"),), ("b", "out"): ()})
    counts = tracker._counts_by_position()
    counts[0] += 2
    counts[1] += 1

    assert tracker.get_event_counts() == {("a", "out"): 3, ("b", "out"): 1}
    assert tracker.get_flow_performance().events_emitted == 4
    assert tracker._routine_figures("a")["events"] == [["out", 3, [["b", "in"]]]]
    assert tracker.serialize()["events"] == [
        ["a", "out", 3, [["b", "in"]]],
        ["b", "out", 1, []],
    ]
    assert counts == [2, 1]
    counts[0] += 1
    assert tracker.get_event_counts() == {("a", "out"): 4, ("b", "out"): 1}
    tracker._know_routes({("a", "out"): ()})  # a new run keeps the old counts
    assert tracker.get_event_counts() == {("a", "out"): 4, ("b", "out"): 1}


class RestoresItsFigures(Hop):
    """Write its own figures back into the tracker while the job runs."""

    def hop(self, n: int) -> None:
        tracker = current_delivery().job.tracker
        tracker._restore_routine_figures("hop_0", tracker._routine_figures("hop_0"))
        super().hop(n)


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_restoring_figures_mid_run_keeps_the_counting_list_working(
    strategy: str,
) -> None:
    # restore_routine_figures moves the positional counts into the others;
    # the scheduler must go on counting in the same list afterwards.
    with chain(RestoresItsFigures(), RestoresItsFigures(), Hop()) as flow:
        job = flow.execute("hop_0", {"n": 0}, execution_strategy=strategy)

    assert job.status is JobStatus.COMPLETED
    assert job.tracker.get_event_counts() == {
        (f"hop_{i}", "output"): 1 for i in range(3)
    }


# -- the inlined loop of a plain job ------------------------------------------------


def test_only_the_inlined_loop_is_over_the_complexity_limit() -> None:
    # .flake8 lets sequential.py exceed max-complexity for _run_inlined alone
    # (see the module's docstring); every other function keeps the limit.
    import ast
    from pathlib import Path

    import mccabe  # type: ignore[import-untyped]  # flake8's checker: no stubs

    import flowforge.engine.sequential as sequential

    source = Path(sequential.__file__).read_text(encoding="utf-8")
    visitor = mccabe.PathGraphingAstVisitor()
    visitor.preorder(ast.parse(source), visitor)
    over = {graph.entity: graph.complexity() for graph in visitor.graphs.values()}
    over = {name: n for name, n in over.items() if n > 10}
    lengths = {
        node.name: node.end_lineno - node.lineno + 1  # type: ignore[operator]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef) and node.col_offset == 0
    }

    assert list(over) == ["_run_inlined"]
    assert over["_run_inlined"] <= 25
    assert lengths["_run_inlined"] <= 120
    assert max(n for name, n in lengths.items() if name != "_run_inlined") < 70


class StopAt:
    """A clock whose ``n``-th ``monotonic()`` call once armed raises ``Interrupted``."""

    def __init__(self, n: int) -> None:
        self.clock = FakeClock()
        self.calls = -1
        self.n = n

    def arm(self) -> None:
        self.calls = 0

    def monotonic(self) -> float:
        if self.calls >= 0:
            self.calls += 1
            if self.calls == self.n:
                raise Interrupted
        return self.clock.monotonic()

    def now(self) -> datetime:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)


class KeepJob(Hop):
    """A hop that keeps the job it runs in."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[JobState] = []

    def hop(self, n: int) -> None:
        self.jobs.append(current_delivery().job)
        super().hop(n)


def test_an_interrupt_between_routing_and_the_next_handler_keeps_the_delivery() -> None:
    # The run reads the clock twice as it begins, then twice per hop; the
    # 5th read starts hop_1, whose delivery (hop_0's, reused) is routed but
    # not pushed on the stack: the interrupt must leave it there.
    first, hops = KeepJob(), [Hop(), Hop()]
    clock = StopAt(5)
    flow = Flow(flow_id="chain", clock=clock)
    for index, hop in enumerate([first, *hops]):
        flow.add_routine(hop, f"hop_{index}")
        if index:
            flow.connect(f"hop_{index - 1}", "output", f"hop_{index}", "input")

    clock.arm()
    with pytest.raises(Interrupted):
        flow.execute("hop_0", {"n": 0}, job_id="j")
    job = first.jobs[0]

    assert [(d.routine_id, d.seq, d.data, d.attempt) for d in job.pending] == [
        ("hop_1", 1, {"n": 1}, 0)
    ]
    assert [r.routine_id for r in job.get_execution_history()] == ["hop_0"]
    assert (hops[0].seen, hops[1].seen) == ([], [])
    assert job.delivery_count == 1


class Split(Routine):
    """Emit ``n`` on ``even`` or ``odd``, twice on ``both``: one event or many."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.split)
        self.define_event("even")
        self.define_event("odd")
        self.define_event("both")

    def split(self, n: int) -> None:
        self.emit("even" if n % 2 == 0 else "odd", n=n)
        if n == 3:
            self.emit("both", n=n)
            self.emit("both", n=n + 10)


def split_flow() -> Flow:
    flow = Flow(flow_id="split", max_deliveries=60)
    flow.add_routine(Split(), "split")
    for name in ("a", "b", "c"):
        flow.add_routine(Hop(), name)
    flow.connect("split", "even", "a", "input")  # one edge
    flow.connect("split", "odd", "b", "input")  # fans out to two
    flow.connect("split", "odd", "c", "input")
    flow.connect("split", "both", "a", "input")
    flow.connect("a", "output", "split", "input")
    flow.connect("b", "output", "split", "input")
    return flow


def recorded(job: JobState) -> object:
    history = [
        (r.seq, r.routine_id, r.slot, r.outcome, r.attempt)
        for r in job.get_execution_history()
    ]
    states = {rid: (s.status, s.deliveries) for rid, s in job.routine_states.items()}
    return (
        history,
        states,
        job.tracker.get_event_counts(),
        job.slot_buffers,
        (job.next_seq, job.delivery_count, job.history_total, job.status),
    )


def test_a_plain_job_records_what_a_durable_one_records() -> None:
    # A plain job runs in the loop with the finisher inlined; a durable one
    # (a store) calls the finisher: both record the same.
    plain = split_flow().execute("split", {"n": 0}, job_id="j")
    durable = split_flow().execute("split", {"n": 0}, job_id="j", store=MemoryStore())

    assert recorded(plain) == recorded(durable)
    assert plain.delivery_count == 60
    assert plain.tracker.get_event_counts()[("split", "both")] == 2


class Tick(Routine):
    """Take ``0.001 * (step + n)`` on the fake clock, note the tracker's routines."""

    def __init__(
        self, clock: FakeClock, step: int, seen: list[list[str]] | None
    ) -> None:
        super().__init__()
        self.clock, self.step, self.seen = clock, step, seen
        self.define_slot("input", self.tick)
        self.define_event("output")

    def tick(self, n: int) -> None:
        self.clock.advance(0.001 * (self.step + n))
        if self.seen is not None:
            self.seen.append(current_delivery().job.tracker.routine_ids)
        if n:
            self.emit("output", n=n - 1)


def ticking(store: MemoryStore | None, read: bool) -> tuple[JobState, list[list[str]]]:
    # x -> y -> z -> y -> z: y runs again after z's first run; with ``read``,
    # every handler reads the tracker while the job records.
    clock, seen = FakeClock(), list[list[str]]()
    flow = Flow(flow_id="ticking", clock=clock)
    for step, name in enumerate("xyz", start=1):
        flow.add_routine(Tick(clock, step, seen if read else None), name)
    flow.connect("x", "output", "y", "input")
    flow.connect("y", "output", "z", "input")
    flow.connect("z", "output", "y", "input")
    return flow.execute("x", {"n": 4}, job_id="t", store=store), seen


@pytest.mark.parametrize("read", [False, True])
def test_run_times_of_a_plain_job_match_a_durable_ones_in_first_run_order(
    read: bool,
) -> None:
    # The inlined loop keeps a routine's first time without a list; whatever
    # reads the tracker, during the job or after, sees the same times.
    plain, plain_seen = ticking(None, read)
    durable, durable_seen = ticking(MemoryStore(), read)

    assert plain.tracker.routine_ids == ["x", "y", "z"]
    assert plain.tracker.serialize() == durable.tracker.serialize()
    assert plain_seen == durable_seen
    if read:
        assert plain_seen == [[], ["x"], ["x", "y"]] + [["x", "y", "z"]] * 2
    rows = plain.tracker.serialize()["routines"]
    assert isinstance(rows, dict)
    samples = {rid: [round(t, 6) for t in row[6]] for rid, row in rows.items()}
    assert samples == {"x": [0.005], "y": [0.005, 0.003], "z": [0.005, 0.003]}
    assert plain.tracker.get_routine_performance("y").runs == 2


def test_a_tracker_read_only_at_the_end_has_every_first_run_time() -> None:
    hops = [Hop() for _ in range(4)]
    job = chain(*hops).execute("hop_0", {"n": 0})

    copy = pickle.loads(pickle.dumps(job.tracker))

    assert job.tracker.routine_ids == [f"hop_{i}" for i in range(4)]
    assert job.tracker.get_flow_performance().runs == 4
    assert copy == job.tracker
    assert copy.routine_ids == job.tracker.routine_ids
