"""A routine's handler-time totals and their rows: the tracker's figures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = [
    "SAMPLE_LIMIT",
    "Figures",
    "figures_from_row",
    "figures_to_row",
    "percentile",
    "totals_row",
]

SAMPLE_LIMIT: Final = 4096
"""Handler times kept per routine for percentiles: the most recent ones."""


@dataclass(slots=True)
class Figures:
    """One routine's totals over its folded handler times (see ``fold``)."""

    failures: int = 0
    retries: int = 0
    routed: int = 0
    runs: int = 0
    total_time: float = 0.0
    min_time: float = math.inf
    max_time: float = 0.0
    folded: int = 0
    """How many of the routine's kept times are already in these totals."""

    @property
    def successes(self) -> int:
        """The runs that succeeded: neither failed, retried nor routed."""
        return self.runs - self.failures - self.retries - self.routed

    def fold(self, times: list[float], trim_at: int = SAMPLE_LIMIT) -> None:
        """Add ``times[folded:]`` to the totals; keep the recent samples only.

        The samples are cut to the most recent ``SAMPLE_LIMIT`` once there
        are more than ``trim_at``: a store folds after every delivery, and
        cutting one sample each time would move the whole list each time.
        """
        unfolded = len(times) - self.folded
        if unfolded == 1:  # a store's fold after each delivery: no slice
            took = times[-1]
            self.runs += 1
            self.total_time += took  # as sum([took]) adds: the same float
            if took < self.min_time:
                self.min_time = took
            if took > self.max_time:
                self.max_time = took
        elif unfolded > 0:
            fresh = times[self.folded :]
            self.runs += len(fresh)
            self.total_time += sum(fresh)
            self.min_time = min(self.min_time, min(fresh))
            self.max_time = max(self.max_time, max(fresh))
        else:
            return
        if len(times) > trim_at:
            del times[:-SAMPLE_LIMIT]
        self.folded = len(times)


def totals_row(f: Figures) -> list[object]:
    """Return the totals of ``f`` as a stored row (no samples)."""
    # ``routed`` came last, later: rows without it are read as 0.
    low = None if f.min_time == math.inf else f.min_time
    return [f.successes, f.failures, f.retries, f.total_time, low, f.max_time, f.routed]


def figures_to_row(f: Figures, times: list[float]) -> list[object]:
    """Return ``f`` and its kept ``times`` as a serialized row."""
    # The times are oldest first, so the ring position is 0; routed comes last.
    *totals, routed = totals_row(f)
    return [*totals, list(times), 0, routed]


def figures_from_row(row: object) -> tuple[Figures, list[float]]:
    """Read a row made by :func:`figures_to_row` (or an older one) back.

    Raises:
        ValueError: If ``row`` is not such a row.
    """
    if not isinstance(row, list) or len(row) not in (8, 9):
        raise ValueError(f"a routine's figures must be a list of 9, got {row!r}")
    successes, failures, retries, total, low, high, samples, cursor = row[:8]
    routed = int(row[8]) if len(row) == 9 else 0
    times = [float(x) for x in samples]
    start = int(cursor)  # earlier versions kept a ring starting at ``cursor``
    times = times[start:] + times[:start]
    figures = Figures(
        failures=int(failures),
        retries=int(retries),
        routed=routed,
        runs=int(successes) + int(failures) + int(retries) + routed,
        total_time=float(total),
        min_time=math.inf if low is None else float(low),
        max_time=float(high),
        folded=len(times),
    )
    return figures, times


def percentile(ordered: list[float], percent: int) -> float:
    """Return the nearest-rank percentile of sorted values."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]
