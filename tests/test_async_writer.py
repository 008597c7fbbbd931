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

from flowforge import Flow, JobState, JobStatus, Routine
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


def test_a_slow_store_writes_off_the_loop_while_the_loop_serves_others(
    tmp_path: Path,
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
        job = await flow.execute_async("r0", {"x": 0}, store=store)
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


def test_cancelling_during_a_slow_write_waits_for_it_and_the_job_resumes(
    tmp_path: Path,
) -> None:
    inner = json_store(tmp_path)
    signal = threading.Event()
    store = Watched(inner, signal)
    flow = chain(3)

    async def main() -> str:
        task = asyncio.create_task(
            flow.execute_async("r0", {"x": 0}, store=store, job_id="j")
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
