"""What a final failure does to the job: strategy x exception x optional/critical.

A source emits two items to ``worker``, which fails as each row says, and
whose successes reach ``sink``. Every strategy meets a retryable exception
that goes away on the second attempt, one that is not retryable, and one that
never goes away (retries exhausted), with an optional, a default and a
critical handler.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path
from typing import NamedTuple

import pytest

from flowforge import (
    ErrorHandler,
    ExecutionError,
    Flow,
    JobFailedError,
    JobState,
    JobStatus,
    Routine,
    current_delivery,
)
from flowforge.store import JsonDirectoryStore, MemoryStore, SqliteStore, Store
from flowforge.testing import FakeClock, Recorder


class Source(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("items")

    def __call__(self) -> None:
        self.emit("items", item=1)
        self.emit("items", item=2)


class Worker(Routine):
    """Fails as its ``fault`` config says; passes the item on otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, item: int) -> None:
        fault = self.get_config("fault")
        if fault == "retryable" and current_delivery().attempt == 0:
            raise ConnectionError(f"item {item}: try again")
        if fault == "not_retryable":
            raise ValueError(f"item {item}: bad")
        if fault == "exhausted":
            raise ConnectionError(f"item {item}: down")
        self.emit("output", item=item)


def build(strategy: str, fault: str, mode: str) -> Flow:
    flow = Flow(flow_id="rules", clock=FakeClock())
    flow.add_routine(Source(), "source")
    worker = Worker()
    worker.set_config(fault=fault)
    worker.set_error_handler(
        ErrorHandler(
            strategy,
            max_retries=2,
            retryable_exceptions=(ConnectionError,),
            is_optional=mode == "optional",
            is_critical=mode == "critical",
        )
    )
    flow.add_routine(worker, "worker")
    flow.add_routine(Recorder(), "sink")
    flow.connect("source", "items", "worker", "input")
    flow.connect("worker", "output", "sink", "input")
    return flow


class Outcome(NamedTuple):
    status: JobStatus
    errors: int
    """Error records, all the worker's."""
    attempt: int
    """The attempt number each error record carries."""
    failures: int
    retries: int
    successes: int


FINAL = {
    # strategy: what a final failure does, for (optional, default, critical)
    "stop": ("continue", "stop", "stop"),
    "continue": ("continue", "continue", "stop"),
    "skip": ("skip", "skip", "stop"),
    "retry": ("continue", "stop", "stop"),
}
MODES = ("optional", "default", "critical")
FAULTS = ("retryable", "not_retryable", "exhausted")
FAILED, COMPLETED = JobStatus.FAILED, JobStatus.COMPLETED


def expected(strategy: str, fault: str, mode: str) -> Outcome:
    if strategy == "retry" and fault == "retryable":  # each item recovers
        return Outcome(COMPLETED, 0, 0, failures=0, retries=2, successes=2)
    attempts = 3 if strategy == "retry" and fault == "exhausted" else 1
    final = FINAL[strategy][MODES.index(mode)]
    items_failed = 2 if final == "continue" else 1  # stop and skip: the first
    return Outcome(
        FAILED if final == "stop" else COMPLETED,
        items_failed,
        attempts - 1,
        failures=items_failed,
        retries=items_failed * (attempts - 1),
        successes=0,
    )


ROWS = [(s, f, m) for s in FINAL for f in FAULTS for m in MODES]
IDS = ["-".join(row) for row in ROWS]


def observed(job: JobState, fault: str) -> Outcome:
    worker = job.tracker.get_routine_performance("worker")
    error_type = "ValueError" if fault == "not_retryable" else "ConnectionError"
    assert {(e.routine_id, e.error_type) for e in job.errors} <= {
        ("worker", error_type)
    }
    assert len({e.attempt for e in job.errors}) <= 1
    assert worker.routed == 0
    assert worker.success_rate == (1.0 if worker.successes else 0.0)
    return Outcome(
        job.status,
        len(job.errors),
        job.errors[0].attempt if job.errors else 0,
        worker.failures,
        worker.retries,
        worker.successes,
    )


@pytest.mark.parametrize(("strategy", "fault", "mode"), ROWS, ids=IDS)
def test_final_failure_outcome_sequential(strategy: str, fault: str, mode: str) -> None:
    flow = build(strategy, fault, mode)

    job = flow.execute("source")

    assert observed(job, fault) == expected(strategy, fault, mode)
    sink = flow.routines["sink"]
    assert isinstance(sink, Recorder)
    assert len(sink.received) == expected(strategy, fault, mode).successes
    if job.status is JobStatus.FAILED:
        assert [d.routine_id for d in job.pending] == ["worker", "worker"]
    else:
        assert job.pending == []


