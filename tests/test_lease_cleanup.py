"""A stalled former owner never writes itself back as the owner of a job.

A process paused past its lease finds its next checkpoint refused; its clean-up
must then release only a lease it still holds, never take the job that
another process took over, and maybe finished, meanwhile.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flowforge import Flow, JobStatus
from flowforge.engine.journal import Journal
from flowforge.store import JsonDirectoryStore, MemoryStore, SqliteStore, Store
from flowforge.testing import Recorder


def open_store(kind: str, folder: Path) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "json":
        return JsonDirectoryStore(folder / "jobs")
    return SqliteStore(folder / "jobs.db")


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_clean_up_of_a_stalled_owner_leaves_a_job_finished_by_another_alone(
    tmp_path: Path, kind: str
) -> None:
    store = open_store(kind, tmp_path)
    flow = Flow("leases")
    flow.add_routine(Recorder(), "sink")
    job = flow.execute("sink", {"n": 1})
    job.status = JobStatus.RUNNING
    stalled = Journal(store)
    assert store.create(job, owner=stalled.owner, lease_until=time.time() - 1)
    taker = Journal(store)
    assert taker.acquire(job.job_id)  # the lease expired: taken over
    job.status = JobStatus.COMPLETED
    store.save(job, owner=taker.owner, lease_until=None)  # and finished

    stalled.end(job, write=False)  # its checkpoint was refused: clean up

    record = store.get(job.job_id)
    assert (record.owner, record.status) == (None, JobStatus.COMPLETED)


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_clean_up_after_a_failed_write_lets_its_own_lease_lapse(
    tmp_path: Path, kind: str
) -> None:
    store = open_store(kind, tmp_path)
    flow = Flow("leases")
    flow.add_routine(Recorder(), "sink")
    job = flow.execute("sink", {"n": 1})
    journal = Journal(store)
    assert store.create(job, owner=journal.owner, lease_until=time.time() + 60)

    journal.end(job, write=False)

    assert Journal(store).acquire(job.job_id)  # free for a resume at once
