"""SqliteStore's connections: one per thread, closed once their thread has ended.

A durable async job on a store that is not SQLite itself (a wrapper around
one) writes its checkpoints on a thread of its own, so every job used to leave
one more open connection (and its file descriptors) behind.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Final

from flowforge import Flow, JobStatus, Routine
from flowforge.store import Change, SqliteStore
from flowforge.testing import Recorder, StoreWrapper

JOBS: Final = 8
FAR: Final = 4_000_000_000.0


class Step(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")

    async def handle(self, x: int) -> None:
        self.emit("out", x=x + 1)


def async_flow() -> Flow:
    flow = Flow(flow_id="connections")
    flow.add_routine(Step(), "step")
    flow.add_routine(Recorder(), "sink")
    flow.connect("step", "out", "sink", "input")
    return flow


def test_async_jobs_on_a_wrapped_store_leave_no_connections_behind(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    wrapped = StoreWrapper(store)  # not SQLite itself: written on a thread
    flow = async_flow()

    async def run() -> list[JobStatus]:
        jobs = [
            await flow.execute_async("step", {"x": i}, store=wrapped)
            for i in range(JOBS)
        ]
        return [job.status for job in jobs]

    statuses = asyncio.run(run())

    assert statuses == [JobStatus.COMPLETED] * JOBS
    assert len(store._connections) <= 2  # this thread's and the last writer's
    store.close()


def test_jobs_run_in_threads_that_end_leave_no_connections_behind(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    flow = async_flow()
    statuses: list[JobStatus] = []

    for i in range(JOBS):
        thread = threading.Thread(
            target=lambda i=i: statuses.append(
                flow.execute("step", {"x": i}, store=store).status
            )
        )
        thread.start()
        thread.join()

    assert statuses == [JobStatus.COMPLETED] * JOBS
    assert len(store._connections) <= 2
    store.close()


def test_an_ended_threads_open_group_is_committed_not_closed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=3600)
    job = async_flow().execute("step", {"x": 1})
    assert store.create(job, owner="a", lease_until=FAR)

    def checkpoint() -> None:  # leaves its connection with the open group
        job.delivery_count += 1
        change = Change(len(job.pending), None, None, job.history_total, 0)
        store.checkpoint(job, change, owner="a", lease_until=FAR)

    for _ in range(2):  # the second thread's opening meets the first's group
        thread = threading.Thread(target=checkpoint)
        thread.start()
        thread.join()
    store.close()
    reopened = SqliteStore(tmp_path / "jobs.db")

    assert reopened.load(job.job_id).delivery_count == job.delivery_count
    reopened.close()
