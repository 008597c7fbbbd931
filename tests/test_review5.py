"""Regressions found by the review of issue 23's performance work (review 5)."""

from __future__ import annotations

import linecache
import sqlite3
import sys
import warnings
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Final

import pytest
from test_interrupt_durable import assert_ended_as_uninterrupted, looping_flow
from test_store_group import checkpoint, new_job

from flowforge import JobState, StoreError
from flowforge.store import MemoryStore, SqliteStore

FAR: Final = 4_000_000_000.0
GROUP_MODULE: Final = "_sqlite_group.py"


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


def test_a_store_whose_close_failed_still_commits_on_the_interval(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteStore(path, commit_every=1000, commit_interval=0.01, timeout=0.05)
    job = new_job(store, "a")
    checkpoint(store, job, "a")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the close's commit fails: locked
    with pytest.raises(StoreError, match="locked"):
        store.close()
    blocker.execute("ROLLBACK")
    blocker.close()
    store.save(job, owner="a", lease_until=FAR)  # used again: a new run
    job.delivery_count += 1

    checkpoint(store, job, "a")  # kept; committed by the store's thread

    other = SqliteStore(path)
    deadline = time.monotonic() + 30
    while other.load(job.job_id).delivery_count != job.delivery_count:
        assert time.monotonic() < deadline, "the kept checkpoint was never committed"
        time.sleep(0.01)
    store.close()
    other.close()


def interrupt_in(
    function: str, line: int, module: str = GROUP_MODULE
) -> Callable[[FrameType, str, Any], Any]:
    """Return a trace function raising KeyboardInterrupt at ``function``'s ``line``-th.

    Lines count in ``module``'s ``function`` only, as a signal landing there
    would interrupt it. Not at a ``try:`` line (the next one instead): raised
    there by a trace function, the exception skips the ``try``'s own
    handlers, where a signal never lands (CPython handles signals at calls
    and backward jumps).
    """
    seen = 0

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal seen
        code = frame.f_code
        if code.co_name != function or not code.co_filename.endswith(module):
            return None
        if event == "line":
            seen += 1
            text = linecache.getline(code.co_filename, frame.f_lineno).strip()
            if seen >= line and not text.startswith("try:"):
                sys.settrace(None)
                raise KeyboardInterrupt
        return trace

    return trace


def wait_until_stored(path: Path, job: JobState) -> None:
    other = SqliteStore(path)
    deadline = time.monotonic() + 30
    while other.load(job.job_id).delivery_count != job.delivery_count:
        assert time.monotonic() < deadline, "the kept checkpoint was never committed"
        time.sleep(0.005)
    other.close()


@pytest.mark.parametrize("function", ["add", "_wake"])
def test_an_interrupt_anywhere_in_keeping_a_checkpoint_leaves_the_store_sound(
    tmp_path: Path, function: str
) -> None:
    line = 0
    while True:
        line += 1
        path = tmp_path / f"jobs-{line}.db"
        store = SqliteStore(path, commit_every=16, commit_interval=0.01)
        job = new_job(store, "a")
        job.delivery_count += 1
        previous = sys.gettrace()  # coverage's, say: put back after
        sys.settrace(interrupt_in(function, line))
        try:
            checkpoint(store, job, "a")  # the group's first row
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(previous)

        # The store goes on as after any interrupt: a run saves the job
        # whole, its checkpoints are committed on time, and it closes.
        store.save(job, owner="a", lease_until=FAR)
        job.delivery_count += 1
        checkpoint(store, job, "a")
        wait_until_stored(path, job)
        store.close()
        if not interrupted:
            break
    assert line > 3  # each line of the function was interrupted once


def test_an_interrupt_anywhere_in_a_journals_end_leaves_the_job_recoverable() -> None:
    """Its lease is let go or its owner counts as gone: recover() ends it exactly.

    Before, an interrupt while it stopped the heartbeat (waiting for a renewal
    in progress, say) kept the owner live in this process, so ``recover()``
    left the job running until its lease expired.
    """
    line = 0
    while True:
        line += 1
        store = MemoryStore()
        previous = sys.gettrace()
        sys.settrace(interrupt_in("end", line, "journal.py"))
        try:
            looping_flow("sequential").execute(
                "loop", {"n": 0}, job_id="job", store=store
            )
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(previous)
        if not interrupted:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "recovering job ..." notices
            looping_flow("sequential").recover(store)
        assert_ended_as_uninterrupted(store, line)
    assert line > 5


def test_an_interrupt_anywhere_in_aborting_a_group_leaves_no_gap_in_a_log(
    tmp_path: Path,
) -> None:
    # A second Ctrl-C landing while a group is rolled back must not drop a
    # job's kept rows without marking it lost: its next checkpoint would then
    # be written after a change that never was.
    line = 0
    while True:
        line += 1
        path = tmp_path / f"jobs-{line}.db"
        store = SqliteStore(path, commit_every=16, commit_interval=3600)
        job = new_job(store, "a")
        job.delivery_count += 1
        checkpoint(store, job, "a")  # kept, not written yet
        group = store._group
        assert group is not None
        previous = sys.gettrace()  # coverage's, say: put back after
        sys.settrace(interrupt_in("abort", line))
        try:
            with group.lock:
                group.abort()
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(previous)

        job.delivery_count += 1
        try:
            checkpoint(store, job, "a")
            store.close()  # commits what is kept
        except StoreError:
            pass  # lost: it stops here, and a resume saves it whole
        with sqlite3.connect(path) as db:
            folded = db.execute("SELECT folded FROM jobs").fetchone()[0]
            numbers = [n for (n,) in db.execute("SELECT n FROM changes ORDER BY n")]
        assert numbers == list(range(folded + 1, folded + 1 + len(numbers))), line
        store.close()
        if not interrupted:
            break
    assert line > 3  # each line of abort was interrupted once
