"""The real clock behind the scheduler's time seam, and waiting on it from asyncio.

A clock may offer ``async def sleep_async(seconds)``; the async engine waits
with it, and otherwise calls the clock's ``sleep`` (a fake clock's returns at
once; a real one's would block the event loop).
"""

from __future__ import annotations

import reprlib
import asyncio
import inspect
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, final

from flowforge.exceptions import DefinitionError, ExecutionError

if TYPE_CHECKING:
    from flowforge.types import Clock


@final
class SystemClock:
    """Read the system's monotonic and wall clocks; sleep for real.

    Thread safety: stateless, safe from any thread.
    """

    __slots__ = ()

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` with :func:`time.sleep`."""
        time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        """Wait ``seconds`` on the running event loop with :func:`asyncio.sleep`."""
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        """Return ``SystemClock()``."""
        return "SystemClock()"


async def sleep_on_loop(clock: object, seconds: float) -> None:
    """Wait ``seconds`` through ``clock``: its ``sleep_async`` if it has one."""
    sleep_async = getattr(clock, "sleep_async", None)
    if sleep_async is not None:
        await sleep_async(seconds)
    else:
        clock.sleep(seconds)  # type: ignore[attr-defined]  # a Clock has sleep


def check_clock(clock: Clock | None) -> Clock | None:
    """Return ``clock`` if it has the time seam's methods, or is ``None``.

    Raises:
        DefinitionError: If a method is missing, or ``monotonic()`` gives no
            number; the message says which.
    """
    if clock is None:
        return None
    if isinstance(clock, type) or not all(
        callable(getattr(clock, name, None)) for name in ("monotonic", "now", "sleep")
    ):
        raise DefinitionError(
            "clock must be an object with monotonic(), now() and sleep() methods "
            "(such as flowforge.testing.FakeClock()), or None; got "
            f"{reprlib.repr(clock)}"
        )
    reading = clock.monotonic()
    if isinstance(reading, bool) or not isinstance(reading, (int, float)):
        raise DefinitionError(
            f"clock {clock!r}: monotonic() must return seconds as a float, got "
            f"{reading!r}"
        )
    sleep_async = getattr(clock, "sleep_async", None)
    if sleep_async is not None and not inspect.iscoroutinefunction(sleep_async):
        raise DefinitionError(
            f"clock {clock!r}: sleep_async must be an async def method (the async "
            "engine awaits it), or absent"
        )
    return clock


def checked_now(clock: Clock) -> datetime:
    """Return ``clock.now()`` if it is an aware datetime: a job is stamped with it.

    Raises:
        ExecutionError: If the clock gives anything else (a naive datetime
            would make a stored job that cannot be read back).
    """
    now = clock.now()
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ExecutionError(
            f"clock {clock!r}: now() must return an aware datetime (with a time "
            f"zone, such as datetime.now(UTC)), got {reprlib.repr(now)}"
        )
    return now
