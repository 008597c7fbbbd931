"""What the engine tells the ``flowforge`` logger and a flow's observers.

A flow's observers are resolved once per setup into an :class:`Observers`:
one tuple of bound methods per callback. A runtime without observers holds
``None``, and its loops test that one attribute when a run starts, so a job
with no observer pays nothing per delivery. A callback that raises is logged
and never breaks the job. Failures, retries and job ends go to the logger
whether or not a flow has observers; successful deliveries are never logged.
"""

from __future__ import annotations

import reprlib
import copy
import inspect
import logging
from collections.abc import Callable, Container, Sequence
from functools import partial
from typing import TYPE_CHECKING, Final, final

from flowforge._log import fields
from flowforge.exceptions import ArgumentTypeError, DefinitionError, StoreError
from flowforge.job_state import JobStatus
from flowforge.observer import CALLBACKS, DeliveryInfo, DeliveryResult

if TYPE_CHECKING:
    from flowforge.error_handler import ErrorHandler
    from flowforge.job_state import JobState
    from flowforge.record import Delivery
    from flowforge.routine import Routine

__all__ = [
    "Ending",
    "Observers",
    "add_observer",
    "delivery_ended",
    "delivery_failed",
    "delivery_started",
    "for_run",
    "job_ended",
    "job_not_recovered",
    "job_started",
    "job_taken_over",
    "remove_observer",
    "resolve_observers",
]

logger = logging.getLogger(__name__)

COMPLETED: Final = "completed"
RETRIED: Final = "retried"
FAILED: Final = "failed"
ROUTED: Final = "routed"
INTERRUPTED: Final = "interrupted"
JOB_FAILED: Final = JobStatus.FAILED

Callback = Callable[..., object]


@final
class Observers:
    """A flow's observers, as one tuple of bound methods per callback.

    Thread safety: immutable once built; any thread may read it.
    """

    __slots__ = (
        "on_job_start",
        "on_job_end",
        "on_delivery_start",
        "on_delivery_end",
        "on_retry",
        "on_error",
        "error_handler",
        "failures",
    )

    def __init__(
        self,
        observers: Sequence[object],
        error_handler: ErrorHandler | None,
        failures: Container[str] = (),
    ) -> None:
        """Look each callback up once on every observer that has it."""

        def found(name: str) -> tuple[Callback, ...]:
            methods = (getattr(o, name, None) for o in observers)
            return tuple(m for m in methods if callable(m))

        self.on_job_start = found("on_job_start")
        self.on_job_end = found("on_job_end")
        self.on_delivery_start = found("on_delivery_start")
        self.on_delivery_end = found("on_delivery_end")
        self.on_retry = found("on_retry")
        self.on_error = found("on_error")
        self.error_handler = error_handler
        """The flow's error handler, which says whether a failure is retried."""
        self.failures = failures
        """The routines whose final failures the flow routes to a fallback."""

    def retries(self, routine: Routine, error: BaseException, attempt: int) -> bool:
        """Say whether the runtime will retry a delivery that failed with ``error``."""
        handler = routine._error_handler or self.error_handler
        return handler is not None and handler.should_retry(error, attempt)


def resolve_observers(
    observers: Sequence[object],
    error_handler: ErrorHandler | None,
    failures: Container[str] = (),
) -> Observers | None:
    """Return what the engine calls for ``observers``; ``None`` if there are none.

    ``failures`` holds the ids of the routines whose final failures are
    routed (the flow's live mapping, so that later routes count).
    """
    return Observers(observers, error_handler, failures) if observers else None


def for_run(observers: Observers | None, failures: Container[str]) -> Observers | None:
    """Return ``observers`` for one run, whose failures route by ``failures``.

    A run routes failures by its own plan: a route added or removed while it
    runs does not change what the observers are told.
    """
    if observers is None:
        return None
    bound = copy.copy(observers)
    bound.failures = failures
    return bound


def add_observer(observers: tuple[object, ...], observer: object) -> tuple[object, ...]:
    """Return ``observers`` with ``observer`` added.

    Raises:
        ArgumentTypeError: If ``observer`` has none of the callbacks, or an
            ``async`` one (never awaited, it would never run).
        DefinitionError: If it was added already.
    """
    if not any(callable(getattr(observer, name, None)) for name in CALLBACKS):
        raise ArgumentTypeError(
            f"observer must have one or more of the methods {', '.join(CALLBACKS)} "
            f"(see flowforge.Observer), got {type(observer).__name__} "
            f"{reprlib.repr(observer)}"
        )
    coroutines = [
        name
        for name in CALLBACKS
        if inspect.iscoroutinefunction(getattr(observer, name, None))
    ]
    if coroutines:  # called without an await, it would never run
        raise ArgumentTypeError(
            f"observer callbacks must be plain functions, not async ones: "
            f"{type(observer).__name__}.{coroutines[0]}; in an async job they are "
            "called on its task, so schedule any async work from a plain method"
        )
    if any(o is observer for o in observers):
        raise DefinitionError(f"observer {observer!r} was added to this flow already")
    return (*observers, observer)


def remove_observer(
    observers: tuple[object, ...], observer: object
) -> tuple[object, ...]:
    """Return ``observers`` without ``observer``.

    Raises:
        DefinitionError: If it is not among them.
    """
    kept = tuple(o for o in observers if o is not observer)
    if len(kept) == len(observers):
        raise DefinitionError(
            f"observer {reprlib.repr(observer)} is not an observer of this flow; "
            "nothing to remove"
        )
    return kept


