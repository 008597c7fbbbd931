"""Where durable async jobs write: slow stores off the loop, short ones inline.

A store other than SQLite or memory (PostgreSQL across a network, JSON files
that fsync) writes each checkpoint on a thread of the job's own, so the event
loop serves other tasks meanwhile; the tests prove it without timing: the
store's write waits for an event that only a task on the loop can set.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from flowforge import (
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    JobStatus,
    Routine,
    StoreError,
)
from flowforge.store import JsonDirectoryStore, MemoryStore, SqliteStore
from flowforge.store.base import Change, Store
from flowforge.testing import Recorder, StoreWrapper

STRATEGIES = ["sequential", "concurrent"]


class Add(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")
        self.calls = 0

    async def handle(self, x: int) -> None:
        self.calls += 1
        self.emit("out", x=x + 1)


class Watched(StoreWrapper):
    """Records the thread of each checkpoint; may wait for the loop's signal."""

    def __init__(self, inner: Store, signal: threading.Event | None = None) -> None:
        super().__init__(inner)
        self.threads: list[threading.Thread] = []
        self.signal = signal
        self.signalled: list[bool] = []

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        self.threads.append(threading.current_thread())
        if self.signal is not None:
            self.signalled.append(self.signal.wait(5))
            self.signal.clear()
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)


def chain(length: int) -> Flow:
    flow = Flow(flow_id="writer_chain")
    ids = [flow.add_routine(Add(), f"r{i}") for i in range(length)]
    flow.add_routine(Recorder(), "sink")
    for source, target in zip(ids, [*ids[1:], "sink"], strict=True):
        flow.connect(source, "out", target, "input")
    return flow


def json_store(tmp_path: Path) -> Store:
    return JsonDirectoryStore(tmp_path / "jobs")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_slow_store_writes_off_the_loop_while_the_loop_serves_others(
    tmp_path: Path, strategy: str
) -> None:
    signal = threading.Event()
    store = Watched(json_store(tmp_path), signal)
    flow = chain(3)

    async def main() -> tuple[JobState, int]:
        loop_thread = threading.current_thread()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1
                signal.set()  # lets a waiting checkpoint go on

        task = asyncio.create_task(ticker())
        job = await flow.execute_async(
            "r0", {"x": 0}, store=store, execution_strategy=strategy
        )
        task.cancel()
        assert all(thread is not loop_thread for thread in store.threads)
        return job, ticks

    job, ticks = asyncio.run(main())

    assert job.status is JobStatus.COMPLETED
    assert store.signalled and all(store.signalled)  # the loop ran meanwhile
    assert ticks >= len(store.signalled)
    assert store.load(job.job_id).status is JobStatus.COMPLETED


@pytest.mark.parametrize("kind", [SqliteStore, MemoryStore])
def test_sqlite_and_memory_stores_write_inline_on_the_loop(
    kind: type[SqliteStore] | type[MemoryStore],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []
    real = kind.checkpoint

    def watched(self: Store, *args: object, **kwargs: object) -> None:
        threads.append(threading.current_thread())
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kind, "checkpoint", watched)
    store = SqliteStore(tmp_path / "jobs.db") if kind is SqliteStore else MemoryStore()
    flow = chain(3)

    async def main() -> threading.Thread:
        await flow.execute_async("r0", {"x": 0}, store=store)
        return threading.current_thread()

    loop_thread = asyncio.run(main())

    assert threads and all(t is loop_thread for t in threads)


