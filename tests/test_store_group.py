"""SqliteStore's write paths: one statement alone, and group commit (a transaction
per N checkpoints or per interval).

The Store contract suite runs against a grouped store too (``test_store.py``,
backend ``sqlite_grouped``); these are the grouping's own promises. Kill -9
tests are in ``test_recovery_group.py``.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest

from flowforge import (
    ArgumentTypeError,
    Flow,
    JobState,
    JobStatus,
    Routine,
    StoreError,
    current_delivery,
)
from flowforge.store import Change, SqliteStore, Store
from flowforge.testing import StoreWrapper

WAIT: Final = 30.0
FAR: Final = 4_000_000_000.0


class Countdown(Routine):
    """Emit ``n - 1`` until ``n`` is 0; call ``hook`` (if set) at each delivery."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: object = None
        self.define_slot("input", self.count)
        self.define_event("output")

    def count(self, n: int) -> None:
        if callable(self.hook):
            self.hook(current_delivery().seq)
        if n > 0:
            self.emit("output", n=n - 1)


def countdown_flow() -> tuple[Flow, Countdown]:
    flow = Flow(flow_id="group_commit")
    routine = Countdown()
    flow.add_routine(routine, "count")
    flow.connect("count", "output", "count", "input")
    return flow, routine


class Watcher(StoreWrapper):
    """After each checkpoint, note how many deliveries another connection sees."""

    def __init__(self, inner: Store, other: SqliteStore) -> None:
        super().__init__(inner)
        self.other = other
        self.seen: list[int] = []

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)
        self.seen.append(self.other.load(job_state.job_id).delivery_count)


