"""Bad arguments to the public methods of the model and the stores.

Each one raises a FlowForgeError (a wrong type: an ArgumentTypeError, which is
also a TypeError) whose message names the argument. ``Flow`` and the engine
(``execute``, ``pause``, ``resume``, ``recover``...) have their own table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flowforge import (
    ArgumentTypeError,
    Connection,
    ErrorHandler,
    Event,
    Flow,
    FlowForgeError,
    JobState,
    Routine,
    Slot,
)
from flowforge.store import (
    Change,
    JsonDirectoryStore,
    MemoryStore,
    SqliteStore,
    Store,
)


def wrong(value: object) -> Any:  # Any: lets a call pass what its types forbid
    """Return ``value`` typed so that mypy lets a test pass it anywhere."""
    return value


class TextClock:
    """A clock whose monotonic() gives text: refused when the flow gets it."""

    def monotonic(self) -> str:
        return "12:00"

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        raise AssertionError("never called")


class Plain(Routine):
    """A routine with one slot and one event."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, value: object) -> None:
        self.emit("output", value=value)


def plain_with_text_stat() -> Plain:
    routine = Plain()
    routine.set_stat("count", "many")
    return routine


MODEL_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("Slot-name-int", lambda: Slot(wrong(5)), "slot name must be a str, got int"),
    ("Slot-handler-int", lambda: Slot("input", wrong(5)), "handler must be callable"),
    ("Event-name-None", lambda: Event(wrong(None)), "event name must be a str"),
    (
        "Event-output_params-str",
        lambda: Event("out", "ab"),
        "event 'out': output_params must be a list of names, not a str",
    ),
    (
        "Event-output_params-int",
        lambda: Event("out", wrong(5)),
        "event 'out': output_params must be a list of names, not a int",
    ),
    (
        "Event-output_params-item-int",
        lambda: Event("out", wrong([1])),
        "output parameter name must be a str, got int",
    ),
    (
        "Slot-join-str",
        lambda: Slot("input", join=wrong("yes")),
        "slot 'input': join must be a bool, got str 'yes'",
    ),
    (
        "Slot-merge_strategy-unknown",
        lambda: Slot("input", merge_strategy=wrong("sum")),
        "slot 'input': unknown merge_strategy 'sum'",
    ),
    (
        "Routine.define_slot-join-int",
        lambda: Plain().define_slot("other", join=wrong(1)),
        "slot 'other': join must be a bool, got int 1",
    ),
    (
        "Routine.define_slot-name-int",
        lambda: Plain().define_slot(wrong(5)),
        "slot name must be a str",
    ),
    (
        "Routine.define_event-name-bytes",
        lambda: Plain().define_event(wrong(b"out")),
        "event name must be a str",
    ),
    (
        "Routine.set_error_handler-str",
        lambda: Plain().set_error_handler(wrong("stop")),
        "handler: expected an ErrorHandler or None",
    ),
    (
        "Connection-param_mapping-str",
        lambda: Connection("a", "output", "b", "input", wrong("xy")),
        "param_mapping must be a mapping {event_key: slot_key}, got str 'xy'",
    ),
    (
        "Connection-param_mapping-key-int",
        lambda: Connection("a", "output", "b", "input", wrong({1: "x"})),
        "param_mapping key name must be a str, got int",
    ),
    (
        "Connection-source_id-int",
        lambda: Connection(wrong(1), "output", "b", "input"),
        "source_id must be a str, got int 1",
    ),
    (
        "Connection-target_id-None",
        lambda: Connection("a", "output", wrong(None), "input"),
        "target_id must be a str, got NoneType None",
    ),
    (
        "Connection-event-list",
        lambda: Connection("a", wrong(["output"]), "b", "input"),
        "event name must be a str, got list",
    ),
    (
        "Connection-slot-name",
        lambda: Connection("a", "output", "b", "in put"),
        "slot name 'in put' is not valid",
    ),
    (
        "ErrorHandler-strategy-unknown",
        lambda: ErrorHandler("bogus"),
        "unknown error strategy 'bogus'",
    ),
    (
        "ErrorHandler-max_retries-str",
        lambda: ErrorHandler(max_retries=wrong("3")),
        "max_retries must be a non-negative int, got '3'",
    ),
    (
        "ErrorHandler-retry_delay-str",
        lambda: ErrorHandler(retry_delay=wrong("1")),
        "retry_delay must be a finite, non-negative number, got '1'",
    ),
    (
        "ErrorHandler-retry_delay-huge",
        lambda: ErrorHandler(retry_delay=1e12),
        "retry_delay must be at most 604800 seconds",
    ),
    (
        "ErrorHandler-retry_backoff-below-1",
        lambda: ErrorHandler(retry_backoff=0.5),
        "retry_backoff must be at least 1",
    ),
    (
        "ErrorHandler-retry_jitter-above-1",
        lambda: ErrorHandler(retry_jitter=2),
        "retry_jitter must be in [0, 1]",
    ),
    (
        "ErrorHandler-retryable_exceptions-int",
        lambda: ErrorHandler(retryable_exceptions=wrong(5)),
        "retryable_exceptions must be an exception class or an iterable",
    ),
    (
        "ErrorHandler-is_critical-str",
        lambda: ErrorHandler(is_critical=wrong("yes")),
        "is_critical must be a bool",
    ),
    (
        "ErrorHandler.retry_delay_for-attempt-str",
        lambda: ErrorHandler("retry").retry_delay_for(wrong("1")),
        "attempt must be an int, got '1'",
    ),
    (
        "ErrorHandler.should_retry-attempt-None",
        lambda: ErrorHandler("retry").should_retry(ValueError(), wrong(None)),
        "attempt must be an int, got None",
    ),
    (
        "Routine.set_as_optional-strategy-unknown",
        lambda: Plain().set_as_optional("later"),
        "unknown error strategy 'later'",
    ),
    (
        "Routine.set_as_critical-max_retries-negative",
        lambda: Plain().set_as_critical(max_retries=-1),
        "max_retries must be a non-negative int",
    ),
    (
        "Routine.define_slot-name-list",
        lambda: Plain().define_slot(wrong(["input"])),
        "slot name must be a str, got list",
    ),
    (
        "Routine.get_slot-name-list",
        lambda: Plain().get_slot(wrong(["input"])),
        "has no such slot: slot names are str, got list",
    ),
    (
        "Routine.get_event-name-int",
        lambda: Plain().get_event(wrong(5)),
        "has no such event: event names are str, got int",
    ),
    (
        "Routine.set_stat-key-list",
        lambda: Plain().set_stat(wrong(["n"]), 1),
        "stat key must be a str, got list",
    ),
    (
        "Routine.get_stat-key-dict",
        lambda: Plain().get_stat(wrong({})),
        "stat key must be a str, got dict",
    ),
    (
        "Routine.increment_stat-amount-str",
        lambda: Plain().increment_stat("n", wrong("1")),
        "amount must be a number, got '1'",
    ),
    (
        "Routine.increment_stat-key-list",
        lambda: Plain().increment_stat(wrong([])),
        "stat key must be a str, got list",
    ),
    (
        "Routine.get_config-key-list",
        lambda: Plain().get_config(wrong([])),
        "config key must be a str, got list",
    ),
    (
        "Routine.emit-outside-handler",
        lambda: Plain().emit("output", value=1),
        "emit('output') called outside one of its handlers",
    ),
    (
        "Routine.deserialize-not-a-dict",
        lambda: Routine.deserialize(wrong([1])),
        "routine",
    ),
    (
        "Slot.deserialize-int",
        lambda: Slot.deserialize(5),
        "slot data must be a dict, got int",
    ),
    (
        "Event.deserialize-str",
        lambda: Event.deserialize("output"),
        "event data must be a dict, got str",
    ),
    (
        "Connection.deserialize-None",
        lambda: Connection.deserialize(None),
        "connection data must be a dict, got NoneType",
    ),
    (
        "ErrorHandler.deserialize-list",
        lambda: ErrorHandler.deserialize([]),
        "error handler data must be a dict, got list",
    ),
    (
        "Routine.increment_stat-text-stat",
        lambda: plain_with_text_stat().increment_stat("count"),
        "stat 'count' holds 'many', not a number",
    ),
]


