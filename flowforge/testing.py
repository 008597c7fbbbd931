"""Helpers for testing flows and routines: a routine harness, a fake clock, recorders.

:func:`deliver` hands one routine one delivery, without a flow, and returns
its :class:`Outcome`: what it emitted, its stats, and the error it raised.

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

import asyncio
import inspect
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, final

from flowforge._context import CURRENT, DeliveryContext, current_delivery
from flowforge._names import check_type, free_id
from flowforge.engine.entry import choose_entry_slot
from flowforge.engine.jobs import check_store
from flowforge.engine.plan import is_async_source
from flowforge.engine.routing import refuse_awaitable
from flowforge.exceptions import ArgumentTypeError, ExecutionError
from flowforge.job_state import JobStatus, new_job_state
from flowforge.record import new_delivery
from flowforge.routine import Routine
from flowforge.types import Payload

if TYPE_CHECKING:
    from flowforge.job_state import JobState
    from flowforge.slot import Slot
    from flowforge.store.base import Change, JobRecord, Store

__all__ = [
    "FakeClock",
    "Outcome",
    "Recorder",
    "Relay",
    "StoreWrapper",
    "deliver",
    "deliver_async",
]

HARNESS_JOB_ID = "test-job"
"""The job id a handler run by :func:`deliver` sees in ``current_delivery()``."""


@final
@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery did to a routine, as :func:`deliver` returns it.

    Thread safety: a plain record; do not change it from several threads.
    """

    emissions: list[tuple[str, Payload]]
    """``(event, payload)`` per emission, in order; empty when it raised, as
    a job discards a failed handler's emissions."""
    error: Exception | None
    """What the handler raised, or ``None``."""
    stats: dict[str, object]
    """A copy of the routine's stats afterwards (they add up across calls)."""
    buffer: Payload | None
    """The slot's buffer afterwards, with the data merged in (the ``buffer``
    given, if the handler raised); ``None`` when there is none (a source)."""

    def payloads(self, event: str) -> list[Payload]:
        """Return the payloads emitted on ``event``, in order.

        Raises:
            ArgumentTypeError: If ``event`` is not a str (an event name).
        """
        check_type(event, str, "event", "an event name (a str)")
        return [data for name, data in self.emissions if name == event]


def deliver(
    routine: Routine,
    data: Mapping[str, object] | None = None,
    *,
    slot: str | None = None,
    buffer: Mapping[str, object] | None = None,
) -> Outcome:
    """Hand ``routine`` one delivery of ``data`` as a job would; say what it did.

    No flow is needed. ``data`` is merged into ``buffer`` (the slot's data so
    far, empty by default) by the slot's merge strategy, and the handler is
    called with the result, bound as in a job; ``emit`` checks events and
    keys as in a job, and ``current_delivery()`` works (its job id is
    ``"test-job"``, its routine id is derived from the class name). A join
    fires at once: no connection is there to wait for. A source routine is
    called with ``data`` as keyword arguments. One attempt is made: the
    routine's error handler is not applied, so :attr:`Outcome.error` is what
    the handler raised. An ``async def`` handler runs on a private event loop.

    Args:
        routine: The routine under test.
        data: The delivery's payload.
        slot: The slot to deliver to: by default the only slot, or
            ``__call__`` for a source routine.
        buffer: The slot's buffer before this delivery, as earlier
            deliveries of a job would have left it.

    Raises:
        ArgumentTypeError: If ``routine`` is not a routine, or ``data`` is not
            a mapping with str keys.
        UnknownPortError: If ``slot`` names no slot of the routine.
        DefinitionError: If the routine has several slots and ``slot`` is
            not given.
        ExecutionError: If the handler is ``async def`` and this thread runs
            an event loop: ``await deliver_async(...)`` there instead.

    Example:
        >>> from flowforge import step
        >>> from flowforge.testing import deliver
        >>> @step(emits="text")
        ... def clean(text):
        ...     return text.strip()
        >>> deliver(clean(), {"text": "  hi "}).emissions
        [('text', {'text': 'hi'})]
    """
    call = _Call(routine, data, slot, buffer)
    if not call.is_async:
        return call.run()
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # none runs here: the usual case
        return asyncio.run(call.run_async())
    raise ExecutionError(
        f"{routine!r} has an async handler and this thread runs an event loop, "
        "which deliver would block: use 'await deliver_async(...)' instead"
    )


async def deliver_async(
    routine: Routine,
    data: Mapping[str, object] | None = None,
    *,
    slot: str | None = None,
    buffer: Mapping[str, object] | None = None,
) -> Outcome:
    """Do what :func:`deliver` does on the running event loop; await the handler.

    A plain handler that returns an awaitable has it awaited, as in
    ``Flow.execute_async``. Arguments and errors are :func:`deliver`'s.
    """
    return await _Call(routine, data, slot, buffer).run_async()


