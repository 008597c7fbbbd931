"""The real clock behind the scheduler's time seam."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import final


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

    def __repr__(self) -> str:
        """Return ``SystemClock()``."""
        return "SystemClock()"
