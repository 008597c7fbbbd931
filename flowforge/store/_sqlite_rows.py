"""SqliteStore's whole-job rows: write a job state into them, and read it back.

A job is a row in ``jobs`` (its header and counters) plus rows for its
pending deliveries, slot buffers, routine states, errors and history; loading
replays the change log entries not folded into them yet. A ``jobs`` row alone
reads as a :class:`~flowforge.store.JobRecord`. The job's flow shape is a row
of ``shapes``, shared by every job of that flow definition (version 2 files
hold it in the job's header, and still load).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from flowforge.exceptions import JobNotFoundError, SerializationError, StoreError
from flowforge.job_state import JobStatus
from flowforge.store._change_log import apply, fold
from flowforge.store._rows import JobRows, assemble_rows
from flowforge.store._shapes import StoredShape
from flowforge.store._sqlite_log import read_changes
from flowforge.store.base import JobRecord

if TYPE_CHECKING:
    from flowforge.job_state import JobState

__all__ = ["RECORD_COLUMNS", "insert_job", "load_job", "read_record", "to_record"]


def insert_job(
    db: sqlite3.Connection,
    job: JobState,
    rows: JobRows,
    owner: str | None,
    lease_until: float | None,
) -> None:
    """Insert a whole job's rows (none of it may be stored yet)."""
    counters = rows.counters
    if lease_until is None:
        owner = None
    db.execute(
        "INSERT INTO jobs (job_id, flow_id, status, owner, lease_until, updated_at, "
        "delivery_count, next_seq, history_total, header) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job.job_id,
            job.flow_id,
            counters["status"],
            owner,
            lease_until,
            time.time(),
            counters["delivery_count"],
            counters["next_seq"],
            counters["history_total"],
            rows.header,
        ),
    )
    job_id = job.job_id
    insert_shape(db, rows.shape)
    db.executemany(
        "INSERT INTO pending VALUES (?, ?, ?)",
        [(job_id, pos, row) for pos, row in enumerate(rows.pending)],
    )
    db.executemany(
        "INSERT INTO buffers VALUES (?, ?, ?, ?, ?)",
        [(job_id, rid, slot, b, a) for (rid, slot), (b, a) in rows.buffers.items()],
    )
    db.executemany(
        "INSERT INTO routines VALUES (?, ?, ?)",
        [(job_id, rid, row) for rid, row in rows.routines.items()],
    )
    db.executemany(
        "INSERT INTO errors VALUES (?, ?, ?)",
        [(job_id, n, row) for n, row in enumerate(rows.errors)],
    )
    db.executemany(
        "INSERT INTO history VALUES (?, ?, ?)",
        [(job_id, n, row) for n, row in rows.history],
    )


def insert_shape(db: sqlite3.Connection, shape: StoredShape | None) -> None:
    """Store a flow shape's text if it is due, over what its id held."""
    if shape is None or shape.text is None:
        return
    db.execute(
        "INSERT INTO shapes VALUES (?, ?) ON CONFLICT (shape_id) DO UPDATE "
        "SET shape = excluded.shape WHERE shape IS NOT excluded.shape",
        (shape.shape_id, shape.text),
    )


def _shape_text(db: sqlite3.Connection, shape_id: str) -> str | None:
    row = db.execute(
        "SELECT shape FROM shapes WHERE shape_id = ?", (shape_id,)
    ).fetchone()
    return None if row is None else row[0]


