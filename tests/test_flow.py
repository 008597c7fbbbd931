"""Flow: adding routines, wiring them, validating every name, and its views."""

from __future__ import annotations

import re

import pytest

from flowforge import (
    Connection,
    DefinitionError,
    DuplicateNameError,
    ErrorHandler,
    Flow,
    JobStatus,
    Routine,
    UnknownPortError,
)
from flowforge.testing import FakeClock, Recorder, Relay


class SyncSleepAsyncClock(FakeClock):  # type: ignore[misc]  # FakeClock is final
    def sleep_async(self, seconds: float) -> None:  # type: ignore[override]
        self.sleep(seconds)


class DataProcessor(Routine):
    """A routine whose class name gives the default id ``data_processor``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input")


class ForgotSuper(Routine):
    """A routine whose ``__init__`` does not call ``super().__init__()``."""

    def __init__(self) -> None:
        self.note = "no ports"


def wire_pair(flow: Flow) -> None:
    flow.add_routine(Relay(), "source")
    flow.add_routine(Recorder(), "sink")


# -- construction ---------------------------------------------------------------------


def test_flow_keeps_the_given_id() -> None:
    flow = Flow(flow_id="ingest")

    assert flow.flow_id == "ingest"


def test_flows_without_an_id_get_distinct_ids() -> None:
    first, second = Flow(), Flow()

    assert first.flow_id != second.flow_id


def test_flow_rejects_an_empty_id() -> None:
    with pytest.raises(DefinitionError, match="flow_id must be a non-empty str"):
        Flow(flow_id=" ")


@pytest.mark.parametrize(
    ("flow_id", "message"),
    [
        ("a\x00b", "flow_id 'a\\x00b' cannot be stored: it holds a NUL character"),
        ("\ud800", "flow_id '\\ud800' cannot be stored: surrogates not allowed"),
    ],
    ids=["nul", "lone-surrogate"],
)
def test_flow_rejects_an_id_no_store_can_hold(flow_id: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)):
        Flow(flow_id=flow_id)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_deliveries", 0),
        ("max_deliveries", -1),
        ("max_deliveries", True),
        ("history_limit", 0),
    ],
    ids=["deliveries_zero", "deliveries_negative", "deliveries_bool", "history_zero"],
)
def test_flow_rejects_a_limit_that_is_not_a_positive_int(
    option: str, value: int
) -> None:
    with pytest.raises(DefinitionError, match=f"{option} must be a positive int"):
        Flow(**{option: value})  # type: ignore[arg-type]  # one option at a time


def test_flow_rejects_an_error_handler_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="expected an ErrorHandler or None"):
        Flow(error_handler="continue")  # type: ignore[arg-type]  # on purpose


def test_set_error_handler_rejects_anything_else(flow: Flow) -> None:
    with pytest.raises(TypeError, match="expected an ErrorHandler or None"):
        flow.set_error_handler(3)  # type: ignore[arg-type]  # on purpose


def test_set_error_handler_keeps_the_handler(flow: Flow) -> None:
    handler = ErrorHandler("continue")

    flow.set_error_handler(handler)

    assert flow.error_handler is handler


def test_flow_repr_shows_id_and_size(flow: Flow) -> None:
    wire_pair(flow)
    flow.connect("source", "output", "sink", "input")

    assert repr(flow) == "Flow(flow_id='test_flow', routines=2, connections=1)"


# -- add_routine ----------------------------------------------------------------------


def test_add_routine_returns_the_given_id(flow: Flow) -> None:
    routine = Recorder()

    routine_id = flow.add_routine(routine, "sink")

    assert routine_id == "sink"
    assert flow.routines["sink"] is routine


def test_add_routine_derives_default_ids_from_the_class_name(flow: Flow) -> None:
    ids = [flow.add_routine(DataProcessor()) for _ in range(3)]

    assert ids == ["data_processor", "data_processor_2", "data_processor_3"]


def test_default_id_skips_an_id_already_taken(flow: Flow) -> None:
    flow.add_routine(Recorder(), "data_processor")

    routine_id = flow.add_routine(DataProcessor())

    assert routine_id == "data_processor_2"


def test_add_routine_rejects_a_taken_id(flow: Flow) -> None:
    flow.add_routine(Recorder(), "sink")

    with pytest.raises(DuplicateNameError, match="already has a routine with id"):
        flow.add_routine(Recorder(), "sink")


def test_add_routine_rejects_the_same_instance_twice(flow: Flow) -> None:
    routine = Recorder()
    flow.add_routine(routine, "first")

    with pytest.raises(DefinitionError, match="already in the flow as 'first'"):
        flow.add_routine(routine, "second")


def test_add_routine_rejects_a_routine_that_skipped_super_init(flow: Flow) -> None:
    with pytest.raises(DefinitionError, match=r"must call super\(\).__init__\(\)"):
        flow.add_routine(ForgotSuper(), "broken")


def test_add_routine_rejects_what_is_not_a_routine(flow: Flow) -> None:
    with pytest.raises(TypeError, match="add_routine expects a Routine"):
        flow.add_routine(object(), "thing")  # type: ignore[arg-type]  # on purpose


@pytest.mark.parametrize(
    "routine_id",
    ["has space", "1abc", "class", "", "with-dash"],
    ids=["space", "leading_digit", "keyword", "empty", "dash"],
)
def test_add_routine_rejects_an_id_that_is_not_an_identifier(
    flow: Flow, routine_id: str
) -> None:
    with pytest.raises(DefinitionError, match="routine id name .* is not valid"):
        flow.add_routine(Recorder(), routine_id)


def test_rejected_id_leaves_the_flow_unchanged(flow: Flow) -> None:
    with pytest.raises(DefinitionError, match="is not valid"):
        flow.add_routine(Recorder(), "has space")

    assert dict(flow.routines) == {}


def test_unicode_ids_work_end_to_end(flow: Flow) -> None:
    sink = Recorder()
    flow.add_routine(Relay(), "entrée")
    flow.add_routine(sink, "données")
    flow.connect("entrée", "output", "données", "input")

    job = flow.execute("entrée", {"valeur": 1})

    assert job.status is JobStatus.COMPLETED
    assert sink.received == [{"valeur": 1}]
    assert set(job.routine_states) == {"entrée", "données"}


# -- views ----------------------------------------------------------------------------


def test_routines_are_listed_in_the_order_they_were_added(flow: Flow) -> None:
    for routine_id in ("c", "a", "b"):
        flow.add_routine(Recorder(), routine_id)

    assert list(flow.routines) == ["c", "a", "b"]


def test_routines_view_is_read_only(flow: Flow) -> None:
    with pytest.raises(TypeError, match="does not support item assignment"):
        flow.routines["sink"] = Recorder()  # type: ignore[index]  # read-only view


def test_connections_view_cannot_be_changed(flow: Flow) -> None:
    wire_pair(flow)
    connection = flow.connect("source", "output", "sink", "input")

    with pytest.raises(AttributeError, match="append"):
        flow.connections.append(connection)  # type: ignore[attr-defined]  # on purpose


def test_connections_are_listed_in_the_order_they_were_made(flow: Flow) -> None:
    wire_pair(flow)
    flow.add_routine(Recorder(), "other")
    second = flow.connect("source", "output", "other", "input")
    first = flow.connect("source", "output", "sink", "input")

    assert flow.connections == (second, first)


def test_get_routine_returns_the_routine(flow: Flow) -> None:
    routine = Recorder()
    flow.add_routine(routine, "sink")

    assert flow.get_routine("sink") is routine


def test_get_routine_of_an_unknown_id_lists_the_routines(flow: Flow) -> None:
    wire_pair(flow)

    with pytest.raises(UnknownPortError, match=r"no routine 'x'.*\['sink', 'source'\]"):
        flow.get_routine("x")


# -- connect --------------------------------------------------------------------------


def test_connect_returns_the_connection_it_adds(flow: Flow) -> None:
    wire_pair(flow)

    connection = flow.connect("source", "output", "sink", "input", {"a": "b"})

    assert connection == Connection("source", "output", "sink", "input", {"a": "b"})
    assert flow.connections == (connection,)


def test_connect_allows_many_to_many_wiring(flow: Flow) -> None:
    wire_pair(flow)
    flow.add_routine(Relay(), "second_source")
    flow.add_routine(Recorder(), "second_sink")

    for source in ("source", "second_source"):
        for sink in ("sink", "second_sink"):
            flow.connect(source, "output", sink, "input")

    assert len(flow.connections) == 4


def test_connect_allows_a_routine_to_feed_itself(flow: Flow) -> None:
    flow.add_routine(Relay(), "loop")

    connection = flow.connect("loop", "output", "loop", "input")

    assert flow.connections == (connection,)


def test_connect_rejects_the_same_pair_twice(flow: Flow) -> None:
    wire_pair(flow)
    flow.connect("source", "output", "sink", "input")

    with pytest.raises(DefinitionError, match="already connected"):
        flow.connect("source", "output", "sink", "input")


def test_connect_rejects_the_same_pair_twice_even_with_another_mapping(
    flow: Flow,
) -> None:
    wire_pair(flow)
    flow.connect("source", "output", "sink", "input")

    with pytest.raises(DefinitionError, match="connect a pair once"):
        flow.connect("source", "output", "sink", "input", {"a": "b"})


def test_rejected_duplicate_connection_is_not_added(flow: Flow) -> None:
    wire_pair(flow)
    flow.connect("source", "output", "sink", "input")

    with pytest.raises(DefinitionError, match="already connected"):
        flow.connect("source", "output", "sink", "input")

    assert len(flow.connections) == 1


UNKNOWN_PORTS = [
    pytest.param("ghost", "output", "sink", "input", "no routine 'ghost'", id="source"),
    pytest.param("source", "nope", "sink", "input", "no event 'nope'", id="event"),
    pytest.param(
        "source", "output", "ghost", "input", "no routine 'ghost'", id="target"
    ),
    pytest.param("source", "output", "sink", "nope", "no slot 'nope'", id="slot"),
]


@pytest.mark.parametrize(("source", "event", "target", "slot", "match"), UNKNOWN_PORTS)
def test_connect_rejects_unknown_names(
    flow: Flow, source: str, event: str, target: str, slot: str, match: str
) -> None:
    wire_pair(flow)

    with pytest.raises(UnknownPortError, match=match):
        flow.connect(source, event, target, slot)


@pytest.mark.parametrize(
    "builtin", [LookupError, ValueError], ids=["lookup_error", "value_error"]
)
def test_unknown_port_error_can_be_caught_as_a_builtin(
    flow: Flow, builtin: type[Exception]
) -> None:
    wire_pair(flow)

    with pytest.raises(builtin, match="no slot 'nope'"):
        flow.connect("source", "output", "sink", "nope")


def test_duplicate_connection_error_can_be_caught_as_value_error(flow: Flow) -> None:
    wire_pair(flow)
    flow.connect("source", "output", "sink", "input")

    with pytest.raises(ValueError, match="already connected"):
        flow.connect("source", "output", "sink", "input")


def test_wiring_after_a_job_is_used_by_the_next_job(flow: Flow) -> None:
    source, sink = Relay(), Recorder()
    flow.add_routine(source, "source")
    flow.add_routine(sink, "sink")
    flow.execute("source", {"n": 1})

    flow.connect("source", "output", "sink", "input")
    flow.execute("source", {"n": 2})

    assert sink.received == [{"n": 2}]


def test_flow_round_trip_keeps_the_execution_strategy_and_max_workers() -> None:
    flow = Flow("pool", execution_strategy="concurrent", max_workers=3)
    flow.add_routine(Recorder(), "sink")

    rebuilt = Flow.deserialize(flow.serialize())

    assert (rebuilt.execution_strategy, rebuilt.max_workers) == ("concurrent", 3)
    assert rebuilt.serialize() == flow.serialize()


def test_flow_data_without_strategy_keys_runs_sequentially_with_eight_workers() -> None:
    data = Flow("old").serialize()
    del data["execution_strategy"], data["max_workers"]

    rebuilt = Flow.deserialize(data)

    assert (rebuilt.execution_strategy, rebuilt.max_workers) == ("sequential", 8)


def test_flow_refuses_a_clock_without_the_clock_methods() -> None:
    with pytest.raises(DefinitionError, match="clock must be an object with monotonic"):
        Flow(clock=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_deliveries", 0, "max_deliveries must be a positive int"),
        ("history_limit", "10", "history_limit must be a positive int"),
        ("max_workers", True, "max_workers must be a positive int"),
        ("execution_strategy", "fast", "unknown execution strategy 'fast'"),
    ],
    ids=["max_deliveries", "history_limit", "max_workers", "strategy"],
)
def test_flow_settings_are_checked_when_assigned(
    name: str, value: object, message: str
) -> None:
    flow = Flow()

    with pytest.raises(DefinitionError, match=message):
        setattr(flow, name, value)


def test_a_setting_cannot_be_deleted_and_keeps_its_value() -> None:
    flow = Flow(max_workers=3)

    with pytest.raises(DefinitionError, match="max_workers cannot be deleted"):
        del flow.max_workers

    assert flow.max_workers == 3


def test_a_changed_setting_reaches_the_next_job() -> None:
    flow = Flow()
    flow.add_routine(Relay(), "loop")
    flow.connect("loop", "output", "loop", "input")
    flow.max_deliveries = 5

    job = flow.execute("loop", {"n": 1})

    assert job.status is JobStatus.FAILED
    assert job.delivery_count == 5


class Late(Routine):
    """Emits on an event that a test defines after the routine joined a flow."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")
        self.define_later = False

    def handle(self, n: int) -> None:
        if self.define_later:
            self.define_event("late")
        if "late" in self.events:
            self.emit("late", n=n)
        self.emit("output", n=n)


