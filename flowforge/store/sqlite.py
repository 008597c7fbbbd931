"""SqliteStore: durable jobs in one SQLite file, safe for several processes.

The file is in WAL mode with a busy timeout; every write is one short
``BEGIN IMMEDIATE`` transaction. A job is a row in ``jobs`` (its header and
counters) plus rows for its pending deliveries, slot buffers, routine states,
errors and history; its flow's shape is a row of ``shapes``, kept once per
flow definition. A checkpoint writes one row of the job's change log (one
JSON document of what the delivery changed, written only while the writer
holds the lease); every ``FOLD_EVERY`` checkpoints the log is folded into the
other rows in the same transaction, and loading replays what is not folded
yet. The log is a ring of ``FOLD_EVERY`` rows per job, rewritten in place, so
that a checkpoint usually writes one page, and its cost does not grow with
the job's length.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Final, TypeVar, final

from flowforge.exceptions import ArgumentTypeError, StoreError
from flowforge.job_state import JobState, JobStatus
from flowforge.store._change_log import log_change
from flowforge.store._checks import (
    check_flow_id,
    check_job_id,
    check_lease,
    check_job_state,
    check_path,
    check_prune,
    seconds,
)
from flowforge.store._rows import job_rows
from flowforge.store._shapes import ShapeIds
from flowforge.store._select import prune_one_by_one, readable_records, to_status
from flowforge.store._sqlite_connect import (
    close_orphans,
    enter_wal,
    inherit,
    is_current,
    reset_after_fork,
)
from flowforge.store._sqlite_group import Group, check_group
from flowforge.store._sqlite_log import (
    ChangeRow,
    LogState,
    append,
    change_row,
    check_owner,
    due,
    noted,
    refused,
    write_change,
)
from flowforge.store._sqlite_rows import (
    RECORD_COLUMNS,
    insert_job,
    load_job,
    read_record,
    to_record,
)
from flowforge.store.base import Change, JobRecord

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

SCHEMA_VERSION: Final = 3
MAX_TIMEOUT: Final = 2_000_000.0
"""The longest busy timeout, in seconds: SQLite keeps it in milliseconds in an int."""
T = TypeVar("T")

_SCHEMA_V1: Final = """
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY, flow_id TEXT NOT NULL, status TEXT NOT NULL,
    owner TEXT, lease_until REAL, updated_at REAL NOT NULL,
    delivery_count INTEGER NOT NULL, next_seq INTEGER NOT NULL,
    history_total INTEGER NOT NULL, header TEXT NOT NULL
);
CREATE INDEX jobs_by_flow ON jobs (flow_id, status);
CREATE TABLE pending (
    job_id TEXT NOT NULL, pos INTEGER NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (job_id, pos)) WITHOUT ROWID;
CREATE TABLE buffers (
    job_id TEXT NOT NULL, routine_id TEXT NOT NULL, slot TEXT NOT NULL,
    buffer TEXT, arrivals TEXT, PRIMARY KEY (job_id, routine_id, slot)) WITHOUT ROWID;
CREATE TABLE routines (
    job_id TEXT NOT NULL, routine_id TEXT NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (job_id, routine_id)) WITHOUT ROWID;
CREATE TABLE errors (
    job_id TEXT NOT NULL, n INTEGER NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (job_id, n)) WITHOUT ROWID;
CREATE TABLE history (
    job_id TEXT NOT NULL, n INTEGER NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (job_id, n)) WITHOUT ROWID;
"""

_SCHEMA_V2: Final = """
ALTER TABLE jobs ADD COLUMN folded INTEGER NOT NULL DEFAULT 0;
CREATE TABLE changes (
    job_id TEXT NOT NULL, slot INTEGER NOT NULL, n INTEGER NOT NULL,
    row TEXT NOT NULL, PRIMARY KEY (job_id, slot)) WITHOUT ROWID;
