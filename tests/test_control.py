"""Pause, cancel and resume: from a handler, from another thread, across rebuilds."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from flowforge import (
    ExecutionError,
    Flow,
    InvalidFlowError,
    JobState,
    JobStateError,
    JobStatus,
    Routine,
)
from flowforge.testing import FakeClock, Recorder

WAIT = 10.0  # seconds a thread waits for another before the test fails


class Feed(Routine):
    """A source: emits ``item`` once for each ``n`` in ``range(count)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("item", ["n"])

    def __call__(self, count: int) -> None:
        self.increment_stat("calls")
        for n in range(count):
            self.emit("item", n=n)


class Gate(Routine):
    """Pass ``n`` on with its square; stop, fail or hold where the config says.

    Config: ``pause_at`` pauses the job (through ``controller``), ``cancel_at``
    cancels it, ``fail_at`` raises, and ``hold_at`` sets ``reached`` and waits
    for ``proceed`` so that another thread can act while the job runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.controller: Flow | None = None
        self.reached = threading.Event()
        self.proceed = threading.Event()
        self.define_event("passed", ["n", "square"])

    def handle(self, n: int) -> None:
        self.increment_stat("seen")
        self.increment_stat("total", n)
        if n == self.get_config("fail_at"):
            raise RuntimeError(f"gate broken at {n}")
        if self.controller is not None and n == self.get_config("pause_at"):
            self.controller.pause(reason=f"operator at {n}", checkpoint={"n": n})
        if self.controller is not None and n == self.get_config("cancel_at"):
            self.controller.cancel()
        if n == self.get_config("hold_at"):
            self.reached.set()
            if not self.proceed.wait(WAIT):
                raise TimeoutError("the controlling thread never answered")
        self.emit("passed", n=n, square=n * n)


def build(
    *,
    slot: str = "input",
    extra_routine: bool = False,
    link_sink: bool = True,
    **gate_config: object,
) -> Flow:
    """Build ``feed -> gate -> sink``; the arguments change its definition."""
    flow = Flow("control", clock=FakeClock())
    flow.add_routine(Feed(), "feed")
    gate = Gate()
    gate.define_slot(slot, gate.handle)
    gate.controller = flow
    gate.set_config(**gate_config)
    flow.add_routine(gate, "gate")
    flow.add_routine(Recorder(), "sink")
    if extra_routine:
        flow.add_routine(Recorder(), "extra")
    flow.connect("feed", "item", "gate", slot)
    if link_sink:
        flow.connect("gate", "passed", "sink", "input")
    return flow


def gate_of(flow: Flow) -> Gate:
    gate = flow.routines["gate"]
    assert isinstance(gate, Gate)
    return gate


def sink_of(flow: Flow) -> Recorder:
    sink = flow.routines["sink"]
    assert isinstance(sink, Recorder)
    return sink


def results(flow: Flow, job: JobState) -> dict[str, object]:
    """Return what a job's end looks like from outside: outputs, stats, counts."""
    return {
        "status": job.status,
        "received": sink_of(flow).received,
        "stats": {rid: routine.stats() for rid, routine in flow.routines.items()},
        "deliveries": {rid: s.deliveries for rid, s in job.routine_states.items()},
        "delivery_count": job.delivery_count,
        "events": job.tracker.get_event_counts(),
    }


def uninterrupted(count: int) -> dict[str, object]:
    flow = build()
    return results(flow, flow.execute("feed", {"count": count}))


def paused_job(flow: Flow, count: int = 10) -> JobState:
    job = flow.execute("feed", {"count": count})
    assert job.status is JobStatus.PAUSED
    return job


def run_in_thread(
    action: Callable[[], JobState],
) -> tuple[threading.Thread, list[JobState]]:
    """Start ``action`` on a thread; its result lands in the returned list."""
    outcome: list[JobState] = []
    thread = threading.Thread(target=lambda: outcome.append(action()))
    thread.start()
    return thread, outcome


# -- pause from a handler --------------------------------------------------------------


