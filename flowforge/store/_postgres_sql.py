"""The SQL of :class:`~flowforge.store.postgres.PostgresStore`: tables, statements.

Templates name the store's schema ``{s}``; :class:`Statements` writes them out
for one schema. Parameters are ``%s`` (text) and ``%b`` (binary, for arrays).
"""

from __future__ import annotations

from typing import Final, final

__all__ = ["MIGRATIONS", "RECORD_COLUMNS", "ROW_TABLES", "Statements"]

ROW_TABLES: Final = ("pending", "buffers", "routines", "errors", "history")
RECORD_COLUMNS: Final = "job_id, flow_id, status, owner, lease_until, updated_at"

# Checkpoints update a job's row in place (a HOT update): its page keeps free
# space, and no index covers a column that a checkpoint changes.
_SCHEMA_V1: Final = """
CREATE TABLE {s}.jobs (
    job_id TEXT COLLATE "C" PRIMARY KEY, flow_id TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL, owner TEXT, lease_until DOUBLE PRECISION,
    updated_at TIMESTAMPTZ NOT NULL, delivery_count BIGINT NOT NULL,
    next_seq BIGINT NOT NULL, history_total BIGINT NOT NULL, header TEXT NOT NULL)
    WITH (fillfactor = 50);
CREATE INDEX jobs_by_flow ON {s}.jobs (flow_id, status);
CREATE TABLE {s}.pending (
    job_id TEXT COLLATE "C" NOT NULL, pos BIGINT NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (job_id, pos));
CREATE TABLE {s}.buffers (
    job_id TEXT COLLATE "C" NOT NULL, routine_id TEXT COLLATE "C" NOT NULL,
    slot TEXT COLLATE "C" NOT NULL, buffer TEXT, arrivals TEXT,
    PRIMARY KEY (job_id, routine_id, slot));
CREATE TABLE {s}.routines (
    job_id TEXT COLLATE "C" NOT NULL, routine_id TEXT COLLATE "C" NOT NULL,
    row TEXT NOT NULL, PRIMARY KEY (job_id, routine_id));
CREATE TABLE {s}.errors (
    job_id TEXT COLLATE "C" NOT NULL, n BIGINT NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (job_id, n));
CREATE TABLE {s}.history (
    job_id TEXT COLLATE "C" NOT NULL, n BIGINT NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (job_id, n))
"""

_SCHEMA_V2: Final = """
CREATE TABLE {s}.shapes (
    shape_id TEXT COLLATE "C" PRIMARY KEY, shape TEXT NOT NULL)
"""
"""Version 2 keeps each flow shape once, named by id in its jobs' headers
(version 1 headers hold their shape, and load as they are)."""

MIGRATIONS: Final[dict[int, str]] = {1: _SCHEMA_V1, 2: _SCHEMA_V2}
"""Schema version -> the SQL that upgrades the previous version to it."""


