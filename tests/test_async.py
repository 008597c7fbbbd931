"""Async handlers and ``execute_async``: handlers, entry points, timeouts, context.

The scenario tables run under ``execute_async`` in ``test_async_scenarios.py``,
and the kill -9 recovery of an async flow in ``test_async_recovery.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import MethodType

import pytest

from flowforge import (
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    ExecutionError,
    Flow,
    JobStateError,
    JobStatus,
    Routine,
    current_delivery,
)
from flowforge.store import MemoryStore
from flowforge.testing import FakeClock, Recorder

STRATEGIES = ["sequential", "concurrent"]
Key = tuple[str, str, int]


class AsyncAdd(Routine):
    """Awaits, then emits ``x + 1``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")

    async def handle(self, x: int) -> None:
        await asyncio.sleep(0)
        self.emit("out", x=x + 1)


class PlainAdd(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")

    def handle(self, x: int) -> None:
        self.emit("out", x=x + 1)


class AsyncSource(Routine):
    """A source whose ``async def __call__`` emits ``x``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("out")

    async def __call__(self, x: int) -> None:  # type: ignore[override]  # async
        await asyncio.sleep(0)
        self.emit("out", x=x)


class Stuck(Routine):
    """Awaits an event that never fires unless ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.seen: list[str] = []

    async def handle(self, x: int) -> None:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.seen.append("cancelled")
            raise
        self.emit("out", x=x)


def chain(*routines: Routine) -> Flow:
    """Wire ``routines`` (ids r0, r1, ...) into a chain ending in a Recorder."""
    flow = Flow(flow_id="async_chain", clock=FakeClock())
    ids = [flow.add_routine(r, f"r{i}") for i, r in enumerate(routines)]
    flow.add_routine(Recorder(), "sink")
    for source, target in zip(ids, [*ids[1:], "sink"], strict=True):
        flow.connect(source, "out", target, "input")
    return flow


def sink(flow: Flow) -> list[dict[str, object]]:
    recorder = flow.routines["sink"]
    assert isinstance(recorder, Recorder)
    return recorder.received


# Handlers


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_execute_async_awaits_async_handlers(strategy: str) -> None:
    flow = chain(AsyncAdd(), AsyncAdd())

    job = asyncio.run(flow.execute_async("r0", {"x": 1}, execution_strategy=strategy))

    assert job.status is JobStatus.COMPLETED
    assert sink(flow) == [{"x": 3}]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_execute_async_awaits_an_async_source(strategy: str) -> None:
    flow = chain(AsyncSource(), AsyncAdd())

    job = asyncio.run(flow.execute_async("r0", {"x": 5}, execution_strategy=strategy))

    assert job.status is JobStatus.COMPLETED
    assert sink(flow) == [{"x": 6}]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_execute_async_calls_plain_handlers_in_a_plain_flow(strategy: str) -> None:
    flow = chain(PlainAdd(), PlainAdd())

    job = asyncio.run(flow.execute_async("r0", {"x": 1}, execution_strategy=strategy))

    assert job.status is JobStatus.COMPLETED
    assert sink(flow) == [{"x": 3}]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_execute_async_runs_a_mixed_flow(strategy: str) -> None:
    flow = chain(PlainAdd(), AsyncAdd(), PlainAdd(), AsyncAdd())

    job = asyncio.run(flow.execute_async("r0", {"x": 0}, execution_strategy=strategy))

    assert job.status is JobStatus.COMPLETED
    assert sink(flow) == [{"x": 4}]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_execute_runs_an_async_flow_on_a_private_loop(strategy: str) -> None:
    flow = chain(AsyncSource(), AsyncAdd(), PlainAdd())

    job = flow.execute("r0", {"x": 1}, execution_strategy=strategy)

    assert job.status is JobStatus.COMPLETED
    assert sink(flow) == [{"x": 3}]


def _generator(self: Routine, x: int) -> Iterator[int]:
    yield x


async def _async_generator(self: Routine, x: int) -> AsyncIterator[int]:
    yield x


@pytest.mark.parametrize(
    "handler", [_generator, _async_generator], ids=["generator", "async_generator"]
)
def test_define_slot_refuses_a_generator_handler(
    handler: Callable[..., object],
) -> None:
    routine = Routine()

    with pytest.raises(DefinitionError, match="is a generator function"):
        routine.define_slot("input", MethodType(handler, routine))


class GeneratorSource(Routine):
    def __call__(self, x: int) -> Iterator[int]:  # type: ignore[override]  # refused
        yield x


class AsyncGeneratorSource(Routine):
    async def __call__(  # type: ignore[override]  # refused
        self, x: int
    ) -> AsyncIterator[int]:
        yield x


@pytest.mark.parametrize(
    "source", [GeneratorSource, AsyncGeneratorSource], ids=["generator", "async"]
)
def test_add_routine_refuses_a_generator_source(source: type[Routine]) -> None:
    flow = Flow()

    with pytest.raises(DefinitionError, match=r"__call__' is a generator function"):
        flow.add_routine(source())

    assert dict(flow.routines) == {}


def test_execute_inside_a_running_loop_raises_and_stores_nothing() -> None:
    flow, store = chain(AsyncAdd()), MemoryStore()

    async def main() -> None:
        flow.execute("r0", {"x": 1}, job_id="j", store=store)

    with pytest.raises(ExecutionError, match=r"await flow\.execute_async"):
        asyncio.run(main())

    assert store.list_jobs() == []
    assert sink(flow) == []


def test_resume_inside_a_running_loop_raises_and_leaves_the_job_resumable() -> None:
    flow, store = chain(Stuck()), MemoryStore()
    stuck = flow.routines["r0"]
    assert isinstance(stuck, Stuck)

    async def interrupted() -> None:
        task = asyncio.create_task(
            flow.execute_async("r0", {"x": 1}, job_id="j", store=store)
        )
        await stuck.started.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def resume_in_loop() -> None:
        flow.resume("j", store=store)

    asyncio.run(interrupted())
    with pytest.raises(ExecutionError, match="execute_async"):
        asyncio.run(resume_in_loop())
    stuck.release.set()

    assert store.get("j").status is JobStatus.RUNNING
    assert flow.resume("j", store=store).status is JobStatus.COMPLETED
    assert sink(flow) == [{"x": 1}]


def test_execute_of_a_plain_flow_inside_a_running_loop_still_runs() -> None:
    flow = chain(PlainAdd())

    async def main() -> JobStatus:
        return flow.execute("r0", {"x": 1}).status

    assert asyncio.run(main()) is JobStatus.COMPLETED


def test_recover_finishes_an_async_job_left_running() -> None:
    flow, store = chain(Stuck(), AsyncAdd()), MemoryStore()
    stuck = flow.routines["r0"]
    assert isinstance(stuck, Stuck)

    async def interrupted() -> None:
        task = asyncio.create_task(
            flow.execute_async("r0", {"x": 1}, job_id="j", store=store)
        )
        await stuck.started.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(interrupted())
    stuck.release.set()
    jobs = flow.recover(store)

    assert [(j.job_id, j.status) for j in jobs] == [("j", JobStatus.COMPLETED)]
    assert sink(flow) == [{"x": 2}]
    assert store.load("j").status is JobStatus.COMPLETED


class CancelledInside(Routine):
    """Awaits a task that gets cancelled: CancelledError, though no one cancels it."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")
        self.calls = 0

    async def handle(self, x: int) -> None:
        self.calls += 1
        if self.calls == 1:
            inner = asyncio.create_task(asyncio.Event().wait())
            await asyncio.sleep(0)
            inner.cancel()
            await inner
        self.emit("out", x=x)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cancelled_error_from_inside_a_handler_is_the_delivery_failure(
    strategy: str,
) -> None:
    flow = chain(CancelledInside())

    job = asyncio.run(flow.execute_async("r0", {"x": 1}, execution_strategy=strategy))

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.error_type == "ExecutionError"
    assert "raised CancelledError on slot 'input'" in job.error.message


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cancelled_error_from_inside_a_handler_is_retried_under_retry(
    strategy: str,
) -> None:
    routine = CancelledInside()
    routine.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, max_retries=1))
    flow = chain(routine)

    job = asyncio.run(flow.execute_async("r0", {"x": 1}, execution_strategy=strategy))

    assert job.status is JobStatus.COMPLETED
    assert routine.calls == 2
    assert sink(flow) == [{"x": 1}]


# Timeouts


class Slow(Routine):
    """Hangs on its first ``hangs`` calls, then emits."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle, timeout=0.01)
        self.define_event("out")
        self.calls = 0

    async def handle(self, x: int) -> None:
        self.calls += 1
        hangs = self.get_config("hangs", 99)
        assert isinstance(hangs, int)
        if self.calls <= hangs:
            await asyncio.Event().wait()
        self.emit("out", x=x)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_timeout_fails_the_job_with_timeout_error_under_stop(strategy: str) -> None:
    slow = Slow()
    flow = chain(slow)

    job = asyncio.run(flow.execute_async("r0", {"x": 1}, execution_strategy=strategy))

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.error_type == "TimeoutError"
    assert "took longer than its slot 'input' allows" in job.error.message
    assert sink(flow) == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_timeout_is_retried_under_retry(strategy: str) -> None:
    slow = Slow()
    slow.set_config(hangs=2)
    slow.set_error_handler(
        ErrorHandler(ErrorStrategy.RETRY, max_retries=3, retry_delay=0.5)
    )
    flow = chain(slow)

    job = asyncio.run(flow.execute_async("r0", {"x": 1}, execution_strategy=strategy))

    assert job.status is JobStatus.COMPLETED
    assert slow.calls == 3
    assert flow.clock.sleeps == [0.5, 1.0]  # type: ignore[union-attr]
    assert sink(flow) == [{"x": 1}]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_handler_that_swallows_its_timeout_still_timed_out(strategy: str) -> None:
    class Swallows(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.handle, timeout=0.01)
            self.define_event("out")

        async def handle(self, x: int) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass  # swallowed: the handler then returns as if it succeeded
            self.emit("out", x=x)

    flow = chain(Swallows())

    job = asyncio.run(flow.execute_async("r0", {"x": 1}, execution_strategy=strategy))

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.error_type == "TimeoutError"
    assert "took longer than its slot 'input' allows" in job.error.message
    assert sink(flow) == []  # what it emitted after its timeout is discarded


def test_timeout_applies_under_execute_too() -> None:
    flow = chain(Slow())

    job = flow.execute("r0", {"x": 1})

    assert job.status is JobStatus.FAILED
    assert job.errors[0].error_type == "TimeoutError"


def test_handler_raising_its_own_timeout_error_keeps_its_message() -> None:
    class Raises(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", self.handle, timeout=10)

        async def handle(self, x: int) -> None:
            raise TimeoutError("upstream API timed out")

    flow = Flow()
    flow.add_routine(Raises(), "r")

    job = asyncio.run(flow.execute_async("r", {"x": 1}))

    assert job.error is not None
    assert job.error.message == "upstream API timed out"


def test_timeout_on_a_plain_handler_is_a_definition_error() -> None:
    routine = PlainAdd()

    with pytest.raises(DefinitionError, match="a timeout needs an async def handler"):
        routine.define_slot("other", routine.handle, timeout=1)


# Context


class Spawner(Routine):
    """Starts a task that reads current_delivery() after the handler returned."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")
        self.gate = asyncio.Event()
        self.children: list[tuple[Key, asyncio.Task[tuple[Key, str]]]] = []

    async def handle(self, x: int) -> None:
        self.children.append(
            (current_delivery().delivery_key, asyncio.create_task(self.child()))
        )
        self.emit("out", x=x)

    async def child(self) -> tuple[Key, str]:
        await self.gate.wait()
        key = current_delivery().delivery_key
        try:
            self.emit("out", x=-1)
        except ExecutionError as error:
            return key, str(error)
        return key, "emitted"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_tasks_a_handler_starts_see_its_delivery_after_it_returned(
    strategy: str,
) -> None:
    spawner = Spawner()
    flow = chain(spawner, AsyncAdd())

    async def main() -> list[tuple[Key, str]]:
        for x in (1, 2):
            await flow.execute_async("r0", {"x": x}, execution_strategy=strategy)
        spawner.gate.set()
        return [await task for _, task in spawner.children]

    results = asyncio.run(main())

    keys = [key for key, _ in spawner.children]
    assert [key for key, _ in results] == keys
    assert len(set(keys)) == 2
    assert all("outside one of its handlers" in error for _, error in results)
    assert sink(flow) == [{"x": 2}, {"x": 3}]


class KeyChecker(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.mismatches: list[object] = []

    async def handle(self, i: int) -> None:
        key = current_delivery().delivery_key
        for _ in range(3):
            await asyncio.sleep(0)
            if current_delivery().delivery_key != key:
                self.mismatches.append((key, current_delivery().delivery_key))


class Fan(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")

    def handle(self, n: int) -> None:
        for i in range(n):
            self.emit("out", i=i)


def test_current_delivery_never_leaks_between_concurrent_deliveries() -> None:
    flow = Flow(max_workers=8)
    flow.add_routine(Fan(), "fan")
    checkers = [KeyChecker() for _ in range(6)]
    for k, checker in enumerate(checkers):
        flow.add_routine(checker, f"c{k}")
        flow.connect("fan", "out", f"c{k}", "input")

    job = asyncio.run(
        flow.execute_async("fan", {"n": 5}, execution_strategy="concurrent")
    )

    assert job.status is JobStatus.COMPLETED
    assert [c.mismatches for c in checkers] == [[]] * 6


# The concurrent strategy


class Tracked(Routine):
    """Records the order of its inputs and how many handlers ran at once."""

    def __init__(self, counter: list[int]) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.counter = counter  # [running now, most at once], shared
        self.order: list[int] = []
        self.running = self.most = 0

    async def handle(self, i: int) -> None:
        self.running += 1
        self.counter[0] += 1
        self.most = max(self.most, self.running)
        self.counter[1] = max(self.counter[1], self.counter[0])
        for _ in range(3):
            await asyncio.sleep(0)
        self.order.append(i)
        self.running -= 1
        self.counter[0] -= 1


def fan_flow(width: int, max_workers: int) -> tuple[Flow, list[Tracked], list[int]]:
    counter = [0, 0]
    flow = Flow(max_workers=max_workers)
    flow.add_routine(Fan(), "fan")
    tracked = [Tracked(counter) for _ in range(width)]
    for k, routine in enumerate(tracked):
        flow.add_routine(routine, f"t{k}")
        flow.connect("fan", "out", f"t{k}", "input")
    return flow, tracked, counter


def test_concurrent_runs_at_most_max_workers_handlers_at_once() -> None:
    flow, _, counter = fan_flow(width=8, max_workers=3)

    job = asyncio.run(
        flow.execute_async("fan", {"n": 4}, execution_strategy="concurrent")
    )

    assert job.status is JobStatus.COMPLETED
    assert counter == [0, 3]


def test_concurrent_keeps_order_and_one_handler_per_routine() -> None:
    flow, tracked, _ = fan_flow(width=4, max_workers=8)

    asyncio.run(flow.execute_async("fan", {"n": 6}, execution_strategy="concurrent"))

    assert [t.order for t in tracked] == [list(range(6))] * 4
    assert [t.most for t in tracked] == [1] * 4


def test_two_concurrent_jobs_never_run_two_handlers_of_a_routine_at_once() -> None:
    flow, tracked, counter = fan_flow(width=3, max_workers=4)

    async def main() -> list[JobStatus]:
        jobs = await asyncio.gather(
            *(
                flow.execute_async("fan", {"n": 5}, execution_strategy="concurrent")
                for _ in range(2)
            )
        )
        return [job.status for job in jobs]

    assert asyncio.run(main()) == [JobStatus.COMPLETED] * 2
    assert [t.most for t in tracked] == [1] * 3
    assert [sorted(t.order) for t in tracked] == [sorted(list(range(5)) * 2)] * 3
    assert counter[1] > 1  # the two jobs did overlap


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_execute_async_returns_only_when_the_job_ended(strategy: str) -> None:
    flow, tracked, counter = fan_flow(width=5, max_workers=2)

    job = asyncio.run(flow.execute_async("fan", {"n": 3}, execution_strategy=strategy))

    assert job.status is JobStatus.COMPLETED
    assert job.pending == []
    assert counter[0] == 0
    assert [len(t.order) for t in tracked] == [3] * 5


class InterruptKeeper(Routine):
    """Keeps its job's cancel hook, as a thread calling flow.cancel may hold it."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.hooks: list[Callable[[], None]] = []

    async def handle(self, x: int) -> None:
        hook = current_delivery().job._interrupt
        assert hook is not None
        self.hooks.append(hook)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_cancel_racing_the_end_of_a_private_loop_job_is_harmless(
    strategy: str,
) -> None:
    keeper = InterruptKeeper()
    flow = Flow()
    flow.add_routine(keeper, "k")

    job = flow.execute("k", {"x": 1}, execution_strategy=strategy)
    keeper.hooks[0]()  # flow.cancel read the hook just before the job ended

    assert job.status is JobStatus.COMPLETED


class Overlap(Routine):
    """Counts how many of its handlers run at once, across threads.

    The first call holds on until another job has reached this routine (``Announce``
    sets ``second``), then a little longer, so that a
    second handler, if let in, would be seen running.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.count = threading.Lock()
        self.running = self.most = 0
        self.first = threading.Event()
        self.second = threading.Event()

    async def handle(self, x: int) -> None:
        with self.count:
            self.running += 1
            self.most = max(self.most, self.running)
        if x == 1:
            self.first.set()
            await asyncio.to_thread(self.second.wait, 10)
            await asyncio.to_thread(threading.Event().wait, 0.05)  # a real 50 ms
        with self.count:
            self.running -= 1


class Announce(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")
        self.overlap: Overlap | None = None

    def handle(self, x: int) -> None:
        assert self.overlap is not None
        if x == 2:
            self.overlap.second.set()
        self.emit("out", x=x)


def test_async_jobs_run_from_two_threads_never_overlap_a_routines_handlers() -> None:
    flow = Flow(execution_strategy="concurrent")
    overlap, announce = Overlap(), Announce()
    announce.overlap = overlap
    flow.add_routine(announce, "announce")
    flow.add_routine(overlap, "overlap")
    flow.connect("announce", "out", "overlap", "input")
    statuses: list[JobStatus] = []

    def run(x: int) -> None:
        statuses.append(flow.execute("announce", {"x": x}).status)

    first = threading.Thread(target=run, args=(1,))
    first.start()
    assert overlap.first.wait(10)
    run(2)
    first.join(10)

    assert statuses == [JobStatus.COMPLETED] * 2
    assert overlap.most == 1


def test_two_async_jobs_with_one_id_on_one_loop_run_once() -> None:
    stuck = Stuck()
    flow = chain(stuck)

    async def main() -> JobStatus:
        first = asyncio.create_task(flow.execute_async("r0", {"x": 1}, job_id="j"))
        await stuck.started.wait()
        with pytest.raises(JobStateError, match="a job with this id already runs"):
            await flow.execute_async("r0", {"x": 2}, job_id="j")
        stuck.release.set()
        return (await first).status

    assert asyncio.run(main()) is JobStatus.COMPLETED
    assert sink(flow) == [{"x": 1}]
