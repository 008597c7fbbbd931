"""PostgresStore: durable jobs in PostgreSQL, shared by processes on many machines.

Needs the optional extra ``flowforge[postgres]`` (psycopg 3 and psycopg_pool);
``flowforge.store`` does not import this module, so the core never needs them.
The tables match :class:`~flowforge.store.SqliteStore`'s: a job is a row in
``jobs`` plus rows for its pending deliveries, slot buffers, routine states,
errors and history, so a checkpoint writes only what one delivery changed;
its flow's shape is a row of ``shapes``, one per flow definition.
Every write is one transaction that first locks the job's row in ``jobs`` (and
checks the lease there), so writers of one job take turns; every read is one
statement, so it sees one consistent snapshot.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

try:
    import psycopg
    from psycopg import conninfo
    from psycopg.pq import TransactionStatus
    from psycopg_pool import ConnectionPool
except ImportError as error:  # pragma: no cover - the extra is installed in tests
    raise ImportError(
        "PostgresStore needs psycopg 3 and psycopg_pool: "
        f'pip install "flowforge[postgres]" ({error})'
    ) from error

from flowforge.exceptions import ArgumentTypeError, JobNotFoundError, StoreError
from flowforge.job_state import JobStatus
from flowforge.store._checks import (
    check_flow_id,
    check_job_id,
    check_lease,
    check_job_state,
    check_prune,
)
from flowforge.store._postgres_rows import job_values, read_version, to_record
from flowforge.store._postgres_sql import MIGRATIONS, ROW_TABLES, Statements
from flowforge.store._rows import ChangeRows, JobRows, assemble, change_rows, job_rows
from flowforge.store._shapes import ShapeIds, StoredShape
from flowforge.store._select import (
    ENDED,
    readable_records,
    select_prunable,
    to_status,
)
from flowforge.store.base import Change, JobRecord

if TYPE_CHECKING:
    from flowforge.job_state import JobState

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

SCHEMA_VERSION: Final = 2
T = TypeVar("T")
# psycopg types a connection by its row type; FlowForge reads plain tuples.
_Database = psycopg.Connection[tuple[Any, ...]]

_SCHEMA_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_ENDED: Final = sorted(status.value for status in ENDED)
_SHOWN: Final = ("host", "port", "dbname", "user")
_COUNTERS: Final = ("status", "delivery_count", "next_seq", "history_total")
_IDLE_CONNECTIONS: Final = 4
"""Connections a store keeps open between operations; more are opened as needed."""


@final
class PostgresStore:
    """Keep job states in PostgreSQL, for jobs that run on several machines.

    Nothing is sent to the server until the store is first used; then its
    tables are created, or upgraded, if needed (see :meth:`create_schema`).

    Args:
        database: A libpq connection string or URI (``"host=db dbname=jobs"``,
            ``"postgresql://app@db/jobs"``), or a
            ``psycopg_pool.ConnectionPool`` to borrow connections from.
            The store never closes a pool it was given.
        schema: The PostgreSQL schema holding the store's tables; created if
            missing. Stores with different schemas in one database are
            independent.

    Raises:
        StoreError: If ``database`` is not a valid connection string, or
            ``schema`` is not a plain identifier.

    Thread safety: safe to share between threads (each operation uses a
    connection of its own: one of a few the store keeps open, or one
    borrowed from the pool) and between processes on any number of
    machines. A copy made by ``fork()`` opens connections of its own.
    """

    def __init__(
        self, database: str | ConnectionPool[Any], *, schema: str = "flowforge"
    ) -> None:
        """Remember where the store lives; connect on first use."""
        if not isinstance(database, (str, ConnectionPool)):
            raise ArgumentTypeError(
                "database must be a connection string or a ConnectionPool, got "
                f"{type(database).__name__}"
            )
        if not isinstance(schema, str):
            raise ArgumentTypeError(
                f"schema must be a str, got {type(schema).__name__} {schema!r}"
            )
        if not _SCHEMA_NAME.fullmatch(schema):
            raise StoreError(
                "schema must be a plain identifier of letters, digits and _, "
                f"got {schema!r}"
            )
        self.schema = schema
        self._pool: ConnectionPool[Any] | None = None
        self._dsn = ""
        self._secret: str | None = None
        if isinstance(database, str):
            fields = _parse(database)
            self._dsn = database
            self._secret = fields.get("password")
            self._where = _describe(fields)
        else:
            self._pool = database
            self._where = f"pool {database.name!r}"
        self._sql = Statements(f'"{schema}"')
        self._idle: list[_Database] = []
        self._inherited: list[_Database] = []
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._ready = False
        self._shape_ids = ShapeIds()

    # -- the Store protocol ---------------------------------------------------------

    def create(self, job_state: JobState, *, owner: str, lease_until: float) -> bool:
        """Save a new job leased to ``owner``; return False if the id exists."""
        check_lease(owner, lease_until)
        rows = job_rows(check_job_state(job_state), self._shape_ids)
        job_id = job_state.job_id
        values = job_values(job_state, rows, owner, lease_until)

        def create(db: _Database) -> bool:
            if db.execute(self._sql.create, values).fetchone() is None:
                return False
            self._insert_rows(db, job_id, rows)
            return True

        created = self._write(create)
        if created:
            self._shape_ids.add(rows.shape)
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
        values = job_values(job_state, rows, owner, lease_until)

        def save(db: _Database) -> None:
            written = db.execute(self._sql.upsert, (*values, owner, owner)).fetchone()
            if written is None:
                assert owner is not None  # noqa: S101  only a lease blocks the upsert
                self._refuse(db, job_id, owner)
            for table in ROW_TABLES:
                db.execute(self._sql.delete_rows[table], ([job_id],))
            self._insert_rows(db, job_id, rows)

        self._write(save)
        self._shape_ids.add(rows.shape)

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        """Save what one delivery changed, renewing ``owner``'s lease."""
        check_lease(owner, lease_until, change=change)
        rows = change_rows(check_job_state(job_state), change)
        self._run(
            "write to",
            lambda db: self._apply_change(
                db, job_state.job_id, rows, owner, lease_until
            ),
        )

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
        values = (owner, lease_until, check_job_id(job_id), owner, replacing, now)

        def acquire(db: _Database) -> bool:
            if db.execute(self._sql.acquire, values).fetchone() is None:
                self._record(db, job_id)
                return False
            return True

        return self._run("write to", acquire)

    def renew(self, job_id: str, *, owner: str, lease_until: float) -> bool:
        """Extend ``owner``'s lease: see :meth:`flowforge.store.Store.renew`."""
        check_lease(owner, lease_until)
        values = (lease_until, check_job_id(job_id), owner)
        return self._run(
            "write to",
            lambda db: db.execute(self._sql.renew, values).fetchone() is not None,
        )

    def load(self, job_id: str) -> JobState:
        """Return the saved job state."""
        check_job_id(job_id)
        row = self._run(
            "read", lambda db: db.execute(self._sql.load, (job_id,)).fetchone()
        )
        if row is None:
            raise JobNotFoundError(job_id=job_id)
        header, *counters = row[:5]
        pending, buffers, routines, errors, history = row[5:]
        return assemble(
            header,
            dict(zip(_COUNTERS, counters, strict=True)),
            pending,
            buffers,
            routines,
            errors,
            history,
            self._shape_text,
        )

    def get(self, job_id: str) -> JobRecord:
        """Return what the store knows about a job without loading it."""
        check_job_id(job_id)
        return self._run("read", lambda db: self._record(db, job_id))

    def list_jobs(
        self, *, flow_id: str | None = None, status: JobStatus | str | None = None
    ) -> list[JobRecord]:
        """Return the saved jobs, oldest update first, optionally filtered.

        A job whose row cannot be read is left out with a
        :class:`~flowforge.FlowForgeWarning` naming it; :meth:`get` of it
        raises :class:`~flowforge.StoreError`.
        """
        wanted = to_status(status)
        check_flow_id(flow_id)
        query = self._sql.list_jobs
        arguments: list[object] = []
        if flow_id is not None:
            query += " AND flow_id = %s"
            arguments.append(flow_id)
        if wanted is not None:
            query += " AND status = %s"
            arguments.append(wanted.value)
        query += " ORDER BY updated_at, job_id"
        rows = self._run("read", lambda db: db.execute(query, arguments).fetchall())
        return readable_records(rows, to_record)

    def delete(self, job_id: str) -> None:
        """Remove a job."""
        check_job_id(job_id)

        def delete(db: _Database) -> None:
            if db.execute(self._sql.delete_job, (job_id,)).fetchone() is None:
                raise JobNotFoundError(job_id=job_id)
            for table in ROW_TABLES:
                db.execute(self._sql.delete_rows[table], ([job_id],))

        self._write(delete)

    def prune(
        self, *, older_than: timedelta | None = None, keep: int | None = None
    ) -> list[str]:
        """Delete finished jobs by age and count; return the deleted ids.

        Ages are measured by the server's clock, which also stamps updates.
        A job that a process holds a lease on (to resume it) is kept.
        """
        check_prune(older_than, keep)
        now = self._run("read", lambda db: db.execute(self._sql.now).fetchone())
        assert now is not None  # noqa: S101  SELECT without FROM returns a row
        records = self.list_jobs()
        doomed = select_prunable(
            records, older_than=older_than, keep=keep, now=now[0].astimezone(UTC)
        )
        if not doomed:
            return []

        def prune(db: _Database) -> set[str]:
            arguments = (doomed, _ENDED, time.time())
            locked = db.execute(self._sql.lock_ended, arguments).fetchall()
            ids = [job_id for (job_id,) in locked]
            for table in ("jobs",) + ROW_TABLES:
                db.execute(self._sql.delete_rows[table], (ids,))
            return set(ids)

        deleted = self._write(prune)
        return [job_id for job_id in doomed if job_id in deleted]

    def close(self) -> None:
        """Close the store's idle connections (a given pool stays open).

        The store stays usable: a later operation connects again.
        """
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()

    # -- schema -----------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the store's schema and tables, or upgrade them, if needed.

        The store does this on first use; call it to do it at a chosen time,
        such as a deployment step run with a role that may create tables
        (the application's role then needs only to read and write rows).
        Safe to call from many processes at once: they take turns on an
        advisory lock, and a schema already at this version is left as is.

        Raises:
            StoreError: If the stored schema is newer than this FlowForge's, or
                the server refuses.
        """
        self._guard(
            "create the schema of",
            lambda: self._transaction(self._migrate, atomic=True),
        )
        self._ready = True

    def _migrate(self, db: _Database) -> None:
        sql = self._sql
        db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (sql.lock_key,))
        exists = db.execute("SELECT to_regclass(%s)", (sql.meta,)).fetchone()
        version = 0
        if exists is not None and exists[0] is not None:
            found = db.execute(sql.version).fetchone()
            version = read_version(found, self._where, self.schema)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"PostgreSQL store {self._where}, schema {self.schema!r} has schema "
                f"version {version}, newer than this FlowForge's {SCHEMA_VERSION}; "
                "upgrade FlowForge"
            )
        if version == 0:
            db.execute(sql.create_schema)
            db.execute(sql.create_meta)
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    db.execute(statement.format(s=sql.schema))
        if version < SCHEMA_VERSION:
            db.execute(sql.set_version, (str(SCHEMA_VERSION),))

    def __repr__(self) -> str:
        """Return where the store is, without any password."""
        return f"PostgresStore({self._where}, schema={self.schema!r})"

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle as the connection string and schema: a copy opens the same store.

        This is how a store travels to other processes, such as Dask workers;
        the pickle holds the connection string, password included. A copy
        opens connections of its own; close it there when done.

        Raises:
            TypeError: If the store borrows from a pool, which cannot travel.
        """
        if self._pool is not None:
            raise TypeError(
                "a PostgresStore on a connection pool cannot be pickled; give it a "
                "connection string to send it to other processes"
            )
        return (_reopen, (self._dsn, self.schema))

    # -- connections and transactions -------------------------------------------------

    def _write(self, work: Callable[[_Database], T]) -> T:
        """Run ``work``, several statements, in one transaction."""
        return self._run("write to", work, atomic=True)

    def _run(
        self, action: str, work: Callable[[_Database], T], *, atomic: bool = False
    ) -> T:
        """Run ``work`` on a connection; see :meth:`_transaction`."""
        if not self._ready:
            self.create_schema()
        return self._guard(action, lambda: self._transaction(work, atomic=atomic))

    def _transaction(self, work: Callable[[_Database], T], *, atomic: bool) -> T:
        """Run ``work``: in one transaction if ``atomic``, else as one statement.

        A non-atomic ``work`` runs one statement (and, only when that found
        nothing, reads that explain why), which on its own is a transaction.
        """
        with self._connection() as db:
            if db.autocommit and not atomic:
                # One statement is a transaction of its own: no BEGIN, no COMMIT.
                return work(db)
            # Pipeline mode sends the statements of a transaction together and
            # waits only where a result is read, and for the commit.
            with db.pipeline(), db.transaction():
                return work(db)

    @contextmanager
    def _connection(self) -> Iterator[_Database]:
        if self._pool is not None:
            with self._pool.connection() as pooled:
                yield pooled
            return
        db = self._take()
        try:
            yield db
        finally:
            self._give_back(db)

    def _take(self) -> _Database:
        """Return an idle connection of this store, or a new one."""
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's connections are not ours to use, nor to
                # close (closing would end the parent's sessions); keep them.
                self._inherited += self._idle
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        return psycopg.connect(self._dsn, autocommit=True)

    def _give_back(self, db: _Database) -> None:
        """Keep ``db`` for the next operation if it is fine and few are idle."""
        if not db.broken and db.info.transaction_status == TransactionStatus.IDLE:
            with self._lock:
                if len(self._idle) < _IDLE_CONNECTIONS and self._pid == os.getpid():
                    self._idle.append(db)
                    return
        db.close()

    def _guard(self, action: str, work: Callable[[], T]) -> T:
        try:
            return work()
        except psycopg.Error as error:
            message = str(error).strip()
            if self._secret:
                message = message.replace(self._secret, "***")
            raise StoreError(
                f"cannot {action} PostgreSQL store {self._where}, schema "
                f"{self.schema!r}: {message}"
            ) from error

    # -- statements -------------------------------------------------------------------

    def _record(self, db: _Database, job_id: str) -> JobRecord:
        row = db.execute(self._sql.record, (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(job_id=job_id)
        return to_record(row)

    def _refuse(self, db: _Database, job_id: str, owner: str) -> None:
        row = db.execute(self._sql.owner, (job_id,)).fetchone()
        holder = None if row is None else row[0]
        raise StoreError(
            f"job {job_id!r} is leased to {holder!r}, not {owner!r}: another "
            "process took it over, so this one must stop running it"
        )

    def _shape_text(self, shape_id: str) -> str | None:
        """Return a stored flow shape's text (shapes are never deleted)."""
        row = self._run(
            "read", lambda db: db.execute(self._sql.shape, (shape_id,)).fetchone()
        )
        return None if row is None else str(row[0])

    def _insert_shape(self, db: _Database, shape: StoredShape | None) -> None:
        """Store a flow shape's text if it is due, over what its id held."""
        if shape is not None and shape.text is not None:
            db.execute(self._sql.upsert_shape, (shape.shape_id, shape.text))

    def _insert_rows(self, db: _Database, job_id: str, rows: JobRows) -> None:
        sql = self._sql
        self._insert_shape(db, rows.shape)
        _insert(db, sql.insert_pending, job_id, *_columns(enumerate(rows.pending), 2))
        buffers = [(r, s, b, a) for (r, s), (b, a) in rows.buffers.items()]
        _insert(db, sql.upsert_buffers, job_id, *_columns(buffers, 4))
        _insert(db, sql.upsert_routines, job_id, *_columns(rows.routines.items(), 2))
        _insert(db, sql.insert_errors, job_id, *_columns(enumerate(rows.errors), 2))
        _insert(db, sql.upsert_history, job_id, *_columns(rows.history, 2))

    def _apply_change(
        self,
        db: _Database,
        job_id: str,
        rows: ChangeRows,
        owner: str,
        lease_until: float,
    ) -> None:
        pending_end = rows.pending_from + len(rows.pending)
        pending = enumerate(rows.pending, start=rows.pending_from)
        changed = [rows.routine] if rows.routine is not None else []
        buffers: list[tuple[str, str, str | None, str | None]] = []
        gone: tuple[str | None, str | None] = (None, None)
        if rows.buffer is not None:
            (routine_id, slot), buffer, arrivals = rows.buffer
            if buffer is None and arrivals is None:
                gone = (routine_id, slot)
            else:
                buffers.append((routine_id, slot, buffer, arrivals))
        arguments = (
            *(rows.counters[key] for key in _COUNTERS),
            lease_until,
            job_id,
            owner,
            pending_end,
            *_columns(pending, 2),
            *_columns(changed, 2),
            *_columns(buffers, 4),
            *gone,
            *_columns(rows.errors, 2),
            *_columns(rows.history, 2),
            rows.history_floor,
        )
        if db.execute(self._sql.checkpoint, arguments).fetchone() is None:
            self._refuse(db, job_id, owner)


def _columns(rows: Iterable[Sequence[object]], width: int) -> list[list[object]]:
    """Return ``rows`` as ``width`` columns, for ``unnest``."""
    columns: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _insert(db: _Database, query: str, job_id: str, *columns: list[object]) -> None:
    """Run a multi-row insert of ``columns`` (one array each), if there are rows."""
    if columns[0]:
        db.execute(query, (job_id, *columns))


def _reopen(dsn: str, schema: str) -> PostgresStore:
    return PostgresStore(dsn, schema=schema)


def _parse(dsn: str) -> dict[str, str]:
    """Return the fields of a connection string, or refuse it without echoing it."""
    try:
        return {k: str(v) for k, v in conninfo.conninfo_to_dict(dsn).items()}
    except psycopg.Error:
        # libpq's message quotes the string, which may hold a password.
        raise StoreError(
            "not a valid PostgreSQL connection string or URI (not shown: it may "
            'hold a password); see "Connection strings" in the libpq documentation'
        ) from None


def _describe(fields: dict[str, str]) -> str:
    """Return where a connection string points, without its password."""
    shown = [f"{key}={fields[key]!r}" for key in _SHOWN if key in fields]
    return ", ".join(shown) or "libpq defaults"
