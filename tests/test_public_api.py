"""The public API: a small, sorted ``__all__`` and one root for every error.

The names of every public module and the public members of every public class
are pinned below, so that a name added (or lost) by accident fails here: when
you change the public API on purpose, change these lists in the same commit.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import flowforge
import flowforge.exceptions
import flowforge.testing

EXCEPTION_CLASSES = [
    value
    for value in vars(flowforge.exceptions).values()
    if inspect.isclass(value)
    and issubclass(value, BaseException)
    and value.__module__ == "flowforge.exceptions"
]
ERROR_CLASSES = [
    cls for cls in EXCEPTION_CLASSES if cls is not flowforge.FlowForgeWarning
]


def test_all_is_sorted() -> None:
    assert flowforge.__all__ == sorted(flowforge.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(flowforge.__all__) == len(set(flowforge.__all__))


@pytest.mark.parametrize("name", flowforge.__all__, ids=flowforge.__all__)
def test_every_name_in_all_is_importable(name: str) -> None:
    assert getattr(flowforge, name, None) is not None


@pytest.mark.parametrize(
    "name", flowforge.testing.__all__, ids=flowforge.testing.__all__
)
def test_every_name_of_flowforge_testing_is_importable(name: str) -> None:
    assert getattr(flowforge.testing, name).__name__ == name


def test_exceptions_module_lists_every_exception_it_defines() -> None:
    assert sorted(flowforge.exceptions.__all__) == sorted(
        cls.__name__ for cls in EXCEPTION_CLASSES
    )


@pytest.mark.parametrize(
    "name", flowforge.exceptions.__all__, ids=flowforge.exceptions.__all__
)
def test_every_exception_is_exported_from_the_top_level(name: str) -> None:
    assert name in flowforge.__all__


@pytest.mark.parametrize(
    "cls", ERROR_CLASSES, ids=[cls.__name__ for cls in ERROR_CLASSES]
)
def test_every_error_derives_from_flowforge_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, flowforge.FlowForgeError)


def test_flowforge_warning_is_a_user_warning_outside_the_error_tree() -> None:
    assert issubclass(flowforge.FlowForgeWarning, UserWarning)
    assert not issubclass(flowforge.FlowForgeWarning, flowforge.FlowForgeError)


def test_package_ships_py_typed() -> None:
    assert (Path(flowforge.__file__).parent / "py.typed").is_file()


def test_version_is_a_string() -> None:
    assert isinstance(flowforge.__version__, str)


PUBLIC_MODULES: dict[str, list[str]] = {
    "flowforge": [
        "ArgumentTypeError",
        "Connection",
        "DefinitionError",
        "DeliveryContext",
        "DeliveryInfo",
        "DeliveryResult",
        "DuplicateNameError",
        "ErrorHandler",
        "ErrorRecord",
        "ErrorStrategy",
        "Event",
        "ExecutionError",
        "ExecutionTracker",
        "Finding",
        "Flow",
        "FlowForgeError",
        "FlowForgeWarning",
        "FlowPerformance",
        "HistoryRecord",
        "InvalidFlowError",
        "JobFailedError",
        "JobNotFoundError",
        "JobState",
        "JobStateError",
        "JobStatus",
        "Observer",
        "Routine",
        "RoutineError",
        "RoutinePerformance",
        "RoutineState",
        "RoutineStatus",
        "SerializationError",
        "Slot",
        "StoreError",
        "UnknownPortError",
        "UnknownRoutineTypeError",
        "current_delivery",
        "register_payload_type",
        "step",
    ],
    "flowforge.store": [
        "Change",
        "JobRecord",
        "JsonDirectoryStore",
        "MemoryStore",
        "SqliteStore",
        "Store",
    ],
    "flowforge.store.postgres": ["PostgresStore", "SCHEMA_VERSION"],
    "flowforge.testing": [
        "FakeClock",
        "Outcome",
        "Recorder",
        "Relay",
        "StoreWrapper",
        "deliver",
        "deliver_async",
    ],
    "flowforge.dask": ["DaskRunner"],
    "flowforge.otel": ["TracingObserver"],
}
PUBLIC_CLASSES: dict[str, list[str]] = {
    "flowforge.Connection": [
        "apply",
        "deserialize",
        "event",
        "param_mapping",
        "serialize",
        "slot",
        "source_id",
        "target_id",
    ],
    "flowforge.DeliveryContext": [
        "attempt",
        "delivery_key",
        "job",
        "routine_id",
        "seq",
        "slot",
    ],
    "flowforge.ErrorHandler": [
        "deserialize",
        "final_strategy",
        "is_critical",
        "is_optional",
        "max_retries",
        "max_retry_delay",
        "retry_backoff",
        "retry_delay",
        "retry_delay_for",
        "retry_jitter",
        "retryable_exceptions",
        "serialize",
        "should_retry",
        "strategy",
    ],
    "flowforge.DeliveryInfo": [
        "attempt",
        "flow_id",
        "job_id",
        "routine_id",
        "seq",
        "slot",
    ],
    "flowforge.DeliveryResult": ["duration", "error", "outcome"],
    "flowforge.ErrorRecord": [
        "at",
        "attempt",
        "error_type",
        "message",
        "payload",
        "payload_saved",
        "routine_id",
        "seq",
        "slot",
        "traceback",
    ],
    "flowforge.ErrorStrategy": ["CONTINUE", "RETRY", "SKIP", "STOP"],
    "flowforge.Event": ["check", "deserialize", "name", "output_params", "serialize"],
    "flowforge.ExecutionTracker": [
        "deserialize",
        "get_event_counts",
        "get_event_targets",
        "get_flow_performance",
        "get_routine_performance",
        "routine_ids",
        "serialize",
        "wall_time",
    ],
    "flowforge.Flow": [
        "add_observer",
        "add_routine",
        "cancel",
        "chain",
        "clock",
        "close",
        "connect",
        "connect_failures",
        "connections",
        "deserialize",
        "disconnect",
        "error_handler",
        "execute",
        "execute_async",
        "execution_strategy",
        "failure_routes",
        "flow_id",
        "get_routine",
        "history_limit",
        "max_deliveries",
        "max_pending",
        "max_workers",
        "pause",
        "recover",
        "remove_observer",
        "remove_routine",
        "resume",
        "resume_async",
        "routines",
        "serialize",
        "set_error_handler",
        "set_execution_strategy",
        "to_dot",
        "to_mermaid",
        "validate",
    ],
    "flowforge.Finding": ["code", "message", "port", "routine_id", "severity"],
    "flowforge.FlowPerformance": [
        "deliveries",
        "events_emitted",
        "failures",
        "retries",
        "routed",
        "runs",
        "successes",
        "throughput",
        "wall_time",
    ],
    "flowforge.HistoryRecord": [
        "attempt",
        "duration",
        "outcome",
        "routine_id",
        "seq",
        "slot",
        "started_at",
    ],
    "flowforge.JobState": [
        "created_at",
        "delivery_count",
        "deserialize",
        "entry_params",
        "entry_routine_id",
        "entry_slot",
        "error",
        "error_count",
        "error_totals",
        "errors",
        "finished_at",
        "flow_id",
        "flow_shape",
        "get_execution_history",
        "get_routine_state",
        "history_limit",
        "history_total",
        "is_finished",
        "job_id",
        "join_arrivals",
        "load",
        "next_seq",
        "pause_points",
        "pending",
        "raise_for_status",
        "routine_states",
        "save",
        "serialize",
        "slot_buffers",
        "started_at",
        "status",
        "tracker",
        "waiting_groups",
        "waiting_joins",
    ],
    "flowforge.JobStatus": [
        "CANCELLED",
        "COMPLETED",
        "FAILED",
        "PAUSED",
        "PENDING",
        "RUNNING",
    ],
    "flowforge.Routine": [
        "config",
        "define_event",
        "define_slot",
        "deserialize",
        "emit",
        "events",
        "get_config",
        "get_error_handler",
        "get_event",
        "get_slot",
        "get_stat",
        "increment_stat",
        "reset_stats",
        "serialize",
        "set_as_critical",
        "set_as_optional",
        "set_config",
        "set_error_handler",
        "set_stat",
        "slots",
        "stats",
    ],
    "flowforge.RoutinePerformance": [
        "avg_time",
        "deliveries",
        "failures",
        "max_time",
        "min_time",
        "p50_time",
        "p95_time",
        "retries",
        "routed",
        "routine_id",
        "runs",
        "success_rate",
        "successes",
    ],
    "flowforge.RoutineState": [
        "deliveries",
        "error_counts",
        "errors",
        "routine_id",
        "stats",
        "status",
    ],
    "flowforge.RoutineStatus": ["COMPLETED", "FAILED", "RUNNING", "SKIPPED"],
    "flowforge.Slot": [
        "correlate",
        "deserialize",
        "handler",
        "invoke",
        "is_async",
        "is_join",
        "merge",
        "merge_strategy",
        "name",
        "serialize",
        "timeout",
    ],
    "flowforge.store.Change": [
        "buffer_key",
        "errors_from",
        "history_from",
        "pending_from",
        "routine_id",
    ],
    "flowforge.store.JobRecord": [
        "flow_id",
        "job_id",
        "lease_until",
        "owner",
        "status",
        "updated_at",
    ],
    "flowforge.store.JsonDirectoryStore": [
        "acquire",
        "checkpoint",
        "close",
        "create",
        "delete",
        "get",
        "list_jobs",
        "load",
        "prune",
        "renew",
        "save",
    ],
    "flowforge.store.MemoryStore": [
        "acquire",
        "checkpoint",
        "close",
        "create",
        "delete",
        "get",
        "list_jobs",
        "load",
        "prune",
        "renew",
        "save",
    ],
    "flowforge.store.SqliteStore": [
        "acquire",
        "checkpoint",
        "close",
        "create",
        "delete",
        "get",
        "list_jobs",
        "load",
        "prune",
        "renew",
        "save",
    ],
    "flowforge.store.Store": [
        "acquire",
        "checkpoint",
        "close",
        "create",
        "delete",
        "get",
        "list_jobs",
        "load",
        "prune",
        "renew",
        "save",
    ],
    "flowforge.store.postgres.PostgresStore": [
        "acquire",
        "checkpoint",
        "close",
        "create",
        "create_schema",
        "delete",
        "get",
        "list_jobs",
        "load",
        "prune",
        "renew",
        "save",
    ],
    "flowforge.testing.FakeClock": [
        "advance",
        "monotonic",
        "now",
        "sleep",
        "sleep_async",
    ],
    "flowforge.testing.Outcome": ["buffer", "emissions", "error", "payloads", "stats"],
    "flowforge.testing.Recorder": [
        "config",
        "define_event",
        "define_slot",
        "deserialize",
        "emit",
        "events",
        "get_config",
        "get_error_handler",
        "get_event",
        "get_slot",
        "get_stat",
        "increment_stat",
        "record",
        "reset_stats",
        "serialize",
        "set_as_critical",
        "set_as_optional",
        "set_config",
        "set_error_handler",
        "set_stat",
        "slots",
        "stats",
    ],
    "flowforge.testing.Relay": [
        "config",
        "define_event",
        "define_slot",
        "deserialize",
        "emit",
        "events",
        "get_config",
        "get_error_handler",
        "get_event",
        "get_slot",
        "get_stat",
        "increment_stat",
        "relay",
        "reset_stats",
        "serialize",
        "set_as_critical",
        "set_as_optional",
        "set_config",
        "set_error_handler",
        "set_stat",
        "slots",
        "stats",
    ],
    "flowforge.testing.StoreWrapper": [
        "acquire",
        "checkpoint",
        "close",
        "create",
        "delete",
        "get",
        "list_jobs",
        "load",
        "prune",
        "renew",
        "save",
    ],
    "flowforge.dask.DaskRunner": ["map", "run_many", "submit"],
    "flowforge.function_routine.FunctionRoutine": [
        "config",
        "define_event",
        "define_slot",
        "deserialize",
        "emit",
        "events",
        "function",
        "get_config",
        "get_error_handler",
        "get_event",
        "get_slot",
        "get_stat",
        "increment_stat",
        "reset_stats",
        "serialize",
        "set_as_critical",
        "set_as_optional",
        "set_config",
        "set_error_handler",
        "set_stat",
        "slots",
        "stats",
    ],
    "flowforge.Observer": [
        "on_delivery_end",
        "on_delivery_start",
        "on_error",
        "on_job_end",
        "on_job_start",
        "on_retry",
    ],
    "flowforge.otel.TracingObserver": [
        "on_delivery_end",
        "on_delivery_start",
        "on_job_end",
        "on_job_start",
    ],
    "flowforge.record.Delivery": [
        "attempt",
        "connection",
        "data",
        "routine_id",
        "seq",
        "slot",
    ],
    "flowforge.record.PausePoint": ["at", "checkpoint", "deliveries", "reason"],
}


def load(module: str) -> ModuleType:
    """Import a public module; skip when it needs an extra that is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as error:  # flowforge.dask and postgres need extras
        pytest.skip(f"{module} needs an optional extra: {error}")