def test_pause_from_a_handler_returns_a_paused_job_with_its_pending_work() -> None:
    flow = build(pause_at=3)

    job = flow.execute("feed", {"count": 10})

    assert job.status is JobStatus.PAUSED
    assert job.finished_at is None
    assert [d.data for d in reversed(job.pending)] == [{"n": 3, "square": 9}] + [
        {"n": n} for n in range(4, 10)
    ]
    assert job.slot_buffers == {
        ("gate", "input"): {"n": 3},
        ("sink", "input"): {"n": 2, "square": 4},
    }
    assert sink_of(flow).received == [{"n": n, "square": n * n} for n in range(3)]
    [point] = job.pause_points
    assert (point.reason, point.checkpoint) == ("operator at 3", {"n": 3})
    assert point.deliveries == job.delivery_count == 1 + 4 + 3
    assert point.at.tzinfo is not None


def test_handler_that_pauses_still_delivers_its_emissions_after_resume() -> None:
    flow = build(pause_at=0)
    job = paused_job(flow)

    flow.resume(job)

    assert sink_of(flow).received[0] == {"n": 0, "square": 0}


def test_resume_in_the_same_process_matches_an_uninterrupted_run() -> None:
    flow = build(pause_at=4)
    job = paused_job(flow)

    resumed = flow.resume(job)

    assert resumed is job
    assert resumed.status is JobStatus.COMPLETED
    assert results(flow, resumed) == uninterrupted(10)
    assert len(resumed.pause_points) == 1


def test_resume_never_runs_the_entry_routine_again() -> None:
    flow = build(pause_at=2)
    job = paused_job(flow)

    flow.resume(job)

    assert flow.routines["feed"].stats() == {"calls": 1}
    entry_runs = [h for h in job.get_execution_history("feed")]
    assert [(h.seq, h.outcome) for h in entry_runs] == [(0, "completed")]


def test_pause_with_no_job_outside_a_handler_is_an_execution_error() -> None:
    flow = build()

    with pytest.raises(ExecutionError, match=r"pause\(\) without a job works only"):
        flow.pause()


def test_cancel_with_no_job_outside_a_handler_is_an_execution_error() -> None:
    flow = build()

    with pytest.raises(ExecutionError, match=r"cancel\(\) without a job works only"):
        flow.cancel()


def test_cancel_from_a_handler_stops_the_job_at_the_next_boundary() -> None:
    flow = build(cancel_at=2)

    job = flow.execute("feed", {"count": 10})

    assert job.status is JobStatus.CANCELLED
    assert job.pending == []
    assert len(sink_of(flow).received) == 2
    cancelled = [h for h in job.get_execution_history() if h.outcome == "cancelled"]
    assert [(h.routine_id, h.slot) for h in cancelled] == [("sink", "input")] + [
        ("gate", "input")
    ] * 7


# -- pause and cancel from another thread ----------------------------------------------


def test_pause_from_another_thread_stops_a_long_job_at_a_delivery_boundary() -> None:
    flow = build(hold_at=100)
    gate = gate_of(flow)
    thread, outcome = run_in_thread(
        lambda: flow.execute("feed", {"count": 300}, job_id="the-job-id")
    )
    assert gate.reached.wait(WAIT)

    flow.pause("the-job-id", reason="operator")
    gate.proceed.set()
    thread.join(WAIT)

    assert not thread.is_alive()
    [job] = outcome
    assert job.status is JobStatus.PAUSED
    assert job.pause_points[0].reason == "operator"
    assert len(sink_of(flow).received) == 100
    assert len(job.pending) == 1 + 199  # the gate's emission, the items left


def test_a_second_job_with_a_running_jobs_id_is_refused_and_the_first_ends() -> None:
    flow = build(hold_at=2)
    gate = gate_of(flow)
    thread, outcome = run_in_thread(
        lambda: flow.execute("feed", {"count": 5}, job_id="the-job-id")
    )
    assert gate.reached.wait(WAIT)

    with pytest.raises(
        JobStateError, match="'the-job-id' is running: a job with this id already runs"
    ):
        flow.execute("feed", {"count": 5}, job_id="the-job-id")
    gate.proceed.set()
    thread.join(WAIT)

    [job] = outcome
    assert job.status is JobStatus.COMPLETED
    assert len(sink_of(flow).received) == 5  # the refused job ran nothing
    assert flow.execute("feed", {"count": 1}, job_id="the-job-id").is_finished


