"""The concurrent execution strategy, through the public API (DESIGN.md section 7).

Handlers report to a :class:`Meter` (lock-protected counters) when they start
and end, so a test can state how many ran at once, overall and per routine.
Overlap is proven with barriers and events: a test that needs two handlers to
run at the same time makes them wait for each other, with a timeout, so it
passes only if they really overlap. ``sleep`` appears only inside handlers, to
stand for I/O that releases the GIL and lets a race show.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import pytest

from test_scenarios import (
    LOG,
    STOPPING,
    STRATEGIES,
    TOPOLOGIES,
    Topology,
    as_calls,
    as_received,
    build,
    calls,
    deliveries_to,
    expected_without,
    received,
)

from flowforge import (
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    JobStatus,
    Routine,
    current_delivery,
)
from flowforge.store import SqliteStore
from flowforge.testing import FakeClock

TIMEOUT = 5.0
"""Seconds any wait in a test or handler may last before the test fails."""

CONCURRENT = "concurrent"
SEQUENTIAL = "sequential"


# -- instruments ---------------------------------------------------------------


class Meter:
    """Count handlers running at once, overall and per routine, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.active_total = 0
        self.peak_total = 0
        self.started = 0
        self.ended = 0
        self.thread_names: set[str] = set()
        self.threads: set[threading.Thread] = set()
        self.jobs_seen: dict[str, set[str]] = {}

    def enter(self, routine_id: str, job_id: str) -> None:
        thread = threading.current_thread()
        with self._lock:
            self.active[routine_id] += 1
            self.peak[routine_id] = max(self.peak[routine_id], self.active[routine_id])
            self.active_total += 1
            self.peak_total = max(self.peak_total, self.active_total)
            self.started += 1
            self.thread_names.add(thread.name)
            self.threads.add(thread)
            self.jobs_seen.setdefault(routine_id, set()).add(job_id)
            self._changed.notify_all()

    def leave(self, routine_id: str) -> None:
        with self._lock:
            self.active[routine_id] -= 1
            self.active_total -= 1
            self.ended += 1
            self._changed.notify_all()

    def wait_started(self, count: int) -> bool:
        """Wait until ``count`` handlers have started; False on timeout."""
        with self._lock:
            return self._changed.wait_for(lambda: self.started >= count, TIMEOUT)

    def wait_ended(self, count: int) -> bool:
        """Wait until ``count`` handlers have ended; False on timeout."""
        with self._lock:
            return self._changed.wait_for(lambda: self.ended >= count, TIMEOUT)


Hold = Callable[[dict[str, object]], None]
"""What a handler does while it runs, given its data: wait, sleep or fail."""


class Worker(Routine):
    """Record each delivery with the meter, run ``hold``, then pass the data on."""

    def __init__(self) -> None:
        super().__init__()
        self.meter: Meter | None = None
        self.hold: Hold | None = None
        self.received: list[dict[str, object]] = []
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, **data: object) -> None:
        context = current_delivery()
        meter = self.meter
        if meter is not None:
            meter.enter(context.routine_id, context.job.job_id)
        try:
            if self.hold is not None:
                self.hold(data)
            self.received.append(dict(data))
            self.emit("output", **data)
        finally:
            if meter is not None:
                meter.leave(context.routine_id)


class Source(Routine):
    """A source routine: emit ``item=0 .. count - 1`` on ``output``."""

    def __init__(self) -> None:
        super().__init__()
        self.meter: Meter | None = None
        self.hold: Hold | None = None
        self.define_event("output")

    def __call__(self, count: int) -> None:
        context = current_delivery()
        if self.meter is not None:
            self.meter.enter(context.routine_id, context.job.job_id)
        try:
            if self.hold is not None:
                self.hold({"count": count})
            for item in range(count):
                self.emit("output", item=item)
        finally:
            if self.meter is not None:
                self.meter.leave(context.routine_id)


def continuing_flow(
    *,
    execution_strategy: str = SEQUENTIAL,
    max_workers: int = 8,
    executor: Executor | None = None,
) -> Flow:
    """A flow whose failures are recorded and skipped past, never stopping it.

    Tests that are not about errors use it, so that a broken barrier or a
    timed-out wait shows up as an error record instead of a stopped job.
    """
    return Flow(
        error_handler=ErrorHandler(ErrorStrategy.CONTINUE),
        execution_strategy=execution_strategy,
        max_workers=max_workers,
        executor=executor,
    )


