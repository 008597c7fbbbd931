"""A KeyboardInterrupt landing right after SqliteStore's BEGIN leaves nothing open.

Before, the transaction stayed open on the thread's connection: the store
object failed every later call ("cannot start a transaction within a
transaction") and other connections found the database locked.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest

from flowforge import Flow, JobStatus, Routine
from flowforge.store import SqliteStore
from flowforge.store._sqlite_log import change_row

ROW = change_row("a", 4, "[]")


class Step(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, n: int) -> None:
        self.emit("output", n=n + 1)


def chain() -> Flow:
    flow = Flow("chain")
    for name in ("a", "b", "c"):
        flow.add_routine(Step(), name)
    flow.connect("a", "output", "b", "input")
    flow.connect("b", "output", "c", "input")
    return flow


class InterruptedAfterBegin:
    """A connection whose ``BEGIN`` is interrupted right after it ran."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        cursor = self.db.execute(sql, parameters)
        if sql.startswith("BEGIN"):
            raise KeyboardInterrupt
        return cursor


def assert_usable(store: SqliteStore, path: Path, flow: Flow) -> None:
    assert flow.execute("a", {"n": 0}, job_id="b", store=store).status is (
        JobStatus.COMPLETED
    )
    assert {record.job_id for record in store.list_jobs()} == {"a", "b"}
    other = SqliteStore(path, timeout=0.5)  # another connection can write
    try:
        other.delete("b")
    finally:
        other.close()


def test_an_interrupt_right_after_begin_rolls_the_transaction_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, flow = tmp_path / "jobs.db", chain()
    store = SqliteStore(path)
    try:
        flow.execute("a", {"n": 0}, job_id="a", store=store)
        db = store._connection()
        monkeypatch.setattr(store, "_connection", lambda: InterruptedAfterBegin(db))

        with pytest.raises(KeyboardInterrupt):
            store.delete("a")

        monkeypatch.undo()
        assert not db.in_transaction
        assert_usable(store, path, flow)
    finally:
        store.close()


def test_a_transaction_left_open_on_the_connection_is_rolled_back_first(
    tmp_path: Path,
) -> None:
    path, flow = tmp_path / "jobs.db", chain()
    store = SqliteStore(path)
    try:
        flow.execute("a", {"n": 0}, job_id="a", store=store)
        store._connection().execute("BEGIN IMMEDIATE")  # as an interrupt leaves it

        assert_usable(store, path, flow)
    finally:
        store.close()


def test_an_interrupt_right_after_a_groups_begin_leaves_the_store_usable(
    tmp_path: Path,
) -> None:
    path, flow = tmp_path / "jobs.db", chain()
    store = SqliteStore(path, commit_every=4)
    try:
        flow.execute("a", {"n": 0}, job_id="a", store=store)
        db, group = store._connection(), store._group
        assert group is not None
        with group.lock:
            group.add(cast(sqlite3.Connection, InterruptedAfterBegin(db)), ROW, "a")
            with pytest.raises(KeyboardInterrupt):
                group.commit()

        assert not db.in_transaction and group.db is None  # rolled back
        assert "a" in group.lost  # its kept row is gone: it stops
        assert_usable(store, path, flow)
    finally:
        store.close()
