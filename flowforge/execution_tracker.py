"""ExecutionTracker: per-job counts and timings for routines, events and the flow."""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, final

from flowforge._figures import (
    SAMPLE_LIMIT,
    Figures,
    figures_from_row,
    figures_to_row,
    percentile,
    totals_row,
)
from flowforge._names import check_type
from flowforge.exceptions import SerializationError, UnknownPortError
from flowforge.serialization import FORMAT_VERSION, check_version, read

__all__ = ["ExecutionTracker", "FlowPerformance", "RoutinePerformance"]

FOLD_AT: Final = SAMPLE_LIMIT + 512
"""How many handler times a routine's list holds before they are folded in."""

SPARSE_AT: Final = 4096
"""Flows with more event routes count a run's emissions in a dict."""

COMPLETED: Final = "completed"
FAILED: Final = "failed"
RETRIED: Final = "retried"
ROUTED: Final = "routed"

EventKey = tuple[str, str]
Targets = tuple[tuple[str, str], ...]


class _Sparse(dict[int, int]):
    """Counts by position that hold only the positions counted (0 otherwise)."""

    __slots__ = ()

    def __missing__(self, key: int) -> int:
        return 0


Counts = list[int] | _Sparse
"""A run's emission counts by route position: a list, or for a huge flow a dict."""


@final
@dataclass(frozen=True, slots=True)
class RoutinePerformance:
    """What one routine did in one job, and how long its handler took (seconds).

    Each handler run is counted once, in one of four counts: ``successes``
    (the handler returned), ``failures`` (failed for good: the job stopped,
    went on, or skipped the routine), ``retries`` (failed and tried again)
    and ``routed`` (failed for good and sent to a fallback routine).
    ``deliveries`` counts the runs that ended their delivery: ``successes +
    failures + routed``; ``runs`` adds the ``retries``. ``success_rate`` is
    ``successes / deliveries``: a routed failure is not a success, and a
    routine whose retries all recovered has a rate of 1.0. Times are per
    handler run; ``p50`` and ``p95`` are over the most recent 4,096 runs,
    ``min``, ``avg`` and ``max`` over all of them.
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
    routed: int = 0


@final
@dataclass(frozen=True, slots=True)
class FlowPerformance:
    """Totals for one job: deliveries, runs, emissions, wall time and throughput.

    The counts add up the routines' (see :class:`RoutinePerformance`);
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
    routed: int = 0


