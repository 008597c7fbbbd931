"""The rows a checkpoint builds after each delivery, against the general ones.

A checkpoint builds a routine's row, its pending deliveries and its slot buffer
with its own code (``flowforge.store._rows``), cheaper than the general
``record`` functions: these tests hold the two to the same data and the same
errors, and check the SQLite store's one-statement write and its argument checks.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from test_store import paused_job

from flowforge import ArgumentTypeError, JobState, JobStatus, StoreError
from flowforge.exceptions import SerializationError
from flowforge.record import (
    Delivery,
    RoutineStatus,
    delivery_to_data,
    routine_state_to_data,
)
from flowforge.store import SqliteStore
from flowforge.store._change_log import change_document
from flowforge.store._rows import buffer_data, pending_data, routine_data
from flowforge.store.base import Change

NO_CHANGE = Change(0, None, None, 0, 0)


class Unsaveable:
    """A value no store can save."""


def test_routine_rows_are_the_general_rows_plus_tracker_figures() -> None:
    job = paused_job()
    assert any(s.stats for s in job.routine_states.values())
    assert any(s.error_counts for s in job.routine_states.values())

    rows = {rid: routine_data(job, rid) for rid in job.routine_states}

    for rid, state in job.routine_states.items():
        expected = routine_state_to_data(state)
        expected["tracker"] = job.tracker._routine_figures(rid)
        assert list(rows[rid].items()) == list(expected.items())
        assert type(rows[rid]["status"]) is str


def test_pending_rows_are_the_general_rows() -> None:
    job = paused_job()
    deliveries = [*job.pending, Delivery(7, "sink", "input", {}, 0, 0)]

    rows = [pending_data(d) for d in deliveries]

    assert job.pending
    assert rows == [delivery_to_data(d) for d in deliveries]


def test_a_routine_row_with_unsaveable_stats_names_them_as_before() -> None:
    job = paused_job()
    rid = next(iter(job.routine_states))
    job.routine_states[rid].stats = {"bad": Unsaveable()}
    with pytest.raises(SerializationError) as general:
        routine_state_to_data(job.routine_states[rid])

    with pytest.raises(
        SerializationError, match=r"routine_states\[.*\]\.stats"
    ) as ours:
        routine_data(job, rid)

    assert str(ours.value) == str(general.value)


def test_a_pending_row_with_unsaveable_data_names_it_as_before() -> None:
    delivery = Delivery(41, "sink", "input", {"x": [Unsaveable()]}, 0, 0)
    with pytest.raises(SerializationError) as general:
        delivery_to_data(delivery)

    with pytest.raises(SerializationError, match=r"pending\[41\]\.data") as ours:
        pending_data(delivery)

    assert str(ours.value) == str(general.value)


def test_an_unsaveable_slot_buffer_is_named_by_its_key() -> None:
    job = paused_job()
    job.slot_buffers[("gate", "input")] = {"x": Unsaveable()}

    with pytest.raises(
        SerializationError, match=r"slot_buffers\[\('gate', 'input'\)\]\['x'\]"
    ):
        buffer_data(job, ("gate", "input"))


def test_an_empty_slot_buffer_is_an_empty_row() -> None:
    job = paused_job()
    job.slot_buffers[("gate", "input")] = {}

    assert buffer_data(job, ("gate", "input"))[0] == {}


def leased(tmp_path: Path) -> tuple[SqliteStore, JobState, float]:
    store = SqliteStore(tmp_path / "jobs.db")
    job = paused_job()
    lease = time.time() + 60
    store.save(job, owner="me", lease_until=lease)
    return store, job, lease


def test_a_failed_one_statement_checkpoint_is_a_store_error(tmp_path: Path) -> None:
    store, job, lease = leased(tmp_path)
    job.status = JobStatus.RUNNING  # nothing but the change is due: one statement
    with sqlite3.connect(tmp_path / "jobs.db") as other:
        other.execute("DROP TABLE changes")

    with pytest.raises(StoreError, match="cannot write to SQLite store .*changes"):
        store.checkpoint(job, NO_CHANGE, owner="me", lease_until=lease)

    store.close()


@pytest.mark.parametrize(
    ("owner", "lease_until", "error", "match"),
    [
        (1, 2e9, ArgumentTypeError, "owner must be a str, got int"),
        ("me", True, ArgumentTypeError, "lease_until must be seconds"),
        ("me", "2e9", ArgumentTypeError, "lease_until must be seconds"),
        ("me", float("nan"), StoreError, "lease_until must be a number"),
    ],
    ids=["owner-int", "lease-bool", "lease-str", "lease-nan"],
)
def test_checkpoint_refuses_bad_lease_arguments_before_writing(
    tmp_path: Path, owner: Any, lease_until: Any, error: type, match: str
) -> None:
    store, job, lease = leased(tmp_path)
    before = store.load(job.job_id).serialize()

    with pytest.raises(error, match=match):
        store.checkpoint(job, NO_CHANGE, owner=owner, lease_until=lease_until)

    assert store.load(job.job_id).serialize() == before
    store.close()


def test_checkpoint_takes_an_int_lease_time(tmp_path: Path) -> None:
    store, job, lease = leased(tmp_path)
    job.delivery_count += 1

    store.checkpoint(job, NO_CHANGE, owner="me", lease_until=int(lease))

    assert store.load(job.job_id).delivery_count == job.delivery_count
    store.close()


@pytest.mark.parametrize("status", list(JobStatus), ids=[s.value for s in JobStatus])
def test_a_change_document_names_the_job_status_by_its_value(status: JobStatus) -> None:
    job = paused_job()
    job.status = status

    document = change_document(job, NO_CHANGE)

    assert document.status == status.value
    assert type(document.status) is str


@pytest.mark.parametrize(
    "status", list(RoutineStatus), ids=[s.value for s in RoutineStatus]
)
def test_a_routine_row_names_the_routine_status_by_its_value(
    status: RoutineStatus,
) -> None:
    job = paused_job()
    rid = next(iter(job.routine_states))
    job.routine_states[rid].status = status

    row = routine_data(job, rid)

    assert row["status"] == status.value
    assert type(row["status"]) is str


def test_a_failed_grouped_checkpoint_is_a_store_error_and_loses_the_job(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.db", commit_every=2)
    job = paused_job()
    lease = time.time() + 60
    store.save(job, owner="me", lease_until=lease)
    job.status = JobStatus.RUNNING
    with sqlite3.connect(tmp_path / "jobs.db") as other:
        other.execute("DROP TABLE changes")

    store.checkpoint(job, NO_CHANGE, owner="me", lease_until=lease)  # kept

    with pytest.raises(StoreError, match="cannot write to SQLite store .*changes"):
        store.checkpoint(job, NO_CHANGE, owner="me", lease_until=lease)  # commits

    with pytest.raises(StoreError, match="lost its last grouped checkpoints"):
        store.checkpoint(job, NO_CHANGE, owner="me", lease_until=lease)
    store.close()
