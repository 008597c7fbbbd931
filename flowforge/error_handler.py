"""ErrorHandler and ErrorStrategy: what happens when a routine's handler raises."""

from __future__ import annotations

import reprlib
import math
import random
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final, final

from flowforge._names import check_type
from flowforge.exceptions import ArgumentTypeError, DefinitionError, SerializationError
from flowforge.serialization import (
    FORMAT_VERSION,
    check_registry,
    check_version,
    exception_name,
    read,
    read_optional,
    resolve_exception,
)

__all__ = ["ErrorHandler", "ErrorStrategy"]

MAX_RETRY_DELAY: Final = 7 * 24 * 3600.0
"""The longest single wait before a retry, in seconds (one week): a longer one
cannot be slept by every clock, and is better served by pausing the job."""


class ErrorStrategy(StrEnum):
    """How a failed delivery affects the job.

    ``STOP`` fails the job, ``CONTINUE`` records the error and goes on, ``SKIP``
    also stops delivering to the routine for the rest of the job, and ``RETRY``
    delivers again after a delay, for retryable exceptions only; once it gives
    up it fails the job, unless the handler is optional.
    """

    STOP = "stop"
    CONTINUE = "continue"
    RETRY = "retry"
    SKIP = "skip"


@final
class ErrorHandler:
    """A routine's or a flow's policy for failed deliveries.

    Args:
        strategy: An :class:`ErrorStrategy` or its string value.
        max_retries: Attempts after the first, for ``RETRY``.
        retry_delay: Seconds before the first retry, at most one week.
        retry_backoff: Factor applied to the delay after each retry (>= 1).
        max_retry_delay: Upper bound on any single delay, jitter included;
            ``None`` caps delays at one week, the largest cap allowed.
        retry_jitter: Fraction in ``[0, 1]``: each delay is multiplied by a
            random factor in ``[1 - jitter, 1 + jitter]``.
        retryable_exceptions: An exception class or an iterable of them,
            worth retrying; any other exception is handled as if retries
            were exhausted.
        is_critical: A bool: a final failure of the routine always fails
            the job (acts as ``STOP``, whatever the strategy).
        is_optional: A bool: a final failure of the routine never fails the
            job: ``STOP``, and ``RETRY`` once it gives up, act as
            ``CONTINUE`` (``SKIP`` stays ``SKIP``). A handler cannot be both
            critical and optional.

    A delivery fails for good ("final failure") when the strategy is not
    ``RETRY``, when its exception is not one of ``retryable_exceptions``, or
    when ``max_retries`` retries are used up: then ``RETRY`` acts as ``STOP``
    unless the handler is optional. :meth:`final_strategy` says what applies.

    Retry counts live in each delivery, so one handler object may serve many
    routines and jobs. Thread safety: immutable after construction.
    """

    __slots__ = (
        "strategy",
        "max_retries",
        "retry_delay",
        "retry_backoff",
        "max_retry_delay",
        "retry_jitter",
        "retryable_exceptions",
        "is_critical",
        "is_optional",
    )

    def __init__(
        self,
        strategy: ErrorStrategy | str = ErrorStrategy.STOP,
        *,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        max_retry_delay: float | None = None,
        retry_jitter: float = 0.0,
        retryable_exceptions: type[BaseException] | Iterable[type[BaseException]] = (
            Exception,
        ),
        is_critical: bool = False,
        is_optional: bool = False,
    ) -> None:
        """Validate every option; bad values raise :class:`DefinitionError`."""
        self.strategy = _strategy(strategy)
        self.max_retries = _count(max_retries, "max_retries")
        self.retry_delay = _delay(retry_delay, "retry_delay")
        self.retry_backoff = _seconds(retry_backoff, "retry_backoff")
        if self.retry_backoff < 1:
            raise DefinitionError(
                "retry_backoff must be at least 1 (got "
                f"{reprlib.repr(retry_backoff)}); "
                "use 1 for a constant delay"
            )
        self.max_retry_delay = (
            None
            if max_retry_delay is None
            else _delay(max_retry_delay, "max_retry_delay")
        )
        self.retry_jitter = _seconds(retry_jitter, "retry_jitter")
        if self.retry_jitter > 1:
            raise DefinitionError(
                f"retry_jitter must be in [0, 1], got {reprlib.repr(retry_jitter)}"
            )
        self.retryable_exceptions = _exception_types(retryable_exceptions)
        if not isinstance(is_critical, bool):
            raise DefinitionError(
                f"is_critical must be a bool, got {reprlib.repr(is_critical)}"
            )
        if not isinstance(is_optional, bool):
            raise DefinitionError(
                f"is_optional must be a bool, got {reprlib.repr(is_optional)}"
            )
        if is_critical and is_optional:
            raise DefinitionError(
                "an error handler cannot be both critical and optional; choose "
                "is_critical=True (failures fail the job) or is_optional=True "
                "(the job goes on)"
            )
        self.is_critical = is_critical
        self.is_optional = is_optional
        last = self.max_retries - 1
        if last >= 0 and self.max_retry_delay is None and self._backoff(last) is None:
            raise DefinitionError(
                f"retry delay overflows after {last} retries (retry_delay="
                f"{self.retry_delay}, retry_backoff={self.retry_backoff}); set "
                "max_retry_delay to cap it"
            )

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Return whether a delivery that failed on ``attempt`` is tried again.

        Args:
            error: What the handler raised.
            attempt: The failed attempt, 0 for the first delivery.

        Raises:
            ArgumentTypeError: If ``error`` is not an exception or ``attempt``
                is not an int.
            DefinitionError: If ``attempt`` is negative.
        """
        _attempt(attempt)
        check_type(error, BaseException, "error", "an exception")
        return (
            self.strategy is ErrorStrategy.RETRY
            and attempt < self.max_retries
            and isinstance(error, self.retryable_exceptions)
        )

    def retry_delay_for(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the seconds to wait before retrying a failed ``attempt``.

        The delay is ``retry_delay * retry_backoff ** attempt``, times a jitter
        factor, capped by ``max_retry_delay`` (or one week):
        always a finite number of seconds, however large ``attempt``.

        Raises:
            ArgumentTypeError: If ``attempt`` is not an int, or ``rng`` is
                neither a ``random.Random`` nor ``None``.
            DefinitionError: If ``attempt`` is negative.
        """
        if rng is not None:
            check_type(rng, random.Random, "rng", "a random.Random or None")
        cap = MAX_RETRY_DELAY if self.max_retry_delay is None else self.max_retry_delay
        backoff = self._backoff(_attempt(attempt))
        delay = cap if backoff is None else min(backoff, cap)
        if self.retry_jitter:
            delay *= 1 + (rng or random).uniform(-self.retry_jitter, self.retry_jitter)
        return min(delay, cap)

    def _backoff(self, attempt: int) -> float | None:
        """Return the uncapped delay, or ``None`` if it overflows a float."""
        if not self.retry_delay:
            return 0.0  # zero times any backoff, however large
        try:
            delay = self.retry_delay * self.retry_backoff**attempt
        except OverflowError:  # a huge backoff or attempt
            return None
        return None if math.isinf(delay) else delay

    def final_strategy(self) -> ErrorStrategy:
        """Return what a final failure does: ``STOP``, ``CONTINUE`` or ``SKIP``.

        A critical handler stops; ``RETRY`` that gives up acts as ``STOP``;
        an optional handler turns ``STOP`` into ``CONTINUE``.
        """
        if self.is_critical:
            return ErrorStrategy.STOP
        strategy = self.strategy
        if strategy is ErrorStrategy.RETRY:
            strategy = ErrorStrategy.STOP
        if strategy is ErrorStrategy.STOP and self.is_optional:
            return ErrorStrategy.CONTINUE
        return strategy

    def serialize(self) -> dict[str, object]:
        """Return the handler as a versioned dict of JSON types.

        Exception classes are saved as ``module:QualName`` strings.
        """
        return {
            "version": FORMAT_VERSION,
            "strategy": self.strategy.value,
            "max_retries": self.max_retries,
            "retry_delay": self.retry_delay,
            "retry_backoff": self.retry_backoff,
            "max_retry_delay": self.max_retry_delay,
            "retry_jitter": self.retry_jitter,
            "retryable_exceptions": [
                exception_name(e) for e in self.retryable_exceptions
            ],
            "is_critical": self.is_critical,
            "is_optional": self.is_optional,
        }

    @classmethod
    def deserialize(
        cls, data: object, registry: Mapping[str, type] | None = None
    ) -> ErrorHandler:
        """Rebuild a handler from :meth:`serialize`'s dict.

        Exception classes are looked up, never imported: see
        :func:`flowforge.serialization.resolve_exception`.

        Raises:
            SerializationError: If the data is malformed or names an unknown
                exception class.
        """
        where = "error handler"
        check_registry(registry)
        data = check_version(data, where)
        names = read(data, "retryable_exceptions", list, where)
        try:
            return cls(
                read(data, "strategy", str, where),
                max_retries=read(data, "max_retries", int, where),
                retry_delay=read(data, "retry_delay", float, where),
                retry_backoff=read(data, "retry_backoff", float, where),
                max_retry_delay=read_optional(data, "max_retry_delay", float, where),
                retry_jitter=read(data, "retry_jitter", float, where),
                retryable_exceptions=[
                    resolve_exception(str(name), registry) for name in names
                ],
                is_critical=read(data, "is_critical", bool, where),
                # Handlers saved before is_optional existed lack it: False.
                is_optional=read_optional(data, "is_optional", bool, where) is True,
            )
        except DefinitionError as error:
            raise SerializationError(f"{where}: {error}") from error

    def __eq__(self, other: object) -> bool:
        """Compare every option."""
        if not isinstance(other, ErrorHandler):
            return NotImplemented
        return all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    def __hash__(self) -> int:
        """Hash the strategy and retry count."""
        return hash((self.strategy, self.max_retries))

    def __repr__(self) -> str:
        """Return the strategy and the options that apply to it."""
        if self.strategy is not ErrorStrategy.RETRY:
            return (
                f"ErrorHandler({self.strategy.name}, is_critical={self.is_critical}, "
                f"is_optional={self.is_optional})"
            )
        names = ", ".join(e.__qualname__ for e in self.retryable_exceptions)
        return (
            f"ErrorHandler(RETRY, max_retries={self.max_retries}, "
            f"retry_delay={self.retry_delay}, retry_backoff={self.retry_backoff}, "
            f"max_retry_delay={self.max_retry_delay}, "
            f"retry_jitter={self.retry_jitter}, "
            f"retryable_exceptions=({names}), is_critical={self.is_critical}, "
            f"is_optional={self.is_optional})"
        )