def test_job_paused_from_another_thread_resumes_to_the_uninterrupted_result() -> None:
    flow = build(hold_at=100)
    gate = gate_of(flow)
    thread, outcome = run_in_thread(
        lambda: flow.execute("feed", {"count": 300}, job_id="the-job-id")
    )
    assert gate.reached.wait(WAIT)
    flow.pause("the-job-id")
    gate.proceed.set()
    thread.join(WAIT)
    [job] = outcome

    resumed = flow.resume(job)

    assert results(flow, resumed) == uninterrupted(300)


def test_cancel_from_another_thread_drops_the_pending_deliveries() -> None:
    flow = build(hold_at=100)
    gate = gate_of(flow)
    thread, outcome = run_in_thread(
        lambda: flow.execute("feed", {"count": 300}, job_id="the-job-id")
    )
    assert gate.reached.wait(WAIT)

    flow.cancel("the-job-id", reason="operator")
    gate.proceed.set()
    thread.join(WAIT)

    assert not thread.is_alive()
    [job] = outcome
    assert job.status is JobStatus.CANCELLED
    assert job.pending == []
    assert job.finished_at is not None
    assert len(sink_of(flow).received) == 100
    history = job.get_execution_history()
    cancelled = [h.seq for h in history if h.outcome == "cancelled"]
    assert len(cancelled) == 200
    assert not {h.seq for h in history if h.outcome == "completed"} & set(cancelled)


def test_pause_by_the_id_of_a_job_that_has_ended_is_a_job_state_error() -> None:
    flow = build()
    flow.execute("feed", {"count": 3}, job_id="the-job-id")

    with pytest.raises(JobStateError, match=r"'the-job-id' is not running"):
        flow.pause("the-job-id")


# -- control of jobs that are not running ----------------------------------------------


def test_pause_of_an_unknown_job_id_is_a_job_state_error() -> None:
    flow = build()

    with pytest.raises(JobStateError, match=r"job 'nope' is not running: cannot pause"):
        flow.pause("nope")


@pytest.mark.parametrize(
    "status", [JobStatus.PAUSED, JobStatus.COMPLETED], ids=["paused", "completed"]
)
def test_pause_of_a_job_that_is_not_running_is_a_job_state_error(
    status: JobStatus,
) -> None:
    flow = build(pause_at=None if status is JobStatus.COMPLETED else 1)
    job = flow.execute("feed", {"count": 3})
    assert job.status is status

    with pytest.raises(JobStateError, match=f"is {status.value}: cannot pause"):
        flow.pause(job)


def test_cancel_of_a_completed_job_is_a_job_state_error() -> None:
    flow = build()
    job = flow.execute("feed", {"count": 3})

    with pytest.raises(JobStateError, match=r"is completed: cannot cancel"):
        flow.cancel(job)

    assert job.status is JobStatus.COMPLETED


def test_cancel_of_a_paused_job_drops_its_pending_work_without_running_it() -> None:
    flow = build(pause_at=3)
    job = paused_job(flow)
    pending_seqs = sorted(d.seq for d in job.pending)

    flow.cancel(job)

    assert job.status is JobStatus.CANCELLED
    assert job.pending == []
    assert job.finished_at is not None
    assert len(sink_of(flow).received) == 3
    history = job.get_execution_history()
    assert sorted(h.seq for h in history if h.outcome == "cancelled") == pending_seqs


def cancelled_job(flow: Flow) -> JobState:
    job = paused_job(flow)
    flow.cancel(job)
    return job


@pytest.mark.parametrize(
    ("make_job", "status"),
    [
        (lambda flow: flow.execute("feed", {"count": 3}), "completed"),
        (cancelled_job, "cancelled"),
    ],
    ids=["completed", "cancelled"],
)
def test_resume_of_a_finished_job_is_a_job_state_error(
    make_job: Callable[[Flow], JobState], status: str
) -> None:
    flow = build(pause_at=None if status == "completed" else 1)
    job = make_job(flow)

    with pytest.raises(JobStateError, match=f"is {status}: only a paused or failed"):
        flow.resume(job)


