"""Routines for ``test_dask.py``, in a module that Dask workers import by name.

The test's runner names it in ``preload``; the workers find it because the
tests folder is on their ``sys.path``, inherited from pytest's process.

:func:`build_flow` makes ``numbers -> square -> sink``: ``numbers`` emits
``count`` values from ``start``; ``square`` fails on values ``v % 7 == 3``
(optional: the job goes on with the error recorded) and emits the squares;
``sink`` counts and sums them in its stats and appends them to its buffer.
Every handler appends ``"<job_id> <routine_id> <seq> <attempt> <pid>"`` to the
file named by the ``log`` config, with one ``os.write`` on an ``O_APPEND``
file, so that the file records exactly which handler bodies ran, and where.

``square`` can also stop once in one delivery, chosen by the ``gate_job`` and
``gate_value`` config: it puts its process id on the Dask queue named by the
``gate`` config, then waits for the Dask event of that name (the test kills
the worker, or sets the event). A marker file makes only the first run wait.
With the ``abort_at`` config it raises :class:`Abort` at that value instead,
leaving a durable job running in its store.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Final

from distributed import Event, Queue

from flowforge import Flow, Routine, current_delivery

FLOW_ID: Final = "dask_numbers"
GATE_TIMEOUT: Final = 60.0
"""Seconds a gated handler waits before giving up (a broken test, not a hang)."""


class Abort(BaseException):
    """Not an Exception: it ends the job's run, leaving the job running in its store."""


class Logged(Routine):
    """A routine whose handlers log their runs to the ``log`` config's file."""

    def log_run(self) -> None:
        """Append this handler run's line to the log, if there is one."""
        log = self.get_config("log")
        if log is None:
            return
        delivery = current_delivery()
        line = (
            f"{delivery.job.job_id} {delivery.routine_id} {delivery.seq} "
            f"{delivery.attempt} {os.getpid()}\n"
        )
        fd = os.open(str(log), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


class Numbers(Logged):
    """A source: emits ``number`` for each value from ``start``."""

    def __init__(self) -> None:
        """Declare the ``number`` event."""
        super().__init__()
        self.define_event("number", ["value", "index"])

    def __call__(self, count: int, start: int = 0) -> None:
        """Emit ``count`` numbers."""
        self.log_run()
        for index in range(count):
            self.emit("number", value=start + index, index=index)


class Square(Logged):
    """Emits the square of each value; fails on ``v % 7 == 3``."""

    def __init__(self) -> None:
        """Declare the ``input`` slot and the ``squared`` event."""
        super().__init__()
        self.define_slot("input", self.square)
        self.define_event("squared", ["value", "index"])

    def square(self, value: int, index: int) -> None:
        """Log, maybe stop at the gate, then emit the square."""
        self.log_run()
        if value == self.get_config("abort_at"):
            raise Abort(f"aborting at {value}")
        self.gate(value)
        if value % 7 == 3:
            raise ValueError(f"unlucky {value}")
        self.increment_stat("squared")
        self.emit("squared", value=value * value, index=index)

    def gate(self, value: int) -> None:
        """Wait once at the configured job and value; see the module docstring."""
        name = self.get_config("gate")
        job_id = current_delivery().job.job_id
        if name is None or (job_id, value) != (
            self.get_config("gate_job"),
            self.get_config("gate_value"),
        ):
            return
        marker = Path(f"{self.get_config('log')}.{job_id}.gated")
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:  # a run after the first: go straight on
            return
        # distributed leaves Queue and Event unannotated.
        queue, event = Queue(name), Event(name)  # type: ignore[no-untyped-call]
        queue.put(os.getpid())  # type: ignore[no-untyped-call]
        if not event.wait(timeout=GATE_TIMEOUT):  # type: ignore[no-untyped-call]
            raise RuntimeError("the test neither killed this worker nor let it go")


class Sink(Logged):
    """Counts and sums what it receives; its slot appends every value."""

    def __init__(self) -> None:
        """Declare the appending ``input`` slot."""
        super().__init__()
        self.define_slot("input", self.collect, merge_strategy="append")

    def collect(self, value: list[int], index: list[int]) -> None:
        """Log, then count and sum the newest value."""
        self.log_run()
        self.increment_stat("count")
        self.increment_stat("total", value[-1])


class AsyncSquare(Routine):
    """Awaits, then emits the square of each value: a flow with async handlers."""

    def __init__(self) -> None:
        """Declare the ``input`` slot and the ``squared`` event."""
        super().__init__()
        self.define_slot("input", self.square)
        self.define_event("squared", ["value", "index"])

    async def square(self, value: int, index: int) -> None:
        """Wait a moment on the event loop, then emit the square."""
        await asyncio.sleep(0)
        self.emit("squared", value=value * value, index=index)


def build_async_flow() -> Flow:
    """Return ``numbers -> square -> sink`` whose ``square`` is ``async def``."""
    flow = Flow(FLOW_ID)
    flow.add_routine(Numbers(), "numbers")
    flow.add_routine(AsyncSquare(), "square")
    flow.add_routine(Sink(), "sink")
    flow.connect("numbers", "number", "square", "input")
    flow.connect("square", "squared", "sink", "input")
    return flow


def build_flow(**config: object) -> Flow:
    """Return ``numbers -> square -> sink``, each routine given ``config``."""
    flow = Flow(FLOW_ID)
    routines: list[Logged] = [Numbers(), Square(), Sink()]
    for routine, routine_id in zip(routines, ("numbers", "square", "sink")):
        routine.set_config(**config)
        flow.add_routine(routine, routine_id)
    flow.connect("numbers", "number", "square", "input")
    flow.connect("square", "squared", "sink", "input")
    flow.routines["square"].set_as_optional()
    return flow
