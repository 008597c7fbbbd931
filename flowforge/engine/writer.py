"""Writer: where a durable async job's checkpoints run, off the loop for slow stores.

SQLite's and the memory store's short transactions run inline on the loop's
thread: a hop to another thread would cost more than the write. Any other
store (PostgreSQL across a network, a directory of JSON files that fsyncs)
writes on a thread of the job's own, one checkpoint at a time, while the loop
serves its other tasks. The job is never changed while its checkpoint is
written: the loop that drives it waits for the write before going on (a
concurrent job's handlers still run, but their outcomes wait).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Final, Self, final

from flowforge.engine.stats import snapshot_routine
from flowforge.store.memory import MemoryStore
from flowforge.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from flowforge.engine.concurrent import ConcurrentLoop
    from flowforge.store.base import Change
    from flowforge.engine.plan import Plan
    from flowforge.engine.runtime import Runtime
    from flowforge.job_state import JobState
    from flowforge.record import Delivery

__all__ = ["Writer"]

INLINE: Final = (MemoryStore, SqliteStore)
"""Stores whose checkpoints are short enough to write on the loop's thread."""


@final
class Writer:
    """Write a durable async job's checkpoints inline or on a thread of the job's own.

    Use it as a context manager around the job's run: leaving it stops the
    thread, once the last write has ended.
    """

    __slots__ = ("runtime", "_thread")

    def __init__(self, runtime: Runtime) -> None:
        """Choose, from the job's store, where its checkpoints are written."""
        self.runtime = runtime
        journal = runtime.journal
        offload = journal is not None and not isinstance(journal.store, INLINE)
        self._thread = (
            ThreadPoolExecutor(1, thread_name_prefix="flowforge-checkpoint")
            if offload
            else None
        )

    @property
    def offloads(self) -> bool:
        """Whether checkpoints are written on the writer's own thread."""
        return self._thread is not None

    def __enter__(self) -> Self:
        """Return the writer."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the writing thread, if there is one."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)

    async def checkpoint(
        self, job: JobState, plan: Plan, delivery: Delivery, change: Change | None
    ) -> None:
        """Commit a finished delivery; the loop is free while a slow store writes.

        If the awaiting task is cancelled during a write, the write still
        ends before the cancel goes on, so that nothing else writes the job
        at the same time.
        """
        if self._thread is None or change is None:
            self.runtime.checkpoint(job, plan, delivery, change)
            return
        # The stats snapshot is taken here: other jobs' handlers on this loop
        # may change the routine's stats while the thread writes.
        snapshot_routine(job, plan, delivery.routine_id)
        work = self._thread.submit(self.runtime.commit, job, delivery, change)
        try:
            await asyncio.shield(asyncio.wrap_future(work))
        except asyncio.CancelledError:
            concurrent.futures.wait([work])
            raise

    async def flush(self, loop: ConcurrentLoop, job: JobState, plan: Plan) -> None:
        """Write the checkpoint a concurrent job's coordinator left due, if any.

        The coordinator starts nothing while a write is due, so the job it
        writes does not change meanwhile; a failed write stops the job as a
        failed inline write does.
        """
        due, loop.write_due = loop.write_due, None
        if due is None:
            return
        loop.materialize(job)
        try:
            await self.checkpoint(job, plan, *due)
        except Exception as error:  # noqa: BLE001  raised once the tasks end
            loop.write_failure(error)
        finally:
            job.pending.clear()
