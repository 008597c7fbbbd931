"""Starting a job takes shortcuts that keep every observable behaviour.

Each test guards one shortcut of job creation and of a run's set-up: the
plan read without a lock once built, the entry params copied and checked in
one step, the job state built field by field, a new tracker's empty counts,
and the entry delivery taking the sequential loop's inlined path. They
assert behaviour, never speed.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Final

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
from flowforge.engine.plan import ENTRY_PLANS, EntryPlans, Plan
from flowforge.engine.run import new_runtime, run_job
from flowforge.job_state import new_job_state
from flowforge.store import MemoryStore
from flowforge.testing import FakeClock

if TYPE_CHECKING:
    from _typeshed import TraceFunction

WAIT: Final = 10.0


class Hop(Routine):
    """Record each delivery's key, attempt and ``n``, then pass ``n + 1`` on."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.seen: list[tuple[tuple[str, str, int], int, int]] = []
        self.define_slot("input", self.hop)
        self.define_event("output")

    def hop(self, n: int) -> None:
        context = current_delivery()
        self.seen.append((context.delivery_key, context.attempt, n))
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("flaky")
        self.emit("output", n=n + 1)


def chain(length: int) -> Flow:
    flow = Flow(flow_id="chain")
    for index in range(length):
        flow.add_routine(Hop(), f"hop_{index}")
        if index:
            flow.connect(f"hop_{index - 1}", "output", f"hop_{index}", "input")
    return flow


def hop(flow: Flow, routine_id: str) -> Hop:
    routine = flow.routines[routine_id]
    assert isinstance(routine, Hop)
    return routine


def seen(flow: Flow) -> list[list[tuple[tuple[str, str, int], int, int]]]:
    return [hop(flow, routine_id).seen for routine_id in flow.routines]


# -- the plan ---------------------------------------------------------------------


def test_a_job_after_a_change_of_the_flow_runs_on_the_new_wiring() -> None:
    flow = chain(2)
    first = flow.execute("hop_0", {"n": 0})
    plan = flow._plans.get()
    flow.add_routine(Hop(), "hop_2")
    flow.connect("hop_1", "output", "hop_2", "input")

    second = flow.execute("hop_0", {"n": 0})

    assert flow._plans.get() is not plan
    assert sorted(first.routine_states) == ["hop_0", "hop_1"]
    assert sorted(second.routine_states) == ["hop_0", "hop_1", "hop_2"]
    assert second.flow_shape != first.flow_shape


def test_threads_asking_for_a_new_plan_at_once_get_the_same_one() -> None:
    flow = chain(50)
    barrier = threading.Barrier(8)
    plans = []

    def ask() -> None:
        barrier.wait(timeout=10)
        plans.append(flow._plans.get())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(plans) == 8
    assert all(plan is plans[0] for plan in plans)


# -- entry params -----------------------------------------------------------------


class StrKey(str):
    """A str subclass: a key like any other str."""


@pytest.mark.parametrize(
    "params",
    [{1: "a"}, {"a": 1, None: 2}, {"a": 1, b"b": 2}],
    ids=["int_key", "none_key_after_a_str", "bytes_key"],
)
def test_a_dict_with_a_non_str_key_is_refused_as_before(params: object) -> None:
    flow = chain(1)

    with pytest.raises(TypeError) as raised:
        flow.execute("hop_0", params)  # type: ignore[arg-type]  # wrong on purpose

    assert str(raised.value) == (
        f"entry_params must be a mapping with str keys, got {params!r}"
    )
    assert raised.value.__context__ is None
    assert raised.value.__cause__ is None


def test_entry_params_of_a_dict_are_a_copy_in_the_same_order() -> None:
    flow = chain(1)
    params: dict[str, object] = {"n": 1, StrKey("z"): 2, "self": 3, "a": 4}

    job = flow.execute("hop_0", params)

    assert job.entry_params == params
    assert list(job.entry_params) == ["n", "z", "self", "a"]
    assert type(job.entry_params) is dict
    assert job.entry_params is not params


class Params(dict[str, object]):
    """A dict subclass: checked like any mapping."""


def test_entry_params_of_a_dict_subclass_or_a_mapping_are_a_plain_dict() -> None:
    flow = chain(1)

    jobs = [
        flow.execute("hop_0", Params(n=1)),
        flow.execute("hop_0", {"n": 1}.items().mapping),
    ]

    assert [(type(job.entry_params), job.entry_params) for job in jobs] == [
        (dict, {"n": 1}),
        (dict, {"n": 1}),
    ]


# -- the job state ----------------------------------------------------------------