"""
"""Version 2 adds the change log: change ``n`` of a job lives in slot ``n %
FOLD_EVERY``, and ``jobs.folded`` is the last change folded into the rows.
Version 1 files hold no unfolded changes."""

_SCHEMA_V3: Final = """
CREATE TABLE shapes (shape_id TEXT PRIMARY KEY, shape TEXT NOT NULL);
"""
"""Version 3 keeps each flow shape once, named by id in the headers of its
jobs; version 2 headers hold their shape, and load as they are."""

_MIGRATIONS: Final[dict[int, str]] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3}
"""Schema version -> the SQL that upgrades the previous version to it."""

_ROW_TABLES: Final = ("pending", "buffers", "routines", "errors", "history", "changes")


@final
class SqliteStore:
    """Keep job states in a SQLite file; the default store for durable jobs.

    Args:
        path: The database file; created with its schema on first use.
        timeout: Seconds to wait for another process's write lock, from 0
            to 2,000,000.
        synchronous: SQLite's ``synchronous`` setting. ``"NORMAL"`` (the
            default) survives any crash of the process; ``"FULL"`` also
            survives a power loss, at the cost of a disk flush per commit.
        commit_every: Checkpoints per transaction, from 1 (the default: each
            delivery is committed before the next one runs) to 1,000,000.
            With N above 1 (group commit), a crash loses up to the last N
            deliveries' checkpoints, so up to N handler bodies run again on
            recovery, and other processes see a job's progress up to N - 1
            deliveries late. The store always holds a prefix of the job's
            checkpoints, so completions and emissions still happen exactly
            once. Checkpoints wait in memory for one short transaction (one
            that folds, renews the lease or sets the status commits at once);
            a lease lost to another process is found there, and the job stops
            at its next checkpoint. A run's end, pause, failure or interrupt
            commits all.
        commit_interval: With group commit, the longest a checkpoint waits
            for its commit, in seconds (more than 0, at most 3,600), even
            while a slow handler runs (a thread of the store's commits), as
            long as the process runs Python (a stopped process, or a handler
            holding the GIL in one C call, commits late; it holds no lock).

    Thread safety: safe to share between threads (each gets its own
    connection) and between processes on one machine. A copy made by
    ``fork()`` opens connections of its own, and leaves the checkpoints
    kept for a group commit to the parent.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 30.0,
        synchronous: str = "NORMAL",
        commit_every: int = 1,
        commit_interval: float = 0.05,
    ) -> None:
        """Open (and if needed create or upgrade) the database at ``path``."""
        if not isinstance(synchronous, str):
            raise ArgumentTypeError(
                f"synchronous must be a str, got {type(synchronous).__name__}"
            )
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"unknown synchronous setting {synchronous!r}")
        self.path = check_path(path, "path")
        self._timeout = seconds(timeout, "timeout", MAX_TIMEOUT)
        self._synchronous = synchronous.upper()
        self._local = threading.local()
        self._connections: dict[sqlite3.Connection, threading.Thread] = {}
        self._lock = threading.Lock()
        self._logs: dict[str, LogState] = {}
        self._shape_ids = ShapeIds()
        every, interval = check_group(commit_every, commit_interval)
        self._group: Group | None = None
        if every > 1:
            self._group = Group(every, interval, self._guard, self._forget)
        reset_after_fork(self, SqliteStore._leave_parent)
        if not self._read(lambda db: is_current(db, SCHEMA_VERSION)):
            self._write(self._migrate)

    # -- the Store protocol ---------------------------------------------------------

    def create(self, job_state: JobState, *, owner: str, lease_until: float) -> bool:
        """Save a new job leased to ``owner``; return False if the id exists."""
        check_lease(owner, lease_until)
        rows = job_rows(check_job_state(job_state), self._shape_ids)

        def create(db: sqlite3.Connection) -> bool:
            found = db.execute(
                "SELECT 1 FROM jobs WHERE job_id = ?", (job_state.job_id,)
            )
            if found.fetchone() is not None:
                return False
            insert_job(db, job_state, rows, owner, lease_until)
            return True

        created = self._write(create)
        if created:
            self._shape_ids.add(rows.shape)
            if self._group is not None:  # a new log: an old job's loss is moot
                self._group.lost.pop(job_state.job_id, None)
            self._logs[job_state.job_id] = LogState(True, None, 0, 0, _now())
        return created

    def save(
        self,
        job_state: JobState,
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> None:
        """Save the whole job state; with ``owner``, only while it holds the lease."""
        check_lease(owner, lease_until, unleased_ok=True)
        rows = job_rows(check_job_state(job_state), self._shape_ids)
        job_id = job_state.job_id

        def save(db: sqlite3.Connection) -> None:
            if owner is not None:
                check_owner(db, job_id, owner, required=False)
            for table in ("jobs",) + _ROW_TABLES:
                db.execute(
                    f"DELETE FROM {table} WHERE job_id = ?", (job_id,)
                )  # noqa: S608
            insert_job(db, job_state, rows, owner, lease_until)

        self._logs.pop(job_id, None)
        self._write(save)
        self._shape_ids.add(rows.shape)
        if self._group is not None:  # rewritten whole: its log is sound again
            self._group.lost.pop(job_id, None)
        if owner is not None and lease_until is not None:
            self._logs[job_id] = LogState(True, None, 0, 0, _now())

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        """Append what one delivery changed to the job's log, while ``owner`` leases it.

        Every 64 changes the log is folded into the job's rows in the same
        transaction. The lease is renewed then, and once a third of it has
        passed since the last renewal (the journal's heartbeat renews it too).
        A change with nothing else due is one statement, committed on its
        own; with group commit, it waits in memory for the group's commit.
        """
        # The usual types pass check_lease and check_job_state: check the others.
        if not (
            type(owner) is str
            and type(lease_until) is float
            and type(change) is Change
            and lease_until == lease_until  # not NaN
            and type(job_state) is JobState
        ):
            check_lease(owner, lease_until, change=change)
            check_job_state(job_state)
        document, text = log_change(job_state, change)
        job_id = job_state.job_id
        # Taken out while writing: after a failed write, read the log back.
        log = self._logs.pop(job_id, None)
        if log is not None:
            work = due(log, document.document.status, lease_until, time.time())
            if work.alone and self._group is not None:  # kept for the group's commit
                row = change_row(job_id, work.n, text)
                self._keep(row, owner, noted(log, work.n, document))
                return
            # One statement, committed alone, when that is all there is to write.
            if work.alone and self._write_alone(job_id, work.n, text, owner):
                self._logs[job_id] = noted(log, work.n, document)
                return

        def write(db: sqlite3.Connection) -> LogState | None:
            return append(db, job_id, log, document, text, owner, lease_until)

        if self._group is not None:
            state = self._grouped(job_id, write)
        else:
            state = self._write(write)
        if state is None:  # no row written: the lease is someone else's
            raise self._read(lambda db: refused(db, job_id, owner))
        self._logs[job_id] = state

    def acquire(
        self,
        job_id: str,
        *,
        owner: str,
        lease_until: float,
        now: float,
        replacing: str | None = None,
    ) -> bool:
        """Lease a job to ``owner``: see :meth:`flowforge.store.Store.acquire`."""
        check_lease(owner, lease_until, now, replacing=replacing)
        check_job_id(job_id)

        def acquire(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE jobs SET owner = ?, lease_until = ? WHERE job_id = ? AND "
                "(owner IS NULL OR lease_until IS NULL OR owner = ? OR owner = ? "
                "OR lease_until < ?)",
                (owner, lease_until, job_id, owner, replacing, now),
            )
            if cursor.rowcount == 0:
                read_record(db, job_id)
                return False
            return True

        return self._write(acquire)

    def renew(self, job_id: str, *, owner: str, lease_until: float) -> bool:
        """Extend ``owner``'s lease: see :meth:`flowforge.store.Store.renew`."""
        check_lease(owner, lease_until)
        # Never a takeover: the change logs this store caches rely on only the
        # owner writing a job, from the full save that starts each run.
        check_job_id(job_id)
        return self._write(
            lambda db: db.execute(
                "UPDATE jobs SET lease_until = ? WHERE job_id = ? AND owner = ?",
                (lease_until, job_id, owner),
            ).rowcount
            == 1
        )

    def load(self, job_id: str) -> JobState:
        """Return the saved job state."""
        check_job_id(job_id)
        return self._read(lambda db: load_job(db, job_id))

    def get(self, job_id: str) -> JobRecord:
        """Return what the store knows about a job without loading it."""
        check_job_id(job_id)
        return self._read(lambda db: read_record(db, job_id))

    def list_jobs(
        self, *, flow_id: str | None = None, status: JobStatus | str | None = None
    ) -> list[JobRecord]:
        """Return the saved jobs, oldest update first, optionally filtered.

        A job whose row cannot be read (a damaged or foreign database) is left
        out with a :class:`~flowforge.FlowForgeWarning` naming it; :meth:`get`
        of it raises :class:`~flowforge.StoreError`.
        """
        wanted = to_status(status)
        check_flow_id(flow_id)
        query = f"SELECT {RECORD_COLUMNS} FROM jobs WHERE 1 = 1"  # noqa: S608
        arguments: list[object] = []
        if flow_id is not None:
            query += " AND flow_id = ?"
            arguments.append(flow_id)
        if wanted is not None:
            query += " AND status = ?"
            arguments.append(wanted.value)
        query += " ORDER BY updated_at, job_id"
        rows = self._read(lambda db: db.execute(query, arguments).fetchall())
        return readable_records(rows, to_record)

    def delete(self, job_id: str) -> None:
        """Remove a job."""
        self._logs.pop(check_job_id(job_id), None)
        if self._group is not None:
            self._group.lost.pop(job_id, None)

        def delete(db: sqlite3.Connection) -> None:
            read_record(db, job_id)
            for table in ("jobs",) + _ROW_TABLES:
                db.execute(
                    f"DELETE FROM {table} WHERE job_id = ?", (job_id,)
                )  # noqa: S608

        self._write(delete)

    def prune(
        self, *, older_than: timedelta | None = None, keep: int | None = None
    ) -> list[str]:
        """Delete finished jobs by age and count; return the deleted ids."""
        check_prune(older_than, keep)
        return prune_one_by_one(self, older_than=older_than, keep=keep)

    def close(self) -> None:
        """Commit what is grouped; close every connection this store opened."""
        try:
            if self._group is not None:
                self._group.close()
        finally:
            self._close_connections()

    def _close_connections(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def _leave_parent(self) -> None:
        """In a child made by ``fork()``, leave the parent's connections and group."""
        inherit(list(self._connections))
        self._connections, self._logs = {}, {}
        self._local, self._lock = threading.local(), threading.Lock()
        if self._group is not None:
            group = self._group
            self._group = Group(group.every, group.interval, self._guard, self._forget)

    def __repr__(self) -> str:
        """Return the database path."""
        return f"SqliteStore({str(self.path)!r})"

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle as the absolute path and settings: a copy opens the same file.

        A copy sent to another process on this machine (a Dask worker, a
        process pool) opens connections of its own; close it there when done.
        """
        group = self._group
        settings = (1, 0.05) if group is None else (group.every, group.interval)
        path = str(self.path.absolute())
        return (_reopen, (path, self._timeout, self._synchronous, *settings))

    # -- connections and transactions -------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._guard("open", lambda: self._open())
            self._local.connection = connection
        return connection

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self._timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            enter_wal(connection, self._timeout)
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
            connection.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        except BaseException:
            connection.close()
            raise
        group = None if self._group is None else self._group.db
        with self._lock:
            close_orphans(self._connections, group)
            self._connections[connection] = threading.current_thread()
        return connection

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._guard(
            "write to", lambda: self._transaction("BEGIN IMMEDIATE", work)
        )

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._guard("read", lambda: self._transaction("BEGIN", work))

    def _write_alone(self, job_id: str, n: int, text: str, owner: str) -> bool:
        """Write change ``n`` in one autocommitted statement; say if it was written."""
        connection = getattr(self._local, "connection", None) or self._connection()
        try:  # as _guard does, without a function call for the hot path
            return write_change(connection, job_id, n, text, owner)
        except (sqlite3.Error, UnicodeEncodeError) as error:
            raise self._failed("write to", error) from error

    def _keep(self, row: ChangeRow, owner: str, state: LogState) -> None:
        """Keep a checkpoint's one row for the group's commit; commit it if due."""
        group = self._group
        assert group is not None  # noqa: S101  the caller checked
        with group.lock:
            job_id = row[0]
            group.check(job_id)
            db = getattr(self._local, "connection", None) or self._connection()
            group.add(db, row, owner)
            group.check(job_id)  # refused at the commit just made
            self._logs[job_id] = state

    def _grouped(
        self, job_id: str, write: Callable[[sqlite3.Connection], LogState | None]
    ) -> LogState | None:
        """Write a checkpoint after the rows kept, in one transaction, committed.

        ``None`` (not the lease owner) wrote nothing: the other jobs' rows
        are committed all the same.
        """
        group = self._group
        assert group is not None  # noqa: S101  the caller checked
        with group.lock:
            group.check(job_id)
            db = getattr(self._local, "connection", None) or self._connection()
            state = group.write(db, job_id, write)
            group.check(job_id)  # its rows kept were refused at this commit
            return state

    def _forget(self, job_ids: set[str]) -> None:
        """Drop what this store knows of the jobs' logs: it reads them back."""
        for job_id in job_ids:
            self._logs.pop(job_id, None)

    def _transaction(self, begin: str, work: Callable[[sqlite3.Connection], T]) -> T:
        group = self._group
        if group is None:
            return self._run(begin, work)
        with group.lock:  # what is grouped is committed first, in order
            group.commit()
            return self._run(begin, work)

    def _run(self, begin: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one transaction on this thread's connection.

        Whatever interrupts it (an error, a ``KeyboardInterrupt`` landing
        anywhere, even right after ``BEGIN``) rolls the transaction back, so
        the connection never keeps one open, holding SQLite's write lock. One
        left open all the same is rolled back first: none of it was committed.
        """
        db = self._connection()
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.execute(begin)
            result = work(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return result

    def _guard(self, action: str, work: Callable[[], T]) -> T:
        try:
            return work()
        except (sqlite3.Error, UnicodeEncodeError) as error:  # text UTF-8 refuses
            raise self._failed(action, error) from error

    def _failed(self, action: str, error: Exception) -> StoreError:
        return StoreError(f"cannot {action} SQLite store {str(self.path)!r}: {error}")

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = db.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
        text = "0" if row is None else str(row[0])
        if not text.isdigit():
            raise StoreError(
                f"SQLite store {str(self.path)!r} has a garbled schema version "
                f"{text!r}; it is corrupted or not a FlowForge store"
            )
        version = int(text)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite store {str(self.path)!r} has schema version {version}, newer "
                f"than this FlowForge's {SCHEMA_VERSION}; upgrade FlowForge"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step].split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )


def _reopen(
    path: str, timeout: float, synchronous: str, every: int, interval: float
) -> SqliteStore:
    return SqliteStore(
        path,
        timeout=timeout,
        synchronous=synchronous,
        commit_every=every,
        commit_interval=interval,
    )


def _now() -> float:
    return time.time()