def fan_out(
    flow: Flow,
    width: int,
    *,
    meter: Meter | None = None,
    hold: Hold | None = None,
    source_id: str = "source",
    source_hold: Hold | None = None,
) -> list[Worker]:
    """Add a source and ``width`` workers ``w0 ..``, each connected to the source."""
    source = Source()
    source.meter = meter
    source.hold = source_hold
    flow.add_routine(source, source_id)
    workers: list[Worker] = []
    for index in range(width):
        worker = Worker()
        worker.meter = meter
        worker.hold = hold
        flow.add_routine(worker, f"w{index}")
        flow.connect(source_id, "output", f"w{index}", "input")
        workers.append(worker)
    return workers


def wait_on(barrier: threading.Barrier) -> Hold:
    def hold(data: dict[str, object]) -> None:
        barrier.wait()

    return hold


def errors_of(job: JobState) -> list[tuple[str, str, str]]:
    return [(e.routine_id, e.error_type, e.message) for e in job.errors]


@contextmanager
def running(
    run: Callable[[], JobState],
) -> Iterator[Future[JobState]]:
    """Run ``run`` on a thread of its own; the block gets its future."""
    with ThreadPoolExecutor(1, thread_name_prefix="test-runner") as runner:
        yield runner.submit(run)


# -- strategy selection --------------------------------------------------------


def test_flow_runs_sequentially_with_eight_workers_by_default() -> None:
    flow = Flow()

    assert (flow.execution_strategy, flow.max_workers) == (SEQUENTIAL, 8)


def _by_constructor() -> tuple[Flow, str | None]:
    return continuing_flow(execution_strategy=CONCURRENT), None


def _by_setter() -> tuple[Flow, str | None]:
    flow = continuing_flow()
    flow.set_execution_strategy(CONCURRENT, max_workers=4)
    return flow, None


def _by_execute() -> tuple[Flow, str | None]:
    return continuing_flow(), CONCURRENT


CHOOSE_CONCURRENT = [_by_constructor, _by_setter, _by_execute]
CHOOSE_CONCURRENT_IDS = ["constructor", "set_execution_strategy", "execute-override"]


@pytest.mark.parametrize("choose", CHOOSE_CONCURRENT, ids=CHOOSE_CONCURRENT_IDS)
def test_concurrent_strategy_runs_handlers_of_different_routines_at_once(
    choose: Callable[[], tuple[Flow, str | None]],
) -> None:
    flow, override = choose()
    both = threading.Barrier(2, timeout=TIMEOUT)
    fan_out(flow, 2, hold=wait_on(both))

    job = flow.execute("source", {"count": 1}, execution_strategy=override)

    assert job.status is JobStatus.COMPLETED
    assert errors_of(job) == []


def _sequential_by_default() -> tuple[Flow, str | None]:
    return continuing_flow(), None


def _sequential_by_setter() -> tuple[Flow, str | None]:
    flow = continuing_flow(execution_strategy=CONCURRENT)
    flow.set_execution_strategy(SEQUENTIAL)
    return flow, None


def _sequential_by_execute() -> tuple[Flow, str | None]:
    return continuing_flow(execution_strategy=CONCURRENT), SEQUENTIAL


@pytest.mark.parametrize(
    "choose",
    [_sequential_by_default, _sequential_by_setter, _sequential_by_execute],
    ids=["default", "set_execution_strategy", "execute-override"],
)
def test_sequential_strategy_runs_one_handler_at_a_time(
    choose: Callable[[], tuple[Flow, str | None]],
) -> None:
    flow, override = choose()
    meter = Meter()
    fan_out(flow, 4, meter=meter)

    job = flow.execute("source", {"count": 3}, execution_strategy=override)

    assert job.status is JobStatus.COMPLETED
    assert (meter.started, meter.peak_total) == (13, 1)
    assert meter.thread_names == {threading.current_thread().name}


def _unknown_in_constructor() -> None:
    Flow(execution_strategy="parallel")


def _unknown_in_setter() -> None:
    Flow().set_execution_strategy("parallel")


def _unknown_in_execute() -> None:
    flow = Flow()
    fan_out(flow, 1)
    flow.execute("source", {"count": 1}, execution_strategy="parallel")


@pytest.mark.parametrize(
    "choose",
    [_unknown_in_constructor, _unknown_in_setter, _unknown_in_execute],
    ids=["constructor", "set_execution_strategy", "execute"],
)
def test_unknown_execution_strategy_is_a_definition_error(
    choose: Callable[[], None],
) -> None:
    with pytest.raises(DefinitionError, match="unknown execution strategy 'parallel'"):
        choose()


BAD_WORKERS: list[object] = [0, -1, 2.5, "4", True, None]
BAD_WORKERS_IDS = ["zero", "negative", "float", "str", "bool", "none"]


