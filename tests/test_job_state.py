"""JobState: routine states, bounded history, timestamps and the current delivery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from flowforge import (
    DeliveryContext,
    ErrorHandler,
    ExecutionError,
    Flow,
    JobState,
    JobStatus,
    Routine,
    UnknownPortError,
    current_delivery,
)
from flowforge.testing import FakeClock, Recorder, Relay


class Countdown(Routine):
    """Emit ``n - 1`` to itself until ``n`` reaches 1."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("again")

    def handle(self, n: int) -> None:
        if n > 1:
            self.emit("again", n=n - 1)


class Probe(Routine):
    """Record what ``current_delivery()`` says; fail the first ``fail_times`` runs."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, str | None, int, int]] = []
        self.define_slot("input", self.handle)

    def handle(self) -> None:
        delivery = current_delivery()
        self.seen.append(
            (
                delivery.job.job_id,
                delivery.routine_id,
                delivery.slot,
                delivery.seq,
                delivery.attempt,
            )
        )
        failures = self.get_config("fail_times", 0)
        assert isinstance(failures, int)
        if failures > 0:
            self.set_config(fail_times=failures - 1)
            raise RuntimeError("probe failing as configured")


class ProbeSource(Routine):
    """A source that records the slot ``current_delivery()`` reports."""

    def __init__(self) -> None:
        super().__init__()
        self.slots_seen: list[str | None] = []
        self.define_event("output")

    def __call__(self) -> None:
        self.slots_seen.append(current_delivery().slot)
        self.emit("output")


class Failing(Routine):
    """Always raise."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self) -> None:
        raise ValueError("always fails")


def run_pair(flow: Flow) -> JobState:
    flow.add_routine(Relay(), "relay")
    flow.add_routine(Recorder(), "sink")
    flow.connect("relay", "output", "sink", "input")
    return flow.execute("relay", {"a": 1}, job_id="job_1")


# -- identity and status --------------------------------------------------------------


def test_job_state_records_its_identity_and_entry(flow: Flow) -> None:
    job = run_pair(flow)

    assert (job.job_id, job.flow_id, job.entry_routine_id, job.entry_params) == (
        "job_1",
        "test_flow",
        "relay",
        {"a": 1},
    )


def test_jobs_without_a_given_id_get_distinct_ids(flow: Flow) -> None:
    flow.add_routine(Recorder(), "sink")

    first, second = flow.execute("sink"), flow.execute("sink")

    assert first.job_id != second.job_id


def test_job_status_values_are_lowercase_strings() -> None:
    completed: str = JobStatus.COMPLETED

    assert completed == "completed"
    assert [status.value for status in JobStatus] == [
        "pending",
        "running",
        "paused",
        "completed",
        "failed",
        "cancelled",
    ]


def test_completed_job_has_no_error(flow: Flow) -> None:
    job = run_pair(flow)

    assert job.error is None


def test_failed_job_reports_the_error_that_failed_it(flow: Flow) -> None:
    flow.add_routine(Failing(), "failing")

    job = flow.execute("failing")

    assert job.error is not None
    assert (job.error.routine_id, job.error.error_type, job.error.message) == (
        "failing",
        "ValueError",
        "always fails",
    )
    assert "ValueError: always fails" in job.error.traceback


def test_job_state_repr_shows_identity_and_progress(flow: Flow) -> None:
    job = run_pair(flow)

    text = repr(job)

    assert "job_id='job_1'" in text
    assert "status='completed'" in text


# -- routine states -------------------------------------------------------------------


def test_routine_states_cover_every_routine_that_ran(flow: Flow) -> None:
    flow.add_routine(Recorder(), "idle")

    job = run_pair(flow)

    assert sorted(job.routine_states) == ["relay", "sink"]


def test_get_routine_state_returns_deliveries_handled(flow: Flow) -> None:
    flow.add_routine(Countdown(), "loop")
    flow.connect("loop", "again", "loop", "input")

    job = flow.execute("loop", {"n": 4})

    assert job.get_routine_state("loop").deliveries == 4


def test_get_routine_state_of_a_routine_that_did_not_run_is_refused(
    flow: Flow,
) -> None:
    job = run_pair(flow)

    with pytest.raises(UnknownPortError, match="'idle' has not run in job 'job_1'"):
        job.get_routine_state("idle")


# -- execution history ----------------------------------------------------------------


def test_history_lists_handled_deliveries_oldest_first(flow: Flow) -> None:
    job = run_pair(flow)

    history = job.get_execution_history()

    assert [(r.seq, r.routine_id, r.slot, r.outcome, r.attempt) for r in history] == [
        (0, "relay", "input", "completed", 0),
        (1, "sink", "input", "completed", 0),
    ]


def test_history_can_be_filtered_by_routine(flow: Flow) -> None:
    job = run_pair(flow)

    history = job.get_execution_history(routine_id="sink")

    assert [record.routine_id for record in history] == ["sink"]


def test_history_of_an_unknown_routine_is_empty(flow: Flow) -> None:
    job = run_pair(flow)

    assert job.get_execution_history(routine_id="nobody") == []