def load_job(db: sqlite3.Connection, job_id: str) -> JobState:
    """Read a whole job back, with its unfolded changes applied.

    Raises:
        JobNotFoundError: If the job is not stored.
        SerializationError: If its rows are corrupted.
    """
    row = db.execute(
        "SELECT header, status, delivery_count, next_seq, history_total, folded "
        "FROM jobs WHERE job_id = ?",
        (job_id,),
    ).fetchone()
    if row is None:
        raise JobNotFoundError(job_id=job_id)
    header, status, delivery_count, next_seq, history_total, folded = row
    counters: dict[str, object] = {
        "status": status,
        "delivery_count": delivery_count,
        "next_seq": next_seq,
        "history_total": history_total,
    }

    # Any: sqlite3 types its rows so; the schema says what each column holds.
    def select(query: str) -> list[Any]:
        return db.execute(query, (job_id,)).fetchall()

    rows = JobRows(
        header=header,
        counters=counters,
        pending=[r[0] for r in select(_PENDING)],
        buffers={(r, s): (b, a) for r, s, b, a in select(_BUFFERS)},
        routines=dict(select("SELECT routine_id, row FROM routines WHERE job_id = ?")),
        errors=[
            r[0] for r in select("SELECT row FROM errors WHERE job_id = ? ORDER BY n")
        ],
        history=[],
    )
    history: dict[int, str] = dict(
        select("SELECT n, row FROM history WHERE job_id = ?")
    )
    if not all(isinstance(n, int) for n in history):
        raise SerializationError(
            f"stored job {job_id!r} is corrupted: a history row number is not an "
            f"integer ({sorted(map(repr, history))})"
        )
    documents = read_changes(db, job_id, folded)
    if documents:
        apply(fold(documents, f"change log of job {job_id!r}"), rows, history)
        rows.counters["status"] = status  # the jobs row keeps it current
    return assemble_rows(rows, history, lambda shape_id: _shape_text(db, shape_id))


_PENDING: Final = "SELECT row FROM pending WHERE job_id = ? ORDER BY pos"
_BUFFERS: Final = (
    "SELECT routine_id, slot, buffer, arrivals FROM buffers WHERE job_id = ?"
)


_STATUSES: Final = frozenset(s.value for s in JobStatus)
RECORD_COLUMNS: Final = "job_id, flow_id, status, owner, lease_until, updated_at"


def to_record(row: tuple[object, ...]) -> JobRecord:
    """Read a ``jobs`` row, whose columns may hold anything in a damaged file.

    Raises:
        StoreError: If a column holds what FlowForge never writes there.
    """
    job_id, flow_id, status, owner, lease_until, updated_at = row
    if not (isinstance(status, str) and status in _STATUSES):
        raise StoreError(
            f"stored job {job_id!r} has an unknown status {status!r}: the database "
            "is corrupted or was written by another program"
        )
    if not (
        isinstance(job_id, str)
        and isinstance(flow_id, str)
        and (owner is None or isinstance(owner, str))
        and (lease_until is None or isinstance(lease_until, float | int))
        and isinstance(updated_at, float | int)
    ):
        raise _bad_metadata(row)
    try:
        when = datetime.fromtimestamp(updated_at, UTC)
    except (OverflowError, ValueError, OSError) as error:
        raise _bad_metadata(row) from error
    until = None if lease_until is None else float(lease_until)
    return JobRecord(job_id, flow_id, JobStatus(status), owner, until, when)


_COLUMN_TYPES: Final = (str, str, str, str | None, float | int | None, float | int)


def _bad_metadata(row: tuple[object, ...]) -> StoreError:
    names = RECORD_COLUMNS.split(", ")
    bad = [
        f"{name} {value!r}"
        for name, value, kinds in zip(names, row, _COLUMN_TYPES, strict=True)
        if not isinstance(value, kinds)
    ] or [
        f"updated_at {row[-1]!r}"
    ]  # a number, but no time
    return StoreError(
        f"stored job {row[0]!r} has bad metadata ({', '.join(bad)}): the database "
        "is corrupted or was written by another program"
    )


def read_record(db: sqlite3.Connection, job_id: str) -> JobRecord:
    """Return the ``jobs`` row of a job as a record.

    Raises:
        JobNotFoundError: If there is no such job.
        StoreError: If the row holds what FlowForge never writes there.
    """
    row = db.execute(
        f"SELECT {RECORD_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)  # noqa: S608
    ).fetchone()
    if row is None:
        raise JobNotFoundError(job_id=job_id)
    return to_record(row)
