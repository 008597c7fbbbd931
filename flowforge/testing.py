"""Helpers for testing flows: a fake clock and routines that record what they get.

Example:
    >>> from flowforge import Flow
    >>> from flowforge.testing import Recorder
    >>> flow = Flow()
    >>> sink = flow.add_routine(Recorder(), "sink")
    >>> flow.execute("sink", {"n": 1}).status
    <JobStatus.COMPLETED: 'completed'>
    >>> flow.routines["sink"].received
    [{'n': 1}]
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, final

from flowforge._context import current_delivery
from flowforge.routine import Routine
from flowforge.types import Payload

if TYPE_CHECKING:
    from flowforge.job_state import JobState, JobStatus
    from flowforge.store.base import Change, JobRecord, Store

__all__ = ["FakeClock", "Recorder", "Relay", "StoreWrapper"]


@final
class FakeClock:
    """A clock that moves only when told to, so tests never really sleep.

    ``sleep`` advances the clock and remembers the delay; :meth:`advance`
    lets a handler pretend that it took time.

    Thread safety: not thread-safe; use it with the sequential strategy.
    """

    def __init__(self, start: datetime | None = None) -> None:
        """Start at ``start`` (2026-01-01 UTC by default) and monotonic 0."""
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Return the seconds elapsed on this clock."""
        return self._elapsed

    def now(self) -> datetime:
        """Return the start time plus the elapsed seconds."""
        return self._start + timedelta(seconds=self._elapsed)

    def sleep(self, seconds: float) -> None:
        """Record ``seconds`` and advance the clock by it."""
        self.sleeps.append(seconds)
        self._elapsed += seconds

    async def sleep_async(self, seconds: float) -> None:
        """Record ``seconds`` and advance the clock by it, without waiting."""
        self.sleep(seconds)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` without recording a sleep."""
        self._elapsed += seconds

    def __repr__(self) -> str:
        """Return the elapsed time."""
        return f"FakeClock(elapsed={self._elapsed})"


class Recorder(Routine):
    """A routine with one slot, ``input``, that records every buffer it handles.

    ``received`` lists the buffers (copied) in arrival order; ``seen`` lists
    ``(job_id, seq)`` of each handled delivery. Set ``fail_times`` in its
    config (``set_config(fail_times=2)``) to make its first runs raise
    ``RuntimeError``.
    """

    def __init__(self) -> None:
        """Declare the ``input`` slot and the ``output`` event."""
        super().__init__()
        self.received: list[Payload] = []
        self.seen: list[tuple[str, int]] = []
        self.define_slot("input", self.record)
        self.define_event("output")

    def record(self, **data: object) -> None:
        """Record ``data``, fail if configured to, then emit it on ``output``."""
        delivery = current_delivery()
        self.seen.append((delivery.job.job_id, delivery.seq))
        failures = self.get_config("fail_times", 0)
        assert isinstance(failures, int)  # noqa: S101  set by the test itself
        if failures > 0:
            self.set_config(fail_times=failures - 1)
            raise RuntimeError(f"{delivery.routine_id} failing as configured")
        self.received.append(dict(data))
        self.emit("output", **data)


class Relay(Routine):
    """A routine that transforms its input and emits the result.

    Configure it with ``set_config(transform=callable)``; the callable takes
    the buffer and returns the dict to emit, or ``None`` to emit nothing. The
    default passes the buffer on unchanged.
    """

    def __init__(self) -> None:
        """Declare the ``input`` slot and the ``output`` event."""
        super().__init__()
        self.define_slot("input", self.relay)
        self.define_event("output")

    def relay(self, **data: object) -> None:
        """Emit ``transform(data)`` on ``output`` unless it is ``None``."""
        transform = self.get_config("transform")
        result: Payload | None = dict(data)
        if callable(transform):
            result = transform(data)
        if result is not None:
            self.emit("output", **result)


class StoreWrapper:
    """A store that passes every call to ``inner``: subclass it to watch or break one.

    Override the methods you care about and call ``super()`` to reach the real
    store, for example to count checkpoints, or to make the tenth one raise
    :class:`~flowforge.StoreError` and see that the job resumes correctly.

    Args:
        inner: The store that really keeps the jobs.

    Thread safety: as thread-safe as ``inner``.
    """

    def __init__(self, inner: Store) -> None:
        """Wrap ``inner``."""
        self.inner = inner

    def create(self, job_state: JobState, *, owner: str, lease_until: float) -> bool:
        """Pass the call on."""
        return self.inner.create(job_state, owner=owner, lease_until=lease_until)

    def save(
        self,
        job_state: JobState,
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> None:
        """Pass the call on."""
        self.inner.save(job_state, owner=owner, lease_until=lease_until)

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        """Pass the call on."""
        self.inner.checkpoint(job_state, change, owner=owner, lease_until=lease_until)

    def acquire(
        self,
        job_id: str,
        *,
        owner: str,
        lease_until: float,
        now: float,
        replacing: str | None = None,
    ) -> bool:
        """Pass the call on."""
        return self.inner.acquire(
            job_id, owner=owner, lease_until=lease_until, now=now, replacing=replacing
        )

    def renew(self, job_id: str, *, owner: str, lease_until: float) -> bool:
        """Pass the call on."""
        return self.inner.renew(job_id, owner=owner, lease_until=lease_until)

    def load(self, job_id: str) -> JobState:
        """Pass the call on."""
        return self.inner.load(job_id)

    def get(self, job_id: str) -> JobRecord:
        """Pass the call on."""
        return self.inner.get(job_id)

    def list_jobs(
        self, *, flow_id: str | None = None, status: JobStatus | str | None = None
    ) -> list[JobRecord]:
        """Pass the call on."""
        return self.inner.list_jobs(flow_id=flow_id, status=status)

    def delete(self, job_id: str) -> None:
        """Pass the call on."""
        self.inner.delete(job_id)

    def prune(
        self, *, older_than: timedelta | None = None, keep: int | None = None
    ) -> list[str]:
        """Pass the call on."""
        return self.inner.prune(older_than=older_than, keep=keep)

    def close(self) -> None:
        """Pass the call on."""
        self.inner.close()

    def __repr__(self) -> str:
        """Return the class and the wrapped store."""
        return f"{type(self).__name__}({self.inner!r})"
