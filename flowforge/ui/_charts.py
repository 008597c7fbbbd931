"""Inline SVG charts: a job's timeline (one lane per routine) and jobs over time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from flowforge.record import HistoryRecord
from flowforge.ui._html import seconds, text

__all__ = ["jobs_chart", "timeline"]

_LABEL: Final = 150
_PLOT: Final = 760
_LANE: Final = 26
_AXIS: Final = 22
_MARKS: Final = {"failed": "✕", "retried": "↻"}


def _lanes(records: Sequence[HistoryRecord]) -> list[str]:
    lanes: list[str] = []
    for record in records:
        if record.routine_id not in lanes:
            lanes.append(record.routine_id)
    return lanes


def timeline(records: Sequence[HistoryRecord]) -> str:
    """Return an SVG timeline: a bar per delivery, from its start, as long as it ran.

    Failed deliveries are red and marked ✕, retried attempts amber and marked
    ↻; hovering a bar shows its sequence number, slot, outcome and time.
    """
    if not records:
        return '<p class="muted">No deliveries recorded yet.</p>'
    lanes = _lanes(records)
    start = min(r.started_at.timestamp() for r in records)
    end = max(r.started_at.timestamp() + r.duration for r in records)
    span = max(end - start, 1e-6)
    height = _AXIS + _LANE * len(lanes) + 6
    parts = [_axis(span, height)]
    for index, lane in enumerate(lanes):
        y = _AXIS + index * _LANE
        parts.append(
            f'<text class="tl-label" x="{_LABEL - 8}" y="{y + 17}">{text(lane)}</text>'
            f'<line class="tl-lane" x1="{_LABEL}" x2="{_LABEL + _PLOT}" '
            f'y1="{y + _LANE}" y2="{y + _LANE}"/>'
        )
    for record in records:
        offset = record.started_at.timestamp() - start
        parts.append(_bar(record, lanes.index(record.routine_id), offset, span))
    width = _LABEL + _PLOT + 20
    return (
        f'<svg class="timeline" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Timeline of the job\'s deliveries">{"".join(parts)}</svg>'
    )


def _axis(span: float, height: int) -> str:
    ticks = []
    for step in range(5):
        x = _LABEL + _PLOT * step / 4
        ticks.append(
            f'<line class="tl-tick" x1="{x:.1f}" x2="{x:.1f}" y1="{_AXIS - 4}" '
            f'y2="{height}"/><text class="tl-time" x="{x:.1f}" y="12">'
            f"{text(seconds(span * step / 4))}</text>"
        )
    return "".join(ticks)


def _bar(record: HistoryRecord, lane: int, offset: float, span: float) -> str:
    x = _LABEL + _PLOT * offset / span
    width = max(_PLOT * record.duration / span, 3.0)
    y = _AXIS + lane * _LANE + 5
    slot = record.slot or "call"
    tip = (
        f"#{record.seq} {record.routine_id}.{slot}: {record.outcome}, attempt "
        f"{record.attempt}, {seconds(record.duration)}"
    )
    bar = (
        f'<rect class="tl-bar outcome-{text(record.outcome)}" '
        f'data-seq="{record.seq}" x="{x:.2f}" y="{y}" width="{width:.2f}" '
        f'height="{_LANE - 10}" rx="2"><title>{text(tip)}</title></rect>'
    )
    mark = _MARKS.get(record.outcome)
    if mark is not None:
        bar += (
            f'<text class="tl-mark outcome-{text(record.outcome)}" '
            f'x="{x + width + 3:.2f}" y="{y + 12}">{mark}</text>'
        )
    return bar


def jobs_chart(histogram: Sequence[int]) -> str:
    """Return a small SVG bar chart of jobs per time bucket."""
    if not histogram:
        return ""
    top = max(max(histogram), 1)
    width = 10
    bars = []
    for index, count in enumerate(histogram):
        height = 56 * count / top
        bars.append(
            f'<rect class="chart-bar" x="{index * width + 1}" '
            f'y="{60 - height:.1f}" width="{width - 2}" height="{height:.1f}">'
            f"<title>{count} jobs</title></rect>"
        )
    return (
        f'<svg class="jobs-chart" viewBox="0 0 {width * len(histogram)} 60" '
        f'preserveAspectRatio="none" role="img" aria-label="Jobs over time">'
        f'{"".join(bars)}</svg>'
    )
