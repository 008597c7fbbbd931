"""Routine stats in a job: snapshots taken when a run stops, restored on resume.

A job keeps, per routine, a copy of the stats the routine's code recorded,
so that a saved job carries them and a resumed one starts from them.
"""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Final

from flowforge.exceptions import FlowForgeWarning

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flowforge.engine.plan import Plan
    from flowforge.job_state import JobState
    from flowforge.record import RoutineState
    from flowforge.routine import Routine

__all__ = ["restore_stats", "snapshot_one", "snapshot_routine", "snapshot_stats"]

_IMMUTABLE: Final = frozenset({int, float, str, bool, bytes, type(None)})


def snapshot_routine(job: JobState, plan: Plan, routine_id: str) -> None:
    """Copy one routine's stats into its state in ``job``, if it ran."""
    state = job.routine_states.get(routine_id)
    if state is not None:
        snapshot_one(plan.routines[routine_id], state)


def snapshot_one(routine: Routine, state: RoutineState) -> None:
    """Copy ``routine``'s stats into ``state``, its state in a job."""
    # Most routines never record stats: skip the locked copy for them.
    if not (routine._stats or state._stats):
        return
    stats = routine.stats()
    # A deep copy: a list kept in stats must not change the snapshot later.
    # Stats of plain counters and names (the usual) need only the copy.
    if not _IMMUTABLE.issuperset(map(type, stats.values())):
        try:
            stats = copy.deepcopy(stats)
        except Exception as error:  # noqa: BLE001  any value can refuse a copy
            warnings.warn(
                f"routine {state.routine_id!r}: its stats cannot be copied into "
                f"the job's snapshot ({type(error).__name__}: {error}), which keeps "
                "its previous value; keep plain values such as numbers, strings, "
                "lists and dicts in stats",
                FlowForgeWarning,
                stacklevel=2,
            )
            return
    state._stats = stats  # what the stats setter does, without its call


def snapshot_stats(job: JobState, plan: Plan) -> None:
    """Copy the stats of every routine that ran in ``job`` into its state."""
    states = job.routine_states
    if _nothing_to_copy(states, plan):
        return
    routines = plan.routines
    for routine_id, state in states.items():
        routine = routines[routine_id]
        if routine._stats or state._stats:  # as _snapshot checks, one call fewer
            snapshot_one(routine, state)


def _nothing_to_copy(states: Mapping[str, RoutineState], plan: Plan) -> bool:
    """Say, without touching each routine, that no state needs a snapshot.

    True if no routine of the flow holds stats and no state a snapshot (the
    usual job): the plan's stats dicts are read at once. False may be wrong
    (the loop then checks each state): a small job in a large flow checks
    only its own routines, so that its end does not grow with the flow.
    """
    if len(plan.stats) > 4 * len(states) or any(plan.stats):
        return False
    for state in states.values():
        if state._stats:
            return False
    return True


def restore_stats(routines: Mapping[str, Routine], job: JobState) -> None:
    """Bring back each routine's stats snapshot into a job loaded from data."""
    if job._stats_restored:
        return
    for routine_id, state in job.routine_states.items():
        routine = routines.get(routine_id)
        if routine is not None:
            routine.reset_stats()
            for key, value in state.stats.items():
                routine.set_stat(key, value)
    job._stats_restored = True
