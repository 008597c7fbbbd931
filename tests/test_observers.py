"""Observers: each callback, their order and thread, a raising observer, add/remove."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading

import pytest
from _engines import ENGINES, Run

from flowforge import (
    ArgumentTypeError,
    DefinitionError,
    DeliveryInfo,
    DeliveryResult,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    JobStatus,
    Routine,
    current_delivery,
)
from flowforge.store import MemoryStore
from flowforge.testing import FakeClock, Recorder

SEEN: contextvars.ContextVar[str | None] = contextvars.ContextVar("seen", default=None)


class Log:
    """An observer that records every callback, with the thread it ran on."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.threads: dict[tuple[str, int, int], set[int]] = {}
        self.lock = threading.Lock()

    def _add(self, *call: object) -> None:
        with self.lock:
            self.calls.append(call)

    def _thread(self, delivery: DeliveryInfo) -> None:
        key = (delivery.routine_id, delivery.seq, delivery.attempt)
        with self.lock:
            self.threads.setdefault(key, set()).add(threading.get_ident())

    def on_job_start(self, job: JobState) -> None:
        self._add("job_start", job.status)

    def on_job_end(self, job: JobState) -> None:
        self._add("job_end", job.status)

    def on_delivery_start(self, delivery: DeliveryInfo) -> None:
        self._thread(delivery)
        self._add("start", delivery.routine_id, delivery.attempt)

    def on_delivery_end(self, delivery: DeliveryInfo, result: DeliveryResult) -> None:
        self._thread(delivery)
        self._add("end", delivery.routine_id, delivery.attempt, result.outcome)

    def on_retry(self, delivery: DeliveryInfo, error: BaseException) -> None:
        self._add("retry", delivery.routine_id, type(error).__name__)

    def on_error(self, delivery: DeliveryInfo, error: BaseException) -> None:
        self._add("error", delivery.routine_id, type(error).__name__)