def test_a_wrapped_store_counts_as_slow(tmp_path: Path) -> None:
    store = Watched(SqliteStore(tmp_path / "jobs.db"))

    async def main() -> threading.Thread:
        await chain(1).execute_async("r0", {"x": 0}, store=store)
        return threading.current_thread()

    loop_thread = asyncio.run(main())

    assert store.threads and all(t is not loop_thread for t in store.threads)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cancelling_during_a_slow_write_waits_for_it_and_the_job_resumes(
    tmp_path: Path, strategy: str
) -> None:
    inner = json_store(tmp_path)
    signal = threading.Event()
    store = Watched(inner, signal)
    flow = chain(3)

    async def main() -> str:
        task = asyncio.create_task(
            flow.execute_async(
                "r0", {"x": 0}, store=store, job_id="j", execution_strategy=strategy
            )
        )
        while not store.threads:  # the first checkpoint is being written
            await asyncio.sleep(0.001)
        task.cancel()
        signal.set()  # the write ends only now, after the cancel
        with pytest.raises(asyncio.CancelledError):
            await task
        return "j"

    job_id = asyncio.run(main())

    assert store.signalled == [True]
    resumed = chain(3)
    job = resumed.resume(job_id, store=inner)
    assert job.status is JobStatus.COMPLETED
    first, rebuilt = flow.routines["r0"], resumed.routines["r0"]
    assert isinstance(first, Add) and isinstance(rebuilt, Add)
    assert first.calls + rebuilt.calls == 1  # the checkpointed delivery never reruns
    recorder = resumed.routines["sink"]
    assert isinstance(recorder, Recorder)
    assert recorder.received == [{"x": 3}]


class Spread(Routine):
    """A source: emits ``n`` for each ``n`` in ``range(count)``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("out")

    def __call__(self, count: int) -> None:
        for n in range(count):
            self.emit("out", x=n)


class Picky(Add):
    """``Add`` that refuses 5 (its flow lets it go on)."""

    async def handle(self, x: int) -> None:
        if x == 5:
            raise ValueError("no fives")
        await Add.handle(self, x)


def fan_out() -> Flow:
    flow = Flow(flow_id="writer_fan")
    flow.add_routine(Spread(), "spread")
    flow.add_routine(Recorder(), "sink")
    for name, routine in (("a", Add()), ("b", Add()), ("picky", Picky())):
        flow.add_routine(routine, name)
        flow.connect("spread", "out", name, "input")
        flow.connect(name, "out", "sink", "input")
    flow.get_routine("picky").set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    return flow


def received(flow: Flow) -> list[object]:
    sink = flow.routines["sink"]
    assert isinstance(sink, Recorder)
    return sorted(item["x"] for item in sink.received)  # type: ignore[type-var]


def test_a_concurrent_job_on_a_slow_store_ends_as_on_a_fast_one(
    tmp_path: Path,
) -> None:
    fast, slow = fan_out(), fan_out()
    params = {"count": 12}

    async def run(flow: Flow, store: Store) -> JobState:
        return await flow.execute_async(
            "spread", params, store=store, execution_strategy="concurrent"
        )

    memory = MemoryStore()
    files = Watched(json_store(tmp_path))
    expected = asyncio.run(run(fast, memory))
    job = asyncio.run(run(slow, files))

    assert files.threads  # its checkpoints were written on the writer's thread
    assert received(slow) == received(fast) and len(received(slow)) == 35
    stored = files.load(job.job_id)
    assert stored.status is JobStatus.COMPLETED
    assert stored.history_total == expected.history_total == job.history_total
    assert [e.message for e in stored.errors] == ["no fives"]


class BreaksOnThird(Watched):
    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        if len(self.threads) == 2:
            self.threads.append(threading.current_thread())
            raise StoreError("disk full")
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)


def test_a_failed_slow_write_stops_a_concurrent_job_and_it_resumes(
    tmp_path: Path,
) -> None:
    inner = json_store(tmp_path)
    flow = fan_out()

    with pytest.raises(StoreError, match="disk full"):
        asyncio.run(
            flow.execute_async(
                "spread",
                {"count": 12},
                store=BreaksOnThird(inner),
                job_id="j",
                execution_strategy="concurrent",
            )
        )

    resumed = fan_out()
    job = resumed.resume("j", store=inner)
    assert job.status is JobStatus.COMPLETED
    done = sorted([*received(flow), *received(resumed)])  # type: ignore[type-var]
    expected = fan_out()
    expected.execute("spread", {"count": 12})
    assert set(done) == set(received(expected))  # every result, none lost