@pytest.mark.parametrize(("strategy", "fault", "mode"), ROWS, ids=IDS)
def test_final_failure_outcome_concurrent(strategy: str, fault: str, mode: str) -> None:
    flow = build(strategy, fault, mode)

    job = flow.execute("source", execution_strategy="concurrent")

    assert observed(job, fault) == expected(strategy, fault, mode)


ASYNC_ROWS = [(s, f, "default") for s in FINAL for f in FAULTS] + [
    ("retry", "exhausted", "optional"),
    ("continue", "not_retryable", "critical"),
]


@pytest.mark.parametrize(
    ("strategy", "fault", "mode"), ASYNC_ROWS, ids=["-".join(r) for r in ASYNC_ROWS]
)
@pytest.mark.parametrize("execution_strategy", ["sequential", "concurrent"])
def test_final_failure_outcome_async(
    strategy: str, fault: str, mode: str, execution_strategy: str
) -> None:
    flow = build(strategy, fault, mode)

    job = asyncio.run(
        flow.execute_async("source", execution_strategy=execution_strategy)
    )

    assert observed(job, fault) == expected(strategy, fault, mode)


def test_retries_never_sleep_on_the_fake_clock_and_follow_backoff() -> None:
    flow = build("retry", "exhausted", "default")

    flow.execute("source")

    assert isinstance(flow.clock, FakeClock)
    assert flow.clock.sleeps == [1.0, 2.0]


def test_a_job_failed_by_exhausted_retries_resumes_with_fresh_retries() -> None:
    flow = build("retry", "exhausted", "default")
    failed = flow.execute("source")
    flow.routines["worker"].set_config(fault="none")

    job = flow.resume(failed)

    assert job.status is JobStatus.COMPLETED
    worker = job.tracker.get_routine_performance("worker")
    assert (worker.successes, worker.failures, worker.success_rate) == (2, 0, 1.0)
    assert job.error_count == 1


def test_skip_drops_the_routines_later_deliveries() -> None:
    flow = build("skip", "exhausted", "default")

    job = flow.execute("source")

    outcomes = [r.outcome for r in job.get_execution_history("worker")]
    assert outcomes == ["failed", "dropped"]
    assert job.routine_states["worker"].status == "skipped"


# -- raise_for_status ---------------------------------------------------------


def test_raise_for_status_returns_a_completed_job() -> None:
    job = build("retry", "retryable", "default").execute("source")

    assert job.raise_for_status() is job


def test_raise_for_status_returns_paused_and_cancelled_jobs() -> None:
    flow = build("stop", "exhausted", "default")
    flow.routines["worker"].set_as_optional()
    paused = flow.execute("source")
    paused.status = JobStatus.PAUSED
    cancelled = JobState.deserialize(paused.serialize())
    cancelled.status = JobStatus.CANCELLED

    assert paused.raise_for_status() is paused
    assert cancelled.raise_for_status() is cancelled


def test_raise_for_status_chains_the_original_exception_in_this_process() -> None:
    job = build("retry", "not_retryable", "default").execute("source")

    with pytest.raises(
        JobFailedError, match="routine 'worker' on slot 'input'"
    ) as info:
        job.raise_for_status()

    error = info.value
    assert f"job {job.job_id!r} failed" in str(error)
    assert "raised ValueError: item 1: bad" in str(error)
    assert isinstance(error.__cause__, ValueError)
    assert error.__cause__.__traceback__ is not None
    assert (error.routine_id, error.slot, error.error_type) == (
        "worker",
        "input",
        "ValueError",
    )
    assert isinstance(error, ExecutionError)


def test_raise_for_status_of_a_loaded_job_says_the_exception_is_gone() -> None:
    job = build("stop", "not_retryable", "default").execute("source")
    loaded = JobState.deserialize(job.serialize())

    with pytest.raises(JobFailedError, match="original exception is not available"):
        loaded.raise_for_status()

    try:
        loaded.raise_for_status()
    except JobFailedError as error:
        assert error.__cause__ is None
        assert error.traceback == job.errors[0].traceback
        assert "ValueError: item 1: bad" in str(error).split("follows:")[1]


def test_raise_for_status_of_a_job_from_a_store_has_no_cause(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    job = build("retry", "exhausted", "default").execute("source", store=store)

    stored = store.load(job.job_id)

    with pytest.raises(JobFailedError, match="not available") as info:
        stored.raise_for_status()
    assert info.value.__cause__ is None
    store.close()


def test_a_pickled_job_keeps_no_live_exception() -> None:
    job = build("stop", "exhausted", "default").execute("source")

    copy = pickle.loads(pickle.dumps(job))  # noqa: S301  our own data

    assert copy == job
    with pytest.raises(JobFailedError, match="not available"):
        copy.raise_for_status()


def test_raise_for_status_of_a_failed_job_without_errors() -> None:
    job = JobState.deserialize(
        build("continue", "retryable", "default").execute("source").serialize()
    )
    job.status = JobStatus.FAILED
    job.errors.clear()

    with pytest.raises(JobFailedError, match="failed; no error was recorded"):
        job.raise_for_status()


# -- bounded errors and exact totals ------------------------------------------


class Ticker(Routine):
    """Counts down from ``n``: each tick goes to the worker and to itself."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.tick)
        self.define_event("item")
        self.define_event("next")

    def tick(self, n: int) -> None:
        self.emit("item", item=n)
        if n > 1:
            self.emit("next", n=n - 1)


class Picky(Routine):
    """Fails on every item: ``KeyError`` for multiples of 3, else ``ValueError``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, item: int) -> None:
        if item % 3 == 0:
            raise KeyError(item)
        raise ValueError(item)


