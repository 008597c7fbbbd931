"""Failure routes: where a routine's final failures go, and which slots may take them.

A failure route sends each delivery that a routine's error strategy gives up
on to a slot of another routine (or of the same one) as an ordinary delivery
whose data has two keys, :data:`FAILURE_KEYS`: ``error``, the error record as
plain data, and ``payload``, the failed delivery's data. The slot's handler
must be able to take that data, which is checked when the route is made.
"""

from __future__ import annotations

import inspect
from typing import Final

from flowforge.exceptions import DefinitionError
from flowforge.slot import Slot

__all__ = ["FAILURE_KEYS", "check_failure_slot"]

FAILURE_KEYS: Final = ("error", "payload")
"""The keys of a routed failure's data."""


def check_failure_slot(slot: Slot, where: str) -> None:
    """Check that ``slot`` can receive a routed failure.

    A slot takes one when it is no join (a join waits for connected events,
    and a failure route is none) and its handler is called with the keys
    :data:`FAILURE_KEYS` without a missing parameter: it takes ``**kwargs``,
    one parameter (the whole data, or the value of a key of that name), or
    parameters that are all named ``error`` or ``payload`` or have defaults.

    Raises:
        DefinitionError: If it cannot; ``where`` names the slot in the message.
    """
    if slot.is_join:
        raise DefinitionError(
            f"{where} is a join, which waits for connected events; route "
            "failures to a slot that is no join"
        )
    missing = _unbound(slot)
    if missing:
        raise DefinitionError(
            f"{where}: handler parameters {missing} cannot be bound from a routed "
            f"failure, whose data has the keys {list(FAILURE_KEYS)}; name them "
            "'error' and 'payload', give them defaults, or take **kwargs"
        )


def _unbound(slot: Slot) -> list[str]:
    """Return the required handler parameters a failure's data leaves unbound."""
    if slot.handler is None:
        return []
    try:
        parameters = list(inspect.signature(slot.handler).parameters.values())
    except (TypeError, ValueError):  # no signature: the handler takes the dict
        return []
    named = [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if len(named) <= 1 or any(p.kind is p.VAR_KEYWORD for p in parameters):
        return []
    return [
        p.name for p in named if p.default is p.empty and p.name not in FAILURE_KEYS
    ]
