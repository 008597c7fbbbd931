"""ExecutionTracker: per-job counts and timings for routines, events and the flow."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, final

from flowforge.exceptions import SerializationError, UnknownPortError
from flowforge.serialization import FORMAT_VERSION, check_version, read

__all__ = ["ExecutionTracker", "FlowPerformance", "RoutinePerformance"]

SAMPLE_LIMIT: Final = 4096
"""Handler times kept per routine for percentiles: the most recent ones."""

COMPLETED: Final = "completed"
FAILED: Final = "failed"
RETRIED: Final = "retried"

EventKey = tuple[str, str]
Targets = tuple[tuple[str, str], ...]


@final
@dataclass(frozen=True, slots=True)
class RoutinePerformance:
    """What one routine did in one job, and how long its handler took (seconds).

    ``deliveries`` counts deliveries that reached an outcome: ``successes``
    plus ``failures`` (failed for good). ``runs`` also counts the attempts that
    failed and were retried (``retries``). ``success_rate`` is per delivery,
    so a routine whose retries all recovered has a rate of 1.0. Times are per
    handler run; ``p50`` and ``p95`` are over the most recent
    ``SAMPLE_LIMIT`` runs, ``min``, ``avg`` and ``max`` over all of them.
    """

    routine_id: str
    deliveries: int
    runs: int
    successes: int
    failures: int
    retries: int
    success_rate: float
    min_time: float
    avg_time: float
    max_time: float
    p50_time: float
    p95_time: float


@final
@dataclass(frozen=True, slots=True)
class FlowPerformance:
    """Totals for one job: deliveries, runs, emissions, wall time and throughput.

    ``throughput`` is deliveries per second of wall time.
    """

    deliveries: int
    runs: int
    successes: int
    failures: int
    retries: int
    events_emitted: int
    wall_time: float
    throughput: float


@dataclass(slots=True)
class _Figures:
    successes: int = 0
    failures: int = 0
    retries: int = 0
    total_time: float = 0.0
    min_time: float = math.inf
    max_time: float = 0.0
    samples: list[float] = field(default_factory=list)
    cursor: int = 0


@final
class ExecutionTracker:
    """Counts and times what one job runs.

    The scheduler reports each handler run with :meth:`record_run`, each
    emission with :meth:`record_emission`, and the job's wall time with
    :meth:`add_wall_time`; users read the figures.

    Thread safety: written by the job's scheduler only; read it once the job
    has ended or paused.
    """

    __slots__ = ("_routines", "_events", "_targets", "wall_time")

    def __init__(self) -> None:
        """Create a tracker with no figures."""
        self._routines: dict[str, _Figures] = {}
        self._events: dict[EventKey, int] = {}
        self._targets: dict[EventKey, Targets] = {}
        self.wall_time = 0.0

    def record_run(self, routine_id: str, outcome: str, seconds: float) -> None:
        """Count one handler run of ``routine_id`` and its ``outcome``.

        Args:
            routine_id: The routine whose handler ran.
            outcome: ``"completed"``, ``"failed"`` or ``"retried"``.
            seconds: How long the handler took.
        """
        figures = self._routines.get(routine_id)
        if figures is None:
            figures = self._routines[routine_id] = _Figures()
        if outcome == COMPLETED:
            figures.successes += 1
        elif outcome == RETRIED:
            figures.retries += 1
        else:
            figures.failures += 1
        figures.total_time += seconds
        if seconds < figures.min_time:
            figures.min_time = seconds
        if seconds > figures.max_time:
            figures.max_time = seconds
        samples = figures.samples
        if len(samples) < SAMPLE_LIMIT:
            samples.append(seconds)
        else:  # a ring of the most recent runs
            samples[figures.cursor] = seconds
            figures.cursor = (figures.cursor + 1) % SAMPLE_LIMIT

    def record_emission(self, key: EventKey, targets: Targets) -> None:
        """Count one emission of event ``key`` (``(routine_id, event)``)."""
        events = self._events
        count = events.get(key)
        if count is None:
            events[key] = 1
            self._targets[key] = targets
        else:
            events[key] = count + 1

    def add_wall_time(self, seconds: float) -> None:
        """Add the wall time of one run of the job (a resumed job runs again)."""
        self.wall_time += seconds

    def get_routine_performance(self, routine_id: str) -> RoutinePerformance:
        """Return the figures of one routine.

        Raises:
            UnknownPortError: If the routine's handler never ran in this job.
        """
        figures = self._routines.get(routine_id)
        if figures is None:
            raise UnknownPortError(
                f"routine {routine_id!r} has no recorded runs; "
                f"routines with runs: {sorted(self._routines)}"
            )
        deliveries = figures.successes + figures.failures
        runs = deliveries + figures.retries
        ordered = sorted(figures.samples)
        return RoutinePerformance(
            routine_id=routine_id,
            deliveries=deliveries,
            runs=runs,
            successes=figures.successes,
            failures=figures.failures,
            retries=figures.retries,
            success_rate=figures.successes / deliveries if deliveries else 0.0,
            min_time=figures.min_time,
            avg_time=figures.total_time / runs,
            max_time=figures.max_time,
            p50_time=_percentile(ordered, 50),
            p95_time=_percentile(ordered, 95),
        )

    def get_flow_performance(self) -> FlowPerformance:
        """Return the totals of the job."""
        figures = self._routines.values()
        successes = sum(f.successes for f in figures)
        failures = sum(f.failures for f in figures)
        retries = sum(f.retries for f in figures)
        deliveries = successes + failures
        return FlowPerformance(
            deliveries=deliveries,
            runs=deliveries + retries,
            successes=successes,
            failures=failures,
            retries=retries,
            events_emitted=sum(self._events.values()),
            wall_time=self.wall_time,
            throughput=deliveries / self.wall_time if self.wall_time > 0 else 0.0,
        )

    def get_event_counts(self) -> dict[EventKey, int]:
        """Return how often each ``(routine_id, event)`` was emitted."""
        return dict(self._events)

    def get_event_targets(self, routine_id: str, event: str) -> Targets:
        """Return the ``(routine_id, slot)`` pairs an emitted event was sent to."""
        return self._targets.get((routine_id, event), ())

    @property
    def routine_ids(self) -> list[str]:
        """The routines whose handlers ran, in first-run order."""
        return list(self._routines)

    def routine_figures(self, routine_id: str) -> dict[str, object]:
        """Return one routine's counts and times and its events' counts, as data.

        Leaves out the time samples, so that a store can save these figures
        after every delivery at a cost that does not grow with the job.
        """
        f = self._routines.get(routine_id)
        row = None
        if f is not None:
            low = None if f.min_time == math.inf else f.min_time
            row = [f.successes, f.failures, f.retries, f.total_time, low, f.max_time]
        events = [
            [event, count, [list(t) for t in self._targets[(rid, event)]]]
            for (rid, event), count in self._events.items()
            if rid == routine_id
        ]
        return {"figures": row, "events": events}

    def restore_routine_figures(self, routine_id: str, data: object) -> None:
        """Take back counts saved by :meth:`routine_figures`; keep the samples.

        Raises:
            SerializationError: If the data is malformed.
        """
        try:
            row, events = data["figures"], data["events"]  # type: ignore[index]
            if row is not None:
                figures = self._routines.get(routine_id) or _Figures()
                self._routines[routine_id] = figures
                successes, failures, retries, total, low, high = row
                figures.successes, figures.failures = int(successes), int(failures)
                figures.retries, figures.total_time = int(retries), float(total)
                figures.min_time = math.inf if low is None else float(low)
                figures.max_time = float(high)
            for event, count, targets in events:
                key = (routine_id, str(event))
                self._events[key] = int(count)
                self._targets[key] = tuple((str(t), str(s)) for t, s in targets)
        except (KeyError, TypeError, ValueError) as error:
            raise SerializationError(
                f"execution tracker figures of {routine_id!r} are malformed: {error!r}"
            ) from error

    def serialize(self) -> dict[str, object]:
        """Return every figure as a versioned dict of JSON types."""
        return {
            "version": FORMAT_VERSION,
            "wall_time": self.wall_time,
            "routines": {
                routine_id: [
                    f.successes,
                    f.failures,
                    f.retries,
                    f.total_time,
                    None if f.min_time == math.inf else f.min_time,
                    f.max_time,
                    list(f.samples),
                    f.cursor,
                ]
                for routine_id, f in self._routines.items()
            },
            "events": [
                [rid, event, count, [list(t) for t in self._targets[(rid, event)]]]
                for (rid, event), count in self._events.items()
            ],
        }

    @classmethod
    def deserialize(cls, data: object) -> ExecutionTracker:
        """Rebuild a tracker from :meth:`serialize`'s dict.

        Raises:
            SerializationError: If the data is malformed.
        """
        where = "execution tracker"
        data = check_version(data, where)
        tracker = cls()
        try:
            tracker.wall_time = read(data, "wall_time", float, where)
            for rid, row in read(data, "routines", dict, where).items():
                tracker._routines[str(rid)] = _figures_from_row(row)
            for rid, event, count, targets in read(data, "events", list, where):
                key = (str(rid), str(event))
                tracker._events[key] = int(count)
                tracker._targets[key] = tuple((str(t), str(s)) for t, s in targets)
        except (TypeError, ValueError) as error:
            raise SerializationError(f"{where}: malformed data: {error}") from error
        return tracker

    def __eq__(self, other: object) -> bool:
        """Compare every figure."""
        if not isinstance(other, ExecutionTracker):
            return NotImplemented
        return self.serialize() == other.serialize()

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        """Return how many routines and events have figures."""
        return (
            f"ExecutionTracker(routines={len(self._routines)}, "
            f"events={len(self._events)})"
        )


def _figures_from_row(row: object) -> _Figures:
    if not isinstance(row, list) or len(row) != 8:
        raise ValueError(f"a routine's figures must be a list of 8, got {row!r}")
    successes, failures, retries, total, low, high, samples, cursor = row
    return _Figures(
        successes=int(successes),
        failures=int(failures),
        retries=int(retries),
        total_time=float(total),
        min_time=math.inf if low is None else float(low),
        max_time=float(high),
        samples=[float(x) for x in samples],
        cursor=int(cursor),
    )


def _percentile(ordered: list[float], percent: int) -> float:
    """Return the nearest-rank percentile of sorted values."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]