class _Call:
    """One delivery to one routine, set up the way the scheduler sets one up."""

    def __init__(
        self,
        routine: Routine,
        data: Mapping[str, object] | None,
        slot: str | None,
        buffer: Mapping[str, object] | None,
    ) -> None:
        if not isinstance(routine, Routine):
            raise ArgumentTypeError(
                f"deliver expects a Routine, got {reprlib.repr(routine)}"
            )
        routine.slots  # noqa: B018  raises if __init__ skipped super().__init__()
        self.routine = routine
        self.params = _payload(data, "data")
        routine_id = free_id(type(routine).__name__, (), {})
        slot_name = choose_entry_slot(routine, routine_id, slot)
        self.slot: Slot | None = None
        self.is_async = is_async_source(routine)
        if slot_name is not None:
            self.slot = routine.get_slot(slot_name)
            self.is_async = self.slot.is_async
        self.before = None if buffer is None else _copied(_payload(buffer, "buffer"))
        self.merged: Payload | None = None
        job = _harness_job(routine_id, slot_name, self.params)
        self.context = DeliveryContext(job)
        self.context._delivery = new_delivery(0, routine_id, slot_name, self.params, -1)

    def call(self) -> object:
        """Merge the data into the slot's buffer and call the handler."""
        self.context._routine = self.routine
        slot = self.slot
        if slot is None:
            call_source = self.routine.__call__  # a source returns what it likes
            result: object = call_source(**self.params)
            return result
        self.merged = slot.merge(_copied(self.before or {}), self.params)
        return slot.invoke(self.merged, self.context.routine_id)

    def run(self) -> Outcome:
        """Run the delivery on this thread."""
        token = CURRENT.set(self.context)
        try:
            refuse_awaitable(self.call())
        except Exception as error:  # noqa: BLE001  the outcome reports it
            return self.outcome(error)
        finally:
            self.context._routine = None
            CURRENT.reset(token)
        return self.outcome(None)

    async def run_async(self) -> Outcome:
        """Run the delivery, awaiting what the handler returns."""
        token = CURRENT.set(self.context)
        try:
            result = self.call()
            if inspect.isawaitable(result):
                await self.awaited(result)
        except Exception as error:  # noqa: BLE001  the outcome reports it
            return self.outcome(error)
        finally:
            self.context._routine = None
            CURRENT.reset(token)
        return self.outcome(None)

    async def awaited(self, result: object) -> None:
        """Await an async handler's coroutine within its slot's timeout."""
        timeout = None if self.slot is None else self.slot.timeout
        limit = asyncio.timeout(timeout)
        try:
            async with limit:
                await result  # type: ignore[misc]  # checked awaitable
        except TimeoutError as error:
            if limit.expired():
                raise TimeoutError(
                    f"routine {self.context.routine_id!r} took longer than its "
                    f"slot {self.context.slot!r} allows (timeout={timeout} s)"
                ) from error
            raise

    def outcome(self, error: Exception | None) -> Outcome:
        """Say what the delivery did; a failed one keeps the buffer it found."""
        emissions = [] if error is not None else list(self.context._emissions)
        buffer = self.before if error is not None else self.merged
        return Outcome(emissions, error, self.routine.stats(), buffer)


def _payload(value: Mapping[str, object] | None, name: str) -> Payload:
    """Return a copy of ``value`` (``{}`` for ``None``) after checking it.

    Raises:
        ArgumentTypeError: If ``value`` is not a mapping with str keys.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ArgumentTypeError(
            f"deliver: {name} must be a mapping with str keys, got "
            f"{reprlib.repr(value)}"
        )
    return dict(value)


def _copied(buffer: Mapping[str, object]) -> Payload:
    """Copy a buffer and its lists, which an ``"append"`` merge extends."""
    return {k: list(v) if isinstance(v, list) else v for k, v in buffer.items()}


def _harness_job(routine_id: str, slot: str | None, params: Payload) -> JobState:
    """Return the running job a handler run by :func:`deliver` sees."""
    job = new_job_state(
        job_id=HARNESS_JOB_ID,
        flow_id="test-flow",
        entry_routine_id=routine_id,
        entry_params=params,
        entry_slot=slot,
        created_at=datetime.now(UTC),
        history_limit=1,
        flow_shape={},
    )
    job.status = JobStatus.RUNNING
    return job


@final
class FakeClock:
    """A clock that moves only when told to, so tests never really sleep.

    ``sleep`` advances the clock and remembers the delay; :meth:`advance`
    lets a handler pretend that it took time.

    Thread safety: not thread-safe; use it with the sequential strategy.
    """

    def __init__(self, start: datetime | None = None) -> None:
        """Start at ``start`` (2026-01-01 UTC by default) and monotonic 0.

        Raises:
            ArgumentTypeError: If ``start`` is not an aware datetime or ``None``.
        """
        if start is not None and (
            not isinstance(start, datetime) or start.utcoffset() is None
        ):
            raise ArgumentTypeError(
                "start must be an aware datetime (with a tzinfo, such as "
                f"datetime(2026, 1, 1, tzinfo=UTC)) or None, got {reprlib.repr(start)}"
            )
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
        """Record ``seconds`` and advance the clock by it.

        Raises:
            ArgumentTypeError: If ``seconds`` is not a finite number of 0 or more.
        """
        _check_seconds(seconds)
        self.sleeps.append(seconds)
        self._elapsed += seconds

    async def sleep_async(self, seconds: float) -> None:
        """Record ``seconds`` and advance the clock by it, without waiting."""
        self.sleep(seconds)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` without recording a sleep.

        Raises:
            ArgumentTypeError: If ``seconds`` is not a finite number of 0 or more.
        """
        self._elapsed += _check_seconds(seconds)

    def __repr__(self) -> str:
        """Return the elapsed time."""
        return f"FakeClock(elapsed={self._elapsed})"


def _check_seconds(seconds: object) -> float:
    """Return ``seconds`` if a clock can move by it: a finite number, 0 or more."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not 0 <= seconds < float("inf")
    ):
        raise ArgumentTypeError(
            f"seconds must be a finite number of 0 or more, got {reprlib.repr(seconds)}"
        )
    return float(seconds)


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
        """Wrap ``inner``.

        Raises:
            ArgumentTypeError: If ``inner`` is not a :class:`~flowforge.store.Store`.
        """
        self.inner = check_store(inner)

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
