"""Every parameter of the public API has a bad-argument case, or a reason not to.

The public callables are taken from the pins of ``test_public_api.py``: the
functions of the public modules, and the constructor and methods of every
public class. A parameter is covered by a case whose id reads
``Owner.method-param-what`` in one of the tables, or listed in ``ALLOWED``
with the reason it takes any object. So a public method added without a case
fails here until its bad arguments are tried.

The hostile-object tests at the end pass an argument whose ``repr``, ``str``,
``hash``, ``==`` and ``bool`` all raise: the error must still be FlowForge's.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

import pytest

from _bad_args import Hostile, Plain, assert_refused, finished_job, wired, wrong
from flowforge import (
    Connection,
    ErrorHandler,
    Event,
    Flow,
    JobState,
    Routine,
    Slot,
    register_payload_type,
    step,
)
from flowforge.store import JsonDirectoryStore, MemoryStore, SqliteStore
from flowforge.testing import FakeClock, StoreWrapper, deliver
from test_bad_arguments import MODEL_CASES
from test_bad_arguments_flow import CASES
from test_bad_arguments_store import OPEN_CASES, POSTGRES_OPEN_CASES, STORE_CASES
from test_bad_arguments_testing import DASK_CASES, OTEL_IDS, TESTING_CASES
from test_public_api import PUBLIC_CLASSES, PUBLIC_MODULES

CASE_IDS = [
    *(name for name, _, _ in MODEL_CASES + CASES + TESTING_CASES),
    *(name for name, _, _ in DASK_CASES),
    *(name for name, _, _ in STORE_CASES),
    *(name for name, _, _ in OPEN_CASES),
    *(name for name, _, _ in POSTGRES_OPEN_CASES),
    *OTEL_IDS,
]
"""The id of every bad-argument case: ``Owner.method-param-what``."""

STORES = {
    "JsonDirectoryStore",
    "MemoryStore",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreWrapper",
}
"""Classes with the ``Store`` methods: their cases are ``Store.<method>-...``,
run against every backend by ``test_bad_arguments_store.py`` (and
``test_bad_arguments_postgres.py``)."""

RECORD = "a record FlowForge builds and hands out, as plain data; data read back "
RECORD += "is checked by deserialize, not by the constructor"
PAYLOAD = "any saveable value, by design: checked when saved, naming where it is"
ALLOWED: dict[str, str] = {
    # Plain records: dataclasses and named tuples that hold what they are given.
    "Change-*": RECORD,
    "Delivery-*": RECORD,
    "DeliveryContext-*": RECORD,
    "DeliveryInfo-*": RECORD,
    "DeliveryResult-*": RECORD,
    "ErrorRecord-*": RECORD,
    "Finding-*": RECORD,
    "FlowPerformance-*": RECORD,
    "HistoryRecord-*": RECORD,
    "JobRecord-*": RECORD,
    "JobState-*": RECORD + " (JobState.deserialize, Store.load)",
    "Outcome-*": RECORD + " (by deliver)",
    "PausePoint-*": RECORD,
    "RoutinePerformance-*": RECORD,
    "RoutineState-*": RECORD,
    # Enums: Python's own lookup by value; FlowForge's entry points parse
    # strategies and statuses themselves, with cases above.
    "ErrorStrategy-*": "an Enum: ErrorStrategy('x') is Python's lookup",
    "JobStatus-*": "an Enum: JobStatus('x') is Python's lookup",
    "RoutineStatus-*": "an Enum: RoutineStatus('x') is Python's lookup",
    # Protocols are interfaces; their implementations have the cases.
    "Store-*": "a Protocol: not instantiated; every backend has the store cases",
    "Observer-*": "a Protocol: not instantiated",
    "Observer.on_delivery_end-*": "a hook the engine calls with its own records",
    "Observer.on_delivery_start-*": "a hook the engine calls with its own records",
    "Observer.on_error-*": "a hook the engine calls with its own records",
    "Observer.on_job_end-*": "a hook the engine calls with its own records",
    "Observer.on_job_start-*": "a hook the engine calls with its own records",
    "Observer.on_retry-*": "a hook the engine calls with its own records",
    "TracingObserver.on_delivery_end-*": "an Observer hook, called by the engine",
    "TracingObserver.on_delivery_start-*": "an Observer hook, called by the engine",
    "TracingObserver.on_job_end-*": "an Observer hook, called by the engine",
    "TracingObserver.on_job_start-*": "an Observer hook, called by the engine",
    # Values that user code passes through: any object is accepted.
    "Routine.emit-data": PAYLOAD + " (and each key is checked against the event)",
    "Routine.set_stat-value": PAYLOAD,
    "Routine.set_config-config": PAYLOAD,
    "Routine.get_stat-default": "returned as given when the stat is unset",
    "Routine.get_config-default": "returned as given when the key is unset",
    "Recorder.record-data": PAYLOAD + " (a handler's payload)",
    "Relay.relay-data": PAYLOAD + " (a handler's payload)",
    "Flow.pause-checkpoint": PAYLOAD + " (kept with the pause point)",
}
"""Parameters that take any object, with the reason: ``Owner.method-param``
(``-*`` for every parameter of the callable)."""

OPTIONAL = ("DaskRunner", "TracingObserver", "PostgresStore")
"""Callables of optional extras: their ids may name what is not installed."""


def parameters(function: Callable[..., object], *, drop_first: bool) -> list[str]:
    names = list(inspect.signature(function).parameters)
    return names[1:] if drop_first else names


def class_callables(cls: type, members: list[str]) -> dict[str, list[str]]:
    """Return the constructor and the methods of ``cls`` that take arguments."""
    found = {cls.__name__: parameters(cls, drop_first=False)}
    for member in members:
        raw = inspect.getattr_static(cls, member, None)
        if not isinstance(raw, (classmethod, staticmethod)) and not callable(raw):
            continue  # an attribute or property, not a method
        method = getattr(cls, member)
        owner = "Store" if cls.__name__ in STORES else None
        key = f"{owner}.{member}" if owner else method.__qualname__
        found[key] = parameters(method, drop_first=inspect.isfunction(raw))
    return found


def public_callables() -> dict[str, list[str]]:
    """Return ``{callable: parameter names}`` for the installed public API."""
    found: dict[str, list[str]] = {}
    for module_name, names in PUBLIC_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # an optional extra
            continue
        for name in names:
            value = getattr(module, name)
            if inspect.isfunction(value):
                found[name] = parameters(value, drop_first=False)
    for qualified, members in PUBLIC_CLASSES.items():
        module_name, _, name = qualified.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), name)
        except ImportError:  # an optional extra
            continue
        found.update(class_callables(cls, members))
    return {key: names for key, names in found.items() if names}


def pairs(keys: list[str]) -> set[tuple[str, str]]:
    return {(key.split("-")[0], key.split("-")[1]) for key in keys}


def test_every_parameter_of_the_public_api_has_a_bad_argument_case() -> None:
    found = public_callables()
    required = {(key, name) for key, names in found.items() for name in names}
    allowed = {
        (owner, name)
        for owner, param in pairs(list(ALLOWED))
        for name in (found.get(owner, []) if param == "*" else [param])
    }

    missing = sorted(required - pairs(CASE_IDS) - allowed)

    assert missing == []


def test_every_case_and_exemption_names_a_parameter_that_exists() -> None:
    found = public_callables()
    named = pairs(CASE_IDS) | pairs(list(ALLOWED))

    unknown = sorted(
        (owner, name)
        for owner, name in named
        if not owner.startswith(OPTIONAL) or owner in found
        if name not in found.get(owner, []) and not (name == "*" and owner in found)
    )

    assert unknown == []


def test_no_parameter_is_both_tried_and_exempted() -> None:
    assert sorted(pairs(CASE_IDS) & pairs(list(ALLOWED))) == []


def test_the_public_api_has_callables_with_parameters() -> None:
    found = public_callables()

    assert "Flow.execute" in found
    assert found["Store.load"] == ["job_id"]
    assert found["Routine.define_slot"][0] == "name"


# -- hostile objects ---------------------------------------------------------------

H = Hostile()
HOSTILE_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("Flow-flow_id", lambda: Flow(wrong(H)), "flow_id must be a non-empty str"),
    ("Flow-error_handler", lambda: Flow(error_handler=wrong(H)), "error_handler"),
    ("Flow-max_pending", lambda: Flow(max_pending=wrong(H)), "max_pending must be"),
    ("Flow-clock", lambda: Flow(clock=wrong(H)), "clock must be an object"),
    ("Flow-executor", lambda: Flow(executor=wrong(H)), "executor must be"),
    (
        "Flow-execution_strategy",
        lambda: Flow(execution_strategy=wrong(H)),
        "unknown execution strategy <Hostile instance",
    ),
    ("Flow.add_routine", lambda: wired().add_routine(wrong(H)), "expects a Routine"),
    (
        "Flow.add_routine-routine_id",
        lambda: wired().add_routine(Plain(), wrong(H)),
        "routine id name must be a str, got Hostile",
    ),
    (
        "Flow.connect",
        lambda: wired().connect("plain", "output", "other", "input", wrong(H)),
        "param_mapping must be a mapping",
    ),
    (
        "Flow.connect_failures",
        lambda: wired().connect_failures("plain", "other", wrong(H)),
        "slot must be a slot name (a str), got Hostile",
    ),
    ("Flow.chain", lambda: wired().chain(wrong(H)), "chain item 0 must be a Routine"),
    ("Flow.add_observer", lambda: wired().add_observer(H), "observer must have"),
    ("Flow.remove_observer", lambda: wired().remove_observer(H), "is not an observer"),
    (
        "Flow.execute-entry_routine_id",
        lambda: wired().execute(wrong(H)),
        "entry_routine_id must be a routine id (a str), got Hostile",
    ),
    (
        "Flow.execute-entry_params",
        lambda: wired().execute("plain", wrong(H)),
        "entry_params must be a mapping",
    ),
    (
        "Flow.execute-job_id",
        lambda: wired().execute("plain", job_id=wrong(H)),
        "job_id must be a non-empty str",
    ),
    (
        "Flow.execute-store",
        lambda: wired().execute("plain", store=wrong(H)),
        "store must be a Store",
    ),
    ("Flow.pause", lambda: wired().pause(wrong(H)), "job_state must be"),
    ("Flow.pause-reason", lambda: wired().pause("job", wrong(H)), "reason must be"),
    ("Flow.resume", lambda: wired().resume(wrong(H)), "job_state must be"),
    (
        "Flow.resume-force",
        lambda: wired().resume(finished_job(), force=wrong(H)),
        "force must be a bool",
    ),
    ("Flow.recover", lambda: wired().recover(wrong(H)), "store must be a Store"),
    ("Flow.deserialize", lambda: Flow.deserialize(H), "flow data must be a dict"),
    ("JobState.deserialize", lambda: JobState.deserialize(H), "must be a dict"),
    ("JobState.load", lambda: JobState.load(wrong(H)), "path must be a str"),
    (
        "JobState.get_routine_state",
        lambda: finished_job().get_routine_state(wrong(H)),
        "routine_id must be a str",
    ),
    ("Slot-name", lambda: Slot(wrong(H)), "slot name must be a str"),
    ("Slot-handler", lambda: Slot("input", wrong(H)), "handler must be callable"),
    (
        "Slot-merge_strategy",
        lambda: Slot("input", merge_strategy=wrong(H)),
        "unknown merge_strategy",
    ),
    ("Slot-join", lambda: Slot("input", join=wrong(H)), "join must be a bool"),
    ("Slot-timeout", lambda: Slot("input", timeout=wrong(H)), "timeout must be"),
    ("Slot.merge", lambda: Slot("input").merge({}, wrong(H)), "data must be"),
    ("Event-output_params", lambda: Event("out", wrong(H)), "output_params must"),
    ("Event.check", lambda: Event("out").check(wrong(H), "r"), "data must be"),
    (
        "Connection-source_id",
        lambda: Connection(wrong(H), "output", "b", "input"),
        "source_id must be a str",
    ),
    (
        "Connection.apply",
        lambda: Connection("a", "o", "b", "i").apply(wrong(H)),
        "data",
    ),
    ("ErrorHandler-strategy", lambda: ErrorHandler(wrong(H)), "unknown error strategy"),
    (
        "ErrorHandler-retry_delay",
        lambda: ErrorHandler(retry_delay=wrong(H)),
        "retry_delay must be a finite",
    ),
    (
        "ErrorHandler-retryable_exceptions",
        lambda: ErrorHandler(retryable_exceptions=wrong(H)),
        "retryable_exceptions must be",
    ),
    (
        "ErrorHandler-is_critical",
        lambda: ErrorHandler(is_critical=wrong(H)),
        "is_critical must be a bool",
    ),
    (
        "ErrorHandler.should_retry",
        lambda: ErrorHandler().should_retry(wrong(H), 0),
        "error must be an exception",
    ),
    ("Routine.set_stat", lambda: Plain().set_stat(wrong(H), 1), "stat key must be"),
    ("Routine.get_config", lambda: Plain().get_config(wrong(H)), "config key must"),
    (
        "Routine.increment_stat",
        lambda: Plain().increment_stat("n", wrong(H)),
        "amount must be a number",
    ),
    (
        "Routine.set_as_optional",
        lambda: Plain().set_as_optional(wrong(H)),
        "unknown error strategy",
    ),
    ("Routine.get_slot", lambda: Plain().get_slot(wrong(H)), "slot names are str"),
    ("Routine.deserialize", lambda: Routine.deserialize(H), "routine data must be"),
    ("step", lambda: step(wrong(H)), "@step decorates a function"),
    (
        "register_payload_type",
        lambda: register_payload_type(wrong(H)),
        "register_payload_type expects",
    ),
    ("deliver", lambda: deliver(wrong(H)), "deliver expects a Routine"),
    ("FakeClock", lambda: FakeClock(wrong(H)), "start must be an aware datetime"),
    ("FakeClock.sleep", lambda: FakeClock().sleep(wrong(H)), "seconds must be"),
    ("StoreWrapper", lambda: StoreWrapper(wrong(H)), "store must be a Store"),
    ("MemoryStore.load", lambda: MemoryStore().load(wrong(H)), "job_id must be a str"),
    (
        "MemoryStore.acquire",
        lambda: MemoryStore().acquire(
            "job", owner="A", lease_until=1.0, now=1.0, replacing=wrong(H)
        ),
        "replacing must be an owner id",
    ),
    (
        "MemoryStore.list_jobs",
        lambda: MemoryStore().list_jobs(status=wrong(H)),
        "unknown job status <Hostile instance at",
    ),
    (
        "SqliteStore-commit_every",
        lambda: SqliteStore("unused.db", commit_every=wrong(H)),
        "commit_every must be an int (deliveries per transaction), got Hostile",
    ),
    (
        "SqliteStore",
        lambda: SqliteStore(wrong(H)),
        "path must be a str or a path, got Hostile",
    ),
    (
        "JsonDirectoryStore",
        lambda: JsonDirectoryStore(wrong(H)),
        "folder must be a str or a path, got Hostile",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in HOSTILE_CASES],
    ids=[name for name, _, _ in HOSTILE_CASES],
)
def test_a_hostile_argument_gets_a_flowforge_error_not_its_own(
    call: Callable[[], object], message: str
) -> None:
    error = assert_refused(call, message)

    assert not isinstance(error.__context__, RuntimeError)  # never the object's own