@pytest.mark.parametrize("value", BAD_WORKERS, ids=BAD_WORKERS_IDS)
def test_flow_rejects_max_workers_that_is_not_a_positive_int(value: object) -> None:
    with pytest.raises(DefinitionError, match="max_workers must be a positive int"):
        Flow(execution_strategy=CONCURRENT, max_workers=cast(int, value))


@pytest.mark.parametrize("value", BAD_WORKERS[:-1], ids=BAD_WORKERS_IDS[:-1])
def test_set_execution_strategy_rejects_bad_max_workers(value: object) -> None:
    flow = Flow()

    with pytest.raises(DefinitionError, match="max_workers must be a positive int"):
        flow.set_execution_strategy(CONCURRENT, max_workers=cast(int, value))


def test_user_executor_runs_the_handlers_and_outlives_flow_close() -> None:
    meter = Meter()
    with ThreadPoolExecutor(2, thread_name_prefix="user-pool") as executor:
        flow = continuing_flow(execution_strategy=CONCURRENT, executor=executor)
        fan_out(flow, 4, meter=meter)

        job = flow.execute("source", {"count": 2})
        flow.close()

        assert job.status is JobStatus.COMPLETED
        assert meter.started == 9
        assert all(name.startswith("user-pool") for name in meter.thread_names)
        assert executor.submit(int, "7").result(timeout=TIMEOUT) == 7


def test_flow_own_pool_threads_are_named_after_flowforge() -> None:
    meter = Meter()
    with continuing_flow(execution_strategy=CONCURRENT) as flow:
        fan_out(flow, 4, meter=meter)

        flow.execute("source", {"count": 2})

    assert meter.thread_names
    assert all(name.startswith("flowforge") for name in meter.thread_names)


def test_leaving_the_with_block_stops_the_flow_pool_threads() -> None:
    meter = Meter()

    with continuing_flow(execution_strategy=CONCURRENT) as flow:
        fan_out(flow, 4, meter=meter)
        job = flow.execute("source", {"count": 2})

    assert job.status is JobStatus.COMPLETED
    assert meter.threads
    assert not any(thread.is_alive() for thread in meter.threads)


def test_flow_runs_concurrent_jobs_again_after_close() -> None:
    flow = continuing_flow(execution_strategy=CONCURRENT)
    both = threading.Barrier(2, timeout=TIMEOUT)
    fan_out(flow, 2, hold=wait_on(both))
    flow.execute("source", {"count": 1})
    flow.close()

    job = flow.execute("source", {"count": 1})
    flow.close()

    assert job.status is JobStatus.COMPLETED
    assert errors_of(job) == []


EXIT_SCRIPT = textwrap.dedent("""
    from flowforge import Flow
    from flowforge.testing import Recorder

    def run():
        flow = Flow(execution_strategy="concurrent")
        flow.add_routine(Recorder(), "sink")
        return flow, flow.execute("sink", {"n": 1}).status

    {body}
    """)


@pytest.mark.parametrize(
    "body",
    [
        "flow, status = run()\nprint(status)",
        "print(run()[1])",
    ],
    ids=["flow-alive-at-exit", "flow-collected-before-exit"],
)
def test_script_using_concurrent_flow_exits_promptly_without_close(body: str) -> None:
    script = EXIT_SCRIPT.replace("{body}", body)
    started = time.monotonic()

    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert (done.returncode, done.stdout.strip()) == (0, "completed"), done.stderr
    assert time.monotonic() - started < 15


# -- execute returns only when the job has ended ---------------------------------


def _others_then_last(meter: Meter, width: int, fail: bool) -> Hold:
    """w0 ends only after every other worker has ended; w1 may fail."""

    def hold(data: dict[str, object]) -> None:
        routine_id = current_delivery().routine_id
        if routine_id == "w0":
            if not meter.wait_ended(width - 1):
                raise TimeoutError("the other workers never ended")
        elif routine_id == "w1" and fail:
            raise RuntimeError("w1 fails")

    return hold


@pytest.mark.parametrize(
    ("strategy", "status"),
    [
        (None, JobStatus.COMPLETED),
        (ErrorStrategy.CONTINUE, JobStatus.COMPLETED),
        (ErrorStrategy.STOP, JobStatus.FAILED),
    ],
    ids=["no-failure", "sibling-fails-continue", "sibling-fails-stop"],
)
def test_execute_returns_only_after_every_handler_has_ended(
    strategy: ErrorStrategy | None, status: JobStatus
) -> None:
    width = 8
    meter = Meter()
    flow = continuing_flow(execution_strategy=CONCURRENT, max_workers=width)
    workers = fan_out(flow, width, meter=meter)
    for worker in workers:
        worker.hold = _others_then_last(meter, width, fail=strategy is not None)
    if strategy is not None:
        workers[1].set_error_handler(ErrorHandler(strategy))

    job = flow.execute("source", {"count": 1})

    assert job.status is status
    assert (meter.started, meter.ended, meter.active_total) == (width + 1, width + 1, 0)
    assert [e.routine_id for e in job.errors] == ([] if strategy is None else ["w1"])


