"""Holes a final review found through the public API, each closed.

A decorated async handler is awaited; a plain handler that returns an
awaitable fails its delivery instead of dropping the work; a clock whose
``now()`` is naive is refused before a job is stored; ``JobState.load`` of a
pipe, bad paths and bad arguments get FlowForge errors.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from flowforge import (
    ArgumentTypeError,
    DefinitionError,
    ExecutionError,
    Flow,
    JobState,
    JobStatus,
    Routine,
    SerializationError,
)
from flowforge.store import SqliteStore
from flowforge.testing import Recorder

AsyncFn = Callable[..., Coroutine[Any, Any, None]]  # Any: any handler signature


def logged(function: AsyncFn) -> AsyncFn:
    @functools.wraps(function)
    def wrapper(*args: object, **kwargs: object) -> Coroutine[Any, Any, None]:
        return function(*args, **kwargs)

    return wrapper


class Decorated(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    @logged
    async def handle(self, n: int) -> None:
        await asyncio.sleep(0)
        self.set_stat("ran", n)


class ReturnsCoroutine(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, n: int) -> object:
        return asyncio.sleep(0)


@pytest.mark.parametrize("run", ["execute", "execute_async"])
def test_a_decorated_async_handler_is_awaited(run: str) -> None:
    flow = Flow()
    flow.add_routine(Decorated(), "decorated")

    if run == "execute":
        job = flow.execute("decorated", {"n": 1})
    else:
        job = asyncio.run(flow.execute_async("decorated", {"n": 1}))

    assert job.status is JobStatus.COMPLETED
    assert flow.routines["decorated"].stats() == {"ran": 1}


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_a_plain_handler_returning_a_coroutine_fails_its_delivery(
    strategy: str,
) -> None:
    flow = Flow(execution_strategy=strategy)
    flow.add_routine(ReturnsCoroutine(), "returns")

    job = flow.execute("returns", {"n": 1})

    assert job.status is JobStatus.FAILED
    assert job.error is not None and "cannot await" in job.error.message


class NaiveClock:
    def monotonic(self) -> float:
        return 0.0

    def now(self) -> datetime:
        return datetime(2026, 1, 1)

    def sleep(self, seconds: float) -> None:
        return None


def test_a_clock_with_naive_times_is_refused_before_a_job_is_stored(
    tmp_path: Path,
) -> None:
    flow = Flow(clock=NaiveClock())
    flow.add_routine(Recorder(), "sink")
    store = SqliteStore(tmp_path / "jobs.db")

    with pytest.raises(ExecutionError, match="now\\(\\) must return an aware"):
        flow.execute("sink", {"n": 1}, job_id="j", store=store)

    assert store.list_jobs() == []


def test_load_of_a_pipe_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    pipe = tmp_path / "job.json"
    os.mkfifo(pipe)

    with pytest.raises(SerializationError, match="no regular file"):
        JobState.load(pipe)


@pytest.mark.parametrize(
    "path", [None, 3.5, b"job.json"], ids=["none", "float", "bytes"]
)
def test_save_and_load_refuse_a_path_that_is_no_text(path: object) -> None:
    flow = Flow()
    flow.add_routine(Recorder(), "sink")
    job = flow.execute("sink", {"n": 1})

    with pytest.raises(ArgumentTypeError, match="path must be"):
        job.save(path)  # type: ignore[arg-type]  # on purpose
    with pytest.raises(ArgumentTypeError, match="path must be"):
        JobState.load(path)  # type: ignore[arg-type]  # on purpose


def test_history_of_a_routine_id_that_is_no_str_is_refused() -> None:
    flow = Flow()
    flow.add_routine(Recorder(), "sink")
    job = flow.execute("sink", {"n": 1})

    with pytest.raises(ArgumentTypeError, match="routine_id must be"):
        job.get_execution_history(1)  # type: ignore[arg-type]  # on purpose


def test_an_executor_without_submit_is_refused() -> None:
    with pytest.raises(ArgumentTypeError, match="executor must be"):
        Flow(executor=1)  # type: ignore[arg-type]  # on purpose


def test_a_bad_strategy_change_changes_nothing() -> None:
    flow = Flow()

    with pytest.raises(DefinitionError, match="max_workers"):
        flow.set_execution_strategy("concurrent", max_workers=0)

    assert flow.execution_strategy == "sequential"


def test_deserialize_refuses_a_registry_that_is_no_mapping() -> None:
    data = Flow("plain").serialize()

    with pytest.raises(ArgumentTypeError, match="registry must be"):
        Flow.deserialize(data, 1)  # type: ignore[arg-type]  # on purpose