def test_a_new_job_state_equals_one_from_the_constructor_in_every_field() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)

    def build(make: Callable[..., JobState]) -> JobState:
        return make(
            job_id="j",
            flow_id="f",
            entry_routine_id="r",
            entry_params={"a": 1},
            entry_slot="input",
            created_at=created,
            history_limit=7,
            flow_shape={"routines": {}},
        )

    fast = build(new_job_state)
    slow = build(JobState)

    assert fast == slow
    # Every field, compared or not, is set as the constructor sets it, so a
    # field added to JobState fails here until new_job_state sets it too.
    for field in fields(JobState):
        assert getattr(fast, field.name) == getattr(slow, field.name), field.name
    assert fast._history.maxlen == 7
    assert fast.tracker is not slow.tracker
    assert fast.status is JobStatus.PENDING


def test_two_new_jobs_share_no_container() -> None:
    flow = chain(1)

    one, two = (
        new_runtime(flow._engine_setup()).new_job("hop_0", {"n": 0}) for _ in range(2)
    )

    for field in fields(JobState):
        value = getattr(one, field.name)
        if isinstance(
            value, (dict, list, set, ExecutionTracker)
        ) and field.name not in (
            "flow_shape",  # the plan's description of the flow: read only
        ):
            assert value is not getattr(two, field.name), field.name
    assert one._history is not two._history
    assert one.job_id != two.job_id
    assert all(len(job.job_id) == 32 and int(job.job_id, 16) >= 0 for job in (one, two))


@pytest.mark.parametrize(
    ("pause", "cancel", "finished"),
    [(False, False, True), (True, False, False), (False, True, True)],
    ids=["completed", "paused", "cancelled"],
)
def test_job_timestamps_keep_their_meaning(
    pause: bool, cancel: bool, finished: bool
) -> None:
    clock = FakeClock()
    start = clock.now()

    class Slow(Hop):
        def hop(self, n: int) -> None:
            clock.advance(5)
            if pause:
                flow.pause(reason="wait")
            if cancel:
                flow.cancel()
            super().hop(n)

    flow = Flow(clock=clock)
    flow.add_routine(Slow(), "slow")
    flow.add_routine(Hop(), "next")
    flow.connect("slow", "output", "next", "input")
    runtime = new_runtime(flow._engine_setup())
    job = runtime.new_job("slow", {"n": 0})
    clock.advance(1)

    run_job(runtime, job)

    assert job.created_at == start
    assert job.started_at == start + timedelta(seconds=1)
    assert job.finished_at == (start + timedelta(seconds=6) if finished else None)


def test_a_new_tracker_starts_counting_at_zero_for_each_route() -> None:
    tracker = ExecutionTracker()

    tracker._know_routes({("a", "out"): (("b", "in"),), ("b", "out"): ()})

    assert tracker._counts_by_position() == [0, 0]
    assert tracker.get_event_counts() == {}


# -- the entry delivery -----------------------------------------------------------


def test_the_entry_delivery_is_handled_like_any_other() -> None:
    flow = chain(3)

    job = flow.execute("hop_0", {"n": 0}, job_id="j")

    assert seen(flow) == [[(("j", f"hop_{i}", i), 0, i)] for i in range(3)]
    assert [
        (r.seq, r.routine_id, r.slot, r.outcome, r.attempt)
        for r in job.get_execution_history()
    ] == [(i, f"hop_{i}", "input", "completed", 0) for i in range(3)]
    assert (job.delivery_count, job.next_seq, job.pending) == (3, 3, [])
    assert job.tracker.get_routine_performance("hop_0").successes == 1
    assert job.tracker.get_event_counts() == {
        (f"hop_{i}", "output"): 1 for i in range(3)
    }
    assert all(s.deliveries == 1 for s in job.routine_states.values())
    assert job.entry_params == {"n": 0}


def test_a_failed_entry_stops_the_job_and_resumes_from_its_delivery() -> None:
    flow = chain(2)
    hop(flow, "hop_0").fail_first = 1

    failed = flow.execute("hop_0", {"n": 0}, job_id="j")
    stopped = (
        failed.status,
        [(d.seq, d.routine_id, d.data, d.connection) for d in failed.pending],
        dict(failed.slot_buffers),
        failed.delivery_count,
    )
    resumed = flow.resume(failed)

    assert stopped == (JobStatus.FAILED, [(0, "hop_0", {"n": 0}, -1)], {}, 0)
    assert resumed.status is JobStatus.COMPLETED
    assert seen(flow) == [
        [(("j", "hop_0", 0), 0, 0), (("j", "hop_0", 0), 0, 0)],
        [(("j", "hop_1", 1), 0, 1)],
    ]
    assert [r.outcome for r in resumed.get_execution_history()] == [
        "failed",
        "completed",
        "completed",
    ]