# -- flows and the jobs they run ---------------------------------------------------


def wired() -> Flow:
    flow = Flow("bad")
    flow.add_routine(Plain(), "plain")
    return flow


FLOW_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("pause-int", lambda: wired().pause(wrong(123)), "job_state must be"),
    ("cancel-int", lambda: wired().cancel(wrong(123)), "job_state must be"),
    ("resume-none", lambda: wired().resume(wrong(None)), "job_state must be"),
    ("recover-none", lambda: wired().recover(wrong(None)), "store must be a Store"),
    (
        "execute-store-str",
        lambda: wired().execute("plain", {"value": 1}, store=wrong("jobs.db")),
        "store must be a Store",
    ),
    (
        "resume-store-str",
        lambda: wired().resume("job", store=wrong("jobs.db")),
        "store must be a Store",
    ),
    (
        "execute-params-int",
        lambda: wired().execute("plain", wrong(5)),
        "entry_params must be a mapping",
    ),
    (
        "connect-id-list",
        lambda: wired().connect(wrong(["plain"]), "output", "plain", "input"),
        "routine_id must be a str",
    ),
    ("get_routine-dict", lambda: wired().get_routine(wrong({})), "routine_id must"),
    ("add_routine-int", lambda: wired().add_routine(wrong(5)), "expects a Routine"),
    (
        "add_routine-id-list",
        lambda: wired().add_routine(Plain(), wrong(["x"])),
        "routine id name must be a str",
    ),
    (
        "set_error_handler-str",
        lambda: wired().set_error_handler(wrong("stop")),
        "error_handler: expected an ErrorHandler",
    ),
    (
        "clock-int",
        lambda: Flow(clock=wrong(5)),
        "clock must be an object with monotonic()",
    ),
    (
        "clock-monotonic-str",
        lambda: Flow(clock=wrong(TextClock())),
        "monotonic() must return seconds as a float, got '12:00'",
    ),
    (
        "history_limit-huge",
        lambda: Flow(history_limit=10**30),
        "history_limit must be a positive int of at most",
    ),
    (
        "max_workers-huge",
        lambda: Flow(max_workers=10**9),
        "max_workers must be a positive int of at most",
    ),
    (
        "strategy-unknown",
        lambda: Flow(execution_strategy="fast"),
        "unknown execution strategy 'fast'",
    ),
    (
        "deserialize-routine-int",
        lambda: Flow.deserialize({**wired().serialize(), "routines": [5]}),
        "flow routines[0] must be a dict",
    ),
    (
        "job_state-history_limit-huge",
        lambda: JobState.deserialize(
            {
                **wired().execute("plain", {"value": 1}).serialize(),
                "history_limit": 10**30,
            }
        ),
        "field 'history_limit' must be from 1 to",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in MODEL_CASES + FLOW_CASES],
    ids=[name for name, _, _ in MODEL_CASES + FLOW_CASES],
)
def test_bad_argument_to_the_model_raises_a_flowforge_error_naming_it(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(FlowForgeError, match=re.escape(message)) as caught:
        call()

    assert not isinstance(caught.value, TypeError) or isinstance(
        caught.value, ArgumentTypeError
    )


# -- stores ------------------------------------------------------------------------

BACKENDS = ["memory", "json_directory", "sqlite"]


def open_store(backend: str, folder: Path) -> Store:
    if backend == "memory":
        return MemoryStore()
    if backend == "json_directory":
        return JsonDirectoryStore(folder / "jobs")
    return SqliteStore(folder / "jobs.db")


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(request.param, tmp_path)
    yield opened
    opened.close()


def a_job() -> JobState:
    return JobState(
        job_id="job",
        flow_id="flow",
        entry_routine_id="start",
        entry_params={},
        entry_slot=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


NO_CHANGE = Change(
    pending_from=0, routine_id=None, buffer_key=None, history_from=0, errors_from=0
)

STORE_CASES: list[tuple[str, Callable[[Store], object], str]] = [
    ("load-int", lambda s: s.load(wrong(123)), "job_id must be a str, got int 123"),
    ("load-None", lambda s: s.load(wrong(None)), "job_id must be a str, got NoneType"),
    ("load-list", lambda s: s.load(wrong(["a"])), "job_id must be a str, got list"),
    ("get-list", lambda s: s.get(wrong(["a"])), "job_id must be a str, got list"),
    ("delete-dict", lambda s: s.delete(wrong({})), "job_id must be a str, got dict"),
    (
        "acquire-list",
        lambda s: s.acquire(wrong(["a"]), owner="A", lease_until=2e9, now=1e9),
        "job_id must be a str, got list",
    ),
    (
        "renew-list",
        lambda s: s.renew(wrong(["a"]), owner="A", lease_until=2e9),
        "job_id must be a str, got list",
    ),
    ("save-str", lambda s: s.save(wrong("job")), "job_state must be a JobState"),
    (
        "create-dict",
        lambda s: s.create(wrong({}), owner="A", lease_until=2e9),
        "job_state must be a JobState, got dict",
    ),
    (
        "checkpoint-None",
        lambda s: s.checkpoint(wrong(None), NO_CHANGE, owner="A", lease_until=2e9),
        "job_state must be a JobState, got NoneType",
    ),
    (
        "list_jobs-flow_id-int",
        lambda s: s.list_jobs(flow_id=wrong(5)),
        "flow_id must be a str or None, got int",
    ),
    (
        "list_jobs-status-list",
        lambda s: s.list_jobs(status=wrong(["done"])),
        "unknown job status ['done']",
    ),
    (
        "prune-older_than-int",
        lambda s: s.prune(older_than=wrong(5)),
        "older_than must be a datetime.timedelta or None, got int 5",
    ),
    (
        "prune-keep-str",
        lambda s: s.prune(keep=wrong("3")),
        "keep must be an int or None, got str '3'",
    ),
    (
        "prune-keep-bool",
        lambda s: s.prune(keep=wrong(True)),
        "keep must be an int or None, got bool",
    ),
    (
        "prune-keep-negative",
        lambda s: s.prune(keep=-1),
        "keep must be zero or more",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in STORE_CASES],
    ids=[name for name, _, _ in STORE_CASES],
)
def test_bad_argument_to_a_store_raises_a_flowforge_error_naming_it(
    store: Store, call: Callable[[Store], object], message: str
) -> None:
    store.save(a_job())

    with pytest.raises(FlowForgeError, match=re.escape(message)) as caught:
        call(store)

    assert not isinstance(caught.value, TypeError) or isinstance(
        caught.value, ArgumentTypeError
    )
    assert store.load("job") == a_job()


OPEN_CASES: list[tuple[str, Callable[[Path], object], str]] = [
    (
        "SqliteStore-timeout-str",
        lambda p: SqliteStore(p / "a.db", timeout=wrong("x")),
        "timeout must be a number of seconds, got str 'x'",
    ),
    (
        "SqliteStore-timeout-nan",
        lambda p: SqliteStore(p / "a.db", timeout=float("nan")),
        "timeout must be from 0 to 2e+06 seconds, got nan",
    ),
    (
        "SqliteStore-timeout-negative",
        lambda p: SqliteStore(p / "a.db", timeout=-1),
        "timeout must be from 0 to 2e+06 seconds, got -1",
    ),
    (
        "SqliteStore-timeout-huge",
        lambda p: SqliteStore(p / "a.db", timeout=1e12),
        "timeout must be from 0 to 2e+06 seconds, got 1000000000000.0",
    ),
    (
        "SqliteStore-synchronous-int",
        lambda p: SqliteStore(p / "a.db", synchronous=wrong(1)),
        "synchronous must be a str, got int",
    ),
    (
        "SqliteStore-synchronous-unknown",
        lambda p: SqliteStore(p / "a.db", synchronous="sometimes"),
        "unknown synchronous setting 'sometimes'",
    ),
    (
        "SqliteStore-path-int",
        lambda p: SqliteStore(wrong(5)),
        "path must be a str or a path, got int",
    ),
    (
        "JsonDirectoryStore-folder-None",
        lambda p: JsonDirectoryStore(wrong(None)),
        "folder must be a str or a path, got NoneType",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in OPEN_CASES],
    ids=[name for name, _, _ in OPEN_CASES],
)
def test_bad_argument_opening_a_store_raises_a_flowforge_error_naming_it(
    tmp_path: Path, call: Callable[[Path], object], message: str
) -> None:
    with pytest.raises(FlowForgeError, match=re.escape(message)):
        call(tmp_path)

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"database": 5}, "database must be a connection string or a ConnectionPool"),
        ({"database": "", "schema": 5}, "schema must be a str, got int 5"),
        ({"database": "", "schema": "a b"}, "schema must be a plain identifier"),
    ],
    ids=["database-int", "schema-int", "schema-not-identifier"],
)
def test_bad_argument_opening_a_postgres_store_raises_a_flowforge_error_naming_it(
    arguments: dict[str, object], message: str
) -> None:
    postgres = pytest.importorskip("flowforge.store.postgres")

    with pytest.raises(FlowForgeError, match=re.escape(message)):
        postgres.PostgresStore(**arguments)
