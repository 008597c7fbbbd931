"""A Ctrl-C anywhere in a durable run's loop loses no delivery and redoes none.

A ``KeyboardInterrupt`` can land between any two lines of the engine: between a
delivery's end and the routing of what it emitted, say. The run must then leave
the store as of its last checkpoint (never the half step in memory), so that
``recover()`` ends the job exactly as an uninterrupted run does. The interrupt
is raised by a trace function at the k-th line the engine's loop runs, for
every k, as a signal arriving there would.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from flowforge import Flow, JobStatus, Routine
from flowforge.store import MemoryStore, SqliteStore, Store

LOOP_MODULES = {
    "sequential.py",
    "concurrent.py",
    "runtime.py",
    "routing.py",
    "checkpointed.py",
    "fallback.py",
    "stats.py",
}
"""The engine modules a run's loop executes in (between its start and end)."""
LOOPS = {"run_loop", "run"}
"""The loops' functions (sequential, concurrent): lines count from the first call."""
ENGINE = os.sep + os.path.join("flowforge", "engine") + os.sep
LAST = 10
"""The loop's deliveries carry n = 0..LAST: LAST + 1 in an uninterrupted run."""


class Loop(Routine):
    """Count its runs and send ``n + 1`` back to itself until ``n`` is LAST."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("again")

    def handle(self, n: int) -> None:
        self.increment_stat("ran")
        if n < LAST:
            self.emit("again", n=n + 1)


def looping_flow(strategy: str) -> Flow:
    flow = Flow("interrupted", execution_strategy=strategy)
    flow.add_routine(Loop(), "loop")
    flow.connect("loop", "again", "loop", "input")
    return flow


def interrupt_at(
    line: int, modules: set[str] = LOOP_MODULES, starts: set[str] = LOOPS
) -> Callable[[FrameType, str, Any], Any]:
    """Return a trace function raising KeyboardInterrupt at the loop's ``line``-th."""
    seen = 0
    looping = False

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal seen, looping
        name = frame.f_code.co_filename
        if ENGINE not in name or os.path.basename(name) not in modules:
            return None
        looping = looping or frame.f_code.co_name in starts
        if (
            event == "line"
            and looping
            and (starts is LOOPS or frame.f_code.co_name in starts)
        ):
            seen += 1
            if seen == line:
                sys.settrace(None)
                raise KeyboardInterrupt
        return trace

    return trace


def interrupted_then_recovered(
    strategy: str,
    store: Store,
    line: int,
    where: tuple[set[str], set[str]] = (LOOP_MODULES, LOOPS),
) -> bool:
    """Interrupt a durable run at ``line``, recover it; say if the interrupt came."""
    trace = interrupt_at(line, *where)
    previous = sys.gettrace()  # coverage's, say: put back after the run
    sys.settrace(trace)
    try:
        looping_flow(strategy).execute("loop", {"n": 0}, job_id="job", store=store)
        interrupted = False
    except KeyboardInterrupt:
        interrupted = True
    finally:
        sys.settrace(previous)
    if interrupted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "recovering job ..." notices
            looping_flow(strategy).recover(store)
    return interrupted


def assert_ended_as_uninterrupted(store: Store, line: int) -> None:
    job = store.load("job")
    ran = job.routine_states["loop"].stats.get("ran")
    assert (job.status, job.delivery_count, ran) == (
        JobStatus.COMPLETED,
        LAST + 1,
        LAST + 1,
    ), f"interrupted at the loop's line {line}"


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_an_interrupt_at_any_line_of_the_loop_is_recovered_exactly(
    strategy: str,
) -> None:
    line = 0
    while True:
        line += 1
        store = MemoryStore()
        if not interrupted_then_recovered(strategy, store, line):
            break
        assert_ended_as_uninterrupted(store, line)
    assert line > 100  # the loop's lines were all reached, one run each


def test_an_interrupt_in_the_loop_leaves_sqlite_as_of_its_last_checkpoint(
    tmp_path: Path,
) -> None:
    interrupted = 0
    for line in range(1, 400, 7):
        store = SqliteStore(tmp_path / f"jobs-{line}.db")
        try:
            if not interrupted_then_recovered("sequential", store, line):
                break
            interrupted += 1
            assert_ended_as_uninterrupted(store, line)
        finally:
            store.close()
    assert interrupted > 20


def test_an_interrupt_while_a_run_settles_lets_its_lease_go() -> None:
    """The loop has returned; the job's end is not saved, but nothing stays held."""
    line = 0
    while True:
        line += 1
        store = MemoryStore()
        if not interrupted_then_recovered(
            "sequential", store, line, ({"run.py"}, {"_settle"})
        ):
            break
        assert_ended_as_uninterrupted(store, line)
    assert line > 3