def test_a_retried_entry_keeps_its_key_and_counts_its_attempts() -> None:
    flow = chain(2)
    flaky = hop(flow, "hop_0")
    flaky.fail_first = 2
    flaky.set_error_handler(ErrorHandler("retry", max_retries=3, retry_delay=0.0))

    job = flow.execute("hop_0", {"n": 0}, job_id="j")

    assert job.status is JobStatus.COMPLETED
    assert seen(flow) == [
        [(("j", "hop_0", 0), attempt, 0) for attempt in range(3)],
        [(("j", "hop_1", 1), 0, 1)],
    ]
    assert job.tracker.get_routine_performance("hop_0").retries == 2


def test_a_paused_entry_resumes_from_where_it_stopped() -> None:
    flow = chain(2)
    hop(flow, "hop_0").fail_first = 1
    hop(flow, "hop_0").set_error_handler(
        ErrorHandler("retry", max_retries=1, retry_delay=0.0)
    )
    runtime = new_runtime(flow._engine_setup())
    job = runtime.new_job("hop_0", {"n": 0}, job_id="j")
    flow.pause(job, reason="before")

    paused = run_job(runtime, job)
    stopped = (paused.status, [(d.seq, d.connection) for d in paused.pending])
    resumed = flow.resume(paused)

    assert stopped == (JobStatus.PAUSED, [(0, -1)])
    assert resumed.status is JobStatus.COMPLETED
    assert seen(flow)[0] == [(("j", "hop_0", 0), a, 0) for a in range(2)]
    assert seen(flow)[1] == [(("j", "hop_1", 1), 0, 1)]


def test_every_routine_of_a_flow_can_be_its_entry_beyond_the_kept_plans() -> None:
    flow = chain(ENTRY_PLANS + 4)

    jobs = [flow.execute(f"hop_{i}", {"n": i}) for i in range(ENTRY_PLANS + 4)]

    assert all(job.status is JobStatus.COMPLETED for job in jobs)
    assert [job.delivery_count for job in jobs] == [
        ENTRY_PLANS + 4 - i for i in range(ENTRY_PLANS + 4)
    ]
    assert flow._plans.get().direct[-1] is None


def test_an_entry_changed_since_the_last_job_goes_to_its_new_target() -> None:
    flow = chain(2)
    flow.execute("hop_1", {"n": 0})
    flow.add_routine(Hop(), "hop_2")
    flow.connect("hop_1", "output", "hop_2", "input")

    job = flow.execute("hop_1", {"n": 0})

    assert sorted(job.routine_states) == ["hop_1", "hop_2"]


def _lines_of(function: Callable[..., object]) -> list[int]:
    """Return the line numbers of ``function``'s body, past its docstring."""
    source, first = inspect.getsourcelines(function)
    body = [first + i for i, line in enumerate(source) if line.strip()]
    end_of_docstring = next(
        first + i for i, line in enumerate(source) if line.strip().endswith('"""')
    )
    return [line for line in body if line > end_of_docstring]


@pytest.mark.parametrize("line", _lines_of(EntryPlans.get))
def test_an_entry_plan_is_never_built_from_a_plan_older_than_the_flows(
    line: int,
) -> None:
    # A job that read the flow's plan before the flow changed asks for its
    # entry plan while a job on the new plan asks too, held at ``line``.
    flow = chain(1)
    flow.execute("hop_0", {"n": 0})
    old = flow._plans.get()
    flow.add_routine(Hop(), "hop_1")
    flow.connect("hop_0", "output", "hop_1", "input")
    new = flow._plans.get()
    held, go = threading.Event(), threading.Event()
    got: list[object] = []

    def hold_at_line(frame: FrameType, event: str, _: object) -> TraceFunction | None:
        if frame.f_code is not EntryPlans.get.__code__:
            return None

        def local(frame: FrameType, event: str, _: object) -> TraceFunction:
            if event == "line" and frame.f_lineno == line and not held.is_set():
                held.set()
                go.wait(WAIT)
            return local

        return local

    def new_job() -> None:
        sys.settrace(hold_at_line)
        try:
            got.append(flow._plans.entries.get(new, "hop_0", "input"))
        finally:
            sys.settrace(None)
            held.set()  # also when ``line`` did not run

    thread = threading.Thread(target=new_job)
    thread.start()
    held.wait(WAIT)
    from_old = flow._plans.entries.get(old, "hop_0", "input")
    go.set()
    thread.join(WAIT)

    [from_new] = got
    assert isinstance(from_new, Plan) and from_new.edges is new.edges
    assert from_old.edges is old.edges
    assert flow._plans.entries.get(new, "hop_0", "input").edges is new.edges
    job = flow.execute("hop_0", {"n": 0})
    assert sorted(job.routine_states) == ["hop_0", "hop_1"]


def test_a_durable_entry_is_checkpointed_as_before() -> None:
    flow = chain(2)
    store = MemoryStore()

    job = flow.execute("hop_0", {"n": 0}, job_id="j", store=store)

    assert job.status is JobStatus.COMPLETED
    assert store.load("j") == job
