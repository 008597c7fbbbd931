"""SqliteStore's whole-job rows: write a job state into them, and read it back.

A job is a row in ``jobs`` (its header and counters) plus rows for its
pending deliveries, slot buffers, routine states, errors and history; loading
replays the change log entries not folded into them yet.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any, Final

from flowforge.exceptions import JobNotFoundError, SerializationError
from flowforge.store._change_log import apply, fold
from flowforge.store._rows import JobRows, assemble
from flowforge.store._sqlite_log import read_changes

if TYPE_CHECKING:
    from flowforge.job_state import JobState

__all__ = ["insert_job", "load_job"]


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
    return assemble(
        rows.header,
        rows.counters,
        rows.pending,
        [(rid, slot, b, a) for (rid, slot), (b, a) in rows.buffers.items()],
        rows.routines.values(),
        rows.errors,
        [history[n] for n in sorted(history)],
    )


_PENDING: Final = "SELECT row FROM pending WHERE job_id = ? ORDER BY pos"
_BUFFERS: Final = (
    "SELECT routine_id, slot, buffer, arrivals FROM buffers WHERE job_id = ?"
)