@pytest.mark.parametrize(
    ("every", "interval", "error", "match"),
    [
        (0, 0.05, StoreError, "commit_every must be from 1"),
        (1_000_001, 0.05, StoreError, "commit_every must be from 1"),
        ("16", 0.05, ArgumentTypeError, "commit_every must be an int"),
        (True, 0.05, ArgumentTypeError, "commit_every must be an int"),
        (16.0, 0.05, ArgumentTypeError, "commit_every must be an int"),
        (16, 0, StoreError, "commit_interval must be more than 0"),
        (16, -1, StoreError, "commit_interval must be more than 0"),
        (16, float("nan"), StoreError, "commit_interval must be more than 0"),
        (16, 3601, StoreError, "at most 3600 seconds"),
        (16, "0.05", ArgumentTypeError, "commit_interval must be a number"),
        (16, None, ArgumentTypeError, "commit_interval must be a number"),
    ],
    ids=[
        "zero",
        "huge",
        "str-every",
        "bool-every",
        "float-every",
        "zero-interval",
        "negative-interval",
        "nan-interval",
        "long-interval",
        "str-interval",
        "none-interval",
    ],
)
def test_bad_group_commit_settings_are_refused(
    tmp_path: Path,
    every: object,
    interval: object,
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        SqliteStore(
            tmp_path / "jobs.db",
            commit_every=every,  # type: ignore[arg-type]
            commit_interval=interval,  # type: ignore[arg-type]
        )

    assert not (tmp_path / "jobs.db").exists()


@pytest.mark.parametrize("every", [1, 4, 16])
def test_other_connections_see_progress_at_most_n_minus_1_deliveries_late(
    tmp_path: Path, every: int
) -> None:
    flow, _ = countdown_flow()
    store = SqliteStore(tmp_path / "jobs.db", commit_every=every, commit_interval=3600)
    other = SqliteStore(tmp_path / "jobs.db")
    watcher = Watcher(store, other)

    job = flow.execute("count", {"n": 40}, store=watcher)

    late = [n - seen for n, seen in enumerate(watcher.seen, start=1)]
    assert job.status is JobStatus.COMPLETED
    assert max(late) == every - 1
    assert min(late) == 0
    assert other.load(job.job_id).delivery_count == 41
    store.close()
    other.close()


def test_a_slow_handler_does_not_hold_back_the_commit_past_the_interval(
    tmp_path: Path,
) -> None:
    flow, routine = countdown_flow()
    store = SqliteStore(tmp_path / "jobs.db", commit_every=64, commit_interval=0.01)
    other = SqliteStore(tmp_path / "jobs.db")
    seen: list[int] = []

    def wait_for_commit(seq: int) -> None:
        if seq != 2:
            return
        job_id = current_delivery().job.job_id
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:  # the flusher commits meanwhile
            count = other.load(job_id).delivery_count
            if count == 2:
                seen.append(count)
                return
            threading.Event().wait(0.005)

    routine.hook = wait_for_commit

    job = flow.execute("count", {"n": 3}, store=store)

    assert job.status is JobStatus.COMPLETED
    assert seen == [2]
    store.close()
    other.close()


def test_a_paused_job_is_stored_whole(tmp_path: Path) -> None:
    flow, routine = countdown_flow()
    store = SqliteStore(tmp_path / "jobs.db", commit_every=64, commit_interval=3600)

    def pause(seq: int) -> None:
        if seq == 10:
            flow.pause(reason="midway")

    routine.hook = pause

    job = flow.execute("count", {"n": 30}, store=store)
    other = SqliteStore(tmp_path / "jobs.db")
    stored = other.load(job.job_id)

    assert job.status is JobStatus.PAUSED
    assert stored.serialize() == job.serialize()
    store.close()
    other.close()


def new_job(store: SqliteStore, owner: str) -> JobState:
    """A running job created in ``store``: its checkpoints are one row each."""
    flow, _ = countdown_flow()
    job = flow.execute("count", {"n": 2})
    job.status = JobStatus.RUNNING
    assert store.create(job, owner=owner, lease_until=FAR)
    return job


def checkpoint(store: SqliteStore, job: JobState, owner: str) -> None:
    change = Change(len(job.pending), None, None, job.history_total, len(job.errors))
    store.checkpoint(job, change, owner=owner, lease_until=FAR)


def test_a_failed_grouped_write_rolls_its_group_back_and_stops_its_jobs(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=2, commit_interval=3600)
    job, other = new_job(store, "a"), new_job(store, "c")
    with sqlite3.connect(tmp_path / "jobs.db") as db:  # a write SQLite refuses
        db.execute(
            f"CREATE TRIGGER fail BEFORE INSERT ON changes WHEN NEW.job_id = "
            f"'{job.job_id}' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
    db.close()
    checkpoint(store, other, "c")

    with pytest.raises(StoreError, match="disk on fire"):
        checkpoint(store, job, "a")  # the group's commit
    with pytest.raises(StoreError, match="lost its last grouped checkpoints"):
        checkpoint(store, other, "c")

    store.save(other, owner="c", lease_until=FAR)  # a whole save mends it
    checkpoint(store, other, "c")
    store.close()


def test_a_checkpoint_refused_at_the_commit_stops_its_job_only(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=3600)
    job, other = new_job(store, "a"), new_job(store, "c")
    stored = job.delivery_count
    other.delivery_count += 1
    checkpoint(store, other, "c")
    job.delivery_count += 1
    checkpoint(store, job, "b")  # kept: the lease is checked at the commit
    other.delivery_count += 1
    checkpoint(store, other, "c")

    loaded = store.load(other.job_id)  # commits the group first

    assert loaded.delivery_count == other.delivery_count
    with pytest.raises(StoreError, match="leased to 'a', not 'b'"):
        checkpoint(store, job, "b")
    with pytest.raises(StoreError, match="leased to 'a', not 'b'"):
        checkpoint(store, job, "a")  # its log misses the refused change
    assert store.load(job.job_id).delivery_count == stored
    store.save(job, owner="a", lease_until=FAR)  # a whole save mends it
    checkpoint(store, job, "a")
    store.close()


def test_a_checkpoint_refused_at_its_own_commit_raises_there(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=2, commit_interval=3600)
    job, other = new_job(store, "a"), new_job(store, "c")
    other.delivery_count += 1
    checkpoint(store, other, "c")

    with pytest.raises(StoreError, match="leased to 'a', not 'b'"):
        checkpoint(store, job, "b")  # the group's commit

    assert store.load(other.job_id).delivery_count == other.delivery_count
    store.close()


def test_close_commits_the_open_group(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=3600)
    job = new_job(store, "a")
    job.delivery_count += 1
    checkpoint(store, job, "a")

    store.close()
    reopened = SqliteStore(tmp_path / "jobs.db")

    assert reopened.load(job.job_id).delivery_count == job.delivery_count
    reopened.close()


def test_a_pickled_store_keeps_its_group_commit_settings(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=0.5)
    flow, _ = countdown_flow()

    copy = pickle.loads(pickle.dumps(store))
    job = flow.execute("count", {"n": 40}, store=copy)
    copy_of_plain = pickle.loads(pickle.dumps(SqliteStore(tmp_path / "jobs.db")))

    assert job.status is JobStatus.COMPLETED
    assert copy._group is not None
    assert (copy._group.every, copy._group.interval) == (16, 0.5)
    assert copy_of_plain._group is None
    copy.close()
    copy_of_plain.close()
    store.close()


def statements_of(store: SqliteStore, run: Callable[[], JobState]) -> Counter[str]:
    """Run ``run``; count the statements this thread's connection ran, by kind."""
    seen: list[str] = []
    store._connection().set_trace_callback(seen.append)
    job = run()
    assert job.status is JobStatus.COMPLETED
    return Counter(
        "change" if text.startswith("INSERT INTO changes") else text
        for text in seen
        if text.startswith(("BEGIN", "COMMIT", "INSERT INTO changes"))
    )


@pytest.mark.parametrize(("every", "begins"), [(1, 6), (16, 16)])
def test_checkpoints_open_a_transaction_only_when_more_than_their_row_is_due(
    tmp_path: Path, every: int, begins: int
) -> None:
    flow, _ = countdown_flow()
    store = SqliteStore(tmp_path / "jobs.db", commit_every=every, commit_interval=3600)

    counts = statements_of(
        store, lambda: flow.execute("count", {"n": 200}, store=store)
    )

    # 201 changes; 3 folds, the run's first and last saves, the create; with
    # group commit, a transaction per 16 changes (13) instead of the folds.
    assert counts["change"] == 201
    assert counts["BEGIN IMMEDIATE"] == begins
    assert counts["COMMIT"] == begins
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)
def test_a_forked_child_leaves_the_parents_open_group_to_the_parent(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=3600)
    job = new_job(store, "a")
    committed = job.delivery_count
    for _ in range(3):  # an open group of three checkpoints
        job.delivery_count += 1
        checkpoint(store, job, "a")
    reading, writing = os.pipe()

    pid = os.fork()
    if pid == 0:  # the child: read through the inherited store, report, exit
        try:
            seen = store.load(job.job_id).delivery_count
            os.write(writing, str(seen).encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        seen_by_child = int(pipe.read() or "-1")
    os.waitpid(pid, 0)
    job.delivery_count += 1
    checkpoint(store, job, "a")
    store.close()
    reopened = SqliteStore(tmp_path / "jobs.db")

    # The child saw the last commit; it neither committed nor rolled back the
    # parent's group, which the parent committed whole.
    assert seen_by_child == committed
    assert reopened.load(job.job_id).delivery_count == committed + 4
    reopened.close()


def test_the_commit_thread_ends_once_the_store_is_idle(tmp_path: Path) -> None:
    flow, _ = countdown_flow()
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=0.01)
    before = set(threading.enumerate())

    job = flow.execute("count", {"n": 40}, store=store)
    started = [
        thread
        for thread in threading.enumerate()
        if thread.name == "flowforge-group-commit" and thread not in before
    ]
    for thread in started:  # idle, it must not keep the unused store alive
        thread.join(WAIT)

    assert job.status is JobStatus.COMPLETED
    assert not any(thread.is_alive() for thread in started)
    assert flow.execute("count", {"n": 40}, store=store).status is JobStatus.COMPLETED
    store.close()


def test_another_store_opens_and_reads_while_a_group_is_open(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=3600)
    job = new_job(store, "a")
    committed = job.delivery_count
    job.delivery_count += 1
    checkpoint(store, job, "a")  # the group stays open: it holds the write lock

    reader = SqliteStore(tmp_path / "jobs.db", timeout=0)  # opening only reads

    assert reader.load(job.job_id).delivery_count == committed
    reader.close()
    store.close()


def test_other_processes_write_while_checkpoints_wait_for_their_commit(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=3600)
    job = new_job(store, "a")
    committed = job.delivery_count
    job.delivery_count += 1
    checkpoint(store, job, "a")  # kept in memory: no write lock held
    other = SqliteStore(tmp_path / "jobs.db", timeout=0)
    other_job = new_job_state()

    other.save(other_job, owner="b", lease_until=FAR)

    assert other.load(other_job.job_id).job_id == other_job.job_id
    assert other.load(job.job_id).delivery_count == committed
    other.close()
    store.close()


def test_a_checkpoint_that_sets_the_status_commits_the_group_with_it(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=3600)
    job = new_job(store, "a")
    other = SqliteStore(tmp_path / "jobs.db")
    for _ in range(3):
        job.delivery_count += 1
        checkpoint(store, job, "a")
    kept = other.load(job.job_id).delivery_count
    job.delivery_count += 1
    job.status = JobStatus.PAUSED

    checkpoint(store, job, "a")

    assert kept == job.delivery_count - 4
    assert other.load(job.job_id).delivery_count == job.delivery_count
    other.close()
    store.close()


def new_job_state() -> JobState:
    flow, _ = countdown_flow()
    return flow.execute("count", {"n": 1})


def test_a_job_whose_kept_checkpoint_is_refused_writes_nothing_after_it(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=3600)
    job = new_job(store, "a")
    stored = job.delivery_count
    job.delivery_count += 1
    checkpoint(store, job, "b")  # kept: refused at the commit
    job.delivery_count += 1
    job.status = JobStatus.PAUSED  # a status: commits at once, with the kept row

    with pytest.raises(StoreError, match="leased to 'a', not 'b'"):
        checkpoint(store, job, "a")

    assert store.load(job.job_id).delivery_count == stored
    store.close()


@pytest.mark.parametrize("every", [1, 16])
def test_a_checkpoint_renews_a_lease_a_third_gone_and_commits_at_once(
    tmp_path: Path, every: int
) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=every, commit_interval=3600)
    job = new_job(store, "a")
    job.delivery_count += 1
    soon = time.time()  # all gone: renewing is due

    change = Change(len(job.pending), None, None, job.history_total, len(job.errors))
    store.checkpoint(job, change, owner="a", lease_until=soon)

    other = SqliteStore(tmp_path / "jobs.db")
    assert other.get(job.job_id).lease_until == soon
    assert other.load(job.job_id).delivery_count == job.delivery_count
    other.close()
    store.close()