def _strategy(value: ErrorStrategy | str) -> ErrorStrategy:
    try:
        if not isinstance(value, str):  # hashing another object calls its code
            raise ValueError(value)
        return ErrorStrategy(value)
    except ValueError:
        choices = ", ".join(repr(s.value) for s in ErrorStrategy)
        raise DefinitionError(
            f"unknown error strategy {reprlib.repr(value)}; use one of {choices}"
        ) from None


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DefinitionError(
            f"{name} must be a non-negative int, got {reprlib.repr(value)}"
        )
    return value


def _attempt(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"attempt must be an int, got {reprlib.repr(value)}")
    if value < 0:
        raise DefinitionError(
            f"attempt must be 0 or more (0 is the first), got {value}"
        )
    return value


def _delay(value: float, name: str) -> float:
    seconds = _seconds(value, name)
    if seconds > MAX_RETRY_DELAY:
        raise DefinitionError(
            f"{name} must be at most {MAX_RETRY_DELAY:g} seconds (one week), got "
            f"{reprlib.repr(value)}; a job that must wait longer is better paused "
            "and resumed"
        )
    return seconds


def _seconds(value: float, name: str) -> float:
    finite = isinstance(value, (int, float)) and math.isfinite(value)
    if isinstance(value, bool) or not finite or not value >= 0:
        raise DefinitionError(
            f"{name} must be a finite, non-negative number, got {reprlib.repr(value)}"
        )
    return float(value)


def _exception_types(
    types: type[BaseException] | Iterable[type[BaseException]],
) -> tuple[type[BaseException], ...]:
    if isinstance(types, (str, bytes)) or not isinstance(types, type | Iterable):
        raise DefinitionError(
            "retryable_exceptions must be an exception class or an iterable of "
            f"them, got {reprlib.repr(types)}"
        )
    items: tuple[object, ...] = (types,) if isinstance(types, type) else tuple(types)
    result: list[type[BaseException]] = []
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise DefinitionError(
                "retryable_exceptions must hold exception classes, got "
                f"{reprlib.repr(item)}"
            )
        result.append(item)
    return tuple(result)