class PausingPicky(Picky):
    """A ``Picky`` that pauses its job at item 200."""

    flow: Flow | None = None

    def handle(self, item: int) -> None:
        if item == 200 and self.flow is not None:
            self.flow.pause(reason="halfway")
        super().handle(item)


def failing_flow(history_limit: int, picky: Picky | None = None) -> Flow:
    flow = Flow(flow_id="many", history_limit=history_limit, clock=FakeClock())
    flow.add_routine(Ticker(), "ticker")
    picky = picky or Picky()
    picky.set_error_handler(ErrorHandler("continue"))
    flow.add_routine(picky, "picky")
    flow.connect("ticker", "item", "picky", "input")
    flow.connect("ticker", "next", "ticker", "input")
    return flow


def test_errors_keep_the_first_100_and_the_most_recent_history_limit() -> None:
    job = failing_flow(history_limit=50).execute("ticker", {"n": 600})

    items = [int(e.message) for e in job.errors]
    assert job.status is JobStatus.COMPLETED
    assert items == list(range(600, 500, -1)) + list(range(50, 0, -1))
    assert job.routine_states["picky"].errors == job.errors
    assert job.error_count == 600
    assert job.error_totals == {"picky": {"KeyError": 200, "ValueError": 400}}


def test_bounded_errors_and_totals_survive_a_round_trip() -> None:
    job = failing_flow(history_limit=20).execute("ticker", {"n": 300})

    copy = JobState.deserialize(json.loads(json.dumps(job.serialize())))

    assert copy == job
    assert (copy.error_count, copy.error_totals) == (job.error_count, job.error_totals)


def test_a_job_saved_before_totals_existed_counts_its_errors() -> None:
    data = failing_flow(history_limit=1000).execute("ticker", {"n": 30}).serialize()
    for state in data["routine_states"]:  # type: ignore[attr-defined]
        del state["error_counts"]

    job = JobState.deserialize(data)

    assert job.error_totals == {"picky": {"KeyError": 10, "ValueError": 20}}


def test_loading_more_errors_than_the_bound_keeps_first_and_last() -> None:
    data = failing_flow(history_limit=1000).execute("ticker", {"n": 300}).serialize()
    data["history_limit"] = 10

    job = JobState.deserialize(data)

    assert [int(e.message) for e in job.errors] == [
        *range(300, 200, -1),
        *range(10, 0, -1),
    ]
    assert job.error_count == 300


@pytest.mark.parametrize("backend", ["memory", "sqlite", "json"])
def test_a_durable_job_keeps_bounded_errors_and_exact_totals(
    backend: str, tmp_path: Path
) -> None:
    store: Store = MemoryStore()
    if backend == "sqlite":
        store = SqliteStore(tmp_path / "jobs.db")
    elif backend == "json":
        store = JsonDirectoryStore(tmp_path)
    flow = failing_flow(history_limit=30)

    job = flow.execute("ticker", {"n": 400}, store=store)
    stored = store.load(job.job_id)

    assert [e.message for e in stored.errors] == [e.message for e in job.errors]
    assert len(stored.errors) == 130
    assert stored.error_totals == {"picky": {"KeyError": 133, "ValueError": 267}}
    assert stored.error_count == 400
    store.close()


def test_a_resumed_job_keeps_counting_errors(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    pausing = PausingPicky()
    flow = failing_flow(history_limit=30, picky=pausing)
    pausing.flow = flow
    job = flow.execute("ticker", {"n": 400}, store=store)
    assert job.status is JobStatus.PAUSED
    resumed = flow.resume(job.job_id, store=store)

    assert resumed.status is JobStatus.COMPLETED
    assert resumed.error_count == 400
    assert store.load(job.job_id).error_totals == {
        "picky": {"KeyError": 133, "ValueError": 267}
    }
    assert len(store.load(job.job_id).errors) == 130
    store.close()


def test_many_failures_stay_within_a_bound() -> None:
    """The bound does not grow with the failures: 20,000 here, see benchmarks/."""
    job = failing_flow(history_limit=1000).execute("ticker", {"n": 20_000})

    size = len(json.dumps(job.serialize()))

    assert job.error_count == 20_000
    assert len(job.errors) == 1100
    assert size < 4_000_000
