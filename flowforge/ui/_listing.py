"""One page of a store's jobs: filtered, sorted, counted per status, bucketed in time.

Any store is read through ``Store.list_jobs``, which returns every record:
fine for thousands of jobs. A :class:`~flowforge.store.SqliteStore` is read
with SQL instead (through its public ``path``, read-only), so that a page of
a 100,000-job store costs a few small queries, not 100,000 records; if its
schema is not the one expected, the generic way is used.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from flowforge.job_state import JobStatus
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
    ``histogram`` holds ``BUCKETS`` counts of matching jobs by the hour of
    their last update, from ``first`` to ``last`` (whole hours).
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
    hours = Counter(int(r.updated_at.timestamp() // 3600) for r in matching)
    _hourly(page, list(hours.items()))
    return page


_COLUMNS: Final = "job_id, flow_id, status, owner, lease_until, updated_at"


def _sqlite_page(store: SqliteStore, query: JobQuery) -> JobPage:
    uri = f"{store.path.absolute().as_uri()}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        where, arguments = _where(query)
        flows = [row[0] for row in db.execute("SELECT DISTINCT flow_id FROM jobs")]
        # One scan of the table gives both the counts per status and the
        # jobs per hour that the chart is drawn from.
        hours = db.execute(
            "SELECT status, CAST(updated_at / 3600 AS INTEGER), count(*) "
            f"FROM jobs WHERE {where} GROUP BY 1, 2",  # noqa: S608  fixed columns
            arguments,
        ).fetchall()
        counts: dict[str, int] = {}
        for status, _, count in hours:
            counts[status] = counts.get(status, 0) + count
        if query.status is not None:
            where += " AND status = ?"
            arguments.append(query.status)
        records = _sqlite_records(db, query, where, arguments)
    page = JobPage(records, query_total(counts, query.status), counts, sorted(flows))
    _hourly(page, [(h, n) for s, h, n in hours if query.status in (None, s)])
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


def _hourly(page: JobPage, hours: list[tuple[int, int]]) -> None:
    """Spread jobs counted per hour (since the epoch) over the chart's buckets."""
    if not hours:
        return
    low = min(hour for hour, _ in hours)
    span = max(hour for hour, _ in hours) + 1 - low
    page.histogram = [0] * BUCKETS
    for hour, count in hours:
        page.histogram[(hour - low) * BUCKETS // span] += count
    page.first = datetime.fromtimestamp(low * 3600, UTC)
    page.last = datetime.fromtimestamp((low + span) * 3600, UTC)