# -- resuming failed jobs --------------------------------------------------------------


def test_resume_of_a_failed_job_runs_the_failed_delivery_first() -> None:
    flow = build(fail_at=4)
    job = flow.execute("feed", {"count": 10})
    assert job.status is JobStatus.FAILED
    failed_seq = job.errors[-1].seq
    handled_before = len(job.get_execution_history())
    gate_of(flow).set_config(fail_at=None)

    resumed = flow.resume(job)

    assert resumed.status is JobStatus.COMPLETED
    after = resumed.get_execution_history()[handled_before:]
    assert (after[0].seq, after[0].routine_id, after[0].outcome) == (
        failed_seq,
        "gate",
        "completed",
    )
    assert sink_of(flow).received == uninterrupted(10)["received"]
    assert flow.routines["feed"].stats() == {"calls": 1}


def test_resume_of_a_failed_job_whose_cause_remains_fails_again() -> None:
    flow = build(fail_at=4)
    job = flow.execute("feed", {"count": 10})

    flow.resume(job)

    assert job.status is JobStatus.FAILED
    assert [e.seq for e in job.errors] == [job.errors[0].seq] * 2


# -- resuming on a rebuilt or changed flow ---------------------------------------------


def test_resume_of_a_deserialized_job_restores_stats_into_a_rebuilt_flow() -> None:
    job = paused_job(build(pause_at=5))
    data = json.loads(json.dumps(job.serialize()))
    rebuilt = build()
    assert all(not r.stats() for r in rebuilt.routines.values())

    resumed = rebuilt.resume(JobState.deserialize(data))

    expected = uninterrupted(10)
    assert resumed.status is JobStatus.COMPLETED
    assert {rid: r.stats() for rid, r in rebuilt.routines.items()} == expected["stats"]
    assert {rid: s.stats for rid, s in resumed.routine_states.items()} == expected[
        "stats"
    ]
    assert rebuilt.routines["feed"].stats() == {"calls": 1}


def test_resume_of_a_deserialized_job_on_a_rebuilt_flow_matches_the_outputs() -> None:
    job = paused_job(build(pause_at=5))
    rebuilt = build()

    resumed = rebuilt.resume(JobState.deserialize(job.serialize()))

    outputs = results(rebuilt, resumed)
    expected = uninterrupted(10)
    assert outputs.pop("received") == [{"n": n, "square": n * n} for n in range(5, 10)]
    del expected["received"]
    assert outputs == expected


CHANGES: list[tuple[Callable[[], Flow], str]] = [
    (lambda: build(extra_routine=True), r"routine 'extra' was added"),
    (
        lambda: build(link_sink=False),
        r"connection gate\.passed -> sink\.input was removed",
    ),
    (
        lambda: build(slot="renamed"),
        r"routine 'gate': slots changed from \['input'\] to \['renamed'\]",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"),
    CHANGES,
    ids=["routine_added", "connection_removed", "slot_renamed"],
)
def test_resume_on_a_changed_flow_is_refused_saying_what_changed(
    change: Callable[[], Flow], message: str
) -> None:
    job = paused_job(build(pause_at=5))
    changed = change()

    with pytest.raises(InvalidFlowError, match=message) as caught:
        changed.resume(JobState.deserialize(job.serialize()))

    assert "force=True" in str(caught.value)
    assert all(not r.stats() for r in changed.routines.values())


def test_resume_on_a_changed_flow_lists_every_change() -> None:
    job = paused_job(build(pause_at=5))
    changed = build(extra_routine=True, link_sink=False)

    with pytest.raises(InvalidFlowError, match=r"'extra' was added; connection gate"):
        changed.resume(job)


def test_resume_with_force_runs_on_a_changed_flow() -> None:
    job = paused_job(build(pause_at=5))
    changed = build(extra_routine=True)

    resumed = changed.resume(JobState.deserialize(job.serialize()), force=True)

    assert resumed.status is JobStatus.COMPLETED
    assert [r["n"] for r in sink_of(changed).received] == list(range(5, 10))
