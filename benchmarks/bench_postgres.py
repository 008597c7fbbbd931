"""Measure PostgresStore beside SqliteStore and beside raw commit loops, in one run.

The job is ``bench_durable.py``'s (source -> transform -> sink, one checkpoint
per delivery), at a short and a long size, so that the table also shows
whether the cost per delivery grows with the job's length:

- sqlite: ``SqliteStore`` in a fresh file per repeat (``bench_durable.py``'s);
- raw-sqlite: ``bench_durable.py``'s baseline, one row per ``sqlite3`` commit;
- postgres: ``PostgresStore`` in a fresh schema per repeat, with the server's
  ``synchronous_commit`` (normally ``on``: every commit waits for its WAL
  flush to disk);
- raw-psycopg: the baseline, psycopg 3 committing one row per transaction:
  one ``INSERT ... ON CONFLICT DO UPDATE`` per iteration on a connection in
  autocommit mode (one statement, one round trip, one commit), of a row as
  long as a checkpoint's JSON, cycling through 1,000 keys, on the same server;
- postgres-async and raw-psycopg-async: the same two with
  ``synchronous_commit=off`` set on their connections, which shows the cost
  of the store itself rather than of the disk.

The server is ``$FLOWFORGE_TEST_POSTGRES_DSN``; without it, a throwaway one is
started with ``scripts/pg_test_server.sh`` and stopped at the end.

Targets: postgres's long/short cost per delivery (checked) and its cost per
delivery over raw-psycopg's per commit, both at the server's setting and
async (goals, reported).

Run ``python benchmarks/bench_postgres.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Final

import psycopg
from _harness import Options, Target, parse_options, publish
from bench_durable import (
    RAW_WINDOW,
    Measured,
    Prepare,
    Run,
    StreamJob,
    Workload,
    bytes_per_delivery,
    job_side,
    measure,
    median_of,
    raw_side,
)

from flowforge.store.postgres import PostgresStore

SIZES: Final = {"short": 500, "long": 5_000}
QUICK_SIZES: Final = {"short": 200, "long": 1_000}
DSN_VARIABLE: Final = "FLOWFORGE_TEST_POSTGRES_DSN"
SERVER_SCRIPT: Final = (
    Path(__file__).resolve().parent.parent / "scripts/pg_test_server.sh"
)
ASYNC: Final = "-c synchronous_commit=off"
GROWTH_TARGET: Final = 1.5
RAW_RATIO_GOAL: Final = 2.0
STORES: Final = ("sqlite", "postgres", "postgres-async")
RAWS: Final = ("raw-sqlite", "raw-psycopg", "raw-psycopg-async")


def asynchronous(dsn: str) -> str:
    """Return ``dsn`` with commits that do not wait for the disk."""
    return psycopg.conninfo.make_conninfo(dsn, options=ASYNC)


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def postgres_side(job: StreamJob, dsn: str) -> Prepare:
    """Return the set-up of one ``job`` run with a PostgresStore in a new schema."""

    def prepare(folder: Path, cleanup: ExitStack) -> Run:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        cleanup.callback(drop_schema, dsn, schema)
        store = PostgresStore(dsn, schema=schema)
        cleanup.callback(store.close)
        store.create_schema()
        return lambda: job.run(store)

    return prepare


def raw_psycopg_side(commits: int, row_bytes: int, dsn: str) -> Prepare:
    """Return the set-up of ``commits`` single-row transactions of ``row_bytes``."""

    def prepare(folder: Path, cleanup: ExitStack) -> Run:
        table = f"bench_raw_{uuid.uuid4().hex[:12]}"
        db = psycopg.connect(dsn, autocommit=True)
        cleanup.callback(db.close)
        db.execute(f"CREATE TABLE {table} (n BIGINT PRIMARY KEY, row TEXT NOT NULL)")
        cleanup.callback(db.execute, f"DROP TABLE {table}")
        query = (
            f"INSERT INTO {table} VALUES (%s, %s) "
            "ON CONFLICT (n) DO UPDATE SET row = EXCLUDED.row"
        )
        row = "x" * row_bytes

        def commit_rows() -> None:
            execute = db.execute
            for n in range(commits):
                execute(query, (n % RAW_WINDOW, row))

        return commit_rows

    return prepare


@contextmanager
def server() -> Iterator[str]:
    """Yield the DSN of ``$FLOWFORGE_TEST_POSTGRES_DSN``, or of a throwaway server."""
    given = os.environ.get(DSN_VARIABLE)
    if given:
        yield given
        return
    started = subprocess.run(
        ["bash", str(SERVER_SCRIPT), "start"], capture_output=True, text=True
    )
    exported = dict(re.findall(r"^export (\w+)='?([^'\n]*)'?$", started.stdout, re.M))
    if started.returncode != 0 or DSN_VARIABLE not in exported:
        raise SystemExit(f"cannot start a PostgreSQL server:\n{started.stderr}")
    try:
        yield exported[DSN_VARIABLE]
    finally:
        directory = exported["FLOWFORGE_TEST_POSTGRES_DIR"]
        subprocess.run(["bash", str(SERVER_SCRIPT), "stop", directory], check=False)


def server_settings(dsn: str) -> dict[str, object]:
    with psycopg.connect(dsn) as db:
        rows = db.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('fsync', 'synchronous_commit', 'wal_sync_method', 'server_version')"
        ).fetchall()
    return {f"postgres_{name}": setting for name, setting in rows}


def format_table(results: Sequence[Measured]) -> str:
    """Return the measurements as an aligned text table (times in microseconds)."""
    header = ("store", "size", "per", "ops", "median µs", "min µs", "max µs", "per s")
    rows = [header]
    for item in results:
        w, stats = item.workload, item.stats
        rows.append(
            (
                w.kind,
                w.size,
                "commit" if w.kind.startswith("raw") else "delivery",
                f"{w.operations:,}",
                f"{stats.median * 1e6:.1f}",
                f"{stats.minimum * 1e6:.1f}",
                f"{stats.maximum * 1e6:.1f}",
                f"{1 / stats.median:,.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def workloads_for(jobs: dict[str, StreamJob], dsn: str) -> list[Workload]:
    """Return every kind at every size, kinds side by side."""
    row_bytes = bytes_per_delivery(jobs["short"])
    workloads = []
    for size, job in jobs.items():
        n = job.deliveries
        sides: dict[str, Prepare] = {
            "sqlite": job_side(job, "sqlite"),
            "raw-sqlite": raw_side(n, row_bytes),
            "postgres": postgres_side(job, dsn),
            "raw-psycopg": raw_psycopg_side(n, row_bytes, dsn),
            "postgres-async": postgres_side(job, asynchronous(dsn)),
            "raw-psycopg-async": raw_psycopg_side(n, row_bytes, asynchronous(dsn)),
        }
        workloads += [Workload(kind, size, n, side) for kind, side in sides.items()]
    return workloads


def main(options: Options) -> int:
    """Run every workload, report them and return the exit status."""
    sizes = QUICK_SIZES if options.quick else SIZES
    jobs = {size: StreamJob(deliveries) for size, deliveries in sizes.items()}
    with server() as dsn:
        settings: dict[str, object] = {
            **{f"{size}_deliveries": job.deliveries for size, job in jobs.items()},
            "raw_row_bytes": bytes_per_delivery(jobs["short"]),
            "raw_window": RAW_WINDOW,
            **server_settings(dsn),
        }
        results = measure(workloads_for(jobs, dsn), options.repeats)
    kinds = STORES + RAWS
    growth = {
        k: median_of(results, k, "long") / median_of(results, k, "short") for k in kinds
    }
    over_raw = {
        f"{store} / {raw} ({size})": median_of(results, store, size)
        / median_of(results, raw, size)
        for store, raw in zip(STORES, RAWS, strict=True)
        for size in jobs
    }
    lines = [format_table(results), ""]
    lines.append(
        "long/short per-operation cost: "
        + ", ".join(f"{k} {g:.2f}x" for k, g in growth.items())
    )
    lines += [f"{name}: {ratio:.2f}x" for name, ratio in over_raw.items()]
    lines.append(
        "server: "
        + ", ".join(f"{k[9:]}={v}" for k, v in settings.items() if k[:9] == "postgres_")
    )
    workload_data = [
        {
            "store": item.workload.kind,
            "size": item.workload.size,
            "operation": (
                "commit" if item.workload.kind.startswith("raw") else "delivery"
            ),
            "operations_per_repeat": item.workload.operations,
            "unit": "seconds per operation",
            "stats": asdict(item.stats),
        }
        for item in results
    ]
    targets = [
        Target(
            "postgres long/short per-delivery cost", growth["postgres"], GROWTH_TARGET
        ),
        Target(
            "postgres per delivery / raw psycopg commit (long)",
            over_raw["postgres / raw-psycopg (long)"],
            RAW_RATIO_GOAL,
            checked=False,
        ),
        Target(
            "postgres-async per delivery / raw psycopg-async commit (long)",
            over_raw["postgres-async / raw-psycopg-async (long)"],
            RAW_RATIO_GOAL,
            checked=False,
        ),
    ]
    extra = {"ratios": {"long_over_short": growth, "store_over_raw": over_raw}}
    return publish(options, settings, "\n".join(lines), workload_data, targets, extra)


if __name__ == "__main__":
    raise SystemExit(main(parse_options(__doc__ or "")))