def test_an_event_defined_after_the_plan_was_built_reaches_the_next_job() -> None:
    flow = Flow()
    late = Late()
    flow.add_routine(late, "late")
    flow.add_routine(Recorder(), "sink")
    flow.execute("late", {"n": 0})  # builds the plan
    late.define_event("late")
    flow.connect("late", "late", "sink", "input")

    job = flow.execute("late", {"n": 1})

    assert job.status is JobStatus.COMPLETED
    assert flow.routines["sink"].received == [{"n": 1}]  # type: ignore[attr-defined]


def test_an_event_defined_while_a_job_runs_goes_nowhere_in_that_job() -> None:
    flow = Flow()
    late = Late()
    flow.add_routine(late, "late")
    flow.add_routine(Recorder(), "sink")
    flow.connect("late", "output", "sink", "input")
    late.define_later = True

    job = flow.execute("late", {"n": 1})

    assert job.status is JobStatus.COMPLETED
    assert flow.routines["sink"].received == [{"n": 1}]  # type: ignore[attr-defined]
    assert job.get_routine_state("late").status.value == "completed"


def test_flow_id_is_checked_when_assigned() -> None:
    flow = Flow("named")

    with pytest.raises(DefinitionError, match="flow_id"):
        flow.flow_id = ""

    assert flow.flow_id == "named"


def test_a_new_flow_id_reaches_the_next_job() -> None:
    flow = Flow("before")
    flow.add_routine(Recorder(), "sink")
    flow.execute("sink", {"n": 1})

    flow.flow_id = "after"

    assert flow.execute("sink", {"n": 2}).flow_id == "after"


@pytest.mark.parametrize(
    "clock",
    [FakeClock, object(), SyncSleepAsyncClock()],
    ids=["class", "no-methods", "sync-sleep-async"],
)
def test_flow_refuses_a_clock_it_could_not_use(clock: object) -> None:
    with pytest.raises(DefinitionError, match="clock"):
        Flow(clock=clock)  # type: ignore[arg-type]  # on purpose