def workers_of(flow: Flow) -> list[Worker]:
    return [r for r in flow.routines.values() if isinstance(r, Worker)]


def test_two_handlers_failing_at_once_both_stay_pending_for_resume() -> None:
    flow = Flow(execution_strategy=CONCURRENT)
    both = threading.Barrier(2, timeout=TIMEOUT)
    failing = [True]

    def fail_together(data: dict[str, object]) -> None:
        both.wait()
        if failing[0]:
            raise RuntimeError(f"{current_delivery().routine_id} fails")

    fan_out(flow, 2, hold=fail_together)

    job = flow.execute("source", {"count": 1})
    pending = Counter(d.routine_id for d in job.pending)
    failing[0] = False
    resumed = flow.resume(job)

    assert pending == {"w0": 1, "w1": 1}
    assert resumed.status is JobStatus.COMPLETED
    assert [w.received for w in workers_of(flow)] == [[{"item": 0}]] * 2


class Abort(BaseException):
    """Not an Exception: it ends the job's run instead of being handled."""


def test_a_base_exception_propagates_only_after_other_handlers_have_ended() -> None:
    meter = Meter()
    flow = continuing_flow(execution_strategy=CONCURRENT)
    workers = fan_out(flow, 2, meter=meter)

    def w1_aborts_while_w0_runs(data: dict[str, object]) -> None:
        if current_delivery().routine_id == "w1":
            if not meter.wait_started(3):
                raise TimeoutError("w0 never started")
            raise Abort("stop everything")
        time.sleep(0.2)  # w0: slow I/O still running when w1 aborts

    for worker in workers:
        worker.hold = w1_aborts_while_w0_runs

    with pytest.raises(Abort, match="stop everything"):
        flow.execute("source", {"count": 1})

    assert (meter.active_total, meter.ended) == (0, 3)


# -- one routine runs one handler at a time ---------------------------------------


def _first_waits_then_io(barrier: threading.Barrier) -> Hold:
    """The first delivery of each worker meets the others; every one does 1 ms I/O."""

    def hold(data: dict[str, object]) -> None:
        if data["item"] == 0:
            barrier.wait()
        time.sleep(0.001)

    return hold


def test_a_routine_never_runs_two_handlers_at_once_within_a_job() -> None:
    width, items = 4, 60
    meter = Meter()
    flow = continuing_flow(execution_strategy=CONCURRENT)
    fan_out(
        flow,
        width,
        meter=meter,
        hold=_first_waits_then_io(threading.Barrier(width, timeout=TIMEOUT)),
    )

    job = flow.execute("source", {"count": items})

    assert (job.status, errors_of(job)) == (JobStatus.COMPLETED, [])
    assert meter.started == 1 + width * items
    assert meter.peak_total >= width
    assert set(meter.peak.values()) == {1}


def test_a_routine_never_runs_two_handlers_at_once_across_jobs() -> None:
    width, items = 4, 40
    meter = Meter()
    flow = continuing_flow(execution_strategy=CONCURRENT)
    sources_meet = wait_on(threading.Barrier(2, timeout=TIMEOUT))
    workers = fan_out(
        flow, width, meter=meter, source_id="source_a", source_hold=sources_meet
    )
    other_source = Source()
    other_source.meter = meter
    other_source.hold = sources_meet
    flow.add_routine(other_source, "source_b")
    for index, worker in enumerate(workers):
        worker.hold = lambda data: time.sleep(0.001)
        flow.connect("source_b", "output", f"w{index}", "input")

    with ThreadPoolExecutor(2) as runners:
        futures = [
            runners.submit(flow.execute, source, {"count": items})
            for source in ("source_a", "source_b")
        ]
        jobs = [future.result(timeout=60) for future in futures]

    assert [(j.status, errors_of(j)) for j in jobs] == [(JobStatus.COMPLETED, [])] * 2
    assert meter.started == 2 * (1 + width * items)
    assert all(meter.jobs_seen[f"w{i}"] == {j.job_id for j in jobs} for i in range(4))
    assert set(meter.peak.values()) == {1}


# -- order along a connection ---------------------------------------------------


