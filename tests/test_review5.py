"""Regressions found by the review of issue 23's performance work (review 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest
from test_store_group import checkpoint, new_job

from flowforge import StoreError
from flowforge.store import SqliteStore

FAR: Final = 4_000_000_000.0


def test_a_job_created_again_after_its_lease_was_stolen_is_not_lost(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=3600)
    other = SqliteStore(tmp_path / "jobs.db")
    job = new_job(store, "a")
    checkpoint(store, job, "a")  # kept for the group's commit
    assert other.acquire(job.job_id, owner="b", lease_until=FAR, now=FAR + 1)
    with pytest.raises(StoreError, match="leased to 'b', not 'a'"):
        for _ in range(16):
            checkpoint(store, job, "a")  # refused at the group's commit
    other.delete(job.job_id)

    assert store.create(job, owner="a", lease_until=FAR)  # a new job, same id
    checkpoint(store, job, "a")
    store.close()

    assert other.load(job.job_id).delivery_count == job.delivery_count
    other.close()
