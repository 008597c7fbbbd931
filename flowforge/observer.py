"""Observers: objects told about jobs and deliveries as they run.

An observer is any object with one or more of the methods of
:class:`Observer`; add it with :meth:`Flow.add_observer
<flowforge.Flow.add_observer>`. Each delivery's callbacks get a small frozen
:class:`DeliveryInfo` (and, at its end, a :class:`DeliveryResult`) instead of
engine objects, so an observer cannot change what runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, final

if TYPE_CHECKING:
    from flowforge.job_state import JobState

__all__ = ["CALLBACKS", "DeliveryInfo", "DeliveryResult", "Observer"]

CALLBACKS: Final = (
    "on_job_start",
    "on_job_end",
    "on_delivery_start",
    "on_delivery_end",
    "on_retry",
    "on_error",
)
"""The methods FlowForge looks for on an observer."""


@final
@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """Which delivery an observer callback is about.

    Attributes:
        flow_id: The id of the job's flow.
        job_id: The id of the job.
        routine_id: The routine whose handler runs.
        slot: The slot handled, ``None`` for a source routine's call.
        seq: The delivery's sequence number in its job, stable across retries.
        attempt: 0 for the first try, then 1, 2, ... for retries.
    """

    flow_id: str
    job_id: str
    routine_id: str
    slot: str | None
    seq: int
    attempt: int


@final
@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How a delivery's handler call ended.

    Attributes:
        outcome: ``"completed"``; ``"retried"`` (it raised and will be tried
            again); ``"failed"`` (it raised and its error strategy gives up on
            it); ``"routed"`` (it raised, was given up on, and goes to the
            routine's failure route: handled, as the job's history says); or
            ``"interrupted"`` (a ``KeyboardInterrupt``, or the job's
            cancelling, stopped it: it goes back on the job's stack).
        duration: Seconds the handler ran.
        error: What the handler raised, ``None`` when it completed.
    """

    outcome: str
    duration: float
    error: BaseException | None


class Observer(Protocol):
    """What an observer may implement; each method is optional.

    FlowForge calls only the methods an observer has, looked up once when it
    is added. ``on_job_start`` and ``on_job_end`` run on the thread (or
    task) that runs the job. A delivery's callbacks run on the thread (or
    asyncio task) that runs its handler, in this order:
    ``on_delivery_start``, the handler, ``on_delivery_end``, then
    ``on_retry`` or ``on_error`` if it raised. ``on_delivery_start`` and
    ``on_delivery_end`` of one delivery run in the same context, around the
    handler call, so an observer may set a context variable in one and reset
    it in the other, and the handler sees it. A delivery whose handler does
    not run (a join still waiting, a skipped routine, a failed merge) has no
    callbacks.

    An observer that raises is logged (WARNING, with the exception) on the
    ``flowforge`` logger and never changes the job. Callbacks of the
    concurrent strategies run on several threads or tasks at once.
    """

    def on_job_start(self, job: JobState) -> None:
        """Say that ``job`` starts (or resumes) running."""

    def on_job_end(self, job: JobState) -> None:
        """Say that ``job`` stopped running; its ``status`` says how."""

    def on_delivery_start(self, delivery: DeliveryInfo) -> None:
        """Say that a delivery's handler is about to run."""

    def on_delivery_end(self, delivery: DeliveryInfo, result: DeliveryResult) -> None:
        """Say that a delivery's handler returned or raised."""

    def on_retry(self, delivery: DeliveryInfo, error: BaseException) -> None:
        """Say that a delivery failed with ``error`` and will be tried again."""

    def on_error(self, delivery: DeliveryInfo, error: BaseException) -> None:
        """Say that a delivery failed with ``error`` for good (no retry is left)."""
