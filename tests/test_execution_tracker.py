from __future__ import annotations

import pytest

from flowforge import ErrorHandler, ExecutionTracker, Flow, Routine, UnknownPortError
from flowforge.execution_tracker import FOLD_AT
from flowforge.testing import FakeClock


class Timed(Routine):
    """Takes ``durations[i]`` seconds (on the fake clock) for its i-th run."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0
        self.define_slot("input", self.handle)
        self.define_event("out")

    def handle(self, n: int) -> None:
        clock = self.get_config("clock")
        durations = self.get_config("durations")
        assert isinstance(clock, FakeClock) and isinstance(durations, list)
        clock.advance(durations[self.runs])
        self.runs += 1
        if n in self.get_config("fail_on", ()):  # type: ignore[operator]
            raise ValueError(f"bad {n}")
        self.emit("out", n=n)


class Source(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("out")

    def __call__(self, count: int) -> None:
        for n in range(count):
            self.emit("out", n=n)


def scripted_flow(durations: list[float], fail_on: tuple[int, ...] = ()) -> Flow:
    clock = FakeClock()
    flow = Flow(clock=clock, error_handler=ErrorHandler("continue"))
    flow.add_routine(Source(), "source")
    worker = Timed()
    worker.set_config(clock=clock, durations=durations, fail_on=fail_on)
    flow.add_routine(worker, "worker")
    sink = Timed()
    sink.set_config(clock=clock, durations=[0.0] * 100)
    flow.add_routine(sink, "sink")
    flow.connect("source", "out", "worker", "input")
    flow.connect("worker", "out", "sink", "input")
    return flow


def test_routine_figures_match_scripted_durations() -> None:
    durations = [0.1 * (i + 1) for i in range(20)]
    flow = scripted_flow(durations, fail_on=(3, 7))

    job = flow.execute("source", {"count": 20})

    assert job.tracker is not None
    figures = job.tracker.get_routine_performance("worker")
    assert figures.deliveries == 20
    assert figures.runs == 20
    assert figures.successes == 18
    assert figures.failures == 2
    assert figures.retries == 0
    assert figures.success_rate == pytest.approx(0.9)
    assert figures.min_time == pytest.approx(0.1)
    assert figures.max_time == pytest.approx(2.0)
    assert figures.avg_time == pytest.approx(sum(durations) / 20)
    assert figures.p50_time == pytest.approx(1.0)
    assert figures.p95_time == pytest.approx(1.9)


def test_flow_figures_total_the_job() -> None:
    flow = scripted_flow([0.5] * 4)

    job = flow.execute("source", {"count": 4})

    assert job.tracker is not None
    totals = job.tracker.get_flow_performance()
    assert totals.deliveries == 9
    assert totals.successes == 9
    assert totals.failures == 0
    assert totals.events_emitted == 12
    assert totals.wall_time == pytest.approx(2.0)
    assert totals.throughput == pytest.approx(4.5)


def test_retries_are_counted_per_routine() -> None:
    clock = FakeClock()
    flow = Flow(clock=clock)
    worker = Timed()
    worker.set_config(clock=clock, durations=[1.0] * 5, fail_on=(1,))
    worker.set_error_handler(ErrorHandler("retry", max_retries=2, retry_delay=0.0))
    flow.add_routine(worker, "worker")

    job = flow.execute("worker", {"n": 1})

    assert job.tracker is not None
    figures = job.tracker.get_routine_performance("worker")
    assert (figures.deliveries, figures.runs) == (1, 3)
    assert (figures.retries, figures.failures, figures.successes) == (2, 1, 0)
    assert figures.success_rate == 0.0


def test_events_are_counted_with_every_target() -> None:
    flow = scripted_flow([0.0] * 3)
    flow.add_routine(Timed(), "audit")
    flow.routines["audit"].set_config(clock=flow.clock, durations=[0.0] * 10)
    flow.connect("source", "out", "audit", "input")

    job = flow.execute("source", {"count": 3})

    assert job.tracker is not None
    assert job.tracker.get_event_counts() == {
        ("source", "out"): 3,
        ("worker", "out"): 3,
        ("audit", "out"): 3,
        ("sink", "out"): 3,
    }
    assert job.tracker.get_event_targets("source", "out") == (
        ("worker", "input"),
        ("audit", "input"),
    )
    assert job.tracker.get_event_targets("sink", "out") == ()
    assert job.tracker.routine_ids == ["source", "worker", "sink", "audit"]


def test_unknown_routine_has_no_figures() -> None:
    flow = scripted_flow([0.0])

    job = flow.execute("source", {"count": 0})

    assert job.tracker is not None
    with pytest.raises(UnknownPortError, match="'worker' has no recorded runs"):
        job.tracker.get_routine_performance("worker")


def test_empty_job_has_zero_throughput() -> None:
    flow = scripted_flow([])

    job = flow.execute("source", {"count": 0})

    assert job.tracker is not None
    assert job.tracker.get_flow_performance().throughput == 0.0
    assert "ExecutionTracker(routines=1" in repr(job.tracker)


def test_routine_figures_list_only_that_routines_events_from_every_run() -> None:
    # A store saves one routine's figures per checkpoint: they hold that
    # routine's events only, counted in earlier runs, restored, and live.
    tracker = ExecutionTracker()
    tracker._record_emission(("a", "out"), (("b", "in"),))
    tracker._record_emission(("b", "out"), ())
    tracker._restore_routine_figures(
        "a", {"figures": None, "events": [["err", 2, [["c", "in"]]]]}
    )
    tracker._know_routes({("b", "out"): (), ("a", "out"): (("b", "in"),)})
    tracker._counts_by_position()[1] += 3

    assert tracker._routine_figures("a")["events"] == [
        ["err", 2, [["c", "in"]]],
        ["out", 4, [["b", "in"]]],
    ]
    assert tracker._routine_figures("b")["events"] == [["out", 1, []]]
    assert tracker._routine_figures("c") == {"figures": None, "events": []}
    assert tracker.get_event_counts() == {
        ("a", "err"): 2,
        ("a", "out"): 4,
        ("b", "out"): 1,
    }
    assert tracker.get_flow_performance().events_emitted == 7


def record_completed(tracker: ExecutionTracker, routine_id: str, took: float) -> None:
    """Count a completed run as the sequential loop's finisher does."""
    times = tracker._times_by_routine().setdefault(routine_id, [])
    times.append(took)
    if len(times) >= FOLD_AT:
        tracker._fold(routine_id)


