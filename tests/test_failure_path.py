"""User objects are never trusted on the failure path: no delivery is ever lost.

A handler's exception whose ``str()``, ``repr()`` or traceback cannot be
rendered is still recorded, and its delivery kept for resume, in every
strategy and for durable jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from flowforge import Flow, JobState, JobStatus, Routine
from flowforge.store import SqliteStore


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class ReprRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class StrNotText(Exception):
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]  # a broken __str__ on purpose


class Fails(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.raising: type[Exception] = StrRaises

    def handle(self, n: int) -> None:
        raise self.raising()


class Source(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self, n: int) -> None:
        self.emit("output", n=n)


def build(error: type[Exception], strategy: str) -> Flow:
    flow = Flow("failing", execution_strategy=strategy)
    flow.add_routine(Source(), "source")
    fails = Fails()
    fails.raising = error
    flow.add_routine(fails, "fails")
    flow.connect("source", "output", "fails", "input")
    return flow


def run_sync(flow: Flow, store: SqliteStore) -> JobState:
    return flow.execute("source", {"n": 1}, job_id="job", store=store)


def run_async(flow: Flow, store: SqliteStore) -> JobState:
    return asyncio.run(
        flow.execute_async("source", {"n": 1}, job_id="job", store=store)
    )


RUNS: dict[str, Callable[[Flow, SqliteStore], JobState]] = {
    "execute": run_sync,
    "execute_async": run_async,
}


@pytest.mark.parametrize("error", [StrRaises, ReprRaises, StrNotText])
@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
@pytest.mark.parametrize("run", list(RUNS))
def test_an_exception_that_cannot_be_rendered_still_fails_the_job_and_keeps_it(
    tmp_path: Path, error: type[Exception], strategy: str, run: str
) -> None:
    flow = build(error, strategy)
    store = SqliteStore(tmp_path / "jobs.db")

    job = RUNS[run](flow, store)

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.error_type == error.__qualname__
    assert job.error.message.startswith(f"<{error.__qualname__}: rendering it")
    assert [(d.routine_id, d.data) for d in job.pending] == [("fails", {"n": 1})]
    stored = store.load("job")
    assert stored.status is JobStatus.FAILED
    assert [(d.routine_id, d.data) for d in stored.pending] == [("fails", {"n": 1})]


def test_a_resumed_job_runs_the_delivery_whose_error_could_not_be_rendered(
    tmp_path: Path,
) -> None:
    flow = build(StrRaises, "sequential")
    store = SqliteStore(tmp_path / "jobs.db")
    run_sync(flow, store)
    fails = flow.routines["fails"]
    assert isinstance(fails, Fails)
    fails.raising = ValueError

    resumed = flow.resume("job", store=store)

    assert resumed.status is JobStatus.FAILED
    assert resumed.error is not None and resumed.error.error_type == "ValueError"
    assert len(resumed.errors) == 2
