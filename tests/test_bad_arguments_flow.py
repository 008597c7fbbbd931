"""Bad arguments to flows, the jobs they run and their records.

Each one raises a FlowForgeError (a wrong type: an ArgumentTypeError, which is
also a TypeError) whose message names the argument. The testing helpers and
the integrations are in ``test_bad_arguments_testing.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import pytest

from _bad_args import (
    Case,
    Plain,
    a_job,
    assert_refused,
    calls,
    finished_job,
    ids,
    wired,
    wrong,
)
from flowforge import ExecutionTracker, Flow, JobState, JobStatus
from flowforge.store import MemoryStore


class TextClock:
    """A clock whose monotonic() gives text: refused when the flow gets it."""

    def monotonic(self) -> str:
        return "12:00"

    def now(self) -> datetime:
        raise AssertionError("never called")

    def sleep(self, seconds: float) -> None:
        raise AssertionError("never called")


def run(coroutine: Coroutine[Any, Any, object]) -> object:
    return asyncio.run(coroutine)


def resume_paused(force: bool) -> JobState:
    """Resume a paused job held in a store, by its id."""
    store = MemoryStore()
    job = a_job()
    job.job_id, job.flow_id, job.status = "paused", "bad", JobStatus.PAUSED
    store.save(job)
    return wired().resume("paused", store=store, force=force)


def tracker() -> ExecutionTracker:
    return finished_job().tracker


FLOW_CASES: list[Case] = [
    ("Flow-flow_id-int", lambda: Flow(wrong(5)), "flow_id must be a non-empty str"),
    ("Flow-flow_id-empty", lambda: Flow(""), "flow_id must be a non-empty str, got ''"),
    (
        "Flow-error_handler-str",
        lambda: Flow(error_handler=wrong("stop")),
        "error_handler: expected an ErrorHandler or None, got 'stop'",
    ),
    (
        "Flow-max_deliveries-str",
        lambda: Flow(max_deliveries=wrong("5")),
        "max_deliveries must be a positive int of at most",
    ),
    (
        "Flow-max_deliveries-bool",
        lambda: Flow(max_deliveries=True),
        "max_deliveries must be a positive int of at most",
    ),
    (
        "Flow-max_pending-zero",
        lambda: Flow(max_pending=0),
        "max_pending must be a positive int of at most",
    ),
    (
        "Flow-max_pending-float",
        lambda: Flow(max_pending=wrong(1.5)),
        "max_pending must be a positive int of at most",
    ),
    (
        "Flow-clock-int",
        lambda: Flow(clock=wrong(5)),
        "clock must be an object with monotonic()",
    ),
    (
        "Flow-clock-monotonic-str",
        lambda: Flow(clock=wrong(TextClock())),
        "monotonic() must return seconds as a float, got '12:00'",
    ),
    (
        "Flow-history_limit-huge",
        lambda: Flow(history_limit=10**30),
        "history_limit must be a positive int of at most",
    ),
    (
        "Flow-max_workers-huge",
        lambda: Flow(max_workers=10**9),
        "max_workers must be a positive int of at most",
    ),
    (
        "Flow-max_workers-bool",
        lambda: Flow(max_workers=True),
        "max_workers must be a positive int of at most 1,000,000, got True",
    ),
    (
        "Flow-execution_strategy-unknown",
        lambda: Flow(execution_strategy="fast"),
        "unknown execution strategy 'fast'",
    ),
    (
        "Flow-executor-int",
        lambda: Flow(executor=wrong(5)),
        "executor must be a concurrent.futures.Executor (with submit()) or None",
    ),
    (
        "Flow.add_routine-routine-int",
        lambda: wired().add_routine(wrong(5)),
        "add_routine expects a Routine, got 5",
    ),
    (
        "Flow.add_routine-routine_id-list",
        lambda: wired().add_routine(Plain(), wrong(["x"])),
        "routine id name must be a str",
    ),
    (
        "Flow.get_routine-routine_id-dict",
        lambda: wired().get_routine(wrong({})),
        "routine_id must be a str, got dict",
    ),
    (
        "Flow.remove_routine-routine_id-list",
        lambda: wired().remove_routine(wrong([])),
        "routine_id must be a str, got list []",
    ),
    (
        "Flow.chain-routines-str",
        lambda: wired().chain(wrong("plain")),
        "chain item 0 must be a Routine, got 'plain'",
    ),
    (
        "Flow.connect-source_id-list",
        lambda: wired().connect(wrong(["plain"]), "output", "plain", "input"),
        "routine_id must be a str",
    ),
    (
        "Flow.connect-event-int",
        lambda: wired().connect("plain", wrong(5), "other", "input"),
        "has no such event: event names are str, got int",
    ),
    (
        "Flow.connect-target_id-None",
        lambda: wired().connect("plain", "output", wrong(None), "input"),
        "routine_id must be a str, got NoneType None",
    ),
    (
        "Flow.connect-slot-list",
        lambda: wired().connect("plain", "output", "other", wrong([])),
        "has no such slot: slot names are str, got list",
    ),
    (
        "Flow.connect-param_mapping-str",
        lambda: wired().connect("plain", "output", "other", "input", wrong("xy")),
        "param_mapping must be a mapping {event_key: slot_key}, got str 'xy'",
    ),
    (
        "Flow.connect_failures-source_id-int",
        lambda: wired().connect_failures(wrong(5), "other", "input"),
        "routine_id must be a str, got int 5",
    ),
    (
        "Flow.connect_failures-target_id-list",
        lambda: wired().connect_failures("plain", wrong([]), "input"),
        "routine_id must be a str, got list []",
    ),
    (
        "Flow.connect_failures-slot-int",
        lambda: wired().connect_failures("plain", "other", wrong(5)),
        "slot must be a slot name (a str), got int 5",
    ),
    (
        "Flow.disconnect-source_id-int",
        lambda: wired().disconnect(wrong(5), "output", "other", "input"),
        "disconnect expects a Connection, or source_id, event, target_id and slot",
    ),
    (
        "Flow.disconnect-event-int",
        lambda: wired().disconnect("plain", wrong(5), "other", "input"),
        "disconnect expects a Connection, or source_id, event, target_id and slot",
    ),
    (
        "Flow.disconnect-target_id-int",
        lambda: wired().disconnect("plain", "output", wrong(5), "input"),
        "disconnect expects a Connection, or source_id, event, target_id and slot",
    ),
    (
        "Flow.disconnect-slot-int",
        lambda: wired().disconnect("plain", "output", "other", wrong(5)),
        "disconnect expects a Connection, or source_id, event, target_id and slot",
    ),
    (
        "Flow.set_error_handler-handler-str",
        lambda: wired().set_error_handler(wrong("stop")),
        "error_handler: expected an ErrorHandler",
    ),
    (
        "Flow.set_execution_strategy-strategy-int",
        lambda: wired().set_execution_strategy(wrong(5)),
        "unknown execution strategy 5",
    ),
    (
        "Flow.set_execution_strategy-max_workers-zero",
        lambda: wired().set_execution_strategy("concurrent", max_workers=0),
        "max_workers must be a positive int of at most 1,000,000, got 0",
    ),
    (
        "Flow.add_observer-observer-None",
        lambda: wired().add_observer(None),
        "observer must have one or more of the methods on_job_start",
    ),
    (
        "Flow.remove_observer-observer-int",
        lambda: wired().remove_observer(5),
        "observer 5 is not an observer of this flow; nothing to remove",
    ),
    (
        "Flow.deserialize-data-int",
        lambda: Flow.deserialize(5),
        "flow data must be a dict, got int",
    ),
    (
        "Flow.deserialize-data-routine-int",
        lambda: Flow.deserialize({**wired().serialize(), "routines": [5]}),
        "flow routines[0] must be a dict",
    ),
    (
        "Flow.deserialize-registry-list",
        lambda: Flow.deserialize(wired().serialize(), wrong([])),
        "registry must be a mapping of type names to classes, got list",
    ),
]

RUN_CASES: list[Case] = [
    (
        "Flow.execute-entry_routine_id-int",
        lambda: wired().execute(wrong(5)),
        "entry_routine_id must be a routine id (a str), got int 5",
    ),
    (
        "Flow.execute-entry_params-int",
        lambda: wired().execute("plain", wrong(5)),
        "entry_params must be a mapping",
    ),
    (
        "Flow.execute-entry_slot-list",
        lambda: wired().execute("plain", entry_slot=wrong([])),
        "has no such slot: slot names are str, got list",
    ),
    (
        "Flow.execute-job_id-int",
        lambda: wired().execute("plain", job_id=wrong(5)),
        "job_id must be a non-empty str, got 5",
    ),
    (
        "Flow.execute-store-str",
        lambda: wired().execute("plain", {"value": 1}, store=wrong("jobs.db")),
        "store must be a Store",
    ),
    (
        "Flow.execute-execution_strategy-list",
        lambda: wired().execute("plain", execution_strategy=wrong([])),
        "unknown execution strategy []",
    ),
    (
        "Flow.execute_async-entry_routine_id-list",
        lambda: run(wired().execute_async(wrong([]))),
        "entry_routine_id must be a routine id (a str), got list []",
    ),
    (
        "Flow.execute_async-entry_params-int",
        lambda: run(wired().execute_async("plain", wrong(5))),
        "entry_params must be a mapping with str keys, got 5",
    ),
    (
        "Flow.execute_async-entry_slot-int",
        lambda: run(wired().execute_async("plain", entry_slot=wrong(5))),
        "has no such slot: slot names are str, got int",
    ),
    (
        "Flow.execute_async-job_id-list",
        lambda: run(wired().execute_async("plain", job_id=wrong([]))),
        "job_id must be a non-empty str, got []",
    ),
    (
        "Flow.execute_async-store-str",
        lambda: run(wired().execute_async("plain", store=wrong("x"))),
        "store must be a Store (such as SqliteStore(path) or MemoryStore()), got str",
    ),
    (
        "Flow.execute_async-execution_strategy-int",
        lambda: run(wired().execute_async("plain", execution_strategy=wrong(5))),
        "unknown execution strategy 5",
    ),
    ("Flow.pause-job_state-int", lambda: wired().pause(wrong(123)), "job_state must"),
    (
        "Flow.pause-reason-int",
        lambda: wired().pause(finished_job(), wrong(5)),
        "reason must be a str, got int 5",
    ),
    ("Flow.cancel-job_state-int", lambda: wired().cancel(wrong(123)), "job_state must"),
    (
        "Flow.cancel-reason-int",
        lambda: wired().cancel(finished_job(), wrong(5)),
        "reason must be a str, got int 5",
    ),
    (
        "Flow.cancel-store-str",
        lambda: wired().cancel(finished_job(), store=wrong("jobs.db")),
        "store must be a Store (such as SqliteStore(path) or MemoryStore()), got str",
    ),
    (
        "Flow.resume-job_state-None",
        lambda: wired().resume(wrong(None)),
        "job_state must be a JobState or a job id, got NoneType None",
    ),
    (
        "Flow.resume-store-str",
        lambda: wired().resume("job", store=wrong("jobs.db")),
        "store must be a Store",
    ),
    (
        "Flow.resume-force-str",
        lambda: resume_paused(force=wrong("yes")),
        "force must be a bool, got str 'yes'",
    ),
    (
        "Flow.resume_async-job_state-int",
        lambda: run(wired().resume_async(wrong(5))),
        "job_state must be a JobState or a job id, got int 5",
    ),
    (
        "Flow.resume_async-store-str",
        lambda: run(wired().resume_async("job", store=wrong("x"))),
        "store must be a Store",
    ),
    (
        "Flow.resume_async-force-int",
        lambda: run(wired().resume_async(finished_job(), force=wrong(1))),
        "force must be a bool, got int 1",
    ),
    (
        "Flow.recover-store-None",
        lambda: wired().recover(wrong(None)),
        "store must be a Store",
    ),
]

JOB_CASES: list[Case] = [
    (
        "JobState.deserialize-data-int",
        lambda: JobState.deserialize(5),
        "job state data must be a dict, got int",
    ),
    (
        "JobState.deserialize-data-history_limit-huge",
        lambda: JobState.deserialize(
            {**finished_job().serialize(), "history_limit": 10**30}
        ),
        "field 'history_limit' must be from 1 to",
    ),
    (
        "JobState.get_routine_state-routine_id-list",
        lambda: finished_job().get_routine_state(wrong([])),
        "routine_id must be a str, got list []",
    ),
    (
        "JobState.get_execution_history-routine_id-int",
        lambda: finished_job().get_execution_history(wrong(5)),
        "routine_id must be a str or None, got int",
    ),
    ("JobState.load-path-int", lambda: JobState.load(wrong(5)), "path must be a str"),
    (
        "JobState.save-path-None",
        lambda: finished_job().save(wrong(None)),
        "path must be a str or a path, got NoneType None",
    ),
    (
        "ExecutionTracker.deserialize-data-int",
        lambda: ExecutionTracker.deserialize(5),
        "execution tracker data must be a dict, got int",
    ),
    (
        "ExecutionTracker.get_routine_performance-routine_id-list",
        lambda: tracker().get_routine_performance(wrong([])),
        "routine_id must be a str, got list []",
    ),
    (
        "ExecutionTracker.get_event_targets-routine_id-int",
        lambda: tracker().get_event_targets(wrong(5), "output"),
        "routine_id must be a str, got int 5",
    ),
    (
        "ExecutionTracker.get_event_targets-event-list",
        lambda: tracker().get_event_targets("plain", wrong([])),
        "event must be a str, got list []",
    ),
]

CASES: list[Case] = FLOW_CASES + RUN_CASES + JOB_CASES


@pytest.mark.parametrize(("call", "message"), calls(CASES), ids=ids(CASES))
def test_bad_argument_to_a_flow_or_job_raises_a_flowforge_error_naming_it(
    call: Callable[[], object], message: str
) -> None:
    assert_refused(call, message)


def test_a_bad_reason_leaves_the_running_job_alone() -> None:
    flow = wired()
    seen: list[str] = []

    class Pauser(Plain):
        def handle(self, value: object = None) -> None:
            try:
                flow.pause(None, wrong(5))
            except TypeError as error:
                seen.append(str(error))

    flow.add_routine(Pauser(), "pauser")

    job = flow.execute("pauser", {"value": 1})

    assert job.status is JobStatus.COMPLETED
    assert seen == ["reason must be a str, got int 5"]