def test_deliveries_along_one_connection_keep_their_emission_order() -> None:
    items = 200
    flow = continuing_flow(execution_strategy=CONCURRENT)
    workers = fan_out(flow, 4)
    for worker in workers:
        # Uneven I/O: some deliveries take longer than the ones behind them.
        worker.hold = lambda data: time.sleep(0.001 * (cast(int, data["item"]) % 3))
    sinks = []
    for index in range(len(workers)):
        sink = Worker()
        flow.add_routine(sink, f"sink{index}")
        flow.connect(f"w{index}", "output", f"sink{index}", "input")
        sinks.append(sink)

    job = flow.execute("source", {"count": items})

    expected = [{"item": item} for item in range(items)]
    assert (job.status, errors_of(job)) == (JobStatus.COMPLETED, [])
    assert [w.received for w in workers] == [expected] * len(workers)
    assert [s.received for s in sinks] == [expected] * len(sinks)


def test_a_retried_delivery_is_not_overtaken_by_later_ones_on_its_connection() -> None:
    flow = Flow(execution_strategy=CONCURRENT, clock=FakeClock())
    [worker] = fan_out(flow, 1)
    worker.set_error_handler(ErrorHandler("retry", max_retries=2, retry_delay=0.5))
    first = [True]

    def first_attempt_fails(data: dict[str, object]) -> None:
        if first[0]:
            first[0] = False
            raise RuntimeError("first attempt fails")

    worker.hold = first_attempt_fails

    job = flow.execute("source", {"count": 5})

    assert job.status is JobStatus.COMPLETED
    assert worker.received == [{"item": item} for item in range(5)]


class Appender(Routine):
    """An ``append`` slot whose handler checks that its buffer holds still."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.changed_while_running: list[tuple[list[object], list[object]]] = []
        self.define_slot("input", self.handle, "append")

    def handle(self, item: list[object]) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("first attempt fails")
        before = list(item)
        time.sleep(0.2)  # slow I/O: the failed delivery's retry comes due meanwhile
        if list(item) != before:
            self.changed_while_running.append((before, list(item)))


def test_a_slot_buffer_holds_still_while_its_handler_runs_and_a_retry_comes_due() -> (
    None
):
    flow = Flow(execution_strategy=CONCURRENT)
    flow.add_routine(Source(), "source")
    appender = Appender()
    appender.set_error_handler(ErrorHandler("retry", max_retries=2, retry_delay=0.02))
    flow.add_routine(appender, "appender")
    flow.connect("source", "output", "appender", "input")

    job = flow.execute("source", {"count": 2})

    assert (job.status, job.errors) == (JobStatus.COMPLETED, [])
    assert appender.changed_while_running == []
    assert job.slot_buffers[("appender", "input")] == {"item": [0, 1]}


# -- stress: fan-out 50, fan-in, 100,000 deliveries -----------------------------


class Counted(Routine):
    """Count its deliveries in ``self._stats`` with no lock, and atomically."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, item: int) -> None:
        count = self._stats.get("plain", 0)
        assert isinstance(count, int)
        self._stats["plain"] = count + 1
        self.increment_stat("atomic")
        self.emit("output", item=item, worker=current_delivery().routine_id)


