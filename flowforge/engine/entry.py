"""Where a new job starts: its entry params checked, its entry slot chosen.

A source routine (one that overrides ``__call__``) is called with the params
as keyword arguments; any other routine receives them on the slot that
``execute(..., entry_slot=...)`` names, or on its only slot.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from flowforge._names import check_type
from flowforge.engine.plan import is_source
from flowforge.exceptions import ArgumentTypeError, DefinitionError, UnknownPortError

if TYPE_CHECKING:
    from flowforge.engine.plan import Plan
    from flowforge.routine import Routine
    from flowforge.types import Payload

__all__ = ["check_entry_params", "choose_entry_slot", "entry_routine"]


def entry_routine(plan: Plan, flow_id: str, routine_id: str) -> Routine:
    """Return the routine a new job starts at.

    Raises:
        ArgumentTypeError: If ``routine_id`` is not a str.
        UnknownPortError: If the flow has no such routine.
    """
    if type(routine_id) is not str:  # the usual id skips the call
        check_type(routine_id, str, "entry_routine_id", "a routine id (a str)")
    try:
        return plan.routines[routine_id]
    except (KeyError, TypeError):  # TypeError: an unhashable id
        raise UnknownPortError(
            f"flow {flow_id!r} has no routine {routine_id!r}; "
            f"routines: {sorted(plan.routines)}"
        ) from None


def check_entry_params(params: Mapping[str, object] | None) -> Payload:
    """Return a copy of a job's entry params, checked.

    Raises:
        TypeError: If ``params`` is not a mapping with str keys.
    """
    if params is None:
        return {}
    if type(params) is dict:
        try:  # the usual case: the copy checks that every key is a str
            return dict(**params)
        except TypeError:
            pass  # a key is no str: the same error as for any mapping, below
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise ArgumentTypeError(
            f"entry_params must be a mapping with str keys, got {reprlib.repr(params)}"
        )
    return dict(params)


def choose_entry_slot(
    routine: Routine, routine_id: str, entry_slot: str | None
) -> str | None:
    """Return the slot that receives a new job's params; ``None`` for a source.

    Raises:
        UnknownPortError: If ``entry_slot`` names no slot of the routine.
        DefinitionError: If the routine has no slot and is no source, or has
            several slots and ``entry_slot`` does not say which one.
    """
    if entry_slot is not None:
        return routine.get_slot(entry_slot).name
    if is_source(routine):
        return None
    slots = routine.slots
    if len(slots) == 1:
        return next(iter(slots))  # its one name, without a list
    if not slots:
        raise DefinitionError(
            f"entry routine {routine_id!r} has no slots and does not override "
            "__call__; give it a slot or make it a source routine"
        )
    raise DefinitionError(
        f"entry routine {routine_id!r} has several slots {list(slots)}; "
        "choose one with execute(..., entry_slot=...)"
    )
