"""The delivery being handled on this thread, kept in a context variable."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

from flowforge.exceptions import ExecutionError

if TYPE_CHECKING:
    from flowforge.job_state import JobState
    from flowforge.routine import Routine
    from flowforge.types import Payload

__all__ = ["DeliveryContext", "current_delivery"]


@final
@dataclass(slots=True, eq=False)
class DeliveryContext:
    """What a handler may know about the delivery it is handling.

    Attributes:
        job: The running job's state.
        routine_id: The id of the routine whose handler runs.
        slot: The slot being handled, ``None`` for a source routine's call.
        seq: The delivery's sequence number in its job; with ``job.job_id``
            and ``routine_id`` it is a key that stays the same across retries
            and resumes, for making side effects idempotent.
        attempt: 0 for the first try, then 1, 2, ... for retries.

    Thread safety: each thread running a handler has its own.
    """

    job: JobState
    routine: Routine | None = None
    routine_id: str = ""
    slot: str | None = None
    seq: int = 0
    attempt: int = 0
    emissions: list[tuple[str, Payload]] = field(default_factory=list)

    @property
    def delivery_key(self) -> tuple[str, str, int]:
        """Return ``(job_id, routine_id, seq)``, stable across retries."""
        return (self.job.job_id, self.routine_id, self.seq)


CURRENT: ContextVar[DeliveryContext | None] = ContextVar(
    "flowforge_current_delivery", default=None
)


def current_delivery() -> DeliveryContext:
    """Return the delivery the calling handler is handling.

    Raises:
        ExecutionError: If called outside a handler run by FlowForge.
    """
    context = CURRENT.get()
    if context is None or context.routine is None:
        raise ExecutionError(
            "no delivery is being handled here; current_delivery() works only "
            "inside a handler (or a source routine's __call__) run by FlowForge"
        )
    return context