class Collector(Routine):
    """The fan-in: count without a lock and keep every ``(worker, item)`` seen."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []
        self.define_slot("input", self.handle)

    def handle(self, item: int, worker: str) -> None:
        count = self._stats.get("plain", 0)
        assert isinstance(count, int)
        self._stats["plain"] = count + 1
        self.increment_stat("atomic")
        self.seen.append((worker, item))


def test_stress_fan_out_and_fan_in_count_every_delivery_exactly_once() -> None:
    width, items = 50, 1000
    flow = Flow(execution_strategy=CONCURRENT, max_workers=8)
    flow.add_routine(Source(), "source")
    collector = Collector()
    flow.add_routine(collector, "collector")
    workers: dict[str, Counted] = {}
    for index in range(width):
        worker_id = flow.add_routine(Counted(), f"worker{index}")
        flow.connect("source", "output", worker_id, "input")
        flow.connect(worker_id, "output", "collector", "input")
        workers[worker_id] = cast(Counted, flow.routines[worker_id])

    job = flow.execute("source", {"count": items})

    total = 1 + 2 * width * items
    assert (job.status, job.errors, job.pending) == (JobStatus.COMPLETED, [], [])
    assert job.delivery_count == total
    assert job.tracker.get_flow_performance().deliveries == total
    assert {w.stats()["plain"] for w in workers.values()} == {items}
    assert {w.stats()["atomic"] for w in workers.values()} == {items}
    assert collector.stats() == {"plain": width * items, "atomic": width * items}
    assert Counter(collector.seen) == Counter(
        {(w, item): 1 for w in workers for item in range(items)}
    )
    for worker_id in workers:
        in_order = [item for w, item in collector.seen if w == worker_id]
        assert in_order == list(range(items)), worker_id
        assert job.routine_states[worker_id].deliveries == items
    assert job.routine_states["collector"].stats == collector.stats()


# -- many jobs of one flow at once -------------------------------------------------


class Split(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.split)
        self.define_event("output")

    def split(self, value: int) -> None:
        self.emit("output", value=value)


class Tag(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.tag)
        self.define_event("output")

    def tag(self, value: int) -> None:
        time.sleep(0.001)  # I/O: lets the 16 jobs interleave
        self.emit("output", result=f"{current_delivery().routine_id}:{value}")


class Gather(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[object]]] = []
        self.define_slot("input", self.gather, "append")

    def gather(self, result: list[object]) -> None:
        self.seen.append((current_delivery().job.job_id, list(result)))


def test_jobs_started_from_sixteen_threads_at_once_keep_their_own_state() -> None:
    jobs_count, tags = 16, ("double", "triple", "square")
    flow = Flow(execution_strategy=CONCURRENT)
    flow.add_routine(Split(), "split")
    gather = Gather()
    flow.add_routine(gather, "gather")
    for tag in tags:
        flow.add_routine(Tag(), tag)
        flow.connect("split", "output", tag, "input")
        flow.connect(tag, "output", "gather", "input")
    start = threading.Barrier(jobs_count, timeout=TIMEOUT)

    def run(value: int) -> JobState:
        start.wait()
        return flow.execute("split", {"value": value}, job_id=f"job-{value}")

    with ThreadPoolExecutor(jobs_count) as runners:
        futures = [runners.submit(run, value) for value in range(jobs_count)]
        jobs = [future.result(timeout=60) for future in futures]

    def own(value: int) -> list[str]:
        return sorted(f"{tag}:{value}" for tag in tags)

    assert all(j.status is JobStatus.COMPLETED for j in jobs)
    assert len({id(j.tracker) for j in jobs}) == jobs_count
    for value, job in enumerate(jobs):
        assert job.job_id == f"job-{value}"
        buffer = job.slot_buffers[("gather", "input")]
        assert sorted(cast(list[str], buffer["result"])) == own(value)
        assert job.routine_states["gather"].deliveries == len(tags)
        assert job.tracker.get_flow_performance().deliveries == 1 + 2 * len(tags)
        assert job.tracker.get_routine_performance("gather").successes == len(tags)
    for job_id, results in gather.seen:
        value = int(job_id.removeprefix("job-"))
        assert set(cast(list[str], results)) <= set(own(value)), job_id
    assert Counter(job_id for job_id, _ in gather.seen) == {
        j.job_id: len(tags) for j in jobs
    }


# -- pause and cancel from another thread -------------------------------------------

GATES = 8
GATE_ITEMS = 3


def gated_flow(release: threading.Event) -> tuple[Flow, Meter, list[Worker], Worker]:
    """Source -> 8 gates (3 items each) -> sink; every gate waits for ``release``."""
    meter = Meter()
    flow = Flow(execution_strategy=CONCURRENT, max_workers=GATES)

    def wait_for_release(data: dict[str, object]) -> None:
        if not release.wait(TIMEOUT):
            raise TimeoutError("the test never released the gates")

    gates = fan_out(flow, GATES, meter=meter, hold=wait_for_release)
    sink = Worker()
    flow.add_routine(sink, "sink")
    for index in range(GATES):
        flow.connect(f"w{index}", "output", "sink", "input")
    return flow, meter, gates, sink


def reference_run() -> tuple[JobState, list[Worker], Worker]:
    release = threading.Event()
    release.set()
    flow, _, gates, sink = gated_flow(release)
    job = flow.execute("source", {"count": GATE_ITEMS})
    assert job.status is JobStatus.COMPLETED
    return job, gates, sink


def stop_while_gates_run(
    control: Callable[[Flow, str], None],
) -> tuple[Flow, Meter, list[Worker], Worker, JobState]:
    """Start a job, wait until 8 gate handlers run, ``control`` it, release them."""
    release = threading.Event()
    flow, meter, gates, sink = gated_flow(release)
    with running(
        lambda: flow.execute("source", {"count": GATE_ITEMS}, job_id="gated")
    ) as future:
        try:
            assert meter.wait_started(1 + GATES), "the gates never all started"
            assert meter.active_total == GATES
            control(flow, "gated")
        finally:
            release.set()
        job = future.result(timeout=TIMEOUT * 2)
    return flow, meter, gates, sink, job


def _pause(flow: Flow, job_id: str) -> None:
    flow.pause(job_id, reason="test pause")


def _cancel(flow: Flow, job_id: str) -> None:
    flow.cancel(job_id, reason="test cancel")


def test_pause_from_another_thread_waits_for_running_handlers_and_keeps_pending() -> (
    None
):
    _, meter, gates, sink, job = stop_while_gates_run(_pause)

    assert job.status is JobStatus.PAUSED
    assert (meter.started, meter.ended) == (1 + GATES, 1 + GATES)
    assert job.delivery_count == 1 + GATES
    assert Counter(d.routine_id for d in job.pending) == {
        **{f"w{i}": GATE_ITEMS - 1 for i in range(GATES)},
        "sink": GATES,
    }
    assert [p.reason for p in job.pause_points] == ["test pause"]
    assert [g.received for g in gates] == [[{"item": 0}]] * GATES
    assert sink.received == []


@pytest.mark.parametrize(
    "strategy", [SEQUENTIAL, CONCURRENT], ids=["resume-sequential", "resume-concurrent"]
)
def test_resume_after_a_pause_gives_the_uninterrupted_result(strategy: str) -> None:
    flow, _, gates, sink, job = stop_while_gates_run(_pause)
    flow.set_execution_strategy(strategy)

    resumed = flow.resume(job)

    reference, reference_gates, reference_sink = reference_run()
    assert resumed.status is JobStatus.COMPLETED
    assert resumed.delivery_count == reference.delivery_count
    assert [g.received for g in gates] == [g.received for g in reference_gates]
    assert Counter(map(str, sink.received)) == Counter(
        map(str, reference_sink.received)
    )
    assert {rid: s.deliveries for rid, s in resumed.routine_states.items()} == {
        rid: s.deliveries for rid, s in reference.routine_states.items()
    }


def test_cancel_from_another_thread_drops_and_records_pending_deliveries() -> None:
    _, meter, gates, sink, job = stop_while_gates_run(_cancel)

    cancelled = [r for r in job.get_execution_history() if r.outcome == "cancelled"]
    assert job.status is JobStatus.CANCELLED
    assert job.pending == []
    assert meter.started == 1 + GATES
    assert job.delivery_count == 1 + GATES
    assert Counter(r.routine_id for r in cancelled) == {
        **{f"w{i}": GATE_ITEMS - 1 for i in range(GATES)},
        "sink": GATES,
    }
    assert sink.received == []


def test_changing_max_workers_while_a_job_runs_does_not_break_the_job() -> None:
    def change_pool(flow: Flow, job_id: str) -> None:
        flow.set_execution_strategy(CONCURRENT, max_workers=4)

    _, meter, _, sink, job = stop_while_gates_run(change_pool)

    assert (job.status, errors_of(job)) == (JobStatus.COMPLETED, [])
    assert meter.started == 1 + GATES * GATE_ITEMS
    assert len(sink.received) == GATES * GATE_ITEMS


# -- error strategies under concurrency (tests/test_scenarios.py's table) ----------

ROWS = [
    (topology, position, failing, strategy)
    for topology in TOPOLOGIES
    for position, failing in topology.positions.items()
    for strategy in STRATEGIES
]


def joined(path: str) -> str:
    """A join's inputs arrive in the order their senders finish: sort them."""
    return "+".join(sorted(path.split("+")))