def public_members(cls: type) -> list[str]:
    """Return the public names of ``cls``: members of enums, else attributes.

    Instance attributes count when the class declares them (an annotation in
    its body, a dataclass field, ``__slots__``).
    """
    if issubclass(cls, enum.Enum):
        return sorted(member.name for member in cls)
    inherited = set(dir(tuple if issubclass(cls, tuple) else object))
    names = set(dir(cls))
    for klass in cls.__mro__:
        names |= set(vars(klass).get("__annotations__", {}))
        names |= set(vars(klass).get("__slots__", ()))
    return sorted(n for n in names if not n.startswith("_") and n not in inherited)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=list(PUBLIC_MODULES))
def test_public_module_exports_exactly_the_pinned_names(module: str) -> None:
    exported = sorted(load(module).__all__)

    assert exported == PUBLIC_MODULES[module]


@pytest.mark.parametrize("qualified", PUBLIC_CLASSES, ids=list(PUBLIC_CLASSES))
def test_public_class_has_exactly_the_pinned_members(qualified: str) -> None:
    module, _, name = qualified.rpartition(".")
    cls = getattr(load(module), name)

    assert public_members(cls) == PUBLIC_CLASSES[qualified]


DOCUMENTED_CLASSES = [
    "flowforge.function_routine.FunctionRoutine",
    "flowforge.record.Delivery",
    "flowforge.record.PausePoint",
]
"""Classes documented in the API reference but not exported on their own."""


def test_every_public_class_is_pinned() -> None:
    classes = set(DOCUMENTED_CLASSES) | {
        f"{module}.{name}"
        for module, names in PUBLIC_MODULES.items()
        for name in names
        if inspect.isclass(value := getattr(load(module), name))
        and not issubclass(value, BaseException)
    }

    assert sorted(classes) == sorted(PUBLIC_CLASSES)


@pytest.mark.parametrize("module", ["flowforge", "flowforge.store"])
def test_public_module_holds_no_public_name_outside_all(module: str) -> None:
    loaded = load(module)

    extra = {
        name
        for name in dir(loaded)
        if not name.startswith("_")
        and not isinstance(getattr(loaded, name), ModuleType)
        and name not in loaded.__all__
        and name != "annotations"  # from __future__ import annotations
    }

    assert sorted(extra) == []
