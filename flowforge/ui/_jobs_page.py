"""The jobs page: counts per status, jobs over time, filters, and one page of jobs."""

from __future__ import annotations

from collections.abc import Mapping

from flowforge.job_state import JobState
from flowforge.ui._charts import jobs_chart
from flowforge.ui._html import (
    STATUS_ORDER,
    badge,
    job_href,
    query_href,
    table,
    text,
    when,
)
from flowforge.ui._listing import SORTS, JobPage, JobQuery

__all__ = ["jobs_body", "query_params"]


def query_params(query: JobQuery, **changes: object) -> dict[str, object]:
    """Return the URL parameters of ``query``, with ``changes`` applied."""
    params: dict[str, object] = {
        "status": query.status,
        "flow": query.flow_id,
        "q": query.search,
        "sort": None if query.sort == "updated" else query.sort,
        "order": None if query.descending else "asc",
        "page": None if query.page == 1 else query.page,
    }
    params.update(changes)
    return params


def _counts(base: str, page: JobPage, query: JobQuery) -> str:
    total = sum(page.counts.values())
    chips = [
        f'<a class="chip{"" if query.status else " active"}" '
        f'href="{query_href(base, query_params(query, status=None, page=None))}">'
        f"all <b>{total}</b></a>"
    ]
    for status in STATUS_ORDER:
        active = " active" if query.status == status else ""
        href = query_href(base, query_params(query, status=status, page=None))
        chips.append(
            f'<a class="chip status-{status}{active}" href="{href}">'
            f"{status} <b>{page.counts.get(status, 0)}</b></a>"
        )
    return f'<nav class="chips" aria-label="Counts per status">{"".join(chips)}</nav>'


def _select(name: str, current: str | None, options: list[tuple[str, str]]) -> str:
    chosen = current or ""
    items = "".join(
        f'<option value="{text(value)}"{" selected" if value == chosen else ""}>'
        f"{text(label)}</option>"
        for value, label in options
    )
    return f'<select name="{name}" id="f-{name}">{items}</select>'


def _filters(base: str, page: JobPage, query: JobQuery) -> str:
    statuses = [("", "any status")] + [(s, s) for s in STATUS_ORDER]
    flows = [("", "any flow")] + [(f, f) for f in page.flows]
    sorts = [(key, f"sort by {key}") for key in SORTS]
    orders = [("", "newest first"), ("asc", "oldest first")]
    return (
        f'<form class="filters" method="get" action="{text(base)}/">'
        f'<input type="search" name="q" value="{text(query.search)}" '
        'placeholder="Search job id" aria-label="Search job id">'
        f"{_select('status', query.status, statuses)}"
        f"{_select('flow', query.flow_id, flows)}"
        f"{_select('sort', query.sort, sorts)}"
        f"{_select('order', None if query.descending else 'asc', orders)}"
        '<button type="submit">Apply</button></form>'
    )


def _rows(
    base: str, page: JobPage, details: Mapping[str, JobState | None]
) -> list[list[str]]:
    rows = []
    for record in page.records:
        job = details.get(record.job_id)
        rows.append(
            [
                f'<a class="job-link" href="{job_href(base, record.job_id)}">'
                f"{text(record.job_id)}</a>",
                text(record.flow_id),
                badge(record.status.value),
                when(record.updated_at),
                "?" if job is None else str(job.delivery_count),
                "?" if job is None else _error_cell(job.error_count),
            ]
        )
    return rows


def _error_cell(count: int) -> str:
    return f'<span class="errors">{count}</span>' if count else "0"


def _pager(base: str, page: JobPage, query: JobQuery) -> str:
    pages = max((page.total + query.per_page - 1) // query.per_page, 1)
    links = [f"<span>page {query.page} of {pages} · {page.total} jobs</span>"]
    if query.page > 1:
        href = query_href(base, query_params(query, page=query.page - 1))
        links.insert(0, f'<a rel="prev" href="{href}">← previous</a>')
    if query.page < pages:
        href = query_href(base, query_params(query, page=query.page + 1))
        links.append(f'<a rel="next" href="{href}">next →</a>')
    return f'<nav class="pager">{" ".join(links)}</nav>'


def jobs_body(
    base: str, page: JobPage, query: JobQuery, details: Mapping[str, JobState | None]
) -> str:
    """Return the jobs page's body; ``details`` holds the shown jobs, loaded."""
    span = ""
    if page.first is not None and page.last is not None:
        span = (
            f'<p class="chart-span"><span>{when(page.first)}</span>'
            f"<span>{when(page.last)}</span></p>"
        )
    headers = ["Job", "Flow", "Status", "Updated", "Deliveries", "Errors"]
    listing = (
        table(headers, _rows(base, page, details), css="jobs")
        if page.records
        else '<p class="empty">No jobs match.</p>'
    )
    return (
        f'<section class="overview"><h1>Jobs</h1>{_counts(base, page, query)}'
        f'<figure class="chart">{jobs_chart(page.histogram)}{span}'
        "<figcaption>jobs by last update</figcaption></figure></section>"
        f"{_filters(base, page, query)}{listing}{_pager(base, page, query)}"
    )