def multiset(values: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: sorted(map(joined, paths)) for name, paths in values.items()}


@pytest.mark.parametrize(
    ("topology", "position", "failing", "strategy"),
    ROWS,
    ids=[f"{t.name}-{p}-{s}" for t, p, _, s in ROWS],
)
def test_failure_outcome_under_concurrency(
    topology: Topology, position: str, failing: str, strategy: str
) -> None:
    LOG.clear()
    flow = build(topology, failing, strategy)

    job = flow.execute("a", {"path": ""}, execution_strategy=CONCURRENT)

    if strategy in STOPPING:
        # What else ran before the failure depends on timing; this does not.
        attempts = 3 if strategy.startswith("retry_exhausted") else 1
        error_type = "ValueError" if "not_retryable" in strategy else "RuntimeError"
        assert job.status is JobStatus.FAILED
        assert calls(flow)[failing] == attempts
        assert [(e.routine_id, e.error_type) for e in job.errors] == [
            (failing, error_type)
        ]
        assert job.error is job.errors[0]
        assert job.pending[-1].routine_id == failing
    elif strategy == "retry_recovers":
        reference = list(topology.reference)
        expected_calls = as_calls(topology, reference)
        expected_calls[failing] += 2
        assert job.status is JobStatus.COMPLETED
        assert multiset(received(flow)) == multiset(as_received(topology, reference))
        assert calls(flow) == expected_calls
        assert job.errors == []
        assert job.tracker.get_routine_performance(failing).retries == 2
        assert cast(FakeClock, flow.clock).sleeps == [0.5, 1.0]
    else:
        without = expected_without(topology, failing)
        count = deliveries_to(topology, failing)
        failed = 1 if strategy == "skip" else count
        per_delivery = 3 if strategy == "retry_exhausted_optional" else 1
        error_type = "ValueError" if "not_retryable" in strategy else "RuntimeError"
        dropped = [
            r for r in job.get_execution_history(failing) if r.outcome == "dropped"
        ]
        assert job.status is JobStatus.COMPLETED
        assert multiset(received(flow)) == multiset(as_received(topology, without))
        assert calls(flow) == {
            **as_calls(topology, without),
            failing: failed * per_delivery,
        }
        assert Counter((e.routine_id, e.error_type) for e in job.errors) == {
            (failing, error_type): failed
        }
        assert Counter(job.routine_states[failing].errors) == Counter(job.errors)
        assert len(dropped) == count - failed
        assert job.pending == []


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=[t.name for t in TOPOLOGIES])
def test_reference_run_under_concurrency_handles_the_same_deliveries(
    topology: Topology,
) -> None:
    LOG.clear()
    flow = build(topology, "a", "continue")
    flow.routines["a"].set_config(failures=0)

    job = flow.execute("a", {"path": ""}, execution_strategy=CONCURRENT)

    assert job.status is JobStatus.COMPLETED
    assert Counter((n, joined(p)) for n, p in LOG) == Counter(
        (n, joined(p)) for n, p in topology.reference
    )


