from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import pytest

from flowforge import (
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    JobStatus,
    SerializationError,
    Routine,
    current_delivery,
)
from flowforge.store import MemoryStore
from flowforge.testing import FakeClock, Recorder


class Flaky(Routine):
    """Fails the first ``failures`` runs with ``error``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self) -> None:
        self.increment_stat("calls")
        remaining = self.get_config("failures", 0)
        assert isinstance(remaining, int)
        if remaining:
            self.set_config(failures=remaining - 1)
            raise ConnectionResetError("flaky")


def flaky_flow(handler: ErrorHandler, failures: int = 99) -> tuple[Flow, FakeClock]:
    clock = FakeClock()
    flow = Flow(clock=clock)
    flaky = Flaky()
    flaky.set_config(failures=failures)
    flaky.set_error_handler(handler)
    flow.add_routine(flaky, "flaky")
    return flow, clock


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_retries": -1}, "max_retries must be a non-negative int"),
        ({"max_retries": 1.5}, "max_retries must be a non-negative int"),
        ({"retry_delay": -0.1}, "retry_delay must be a finite, non-negative number"),
        (
            {"retry_delay": float("nan")},
            "retry_delay must be a finite, non-negative number",
        ),
        ({"retry_backoff": 0.5}, "retry_backoff must be at least 1"),
        (
            {"max_retry_delay": -1},
            "max_retry_delay must be a finite, non-negative number",
        ),
        ({"retry_jitter": 1.5}, r"retry_jitter must be in \[0, 1\]"),
        ({"retryable_exceptions": (int,)}, "must hold exception classes"),
        ({"retryable_exceptions": ("ValueError",)}, "must hold exception classes"),
    ],
    ids=[
        "negative-retries",
        "float-retries",
        "negative-delay",
        "nan-delay",
        "backoff-below-one",
        "negative-cap",
        "jitter-above-one",
        "non-exception-type",
        "exception-name-string",
    ],
)
def test_handler_rejects_bad_options(options: dict[str, object], match: str) -> None:
    with pytest.raises(DefinitionError, match=match):
        ErrorHandler("retry", **options)  # type: ignore[arg-type]


def test_handler_rejects_unknown_strategy_naming_the_choices() -> None:
    with pytest.raises(
        DefinitionError, match="unknown error strategy 'explode'.*'stop'"
    ):
        ErrorHandler("explode")


@pytest.mark.parametrize("value", ["stop", "continue", "retry", "skip"], ids=str)
def test_handler_accepts_strategy_strings(value: str) -> None:
    handler = ErrorHandler(value)

    assert handler.strategy is ErrorStrategy(value)


def test_handler_accepts_single_exception_class() -> None:
    handler = ErrorHandler("retry", retryable_exceptions=KeyError)

    assert handler.retryable_exceptions == (KeyError,)


def test_retry_delays_follow_backoff() -> None:
    flow, clock = flaky_flow(
        ErrorHandler("retry", max_retries=4, retry_delay=0.5, retry_backoff=3.0)
    )

    job = flow.execute("flaky")

    assert clock.sleeps == [0.5, 1.5, 4.5, 13.5]
    assert flow.routines["flaky"].get_stat("calls") == 5
    assert job.status is JobStatus.FAILED  # retries ran out
    assert [e.attempt for e in job.errors] == [4]


def test_retry_delays_are_capped() -> None:
    flow, clock = flaky_flow(
        ErrorHandler("retry", max_retries=4, retry_delay=1.0, max_retry_delay=3.0)
    )

    flow.execute("flaky")

    assert clock.sleeps == [1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("cap", [None, 5.0], ids=["uncapped", "capped"])
def test_a_zero_retry_delay_stays_zero_however_large_the_backoff_grows(
    cap: float | None,
) -> None:
    # 10.0 ** 309 overflows a float; zero times it is still zero.
    handler = ErrorHandler(
        "retry",
        max_retries=400,
        retry_delay=0.0,
        retry_backoff=10.0,
        max_retry_delay=cap,
    )
    flow, clock = flaky_flow(handler, failures=400)

    job = flow.execute("flaky")

    assert job.status is JobStatus.COMPLETED
    assert clock.sleeps == [0.0] * 400


def test_retry_jitter_stays_within_its_bounds() -> None:
    handler = ErrorHandler("retry", max_retries=50, retry_delay=1.0, retry_backoff=1.0)
    jittered = ErrorHandler(
        "retry", max_retries=50, retry_delay=1.0, retry_backoff=1.0, retry_jitter=0.25
    )
    flow, clock = flaky_flow(jittered)

    flow.execute("flaky")

    assert len(clock.sleeps) == 50
    assert all(0.75 <= delay <= 1.25 for delay in clock.sleeps)
    assert len(set(clock.sleeps)) > 1
    assert handler.retry_delay_for(7) == 1.0


def test_jitter_never_exceeds_the_cap() -> None:
    handler = ErrorHandler(
        "retry", retry_delay=10.0, max_retry_delay=10.0, retry_jitter=1.0
    )

    delays = [handler.retry_delay_for(0) for _ in range(200)]

    assert max(delays) <= 10.0


def test_retry_recovers_without_recording_an_error() -> None:
    flow, clock = flaky_flow(ErrorHandler("retry", retry_delay=0.1), failures=2)

    job = flow.execute("flaky")

    assert job.status is JobStatus.COMPLETED
    assert job.errors == []
    assert clock.sleeps == [0.1, 0.2]
    outcomes = [r.outcome for r in job.get_execution_history("flaky")]
    assert outcomes == ["retried", "retried", "completed"]
    assert [r.attempt for r in job.get_execution_history("flaky")] == [0, 1, 2]


def test_retry_counts_belong_to_each_delivery() -> None:
    handler = ErrorHandler("retry", max_retries=1, retry_delay=0.0)
    flow = Flow(clock=FakeClock())
    flow.add_routine(Recorder(), "first")
    flow.add_routine(Recorder(), "second")
    flow.connect("first", "output", "second", "input")
    for rid in ("first", "second"):
        flow.routines[rid].set_error_handler(handler)
        flow.routines[rid].set_config(fail_times=1)

    job = flow.execute("first", {"n": 1})

    assert job.status is JobStatus.COMPLETED
    assert flow.routines["second"].received == [{"n": 1}]  # type: ignore[attr-defined]


def test_flow_handler_applies_to_routines_without_their_own() -> None:
    flow, _ = flaky_flow(ErrorHandler("stop"))
    flow.routines["flaky"].set_error_handler(None)
    flow.set_error_handler(ErrorHandler("continue"))

    job = flow.execute("flaky")

    assert job.status is JobStatus.COMPLETED
    assert len(job.errors) == 1


def test_routine_handler_wins_over_flow_handler() -> None:
    flow, _ = flaky_flow(ErrorHandler("stop"))
    flow.set_error_handler(ErrorHandler("continue"))

    job = flow.execute("flaky")

    assert job.status is JobStatus.FAILED


def test_default_without_any_handler_is_stop() -> None:
    flow, _ = flaky_flow(ErrorHandler("stop"))
    flow.routines["flaky"].set_error_handler(None)

    job = flow.execute("flaky")

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.error_type == "ConnectionResetError"
    assert "ConnectionResetError: flaky" in job.error.traceback


def test_set_as_optional_continues_and_set_as_critical_retries_then_stops() -> None:
    optional = Flaky()
    optional.set_as_optional()
    critical = Flaky()
    critical.set_as_critical(max_retries=2, retry_delay=0.25, retry_backoff=2.0)

    assert optional.get_error_handler() == ErrorHandler("continue", is_optional=True)
    assert critical.get_error_handler() == ErrorHandler(
        "retry", max_retries=2, retry_delay=0.25, retry_backoff=2.0, is_critical=True
    )


def test_set_as_optional_accepts_skip() -> None:
    routine = Flaky()

    routine.set_as_optional("skip")

    handler = routine.get_error_handler()
    assert handler is not None
    assert handler.strategy is ErrorStrategy.SKIP


def test_critical_routine_fails_job_after_retries() -> None:
    flow, clock = flaky_flow(ErrorHandler("stop"))
    flow.routines["flaky"].set_as_critical(max_retries=2, retry_delay=1.0)

    job = flow.execute("flaky")

    assert job.status is JobStatus.FAILED
    assert clock.sleeps == [1.0, 2.0]


def test_handler_repr_and_equality() -> None:
    retry = ErrorHandler("retry", retryable_exceptions=(KeyError,))

    assert "RETRY" in repr(retry) and "KeyError" in repr(retry)
    assert repr(ErrorHandler("skip")) == (
        "ErrorHandler(SKIP, is_critical=False, is_optional=False)"
    )
    assert ErrorHandler("skip") != ErrorHandler("stop")
    assert ErrorHandler("skip") != "skip"
    assert hash(ErrorHandler("skip")) == hash(ErrorHandler("skip"))


def test_huge_backoff_is_bounded_by_the_cap() -> None:
    handler = ErrorHandler("retry", retry_backoff=1e200, max_retry_delay=60.0)

    assert handler.retry_delay_for(5) == 60.0


def test_uncapped_overflowing_delay_is_refused_when_built() -> None:
    with pytest.raises(DefinitionError, match="set max_retry_delay"):
        ErrorHandler("retry", max_retries=5, retry_backoff=1e200)


def test_infinite_delay_is_refused() -> None:
    with pytest.raises(DefinitionError, match="finite"):
        ErrorHandler("retry", retry_delay=float("inf"))


WEEK = 7 * 24 * 3600.0


@pytest.mark.parametrize(
    ("option", "build"),
    [
        ("retry_delay", lambda: ErrorHandler("retry", retry_delay=1e12)),
        ("max_retry_delay", lambda: ErrorHandler("retry", max_retry_delay=1e12)),
    ],
    ids=["retry_delay", "max_retry_delay"],
)
def test_a_delay_longer_than_a_week_is_refused_when_built(
    option: str, build: Callable[[], ErrorHandler]
) -> None:
    with pytest.raises(DefinitionError, match=f"{option} must be at most 604800 sec"):
        build()


def test_a_retry_delay_of_a_week_sleeps_a_week_at_the_first_retry() -> None:
    flow, clock = flaky_flow(ErrorHandler("retry", max_retries=1, retry_delay=WEEK))

    flow.execute("flaky")

    assert clock.sleeps == [WEEK]


@pytest.mark.parametrize("attempt", [30, 1023, 10**6, 10**30])
def test_uncapped_delays_stop_growing_at_a_week(attempt: int) -> None:
    handler = ErrorHandler("retry", max_retries=40, retry_delay=1.0)

    assert handler.retry_delay_for(attempt) == WEEK


def test_jitter_on_an_overflowing_delay_stays_within_the_cap() -> None:
    handler = ErrorHandler(
        "retry", retry_backoff=1e200, max_retry_delay=60.0, retry_jitter=1.0
    )

    delays = [handler.retry_delay_for(9) for _ in range(200)]

    assert all(0.0 <= delay <= 60.0 for delay in delays)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(5, "5"), ("ValueError", "'ValueError'"), (None, "None")],
    ids=["int", "str", "None"],
)
def test_retryable_exceptions_that_are_not_classes_are_refused(
    value: object, shown: str
) -> None:
    with pytest.raises(
        DefinitionError,
        match=re.escape(
            "retryable_exceptions must be an exception class or an iterable of "
            f"them, got {shown}"
        ),
    ):
        ErrorHandler("retry", retryable_exceptions=value)  # type: ignore[arg-type]


def test_is_optional_must_be_a_bool() -> None:
    with pytest.raises(DefinitionError, match="is_optional must be a bool, got 1"):
        ErrorHandler("retry", is_optional=1)  # type: ignore[arg-type]


def test_handler_cannot_be_critical_and_optional() -> None:
    with pytest.raises(DefinitionError, match="both critical and optional"):
        ErrorHandler("retry", is_critical=True, is_optional=True)


def test_handler_saved_without_is_optional_loads_as_not_optional() -> None:
    data = ErrorHandler("retry", max_retries=1).serialize()
    del data["is_optional"]

    handler = ErrorHandler.deserialize(data)

    assert handler == ErrorHandler("retry", max_retries=1)
    assert handler.final_strategy() is ErrorStrategy.STOP


def test_is_critical_must_be_a_bool() -> None:
    with pytest.raises(DefinitionError, match="is_critical must be a bool, got 'no'"):
        ErrorHandler("retry", is_critical="no")  # type: ignore[arg-type]


class InterruptedSleep:
    """A fake clock whose first sleep is interrupted, as by Ctrl-C during a backoff."""

    def __init__(self) -> None:
        self.fake = FakeClock()
        self.interrupted = False

    def monotonic(self) -> float:
        return self.fake.monotonic()

    def now(self) -> datetime:
        return self.fake.now()

    def sleep(self, seconds: float) -> None:
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt
        self.fake.sleep(seconds)


class KeepsItsJob(Flaky):
    """A :class:`Flaky` that keeps the job it runs in."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[JobState] = []

    def handle(self) -> None:
        self.jobs.append(current_delivery().job)
        super().handle()


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
@pytest.mark.parametrize("durable", [False, True], ids=["in-memory", "durable"])
def test_an_interrupted_retry_backoff_keeps_the_delivery_for_resume(
    durable: bool, strategy: str
) -> None:
    flow = Flow(clock=InterruptedSleep(), execution_strategy=strategy)
    flaky = KeepsItsJob()
    flaky.set_config(failures=1)
    flaky.set_error_handler(ErrorHandler("retry", retry_delay=0.5))
    flow.add_routine(flaky, "flaky")
    store = MemoryStore() if durable else None

    with pytest.raises(KeyboardInterrupt):
        flow.execute("flaky", job_id="j", store=store)

    job = flaky.jobs[0] if store is None else store.load("j")
    assert [(d.routine_id, d.attempt) for d in job.pending] == [("flaky", 1)]
    if store is None:
        flow.close()
        return  # it stays "running": resumed only from a store (docs/guide/errors.rst)
    with flow:
        resumed = flow.resume("j", store=store)
    assert resumed.status is JobStatus.COMPLETED
    assert flaky.get_stat("calls") == 2
    assert [r.outcome for r in resumed.get_execution_history()] == [
        "retried",
        "completed",
    ]


def test_error_handler_data_without_version_says_it_has_none() -> None:
    data = ErrorHandler(ErrorStrategy.RETRY).serialize()
    del data["version"]

    with pytest.raises(SerializationError, match="has no 'version' key"):
        ErrorHandler.deserialize(data)


def test_error_handler_data_of_a_newer_version_says_to_upgrade() -> None:
    data = {**ErrorHandler().serialize(), "version": 99}

    with pytest.raises(SerializationError, match="Upgrade FlowForge"):
        ErrorHandler.deserialize(data)
