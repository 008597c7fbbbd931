"""The delivery being handled on this thread, kept in a context variable."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

from flowforge.exceptions import ExecutionError

if TYPE_CHECKING:
    from flowforge.job_state import JobState
    from flowforge.record import Delivery
    from flowforge.types import Payload

__all__ = ["DeliveryContext", "check_emission", "current_delivery"]


@final
@dataclass(slots=True, eq=False)
class DeliveryContext:
    """What a handler may know about the delivery it is handling.

    The scheduler reuses one context per run and points it at each delivery
    in turn: read what you need while your handler runs (copy
    :attr:`delivery_key` if you keep it).

    Thread safety: each thread running a handler has its own.
    """

    job: JobState
    """The running job's state."""
    # What the engine points the context at; not for handlers. The routine
    # whose handler runs is an ``object`` because routines sit above this
    # module (emit() only compares it with ``self``).
    _routine: object = None
    _delivery: Delivery | None = None
    _emissions: list[tuple[str, Payload]] = field(default_factory=list)
    # For check_emission, in the call being handled: up to which emission
    # ``emit`` need not check, for which event, and how many deliveries the
    # checked emissions make, ``(emissions, deliveries, the event's fan-out)``.
    _check_at: int = 0
    _check_event: str = ""
    _tally: tuple[int, int, int] = (0, 0, 0)

    @property
    def routine_id(self) -> str:
        """The id of the routine whose handler runs."""
        return self._current().routine_id

    @property
    def slot(self) -> str | None:
        """The slot being handled, ``None`` for a source routine's call."""
        return self._current().slot

    @property
    def seq(self) -> int:
        """The delivery's sequence number in its job."""
        return self._current().seq

    @property
    def attempt(self) -> int:
        """0 for the first try, then 1, 2, ... for retries."""
        return self._current().attempt

    @property
    def delivery_key(self) -> tuple[str, str, int]:
        """The delivery's key, ``(job_id, routine_id, seq)``, stable across retries.

        Use it to make a handler's side effects idempotent, for example as
        the key of a write to another system.
        """
        delivery = self._current()
        return (self.job.job_id, delivery.routine_id, delivery.seq)

    def _current(self) -> Delivery:
        if self._delivery is None:
            raise ExecutionError("this context is not handling a delivery")
        return self._delivery


CURRENT: ContextVar[DeliveryContext | None] = ContextVar(
    "flowforge_current_delivery", default=None
)


def current_delivery() -> DeliveryContext:
    """Return the delivery the calling handler is handling.

    Raises:
        ExecutionError: If called outside a handler run by FlowForge.
    """
    context = CURRENT.get()
    if context is None or context._routine is None:
        raise ExecutionError(
            "no delivery is being handled here; current_delivery() works only "
            "inside a handler (or a source routine's __call__) run by FlowForge"
        )
    return context


def check_emission(context: DeliveryContext, event_name: str) -> None:
    """Refuse an emission that would take one handler call past ``max_pending``.

    One handler call's emissions all become pending deliveries when it
    returns, one per edge of the emitted event, so more of them than
    ``Flow(max_pending=...)`` allows would be held in memory before the
    scheduler's own check: the emit that crosses the bound, counting each
    emission's fan-out, fails instead. ``emit`` calls this for a call's
    second emission, then only once ``_check_at`` emissions are made or the
    event changes: until then, emissions of ``_check_event`` cannot cross it.

    Raises:
        ExecutionError: If this emission would pass the bound.
    """
    job, emissions = context.job, context._emissions
    limit, made = job._max_pending, len(emissions)
    if made >= limit:
        raise too_many_emissions(context, event_name, made)
    routes, rid = job.tracker._routes, context._current().routine_id
    if made == 1:  # a new call: count its first emission
        counted, fan_out = 1, len(routes.get((rid, emissions[0][0]), ()))
        deliveries = fan_out
    else:  # the emissions since the last check were all of _check_event
        counted, deliveries, fan_out = context._tally
        deliveries += (made - counted) * fan_out
    fan_out = len(routes.get((rid, event_name), ()))
    if deliveries + fan_out > limit:
        raise too_many_emissions(context, event_name, deliveries)
    made, deliveries = made + 1, deliveries + fan_out
    safe = (
        limit - made
        if not fan_out
        else min(limit - made, (limit - deliveries) // fan_out)
    )
    context._check_at, context._check_event = made + safe, event_name
    context._tally = (made, deliveries, fan_out)


def too_many_emissions(
    context: DeliveryContext, event_name: str, deliveries: int
) -> ExecutionError:
    """Return the error of an emission past the flow's bound on pending work."""
    job, routine_id = context.job, context.routine_id
    limit, made = job._max_pending, len(context._emissions)
    fan_out = "" if deliveries == made else f" (making {deliveries:,} deliveries)"
    return ExecutionError(
        f"job {job.job_id!r} reached the flow's limit of {limit:,} pending "
        f"deliveries: routine {routine_id!r} emitted {event_name!r} after "
        f"{made:,} emissions in one handler call{fan_out}, so the delivery fails "
        "and its emissions are discarded. Make it emit less per call (split the "
        "work over several deliveries), or raise Flow(max_pending=...)"
    )
