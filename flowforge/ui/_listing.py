"""One page of a store's jobs: filtered, sorted, counted per status, bucketed in time.

Any store is read through ``Store.list_jobs``, which returns every record:
fine for thousands of jobs. A :class:`~flowforge.store.SqliteStore` is read
with SQL instead (through its public ``path``, read-only), so that a page of
a 100,000-job store costs a few small queries, not 100,000 records; if its
schema is not the one expected, the generic way is used.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from flowforge import JobStatus
from flowforge.store import JobRecord, SqliteStore, Store

__all__ = ["BUCKETS", "SORTS", "JobPage", "JobQuery", "read_page"]

SORTS: Final = {"updated": "updated_at", "job": "job_id", "flow": "flow_id"}
"""Sort keys of the jobs page, and the column each sorts by."""
BUCKETS: Final = 24
"""Bars of the jobs-over-time chart."""


@dataclass(frozen=True, slots=True)
class JobQuery:
    """What the jobs page asks for: filters, order and page (from 1)."""

    status: str | None = None
    flow_id: str | None = None
    search: str = ""
    sort: str = "updated"
    descending: bool = True
    page: int = 1
    per_page: int = 50


@dataclass(slots=True)
class JobPage:
    """One page of jobs and the figures around it.

    ``counts`` are per status over the jobs that match the flow and search
    filters (not the status filter), ``total`` the jobs that match them all;
    ``histogram`` holds ``BUCKETS`` counts of matching jobs by update time,
    from ``first`` to ``last``.
    """

    records: list[JobRecord]
    total: int
    counts: dict[str, int]
    flows: list[str]
    histogram: list[int] = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None


def read_page(store: Store, query: JobQuery) -> JobPage:
    """Return the page of jobs ``query`` asks for."""
    if isinstance(store, SqliteStore):
        try:
            return _sqlite_page(store, query)
        except sqlite3.Error:  # another schema: read it the generic way
            pass
    return _generic_page(store, query)


def _generic_page(store: Store, query: JobQuery) -> JobPage:
    everything = store.list_jobs()
    flows = sorted({r.flow_id for r in everything})
    matching = [
        r
        for r in everything
        if (query.flow_id is None or r.flow_id == query.flow_id)
        and query.search.lower() in r.job_id.lower()
    ]
    counts: dict[str, int] = {}
    for record in matching:
        counts[record.status.value] = counts.get(record.status.value, 0) + 1
    if query.status is not None:
        matching = [r for r in matching if r.status.value == query.status]
    column = SORTS.get(query.sort, "updated_at")
    matching.sort(
        key=lambda r: (getattr(r, column), r.job_id), reverse=query.descending
    )
    start = (max(query.page, 1) - 1) * query.per_page
    page = JobPage(
        matching[start : start + query.per_page], len(matching), counts, flows
    )
    times = [r.updated_at.timestamp() for r in matching]
    if times:
        _bucket(page, min(times), max(times), times)
    return page


def _bucket(page: JobPage, low: float, high: float, times: list[float]) -> None:
    width = max(high - low, 1e-9) / BUCKETS
    page.histogram = [0] * BUCKETS
    for moment in times:
        page.histogram[min(int((moment - low) / width), BUCKETS - 1)] += 1
    page.first = datetime.fromtimestamp(low, UTC)
    page.last = datetime.fromtimestamp(high, UTC)


_COLUMNS: Final = "job_id, flow_id, status, owner, lease_until, updated_at"


def _sqlite_page(store: SqliteStore, query: JobQuery) -> JobPage:
    uri = f"{store.path.absolute().as_uri()}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        where, arguments = _where(query)
        flows = [row[0] for row in db.execute("SELECT DISTINCT flow_id FROM jobs")]
        counts = dict(
            db.execute(
                f"SELECT status, count(*) FROM jobs WHERE {where} GROUP BY status",
                arguments,
            ).fetchall()
        )
        if query.status is not None:
            where += " AND status = ?"
            arguments.append(query.status)
        total = query_total(counts, query.status)
        records = _sqlite_records(db, query, where, arguments)
        page = JobPage(records, total, counts, sorted(flows))
        _sqlite_histogram(db, page, where, arguments)
    return page


def query_total(counts: dict[str, int], status: str | None) -> int:
    """Return how many jobs match: all counted, or those of ``status``."""
    return sum(counts.values()) if status is None else counts.get(status, 0)


def _where(query: JobQuery) -> tuple[str, list[object]]:
    where, arguments = "1 = 1", list[object]()
    if query.flow_id is not None:
        where += " AND flow_id = ?"
        arguments.append(query.flow_id)
    if query.search:
        escaped = query.search.replace("\\", "\\\\").replace("%", "\\%")
        where += " AND job_id LIKE ? ESCAPE '\\'"
        arguments.append("%" + escaped.replace("_", "\\_") + "%")
    return where, arguments


def _sqlite_records(
    db: sqlite3.Connection, query: JobQuery, where: str, arguments: list[object]
) -> list[JobRecord]:
    column = SORTS.get(query.sort, "updated_at")
    order = "DESC" if query.descending else "ASC"
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM jobs WHERE {where} "  # noqa: S608  fixed columns
        f"ORDER BY {column} {order}, job_id {order} LIMIT ? OFFSET ?",
        [*arguments, query.per_page, (max(query.page, 1) - 1) * query.per_page],
    ).fetchall()
    return [
        JobRecord(
            job_id,
            flow_id,
            JobStatus(status),
            owner,
            lease_until,
            datetime.fromtimestamp(updated_at, UTC),
        )
        for job_id, flow_id, status, owner, lease_until, updated_at in rows
    ]


def _sqlite_histogram(
    db: sqlite3.Connection, page: JobPage, where: str, arguments: list[object]
) -> None:
    low, high = db.execute(
        f"SELECT min(updated_at), max(updated_at) FROM jobs WHERE {where}", arguments
    ).fetchone()
    if low is None:
        return
    width = max(high - low, 1e-9) / BUCKETS
    rows = db.execute(
        f"SELECT min(CAST((updated_at - ?) / ? AS INTEGER), ?), count(*) "
        f"FROM jobs WHERE {where} GROUP BY 1",
        [low, width, BUCKETS - 1, *arguments],
    ).fetchall()
    page.histogram = [0] * BUCKETS
    for bucket, count in rows:
        page.histogram[bucket] += count
    page.first = datetime.fromtimestamp(low, UTC)
    page.last = datetime.fromtimestamp(high, UTC)