@final
class ExecutionTracker:
    """Counts and times what one job runs.

    Each job's :class:`~flowforge.JobState` holds one (``job.tracker``). The
    engine records every handler run, every emission and the job's wall time;
    you read the figures with the methods below. Event counts are listed
    sorted by routine id, then event name.

    Thread safety: written by the job's scheduler only; read it once the job
    has ended or paused.
    """

    # How the engine records: a handler run through _record_run (or, for a
    # completed run, by appending its time to the list _times_by_routine
    # returns), an emission by counting it in the list _counts_by_position
    # returns. Appending a time is all a run costs: totals are added up
    # (folded) when read, or once a routine has FOLD_AT unfolded times. The
    # inlined loop keeps a routine's first time alone in _firsts (a list per
    # routine is two allocations, about 3% of a chain's hop); reading _times
    # moves them into lists first, in first-run order (every routine of
    # _lists ran before any of _firsts, see _first_times).
    __slots__ = (
        "_lists",
        "_firsts",
        "_totals",
        "_events",
        "_targets",
        "_routes",
        "_live",
        "_live_keys",
        "_positions",
        "wall_time",
    )

    def __init__(self) -> None:
        """Create a tracker with no figures."""
        self._lists: dict[str, list[float]] = {}
        self._firsts: dict[str, float] = {}
        self._totals: dict[str, Figures] = {}
        self._events: dict[str, dict[str, int]] = {}
        """Counts folded from past runs and restores: routine id, event, count."""
        self._targets: dict[EventKey, Targets] = {}
        self._routes: Mapping[EventKey, Targets] = {}
        self._live: Counts = []
        self._live_keys: Sequence[EventKey] | None = None
        self._positions: Mapping[str, Sequence[int]] | None = None
        self.wall_time = 0.0

    def _record_run(self, routine_id: str, outcome: str, seconds: float) -> None:
        """Count one handler run of ``routine_id`` and its ``outcome``.

        Args:
            routine_id: The routine whose handler ran.
            outcome: ``"completed"``, ``"failed"``, ``"retried"`` or ``"routed"``.
            seconds: How long the handler took.
        """
        if outcome == RETRIED:
            self._figures(routine_id).retries += 1
        elif outcome == ROUTED:
            self._figures(routine_id).routed += 1
        elif outcome != COMPLETED:
            self._figures(routine_id).failures += 1
        times = self._times.get(routine_id)
        if times is None:
            self._times[routine_id] = [seconds]
        else:
            times.append(seconds)
            if len(times) >= FOLD_AT:
                self._fold(routine_id)

    def _reopen_failure(self, routine_id: str, *, undo: bool = False) -> int:
        """Count one failure of ``routine_id`` as a retried run instead.

        A failure that stopped the job leaves its delivery pending, and
        resuming the job runs it again: that failure was not for good.
        ``undo=True`` takes back a reopening whose resume never began.

        Returns:
            The routine's failures left, or -1 if it had none to reopen.
        """
        figures = self._figures(routine_id)
        if undo:
            figures.failures += 1
            figures.retries -= 1
        elif not figures.failures:
            return -1
        else:
            figures.failures -= 1
            figures.retries += 1
        return figures.failures

    @property
    def _times(self) -> dict[str, list[float]]:
        """Each routine's handler times, oldest first, by routine id in first-run order.

        Moves the first times kept alone (see ``_first_times``) into lists.
        """
        if self._firsts:
            lists = self._lists
            for routine_id, seconds in self._firsts.items():
                lists[routine_id] = [seconds]
            self._firsts.clear()
        return self._lists

    def _times_by_routine(self) -> dict[str, list[float]]:
        """Return the live map of routine id to its handler times, for the scheduler.

        Adding a routine's list (``[seconds]``) or appending ``seconds`` to
        it counts one completed run, like ``record_run(routine_id,
        "completed", seconds)``; whoever appends calls ``_fold`` once the
        list holds ``FOLD_AT`` times.
        """
        return self._times

    def _first_times(self) -> dict[str, float]:
        """Return the live map of a routine's first time kept alone, for the scheduler.

        A scheduler that holds it and ``_times_by_routine()`` counts a completed
        run of a routine in neither as ``first[routine_id] = seconds`` (no list
        made), and any later run through ``_times_by_routine()`` read again
        (``_times`` moves the first times into lists, in order). Nothing else
        adds to the map: the routines in it ran after every routine in a list.
        """
        return self._firsts

    def _fold(self, routine_id: str) -> None:
        """Add the handler times of ``routine_id`` not yet counted to its totals."""
        self._figures(routine_id).fold(self._times.setdefault(routine_id, []))

    def _figures(self, routine_id: str) -> Figures:
        figures = self._totals.get(routine_id)
        if figures is None:
            figures = self._totals[routine_id] = Figures()
        return figures

    def _summary(self, routine_id: str) -> Figures:
        self._fold(routine_id)
        return self._totals[routine_id]

    def _know_routes(
        self,
        routes: Mapping[EventKey, Targets],
        keys: Sequence[EventKey] | None = None,
        positions: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        """Start a run: say where each event goes and how it is counted.

        ``routes`` maps each ``(routine_id, event)`` of the running flow to
        where it goes; ``_counts_by_position`` then counts 0 for each of its
        keys, in its order. ``keys`` (the keys in that order) and
        ``positions`` (each routine's positions) save working them out per
        run; the plan gives them. The last run's counts are kept. A flow of
        more than ``SPARSE_AT`` routes counts in a dict, so that a job's
        start and memory do not grow with the flow.
        """
        if self._live:  # a new tracker (most jobs) has nothing to move
            self._add_positional_counts()
        self._routes, self._live_keys, self._positions = routes, keys, positions
        self._live = [0] * len(routes) if len(routes) <= SPARSE_AT else _Sparse()

    def _counts_by_position(self) -> Counts:
        """Return the list the scheduler counts this run's emissions in.

        Adding 1 at position ``i`` counts one emission of the ``i``-th key
        ``_know_routes`` was given (a list index is cheaper than a dict key
        of two strings). The list stays the same object for the whole run.
        """
        return self._live

    def _add_positional_counts(self) -> None:
        """Move the list's counts into the others, zeroing it in place."""
        self._add_live(self._events)
        if isinstance(self._live, list):
            self._live[:] = [0] * len(self._live)
        else:
            self._live.clear()

    def _live_items(self) -> Iterable[tuple[int, int]]:
        """Return each position with its count (zeros may be left out)."""
        live = self._live
        return live.items() if isinstance(live, dict) else enumerate(live)

    def _keys(self) -> Sequence[EventKey]:
        """Return the event key of each position, made when first needed."""
        if self._live_keys is None:
            self._live_keys = tuple(self._routes)
        return self._live_keys

    def _add_live(self, counts: dict[str, dict[str, int]]) -> None:
        for index, count in self._live_items():
            if count:
                rid, event = self._keys()[index]
                events = counts.setdefault(rid, {})
                events[event] = events.get(event, 0) + count

    def _positions_of(self, routine_id: str) -> Sequence[int]:
        if self._positions is None:
            positions: dict[str, list[int]] = {}
            for index, (rid, _) in enumerate(self._keys()):
                positions.setdefault(rid, []).append(index)
            self._positions = positions
        return self._positions.get(routine_id, ())

    def _counts(self) -> dict[EventKey, int]:
        """Return every event's count, sorted by key; changes nothing."""
        counts = {rid: dict(events) for rid, events in self._events.items()}
        self._add_live(counts)
        return dict(
            sorted(
                ((rid, event), n)
                for rid, events in counts.items()
                for event, n in events.items()
            )
        )

    def _record_emission(self, key: EventKey, targets: Targets) -> None:
        """Count one emission of event ``key`` (``(routine_id, event)``)."""
        events = self._events.setdefault(key[0], {})
        events[key[1]] = events.get(key[1], 0) + 1
        self._targets.setdefault(key, targets)

    def _targets_of(self, key: EventKey) -> Targets:
        targets = self._targets.get(key)
        if targets is None:
            targets = self._routes.get(key, ())
        return targets

    def _add_wall_time(self, seconds: float) -> None:
        """Add the wall time of one run of the job (a resumed job runs again)."""
        self.wall_time += seconds

    def get_routine_performance(self, routine_id: str) -> RoutinePerformance:
        """Return the figures of one routine.

        Raises:
            ArgumentTypeError: If ``routine_id`` is not a str.
            UnknownPortError: If the routine's handler never ran in this job.
        """
        check_type(routine_id, str, "routine_id", "a str")
        if routine_id not in self._times:
            raise UnknownPortError(
                f"routine {routine_id!r} has no recorded runs; "
                f"routines with runs: {sorted(self._times)}"
            )
        figures = self._summary(routine_id)
        deliveries = figures.successes + figures.failures + figures.routed
        runs = deliveries + figures.retries
        ordered = sorted(self._times[routine_id])
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
            p50_time=percentile(ordered, 50),
            p95_time=percentile(ordered, 95),
            routed=figures.routed,
        )

    def get_flow_performance(self) -> FlowPerformance:
        """Return the totals of the job."""
        figures = [self._summary(routine_id) for routine_id in self._times]
        successes = sum(f.successes for f in figures)
        failures = sum(f.failures for f in figures)
        retries = sum(f.retries for f in figures)
        routed = sum(f.routed for f in figures)
        deliveries = successes + failures + routed
        return FlowPerformance(
            deliveries=deliveries,
            runs=deliveries + retries,
            successes=successes,
            failures=failures,
            retries=retries,
            events_emitted=sum(sum(e.values()) for e in self._events.values())
            + sum(count for _, count in self._live_items()),
            wall_time=self.wall_time,
            throughput=deliveries / self.wall_time if self.wall_time > 0 else 0.0,
            routed=routed,
        )

    def get_event_counts(self) -> dict[EventKey, int]:
        """Return how often each ``(routine_id, event)`` was emitted."""
        return self._counts()

    def get_event_targets(self, routine_id: str, event: str) -> Targets:
        """Return the ``(routine_id, slot)`` pairs an emitted event was sent to.

        Raises:
            ArgumentTypeError: If ``routine_id`` or ``event`` is not a str.
        """
        check_type(routine_id, str, "routine_id", "a str")
        check_type(event, str, "event", "a str")
        return self._targets_of((routine_id, event))

    @property
    def routine_ids(self) -> list[str]:
        """The routines whose handlers ran, in first-run order."""
        return list(self._times)

    def _routine_figures(self, routine_id: str) -> dict[str, object]:
        """Return one routine's counts and times and its events' counts, as data.

        Leaves out the time samples, so that a store can save these figures
        after every delivery at a cost that does not grow with the job.
        """
        times = self._times.get(routine_id)
        row = None
        if times is not None:
            figures = self._totals.get(routine_id) or self._figures(routine_id)
            # Samples are cut when the scheduler folds (at FOLD_AT), as
            # in a job without a store, not by this fold after each delivery.
            figures.fold(times, FOLD_AT - 1)
            row = totals_row(figures)
        return {"figures": row, "events": self._event_rows(routine_id)}

    def _event_rows(self, routine_id: str) -> list[object]:
        """Return ``[event, count, targets]`` for each event counted, by event."""
        folded, positions = self._events.get(routine_id), self._positions_of(routine_id)
        if not (folded or positions):
            return []  # a routine that has no events, as most sinks
        counts, live = dict(folded) if folded else {}, self._live
        if positions:
            keys = self._keys()
            for index in positions:
                count = live[index]
                if count:
                    event = keys[index][1]
                    counts[event] = counts.get(event, 0) + count
        rows: list[object] = []  # a loop, not a comprehension: no frame of its own
        for event, count in (
            sorted(counts.items()) if len(counts) > 1 else counts.items()
        ):
            targets = self._targets_of((routine_id, event))
            rows.append([event, count, list(map(list, targets))])
        return rows

    def _restore_routine_figures(self, routine_id: str, data: object) -> None:
        """Take back counts saved by ``_routine_figures``; keep the samples.

        Raises:
            SerializationError: If the data is malformed.
        """
        self._add_positional_counts()
        try:
            row, events = data["figures"], data["events"]  # type: ignore[index]
            if row is not None:
                figures = self._summary(routine_id)
                successes, failures, retries, total, low, high, *routed = row
                figures.failures, figures.retries = int(failures), int(retries)
                figures.routed = int(routed[0]) if routed else 0
                figures.runs = int(successes) + figures.failures + figures.retries
                figures.runs += figures.routed
                figures.total_time = float(total)
                figures.min_time = math.inf if low is None else float(low)
                figures.max_time = float(high)
            counts = self._events.setdefault(routine_id, {})
            for event, count, targets in events:
                counts[str(event)] = int(count)
                key = (routine_id, str(event))
                self._targets[key] = tuple((str(t), str(s)) for t, s in targets)
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise SerializationError(
                f"execution tracker figures of {routine_id!r} are malformed: {error!r}"
            ) from error

    def serialize(self) -> dict[str, object]:
        """Return every figure as a versioned dict of JSON types."""
        return {
            "version": FORMAT_VERSION,
            "wall_time": self.wall_time,
            "routines": {
                routine_id: figures_to_row(self._summary(routine_id), times)
                for routine_id, times in self._times.items()
            },
            "events": [
                [rid, event, count, [list(t) for t in self._targets_of((rid, event))]]
                for (rid, event), count in self._counts().items()
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
                figures, times = figures_from_row(row)
                tracker._totals[str(rid)] = figures
                tracker._times[str(rid)] = times
            for rid, event, count, targets in read(data, "events", list, where):
                key = (str(rid), str(event))
                tracker._events.setdefault(key[0], {})[key[1]] = int(count)
                tracker._targets[key] = tuple((str(t), str(s)) for t, s in targets)
        except (TypeError, ValueError, OverflowError) as error:
            raise SerializationError(f"{where}: malformed data: {error}") from error
        return tracker

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle (and copy) through :meth:`serialize`.

        The copy keeps every figure and the targets of every event counted,
        but not the running flow's whole routing table.
        """
        return (ExecutionTracker.deserialize, (self.serialize(),))

    def __eq__(self, other: object) -> bool:
        """Compare every figure."""
        if not isinstance(other, ExecutionTracker):
            return NotImplemented
        return self.serialize() == other.serialize()

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        """Return how many routines and events have figures."""
        return (
            f"ExecutionTracker(routines={len(self._times)}, "
            f"events={len(self._counts())})"
        )