def _notify(
    callbacks: tuple[Callback, ...], args: tuple[object, ...], about: dict[str, object]
) -> None:
    """Call each callback with ``args``; log (never raise) what one raises."""
    for callback in callbacks:
        try:
            callback(*args)
        except Exception:  # noqa: BLE001  an observer never breaks the job
            logger.warning(
                "observer callback %r raised; the job goes on",
                callback,
                exc_info=True,
                extra=about,
            )


def job_started(observers: Observers | None, job: JobState) -> bool:
    """Log that ``job`` starts running, and tell the observers.

    Returns:
        Whether the job's end is reported however it ends (to observers, or
        at INFO); if not, only a failed or stopped job's end is (a WARNING or
        an ERROR), and one check per job is all that logging costs.
    """
    if observers is None and not logger.isEnabledFor(logging.INFO):
        return False  # DEBUG is off too
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "job %r of flow %r starts running",
            job.job_id,
            job.flow_id,
            extra=fields(job.job_id),
        )
    if observers is not None:
        _notify(observers.on_job_start, (job,), fields(job.job_id))
    return True


def job_ended(
    observers: Observers | None, job: JobState, error: BaseException | None
) -> None:
    """Log how ``job``'s run ended (``error`` stopped it), and tell the observers.

    A store that failed is logged at ERROR, a failed job at WARNING, any
    other end at INFO.
    """
    if error is not None or job.status is JOB_FAILED:
        _log_stop(job, error)
    elif logger.isEnabledFor(logging.INFO):
        logger.info("job %r %s", job.job_id, job.status.value, extra=fields(job.job_id))
    if observers is not None:
        _notify(observers.on_job_end, (job,), fields(job.job_id))


def _log_stop(job: JobState, error: BaseException | None) -> None:
    """Log a job that failed, or whose run ``error`` stopped."""
    about = fields(job.job_id)
    if isinstance(error, StoreError):
        logger.error(
            "job %r stopped: its store failed; it stays in the store as of its "
            "last checkpoint, for a resume",
            job.job_id,
            exc_info=error,
            extra=about,
        )
    elif error is not None:
        logger.info(
            "job %r stopped by %s; it can be resumed",
            job.job_id,
            type(error).__name__,
            extra=about,
        )
    else:
        logger.warning("job %r failed: %s", job.job_id, _last_error(job), extra=about)


def _last_error(job: JobState) -> str:
    last = job.error  # not always the last one recorded (concurrent strategies)
    if last is None:
        return "no error recorded"
    return (
        f"routine {last.routine_id!r} slot {last.slot!r}: "
        f"{last.error_type}: {last.message}"
    )


def job_taken_over(job_id: str, owner: str | None, dead: bool) -> None:
    """Log that recovery took ``job_id`` over from ``owner``, to resume it."""
    if dead:
        reason = "its process is gone"
    else:
        reason = "its lease expired" if owner else "no process holds it"
    logger.info(
        "recovering job %r, taken over from owner %r: %s",
        job_id,
        owner,
        reason,
        extra=fields(job_id),
    )


def job_not_recovered(job_id: str, error: Exception) -> None:
    """Log why recovery left ``job_id`` as it is: ERROR if its store failed."""
    level = logging.ERROR if isinstance(error, StoreError) else logging.WARNING
    logger.log(
        level,
        "job %r was not recovered and stays in the store as it is: %s",
        job_id,
        error,
        exc_info=error,
        extra=fields(job_id),
    )


def delivery_failed(
    job: JobState, delivery: Delivery, error: Exception, *, retried: bool
) -> None:
    """Log a delivery's failure: INFO when it is retried, else WARNING."""
    about = fields(job.job_id, delivery.routine_id, delivery.slot)
    if retried:
        logger.info(
            "routine %r failed on slot %r (attempt %d) with %s; retrying",
            delivery.routine_id,
            delivery.slot,
            delivery.attempt,
            type(error).__name__,
            extra=about,
        )
        return
    logger.warning(
        "routine %r failed on slot %r (attempt %d) in job %r",
        delivery.routine_id,
        delivery.slot,
        delivery.attempt,
        job.job_id,
        exc_info=error,
        extra=about,
    )


Ending = Callable[[BaseException | None, float], None]
"""Tells the observers how a delivery's handler ended: what it raised, how long
it took (:func:`delivery_ended`, bound to the delivery)."""


def delivery_started(
    observers: Observers | None, job: JobState, delivery: Delivery, routine: Routine
) -> Ending | None:
    """Tell the observers that a delivery's handler is about to run.

    Returns:
        What to call, on the same thread or task, once the handler ended;
        ``None`` when there are no observers.
    """
    if observers is None:
        return None
    info = DeliveryInfo(
        job.flow_id,
        job.job_id,
        delivery.routine_id,
        delivery.slot,
        delivery.seq,
        delivery.attempt,
    )
    _notify(observers.on_delivery_start, (info,), _about(info))
    return partial(delivery_ended, observers, info, routine)


def delivery_ended(
    observers: Observers,
    info: DeliveryInfo,
    routine: Routine,
    error: BaseException | None,
    duration: float,
) -> None:
    """Tell the observers how a delivery's handler ended, then of its failure."""
    if error is None:
        outcome = COMPLETED
    elif not isinstance(error, Exception):
        outcome = INTERRUPTED
    elif observers.retries(routine, error, info.attempt):
        outcome = RETRIED
    else:
        outcome = ROUTED if info.routine_id in observers.failures else FAILED
    about = _about(info)
    result = DeliveryResult(outcome, duration, error)
    _notify(observers.on_delivery_end, (info, result), about)
    if outcome is RETRIED:
        _notify(observers.on_retry, (info, error), about)
    elif outcome is FAILED or outcome is ROUTED:
        _notify(observers.on_error, (info, error), about)


def _about(info: DeliveryInfo) -> dict[str, object]:
    return fields(info.job_id, info.routine_id, info.slot)