def test_history_keeps_only_the_last_history_limit_deliveries() -> None:
    flow = Flow(history_limit=5)
    flow.add_routine(Countdown(), "loop")
    flow.connect("loop", "again", "loop", "input")

    job = flow.execute("loop", {"n": 20})

    assert [record.seq for record in job.get_execution_history()] == [
        15,
        16,
        17,
        18,
        19,
    ]
    assert job.delivery_count == 20


def test_history_records_durations_that_are_not_negative(flow: Flow) -> None:
    job = run_pair(flow)

    assert all(record.duration >= 0 for record in job.get_execution_history())


# -- timestamps -----------------------------------------------------------------------


def first_history_time(job: JobState) -> datetime | None:
    return job.get_execution_history()[0].started_at


def first_error_time(job: JobState) -> datetime | None:
    return job.errors[0].at


TIMESTAMPS: list[tuple[str, Callable[[JobState], datetime | None]]] = [
    ("created_at", lambda job: job.created_at),
    ("started_at", lambda job: job.started_at),
    ("finished_at", lambda job: job.finished_at),
    ("history", first_history_time),
    ("error", first_error_time),
]


@pytest.mark.parametrize(
    "read", [read for _, read in TIMESTAMPS], ids=[name for name, _ in TIMESTAMPS]
)
def test_timestamps_are_aware_utc_datetimes(
    flow: Flow, read: Callable[[JobState], datetime | None]
) -> None:
    flow.set_error_handler(ErrorHandler("continue"))
    flow.add_routine(Failing(), "failing")

    stamp = read(flow.execute("failing"))

    assert isinstance(stamp, datetime)
    assert stamp.utcoffset() == timedelta(0)


def test_timestamps_come_from_the_flow_clock(clock: FakeClock) -> None:
    flow = Flow(clock=clock)
    flow.add_routine(Recorder(), "sink")

    job = flow.execute("sink")

    assert job.created_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert job.finished_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_history_times_follow_the_clock_during_the_job(clock: FakeClock) -> None:
    flow = Flow(clock=clock, history_limit=10)
    flow.add_routine(Relay(), "relay")
    flow.add_routine(Recorder(), "sink")
    flow.connect("relay", "output", "sink", "input")

    def take_time(data: dict[str, object]) -> dict[str, object]:
        clock.advance(2.5)
        return data

    flow.routines["relay"].set_config(transform=take_time)

    job = flow.execute("relay", {"a": 1})

    assert [r.started_at for r in job.get_execution_history()] == [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 2, 500000, tzinfo=UTC),
    ]


# -- current delivery -----------------------------------------------------------------


def test_current_delivery_inside_a_handler_describes_the_delivery(
    flow: Flow,
) -> None:
    probe = Probe()
    flow.add_routine(probe, "probe")

    flow.execute("probe", job_id="job_1")

    assert probe.seen == [("job_1", "probe", "input", 0, 0)]


def test_current_delivery_gives_downstream_deliveries_their_own_seq(
    flow: Flow,
) -> None:
    probe = Probe()
    flow.add_routine(Relay(), "relay")
    flow.add_routine(probe, "probe")
    flow.connect("relay", "output", "probe", "input")

    flow.execute("relay", {"a": 1}, job_id="job_1")

    assert probe.seen == [("job_1", "probe", "input", 1, 0)]


def test_current_delivery_counts_attempts_with_a_stable_seq(clock: FakeClock) -> None:
    flow = Flow(clock=clock, error_handler=ErrorHandler("retry", max_retries=2))
    probe = Probe()
    probe.set_config(fail_times=2)
    flow.add_routine(probe, "probe")

    job = flow.execute("probe", job_id="job_1")

    assert job.status is JobStatus.COMPLETED
    assert probe.seen == [
        ("job_1", "probe", "input", 0, 0),
        ("job_1", "probe", "input", 0, 1),
        ("job_1", "probe", "input", 0, 2),
    ]


def test_current_delivery_of_a_source_routine_has_no_slot(flow: Flow) -> None:
    source = ProbeSource()
    flow.add_routine(source, "source")

    flow.execute("source")

    assert source.slots_seen == [None]


def test_delivery_key_is_job_routine_and_seq(flow: Flow) -> None:
    keys: list[tuple[str, str, int]] = []

    def remember(data: dict[str, object]) -> dict[str, object]:
        context: DeliveryContext = current_delivery()
        keys.append(context.delivery_key)
        return data

    relay = Relay()
    relay.set_config(transform=remember)
    flow.add_routine(relay, "relay")

    flow.execute("relay", {"a": 1}, job_id="job_1")

    assert keys == [("job_1", "relay", 0)]


def test_current_delivery_outside_a_handler_raises_execution_error() -> None:
    with pytest.raises(ExecutionError, match="works only inside a handler"):
        current_delivery()


def test_current_delivery_after_a_job_ended_raises_execution_error(
    flow: Flow,
) -> None:
    flow.add_routine(Recorder(), "sink")
    flow.execute("sink")

    with pytest.raises(ExecutionError, match="no delivery is being handled"):
        current_delivery()