# -- delivery limit, durable jobs ------------------------------------------------------


class Looper(Routine):
    """Emit on ``again`` for every delivery: connected to itself, it never ends."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.loop)
        self.define_event("again")

    def loop(self, n: int) -> None:
        self.emit("again", n=n + 1)


@pytest.mark.parametrize("width", [1, 3], ids=["self-loop", "fan-out-loop"])
def test_delivery_limit_fails_a_runaway_cycle_under_concurrency(width: int) -> None:
    limit = 60
    flow = Flow(execution_strategy=CONCURRENT, max_deliveries=limit)
    ids = [flow.add_routine(Looper(), f"loop{i}") for i in range(width)]
    for source in ids:
        for target in ids:
            flow.connect(source, "again", target, "input")

    job = flow.execute("loop0", {"n": 0})

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "reached the flow's limit of 60 deliveries" in job.error.message
    assert limit - width <= job.delivery_count <= limit
    assert job.pending


def test_durable_concurrent_job_completes_and_is_stored_as_returned(
    tmp_path: Path,
) -> None:
    flow = Flow(flow_id="durable-concurrent")
    workers = fan_out(flow, 4, hold=lambda data: time.sleep(0.001))
    sink = Worker()
    flow.add_routine(sink, "sink")
    for index in range(len(workers)):
        flow.connect(f"w{index}", "output", "sink", "input")
    store = SqliteStore(tmp_path / "jobs.db")
    try:
        job = flow.execute(
            "source", {"count": 5}, store=store, execution_strategy=CONCURRENT
        )

        stored = store.load(job.job_id)
    finally:
        store.close()
        flow.close()

    assert (job.status, job.errors) == (JobStatus.COMPLETED, [])
    assert job.delivery_count == 1 + 4 * 5 + 4 * 5
    assert len(sink.received) == 20
    assert stored == job


def test_changing_max_workers_lets_the_old_pools_threads_end() -> None:
    meter = Meter()
    flow = continuing_flow(execution_strategy=CONCURRENT)
    fan_out(flow, 4, meter=meter)
    for workers in range(2, 6):
        flow.max_workers = workers
        flow.execute("source", {"count": 4})

    flow.close()
    gc.collect()
    for thread in meter.threads:
        thread.join(TIMEOUT)

    assert len(meter.threads) > 5  # the threads of several pools
    assert not any(thread.is_alive() for thread in meter.threads)


def test_closing_the_pool_while_a_job_runs_lets_the_job_end() -> None:
    started = threading.Event()
    release = threading.Event()

    def hold(data: dict[str, object]) -> None:
        started.set()
        assert release.wait(TIMEOUT)

    flow = continuing_flow(execution_strategy=CONCURRENT, max_workers=1)
    fan_out(flow, 3, hold=hold)
    with running(lambda: flow.execute("source", {"count": 2})) as future:
        assert started.wait(TIMEOUT)
        closing = threading.Thread(target=flow.close)
        closing.start()
        release.set()
        job = future.result(TIMEOUT)
        closing.join(TIMEOUT)

    assert job.status is JobStatus.COMPLETED
    assert errors_of(job) == []