def test_figures_read_after_every_run_match_figures_read_once() -> None:
    # A store reads a routine's figures after each delivery (the fast fold of
    # one new time); past the sample limit, the totals, the stored row and the
    # samples kept are those of a tracker read only at the end.
    durations = [((n * 7919) % 1000 + 1) * 1e-7 for n in range(FOLD_AT + 700)]
    each, once = ExecutionTracker(), ExecutionTracker()
    rows = []

    for took in durations:
        record_completed(each, "a", took)
        record_completed(once, "a", took)
        rows.append(each._routine_figures("a")["figures"])

    assert rows[-1] == once._routine_figures("a")["figures"]
    assert isinstance(rows[-1], list)
    assert rows[-1][:3] == [len(durations), 0, 0]
    assert len(each._times_by_routine()["a"]) <= FOLD_AT
    assert each.serialize() == once.serialize()
    assert each.get_routine_performance("a") == once.get_routine_performance("a")


def test_routine_figures_list_a_routines_live_events_sorted_by_name() -> None:
    tracker = ExecutionTracker()
    tracker._know_routes({("a", "zeta"): (("b", "in"),), ("a", "alpha"): ()})
    tracker._counts_by_position()[0] += 2
    tracker._counts_by_position()[1] += 1

    assert tracker._routine_figures("a")["events"] == [
        ["alpha", 1, []],
        ["zeta", 2, [["b", "in"]]],
    ]


# -- a failed job, resumed ----------------------------------------------------------