@final
class Statements:
    """The SQL a store runs: each template below, written out for its schema."""

    create_schema = "CREATE SCHEMA IF NOT EXISTS {s}"
    create_meta = "CREATE TABLE {s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
    version = "SELECT value FROM {s}.meta WHERE key = 'schema_version'"
    now = "SELECT clock_timestamp()"
    set_version = """INSERT INTO {s}.meta VALUES ('schema_version', %s)
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"""
    create = """INSERT INTO {s}.jobs VALUES
        (%s, %s, %s, %s, %s, clock_timestamp(), %s, %s, %s, %s)
        ON CONFLICT (job_id) DO NOTHING RETURNING 1"""
    upsert = """INSERT INTO {s}.jobs AS jobs VALUES
        (%s, %s, %s, %s, %s, clock_timestamp(), %s, %s, %s, %s)
        ON CONFLICT (job_id) DO UPDATE SET flow_id = EXCLUDED.flow_id,
        status = EXCLUDED.status, owner = EXCLUDED.owner,
        lease_until = EXCLUDED.lease_until, updated_at = EXCLUDED.updated_at,
        delivery_count = EXCLUDED.delivery_count, next_seq = EXCLUDED.next_seq,
        history_total = EXCLUDED.history_total, header = EXCLUDED.header
        WHERE %s::text IS NULL OR jobs.owner IS NULL OR jobs.owner = %s
        RETURNING 1"""
    # One statement, so one round trip. Every part joins `job`, the update
    # that checks the lease, so nothing is written if it found no row.
    checkpoint = """WITH job AS (UPDATE {s}.jobs SET status = %s,
            delivery_count = %s, next_seq = %s, history_total = %s,
            lease_until = %s, updated_at = clock_timestamp()
            WHERE job_id = %s AND owner = %s RETURNING job_id),
        pending_gone AS (DELETE FROM {s}.pending
            WHERE job_id IN (SELECT job_id FROM job) AND pos >= %s),
        pending_new AS (INSERT INTO {s}.pending SELECT job_id, p.*
            FROM job, unnest(%b::bigint[], %b::text[]) AS p
            ON CONFLICT (job_id, pos) DO UPDATE SET row = EXCLUDED.row),
        routine AS (INSERT INTO {s}.routines SELECT job_id, r.*
            FROM job, unnest(%b::text[], %b::text[]) AS r
            ON CONFLICT (job_id, routine_id) DO UPDATE SET row = EXCLUDED.row),
        buffer_new AS (INSERT INTO {s}.buffers SELECT job_id, b.*
            FROM job, unnest(%b::text[], %b::text[], %b::text[], %b::text[]) AS b
            ON CONFLICT (job_id, routine_id, slot) DO UPDATE
            SET buffer = EXCLUDED.buffer, arrivals = EXCLUDED.arrivals),
        buffer_gone AS (DELETE FROM {s}.buffers WHERE job_id IN
            (SELECT job_id FROM job) AND routine_id = %s AND slot = %s),
        error_new AS (INSERT INTO {s}.errors SELECT job_id, e.*
            FROM job, unnest(%b::bigint[], %b::text[]) AS e),
        history_new AS (INSERT INTO {s}.history SELECT job_id, h.*
            FROM job, unnest(%b::bigint[], %b::text[]) AS h
            ON CONFLICT (job_id, n) DO UPDATE SET row = EXCLUDED.row),
        history_gone AS (DELETE FROM {s}.history
            WHERE job_id IN (SELECT job_id FROM job) AND n < %s)
        SELECT job_id FROM job"""
    acquire = """UPDATE {s}.jobs SET owner = %s, lease_until = %s
        WHERE job_id = %s AND (owner IS NULL OR lease_until IS NULL
        OR owner = %s OR owner = %s OR lease_until < %s) RETURNING 1"""
    renew = """UPDATE {s}.jobs SET lease_until = %s
        WHERE job_id = %s AND owner = %s RETURNING 1"""
    record = f"SELECT {RECORD_COLUMNS} FROM {{s}}.jobs WHERE job_id = %s"
    owner = "SELECT owner FROM {s}.jobs WHERE job_id = %s"
    list_jobs = f"SELECT {RECORD_COLUMNS} FROM {{s}}.jobs WHERE true"
    load = """SELECT header, status, delivery_count, next_seq, history_total,
        ARRAY(SELECT row FROM {s}.pending p WHERE p.job_id = j.job_id ORDER BY pos),
        ARRAY(SELECT ARRAY[routine_id, slot, buffer, arrivals] FROM {s}.buffers b
            WHERE b.job_id = j.job_id ORDER BY routine_id, slot),
        ARRAY(SELECT row FROM {s}.routines r WHERE r.job_id = j.job_id
            ORDER BY routine_id),
        ARRAY(SELECT row FROM {s}.errors e WHERE e.job_id = j.job_id ORDER BY n),
        ARRAY(SELECT row FROM {s}.history h WHERE h.job_id = j.job_id ORDER BY n)
        FROM {s}.jobs j WHERE j.job_id = %s"""
    delete_job = "DELETE FROM {s}.jobs WHERE job_id = %s RETURNING 1"
    shape = "SELECT shape FROM {s}.shapes WHERE shape_id = %s"
    upsert_shape = """INSERT INTO {s}.shapes AS held VALUES (%s, %s)
        ON CONFLICT (shape_id) DO UPDATE SET shape = EXCLUDED.shape
        WHERE held.shape IS DISTINCT FROM EXCLUDED.shape"""
    # Locking in id order keeps two concurrent prunes from deadlocking.
    lock_ended = """SELECT job_id FROM {s}.jobs WHERE job_id = ANY(%s)
        AND status = ANY(%s) AND (owner IS NULL OR lease_until < %s)
        ORDER BY job_id FOR UPDATE"""
    # Rows go in as one array per column: one statement for any number.
    insert_pending = """INSERT INTO {s}.pending
        SELECT %s::text, * FROM unnest(%b::bigint[], %b::text[])"""
    upsert_buffers = """INSERT INTO {s}.buffers SELECT %s::text, *
        FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[])
        ON CONFLICT (job_id, routine_id, slot) DO UPDATE
        SET buffer = EXCLUDED.buffer, arrivals = EXCLUDED.arrivals"""
    upsert_routines = """INSERT INTO {s}.routines
        SELECT %s::text, * FROM unnest(%b::text[], %b::text[])
        ON CONFLICT (job_id, routine_id) DO UPDATE SET row = EXCLUDED.row"""
    insert_errors = """INSERT INTO {s}.errors
        SELECT %s::text, * FROM unnest(%b::bigint[], %b::text[])"""
    upsert_history = """INSERT INTO {s}.history
        SELECT %s::text, * FROM unnest(%b::bigint[], %b::text[])
        ON CONFLICT (job_id, n) DO UPDATE SET row = EXCLUDED.row"""

    def __init__(self, schema: str) -> None:
        """Write every template out for ``schema``, a quoted identifier."""
        self.schema = schema
        self.lock_key = f"flowforge schema {schema}"
        self.meta = f"{schema}.meta"
        for name, template in vars(Statements).items():
            if isinstance(template, str) and not name.startswith("_"):
                setattr(self, name, template.format(s=schema))
        self.delete_rows = {
            table: f"DELETE FROM {schema}.{table} WHERE job_id = ANY(%s)"
            for table in ("jobs",) + ROW_TABLES
        }
