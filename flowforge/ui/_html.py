"""HTML building blocks of the inspector: escaping, the page shell, badges, times.

Pages are built as strings; every value that comes from a store (job ids,
payloads, error texts) goes through :func:`text` (``html.escape``), and
attribute values too, so user data always renders as text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final
from urllib.parse import quote, urlencode

__all__ = [
    "STATUS_ORDER",
    "badge",
    "job_href",
    "page",
    "query_href",
    "seconds",
    "table",
    "text",
    "when",
]

STATUS_ORDER: Final = (
    "running",
    "pending",
    "paused",
    "failed",
    "completed",
    "cancelled",
)


def text(value: object) -> str:
    """Escape ``value`` as HTML text, quotes included (safe in attributes too)."""
    return html.escape(str(value), quote=True)


def job_href(base: str, job_id: str) -> str:
    """Return the escaped link to a job's page."""
    return text(f"{base}/jobs/{quote(job_id, safe='')}")


def query_href(base: str, params: Mapping[str, object]) -> str:
    """Return the escaped link to the jobs page with the non-empty ``params``."""
    kept = {k: str(v) for k, v in params.items() if v not in (None, "")}
    return text(f"{base}/?{urlencode(kept)}" if kept else f"{base}/")


def badge(status: str) -> str:
    """Return a status as a coloured badge."""
    return f'<span class="badge status-{text(status)}">{text(status)}</span>'


def when(value: datetime | None) -> str:
    """Return a time as ``2026-01-02 03:04:05 UTC``, in a ``<time>`` element."""
    if value is None:
        return '<span class="muted">-</span>'
    shown = value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<time datetime="{text(value.isoformat())}">{text(shown)}</time>'


def seconds(value: object) -> str:
    """Return a duration in seconds as ``12.3 ms`` or ``1.20 s``."""
    if not isinstance(value, int | float):
        return "-"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.001:
        return f"{value * 1000:.1f} ms"
    return f"{value * 1_000_000:.0f} µs"


def table(
    headers: Iterable[str], rows: Iterable[Iterable[str]], *, css: str = ""
) -> str:
    """Return a table; ``rows`` cells are HTML already (escape values first)."""
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f'<table class="{text(css)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def page(
    title: str,
    body: str,
    *,
    base: str,
    store: str,
    poll: tuple[str, str] = ("", ""),
    read_only: bool,
) -> str:
    """Return a whole HTML document: header, ``body`` (HTML), the shipped assets.

    ``poll`` is the URL that the page's script polls while work is running,
    and what it answers now: the page reloads when the answer changes.
    """
    mode = "read-only" if read_only else "actions allowed"
    url, state = poll
    poll_attribute = (
        f' data-poll="{text(url)}" data-poll-state="{text(state)}"' if url else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{text(title)} · FlowForge inspector</title>
<link rel="stylesheet" href="{text(base)}/static/inspector.css">
<script src="{text(base)}/static/inspector.js" defer></script>
</head>
<body{poll_attribute}>
<header class="bar">
<a class="brand" href="{text(base)}/">FlowForge <span>inspector</span></a>
<span class="store" title="store">{text(store)}</span>
<span class="mode mode-{'ro' if read_only else 'rw'}">{mode}</span>
</header>
<main>
{body}
</main>
</body>
</html>
"""