class Traced(Routine):
    """Records the thread and the context variable its handler sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, str | None]] = []
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, x: int) -> None:
        self.seen.append((threading.get_ident(), SEEN.get()))
        self.emit("output", x=x)


class AsyncTraced(Traced):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("async_input", self.handle_async)

    async def handle_async(self, x: int) -> None:
        await asyncio.sleep(0)
        self.seen.append((threading.get_ident(), SEEN.get()))
        self.emit("output", x=x)


def chain(*, retries: int = 0, fail_times: int = 0, **options: object) -> Flow:
    flow = Flow("observed", clock=FakeClock(), **options)  # type: ignore[arg-type]
    flow.add_routine(Recorder(), "a")
    flow.add_routine(Recorder(), "b")
    flow.connect("a", "output", "b", "input")
    b = flow.get_routine("b")
    b.set_config(fail_times=fail_times)
    if retries:
        b.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, max_retries=retries))
    return flow


@pytest.mark.parametrize("run", ENGINES.values(), ids=list(ENGINES))
def test_observer_sees_each_callback_in_order(run: Run) -> None:
    flow = chain(retries=2, fail_times=1)
    log = Log()
    flow.add_observer(log)

    job = run(flow, "a", {"x": 1})

    assert job.status is JobStatus.COMPLETED
    assert log.calls == [
        ("job_start", JobStatus.RUNNING),
        ("start", "a", 0),
        ("end", "a", 0, "completed"),
        ("start", "b", 0),
        ("end", "b", 0, "retried"),
        ("retry", "b", "RuntimeError"),
        ("start", "b", 1),
        ("end", "b", 1, "completed"),
        ("job_end", JobStatus.COMPLETED),
    ]


@pytest.mark.parametrize("run", ENGINES.values(), ids=list(ENGINES))
def test_observer_sees_a_failure_that_stops_the_job(run: Run) -> None:
    flow = chain(fail_times=1)
    log = Log()
    flow.add_observer(log)

    job = run(flow, "a", {"x": 1})

    assert job.status is JobStatus.FAILED
    assert log.calls[-3:] == [
        ("end", "b", 0, "failed"),
        ("error", "b", "RuntimeError"),
        ("job_end", JobStatus.FAILED),
    ]


@pytest.mark.parametrize("run", ENGINES.values(), ids=list(ENGINES))
def test_observer_sees_a_routed_failure_as_routed(run: Run) -> None:
    flow = chain(fail_times=1)
    flow.add_routine(Recorder(), "fallback")
    flow.connect_failures("b", "fallback", "input")
    log = Log()
    flow.add_observer(log)

    job = run(flow, "a", {"x": 1})

    assert job.status is JobStatus.COMPLETED
    assert ("end", "b", 0, "routed") in log.calls
    assert ("error", "b", "RuntimeError") in log.calls
    assert ("end", "fallback", 0, "completed") in log.calls
    assert [r.outcome for r in job.get_execution_history() if r.routine_id == "b"] == [
        "routed"
    ]


def test_observer_sees_a_continued_failure_as_an_error() -> None:
    flow = chain(fail_times=1, error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    log = Log()
    flow.add_observer(log)

    job = flow.execute("a", {"x": 1})

    assert job.status is JobStatus.COMPLETED
    assert ("error", "b", "RuntimeError") in log.calls
    assert log.calls[-1] == ("job_end", JobStatus.COMPLETED)


def test_delivery_info_names_the_delivery() -> None:
    flow = chain()
    infos: list[DeliveryInfo] = []

    class Starts:
        def on_delivery_start(self, delivery: DeliveryInfo) -> None:
            infos.append(delivery)

    flow.add_observer(Starts())

    job = flow.execute("a", {"x": 1}, job_id="job-1")

    assert infos == [
        DeliveryInfo("observed", "job-1", "a", "input", 0, 0),
        DeliveryInfo("observed", "job-1", "b", "input", 1, 0),
    ]
    assert job.status is JobStatus.COMPLETED


def test_delivery_result_gives_duration_and_error() -> None:
    flow = chain(fail_times=1)
    results: list[DeliveryResult] = []

    class Ends:
        def on_delivery_end(
            self, delivery: DeliveryInfo, result: DeliveryResult
        ) -> None:
            results.append(result)

    flow.add_observer(Ends())

    flow.execute("a", {"x": 1})

    assert [r.outcome for r in results] == ["completed", "failed"]
    assert results[0].error is None
    assert isinstance(results[1].error, RuntimeError)
    assert all(r.duration >= 0.0 for r in results)


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_delivery_callbacks_run_on_the_handlers_thread(strategy: str) -> None:
    flow = Flow("threads", execution_strategy=strategy, max_workers=4)
    traced = Traced()
    flow.add_routine(traced, "t")
    log = Log()
    flow.add_observer(log)

    flow.execute("t", {"x": 1})

    ((handler_thread, _),) = traced.seen
    assert log.threads == {("t", 0, 0): {handler_thread}}


class SetsVariable:
    """Sets SEEN in on_delivery_start and resets it in on_delivery_end."""

    def __init__(self) -> None:
        self.tokens: dict[int, contextvars.Token[str | None]] = {}

    def on_delivery_start(self, delivery: DeliveryInfo) -> None:
        self.tokens[delivery.seq] = SEEN.set(f"delivery {delivery.seq}")

    def on_delivery_end(self, delivery: DeliveryInfo, result: DeliveryResult) -> None:
        SEEN.reset(self.tokens.pop(delivery.seq))


@pytest.mark.parametrize("slot", ["input", "async_input"])
@pytest.mark.parametrize("run", ENGINES.values(), ids=list(ENGINES))
def test_handler_sees_what_on_delivery_start_set(run: Run, slot: str) -> None:
    flow = Flow("context", max_workers=4)
    first, second = Traced(), AsyncTraced()
    flow.add_routine(first, "first")
    flow.add_routine(second, "second")
    flow.connect("first", "output", "second", slot)
    observer = SetsVariable()
    flow.add_observer(observer)

    run(flow, "first", {"x": 1})

    assert [seen for _, seen in first.seen + second.seen] == [
        "delivery 0",
        "delivery 1",
    ]
    assert observer.tokens == {}
    assert SEEN.get() is None


def test_raising_observer_is_logged_and_the_job_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = chain()

    class Broken:
        def on_delivery_start(self, delivery: DeliveryInfo) -> None:
            raise ValueError("observer bug")

    log = Log()
    flow.add_observer(Broken())
    flow.add_observer(log)

    with caplog.at_level(logging.WARNING, logger="flowforge"):
        job = flow.execute("a", {"x": 1})

    assert job.status is JobStatus.COMPLETED
    records = caplog.records
    assert all("raised; the job goes on" in r.getMessage() for r in records)
    assert all(r.levelno == logging.WARNING for r in records)
    assert all(r.exc_info and r.exc_info[0] is ValueError for r in records)
    assert [r.__dict__["routine_id"] for r in records] == ["a", "b"]
    assert log.calls[-1] == ("job_end", JobStatus.COMPLETED)


def test_interrupted_handler_ends_its_delivery_and_the_job() -> None:
    flow = Flow("interrupted")

    class Interrupts(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.handle)

        def handle(self, x: int) -> None:
            raise KeyboardInterrupt

    flow.add_routine(Interrupts(), "i")
    log = Log()
    flow.add_observer(log)

    with pytest.raises(KeyboardInterrupt):
        flow.execute("i", {"x": 1})

    assert log.calls == [
        ("job_start", JobStatus.RUNNING),
        ("start", "i", 0),
        ("end", "i", 0, "interrupted"),
        ("job_end", JobStatus.RUNNING),
    ]


def test_add_observer_returns_a_callable_that_removes_it() -> None:
    flow = chain()
    log = Log()
    remove = flow.add_observer(log)
    flow.execute("a", {"x": 1})
    seen = len(log.calls)

    remove()
    flow.execute("a", {"x": 1})

    assert seen == 6
    assert len(log.calls) == seen


def test_remove_observer_stops_its_callbacks() -> None:
    flow = chain()
    log = Log()
    flow.add_observer(log)

    flow.remove_observer(log)
    flow.execute("a", {"x": 1})

    assert log.calls == []


def test_observed_job_records_what_an_unobserved_one_does() -> None:
    plain, observed = chain(retries=1, fail_times=1), chain(retries=1, fail_times=1)
    observed.add_observer(Log())

    outcomes = [
        [
            (r.routine_id, r.outcome)
            for r in f.execute("a", {"x": 1}).get_execution_history()
        ]
        for f in (plain, observed)
    ]

    assert outcomes[0] == outcomes[1]


def test_add_observer_rejects_an_object_without_callbacks() -> None:
    flow = chain()

    with pytest.raises(ArgumentTypeError, match="observer must have one or more"):
        flow.add_observer(object())


def test_add_observer_rejects_non_callable_callbacks() -> None:
    flow = chain()

    class NotCallable:
        on_job_start = "not a method"

    with pytest.raises(ArgumentTypeError, match="flowforge.Observer"):
        flow.add_observer(NotCallable())


def test_add_observer_twice_is_refused() -> None:
    flow = chain()
    log = Log()
    flow.add_observer(log)

    with pytest.raises(DefinitionError, match="added to this flow already"):
        flow.add_observer(log)


def test_remove_unknown_observer_is_refused() -> None:
    flow = chain()

    with pytest.raises(DefinitionError, match="not an observer of this flow"):
        flow.remove_observer(Log())


def test_current_delivery_works_inside_an_observed_handler() -> None:
    flow = Flow("current")
    keys: list[tuple[str, str, int]] = []

    class Keys(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.handle)

        def handle(self, x: int) -> None:
            keys.append(current_delivery().delivery_key)

    flow.add_routine(Keys(), "k")
    flow.add_observer(Log())

    flow.execute("k", {"x": 1}, job_id="j")

    assert keys == [("j", "k", 0)]


def test_durable_job_is_observed_like_any_other() -> None:
    flow = chain(retries=1, fail_times=1)
    log = Log()
    flow.add_observer(log)

    job = flow.execute("a", {"x": 1}, store=MemoryStore())

    assert job.status is JobStatus.COMPLETED
    assert [c[0] for c in log.calls] == [
        "job_start",
        "start",
        "end",
        "start",
        "end",
        "retry",
        "start",
        "end",
        "job_end",
    ]


def test_resumed_job_is_a_new_run_for_observers() -> None:
    flow = chain(fail_times=1)
    log = Log()
    flow.add_observer(log)
    failed = flow.execute("a", {"x": 1})
    log.calls.clear()

    job = flow.resume(failed)

    assert job.status is JobStatus.COMPLETED
    assert log.calls == [
        ("job_start", JobStatus.RUNNING),
        ("start", "b", 0),
        ("end", "b", 0, "completed"),
        ("job_end", JobStatus.COMPLETED),
    ]
