"""SqliteStore's change log: one row per checkpoint, folded into the job's rows.

A job's log is a ring of ``FOLD_EVERY`` rows in the ``changes`` table: change
``n`` lives in slot ``n % FOLD_EVERY``, and ``jobs.folded`` is the number of the
last change folded into the job's other rows. A checkpoint writes its change in
one statement that also checks the lease; every ``FOLD_EVERY`` changes the log's
net effect is written into the rows in the same transaction.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Final, NamedTuple

from flowforge.store._change_log import (
    FOLD_EVERY,
    Logged,
    Net,
    checked,
    fold,
    fold_one,
    logged,
    parse_document,
)
from flowforge.exceptions import StoreError
from flowforge.store._json import dumps

__all__ = [
    "ChangeRow",
    "Due",
    "LogState",
    "append",
    "change_row",
    "check_owner",
    "due",
    "noted",
    "read_changes",
    "refusal",
    "refused",
    "write_change",
    "write_changes",
]


@dataclass(slots=True)
class LogState:
    """What a store knows of one job's change log, which it is writing.

    ``known`` says whether this store knows the changes logged since the
    last fold (if not, it reads them back to fold); ``net`` is their net
    effect (``None``: none yet), folded as each is logged, so that the
    documents themselves are not kept (their many small objects made the
    garbage collector run about four times as often); ``last`` and
    ``folded`` are the numbers of the last change and of the last one folded,
    and ``renewed_at`` when this store last renewed the job's lease, in
    seconds since the epoch.

    Only the lease owner writes a job's log, and every run begins with a full
    save, which empties it; so the store that runs a job knows its log, and
    after a failed write it reads it back.
    """

    known: bool
    net: Net | None
    last: int
    folded: int
    renewed_at: float


class Due(NamedTuple):
    """What a checkpoint writes besides its change (the store's rules, in one place).

    ``n`` numbers the change; ``status`` says the job's status row changes,
    ``fold`` that the log is full and folds, ``renew`` that the lease renews.
    """

    n: int
    status: bool
    fold: bool
    renew: bool

    @property
    def alone(self) -> bool:
        """Whether the change's one row is all there is to write."""
        return not (self.status or self.fold or self.renew)


def due(log: LogState, status: str, lease_until: float, now: float) -> Due:
    """Return what checkpointing one change of a job in ``status`` writes."""
    n = log.last + 1
    fold = n - log.folded >= FOLD_EVERY
    renewed_at = now if fold else log.renewed_at  # a fold renews the lease
    # Renew once a third of the lease has passed since the last renewal.
    renew = now - renewed_at >= (lease_until - now) / 3
    return Due(n, status != "running", fold, renew)


def write_change(
    db: sqlite3.Connection, job_id: str, n: int, text: str, owner: str
) -> bool:
    """Write change ``n`` in one statement if ``owner`` holds the lease; say if so."""
    cursor = db.execute(_APPEND, (job_id, n % FOLD_EVERY, n, text, job_id, owner))
    return cursor.rowcount == 1


ChangeRow = tuple[str, int, int, str]
"""Change ``n`` of a job as :func:`write_changes` writes it."""


def change_row(job_id: str, n: int, text: str) -> ChangeRow:
    """Return change ``n``'s row, to write later with :func:`write_changes`."""
    return (job_id, n % FOLD_EVERY, n, text)


def write_changes(
    db: sqlite3.Connection, rows: list[ChangeRow], owners: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """Write the rows of the jobs whose lease their writer holds, in order.

    The lease is checked once per job and writer (``owners``), not per row:
    the transaction holds SQLite's write lock, so it cannot change meanwhile.

    Returns:
        Why each job whose rows were not written was refused, by job id.
    """
    refused: dict[str, str] = {}
    for job_id, owner in owners:
        try:
            check_owner(db, job_id, owner, required=True)
        except StoreError as error:
            refused[job_id] = str(error)
    if refused:
        rows = [row for row in rows if row[0] not in refused]
    db.executemany(_WRITE, rows)
    return refused


def refusal(job_id: str, holder: object, owner: str) -> str:
    """Return why a write by ``owner`` to a job leased to ``holder`` is refused."""
    return (
        f"job {job_id!r} is leased to {holder!r}, not {owner!r}: another "
        "process took it over, so this one must stop running it"
    )


def refused(db: sqlite3.Connection, job_id: str, owner: str) -> StoreError:
    """Return why ``owner``'s change of the job was refused, or raise it."""
    check_owner(db, job_id, owner, required=True)
    return StoreError(f"job {job_id!r} refused a change from {owner!r}")


def check_owner(
    db: sqlite3.Connection, job_id: str, owner: str, *, required: bool
) -> None:
    """Raise unless ``owner`` holds the lease (or, when not ``required``, nobody does).

    Raises:
        StoreError: If another owner holds the lease, or the job is gone.
    """
    row = db.execute("SELECT owner FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    if not required and (row is None or row[0] is None):
        return  # a new or unleased job: saving it takes the lease
    if row is None or row[0] != owner:
        raise StoreError(refusal(job_id, None if row is None else row[0], owner))


def noted(log: LogState, n: int, document: Logged) -> LogState:
    """Record in ``log`` that change ``n`` was written; return ``log``."""
    log.last = n
    if log.known:
        try:
            log.net = fold_one(log.net, document)
        except (TypeError, ValueError):  # not the change after the last: read back
            log.known, log.net = False, None
    return log


def append(
    db: sqlite3.Connection,
    job_id: str,
    log: LogState | None,
    document: Logged,
    text: str,
    owner: str,
    lease_until: float,
) -> LogState | None:
    """Log a change and what is due with it; ``None`` if ``owner`` lacks the lease.

    Call inside a transaction.
    """
    now = time.time()
    if log is None:
        log = _read_state(db, job_id)
    status = document.document.status
    work = due(log, status, lease_until, now)
    if not write_change(db, job_id, work.n, text, owner):
        return None  # not the lease owner: nothing written
    noted(log, work.n, document)
    if work.status:  # "running" is as begin() saved it: leave its index alone
        db.execute(
            "UPDATE jobs SET status = ?, updated_at = ? WHERE job_id = ?",
            (status, now, job_id),
        )
    if work.fold:
        where = f"change log of job {job_id!r}"
        net = log.net if log.known else None
        if net is None:
            net = fold(read_changes(db, job_id, log.folded), where)
        _fold(db, checked(net, where), job_id, work.n, now, lease_until)
        log.known, log.net, log.folded, log.renewed_at = True, None, work.n, now
    if work.renew:
        db.execute(
            "UPDATE jobs SET lease_until = ?, updated_at = ? WHERE job_id = ?",
            (lease_until, now, job_id),
        )
        log.renewed_at = now
    return log


_APPEND: Final = (
    "INSERT INTO changes (job_id, slot, n, row) SELECT ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM jobs WHERE job_id = ? AND owner = ?) "
    "ON CONFLICT (job_id, slot) DO UPDATE SET n = excluded.n, row = excluded.row"
)
_WRITE: Final = (
    "INSERT INTO changes (job_id, slot, n, row) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (job_id, slot) DO UPDATE SET n = excluded.n, row = excluded.row"
)
"""Both rewrite a ring slot's row where it lies: ``INSERT OR REPLACE`` deletes it
first, which makes SQLite rebalance the table's pages (three or four pages
written instead of one, in one commit of about seven)."""


def _read_state(db: sqlite3.Connection, job_id: str) -> LogState:
    folded = _folded(db, job_id)
    row = db.execute(
        "SELECT MAX(n) FROM changes WHERE job_id = ? AND n > ?", (job_id, folded)
    ).fetchone()
    last = folded if row[0] is None else int(row[0])
    return LogState(False, None, last, folded, 0.0)


def _folded(db: sqlite3.Connection, job_id: str) -> int:
    row = db.execute("SELECT folded FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return 0 if row is None else int(row[0])


def read_changes(db: sqlite3.Connection, job_id: str, folded: int) -> list[Logged]:
    """Return the job's changes after change ``folded``, oldest first.

    Raises:
        SerializationError: If a change is not a change document.
    """
    return [
        logged(parse_document(text, f"change {n} of job {job_id!r}"))
        for n, text in db.execute(
            "SELECT n, row FROM changes WHERE job_id = ? AND n > ? ORDER BY n",
            (job_id, folded),
        )
    ]


def _fold(
    db: sqlite3.Connection,
    net: Net,
    job_id: str,
    last: int,
    now: float,
    lease_until: float,
) -> None:
    """Write ``net``, the net effect of the logged changes, into the job's rows.

    Only what the log changed is written, a statement per kind of row at
    most (a statement costs a few microseconds even with nothing to write).
    """
    counters = (net.last.delivery_count, net.last.next_seq, net.last.history_total)
    db.execute(
        "UPDATE jobs SET delivery_count = ?, next_seq = ?, history_total = ?, "
        "folded = ?, lease_until = ?, updated_at = ? WHERE job_id = ?",
        (*counters, last, lease_until, now, job_id),
    )
    db.execute(
        "DELETE FROM pending WHERE job_id = ? AND pos >= ?", (job_id, net.pending_from)
    )
    if net.pending:
        start = net.pending_from
        db.executemany(
            "INSERT INTO pending VALUES (?, ?, ?)",
            [(job_id, start + i, dumps(row)) for i, row in enumerate(net.pending)],
        )
    if net.routines:
        db.executemany(
            "INSERT INTO routines VALUES (?, ?, ?) ON CONFLICT (job_id, routine_id) "
            "DO UPDATE SET row = excluded.row",
            [(job_id, *row) for row in net.routine_rows()],
        )
    if net.buffers:
        _write_buffers(db, job_id, net.buffer_rows())
    if net.errors:
        db.executemany(
            "INSERT OR REPLACE INTO errors VALUES (?, ?, ?)",
            [(job_id, *row) for row in net.error_rows()],
        )
    _write_history(db, job_id, net)


def _write_buffers(
    db: sqlite3.Connection,
    job_id: str,
    rows: list[tuple[tuple[str, str], str | None, str | None]],
) -> None:
    """Write the slot buffers changed, deleting the ones gone."""
    gone: list[tuple[str, str, str]] = []
    kept: list[tuple[str, str, str, str | None, str | None]] = []
    for (routine_id, slot), buffer, arrivals in rows:
        if buffer is None and arrivals is None:
            gone.append((job_id, routine_id, slot))
        else:
            kept.append((job_id, routine_id, slot, buffer, arrivals))
    if gone:
        db.executemany(
            "DELETE FROM buffers WHERE job_id = ? AND routine_id = ? AND slot = ?",
            gone,
        )
    if kept:
        db.executemany(
            "INSERT INTO buffers VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, "
            "routine_id, slot) DO UPDATE SET buffer = excluded.buffer, "
            "arrivals = excluded.arrivals",
            kept,
        )


def _write_history(db: sqlite3.Connection, job_id: str, net: Net) -> None:
    """Write the new history records as one row; drop the rows the job no longer keeps.

    A row is dropped once its last record is older than the job keeps, so
    there is nothing to drop while the job has fewer records than its limit.
    """
    for n, batch in net.history_rows():
        db.execute(
            "INSERT OR REPLACE INTO history VALUES (?, ?, ?)", (job_id, n, batch)
        )
    if net.history_floor > 0:
        db.execute(
            "DELETE FROM history WHERE job_id = ? AND n < ?",
            (job_id, net.history_floor),
        )