def stopping_flow(
    fail_on: tuple[int, ...], *, continue_on: tuple[int, ...] = ()
) -> Flow:
    """source -> worker -> sink; the worker's failures on ``fail_on`` stop the job.

    ``continue_on`` names inputs on which a second worker, with CONTINUE,
    fails for good: the job goes on without them.
    """
    clock = FakeClock()
    flow = Flow(clock=clock)
    flow.add_routine(Source(), "source")
    worker = Timed()
    worker.set_config(clock=clock, durations=[0.0] * 100, fail_on=fail_on)
    flow.add_routine(worker, "worker")
    sink = Timed()
    sink.set_config(clock=clock, durations=[0.0] * 100, fail_on=continue_on)
    sink.set_error_handler(ErrorHandler("continue"))
    flow.add_routine(sink, "sink")
    flow.connect("source", "out", "worker", "input")
    flow.connect("worker", "out", "sink", "input")
    return flow


def test_a_resumed_failed_job_counts_the_delivery_that_stopped_it_as_retried() -> None:
    flow = stopping_flow(fail_on=(2,))
    failed = flow.execute("source", {"count": 5})
    assert failed.status.value == "failed"
    flow.routines["worker"].set_config(fail_on=())

    job = flow.resume(failed)

    clean = stopping_flow(fail_on=()).execute("source", {"count": 5})
    worker = job.tracker.get_routine_performance("worker")
    assert (worker.deliveries, worker.runs, worker.failures, worker.retries) == (
        5,
        6,
        0,
        1,
    )
    assert worker.success_rate == 1.0
    totals, expected = job.tracker.get_flow_performance(), clean.tracker
    assert (totals.deliveries, totals.successes, totals.failures) == (
        expected.get_flow_performance().deliveries,
        expected.get_flow_performance().successes,
        0,
    )
    assert totals.deliveries == job.delivery_count
    assert job.routine_states["worker"].status.value == "completed"
    assert [e.seq for e in job.errors] == [3]  # what happened stays on record


def test_a_resumed_failed_job_keeps_a_routines_failures_for_good() -> None:
    # sink fails for good on 1 (CONTINUE); then the worker's failure on 3 stops.
    flow = stopping_flow(fail_on=(3,), continue_on=(1,))
    failed = flow.execute("source", {"count": 5})
    flow.routines["worker"].set_config(fail_on=())

    job = flow.resume(failed)

    sink = job.tracker.get_routine_performance("sink")
    assert (sink.failures, sink.retries, sink.successes) == (1, 0, 4)
    assert job.routine_states["sink"].status.value == "failed"
    worker = job.tracker.get_routine_performance("worker")
    assert (worker.failures, worker.retries, worker.successes) == (0, 1, 5)


def test_a_job_failed_by_the_delivery_limit_keeps_its_failures_when_resumed() -> None:
    # The limit stops the job before the delivery runs: no failure to take back.
    flow = stopping_flow(fail_on=(), continue_on=(0,))
    flow.max_deliveries = 4
    failed = flow.execute("source", {"count": 5})
    assert "limit of 4 deliveries" in failed.errors[-1].message
    flow.max_deliveries = 100

    job = flow.resume(failed)

    sink = job.tracker.get_routine_performance("sink")
    assert (job.status.value, sink.failures, sink.retries) == ("completed", 1, 0)


def test_routed_failures_are_not_successes() -> None:
    tracker = ExecutionTracker()
    for outcome in ("completed", "failed", "retried", "completed"):
        tracker._record_run("worker", outcome, 0.5)
    tracker._record_run("worker", "failed", 0.5)
    tracker._figures("worker").failures -= 1  # this failure went to a fallback
    tracker._figures("worker").routed += 1

    worker = tracker.get_routine_performance("worker")
    flow = tracker.get_flow_performance()

    assert (worker.successes, worker.failures, worker.retries, worker.routed) == (
        2,
        1,
        1,
        1,
    )
    assert (worker.deliveries, worker.runs, worker.success_rate) == (4, 5, 0.5)
    assert (flow.successes, flow.failures, flow.routed, flow.deliveries) == (
        2,
        1,
        1,
        4,
    )
