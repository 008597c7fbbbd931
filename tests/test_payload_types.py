"""register_payload_type: registered classes round-trip, others are refused clearly.

The store contract (``test_store.py``, and so ``test_store_postgres.py``) runs
durable jobs with ``_payloads.TYPED_PAYLOAD`` on every backend; here are the
registry's own rules, JobState round trips, and a job whose checkpoint finds a
value it cannot save.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pydantic
import pytest
from _payloads import ORDER, TYPED_PAYLOAD, Customer, Item, Order, Point, Status
from hypothesis import given, settings
from hypothesis import strategies as st

from flowforge import (
    ArgumentTypeError,
    DuplicateNameError,
    Flow,
    JobState,
    JobStatus,
    Routine,
    SerializationError,
    register_payload_type,
)
from flowforge.store import MemoryStore, SqliteStore, Store
from flowforge.testing import Recorder

CREATED = datetime(2026, 1, 2, tzinfo=UTC)

# -- a deep comparison ------------------------------------------------------------


def shape(value: object) -> object:
    """Return ``value`` as nested ``(type, parts)``, through registered classes too.

    ``Point(1, 2) == (1, 2)`` and ``Priority.HIGH == 2``: comparing shapes
    tells a value from one that lost its type anywhere inside.
    """
    kind = type(value)
    if isinstance(value, pydantic.BaseModel):
        return (kind, shape(dict(value)))
    if dataclasses.is_dataclass(value):
        return (
            kind,
            [shape(getattr(value, f.name)) for f in dataclasses.fields(value)],
        )
    if isinstance(value, enum.Enum):
        return (kind, value.value)
    if isinstance(value, dict):
        return (kind, [(shape(k), shape(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (kind, [shape(item) for item in value])
    if isinstance(value, (set, frozenset)):
        return (kind, sorted(repr(shape(item)) for item in value))
    return (kind, value)


def job_with(params: dict[str, object]) -> JobState:
    """Return a new job state whose entry params are ``params``."""
    return JobState("job", "flow", "start", params, None, CREATED)


def round_trip(value: object) -> object:
    """Save ``value`` in a job state, through JSON text, and load it back."""
    job = job_with({"value": value})
    return JobState.deserialize(json.loads(json.dumps(job.serialize()))).entry_params[
        "value"
    ]


# -- registering ----------------------------------------------------------------


@dataclasses.dataclass
class Unregistered:
    """A dataclass nobody registers."""

    n: int


@register_payload_type(name="tests:Renamed")
@dataclasses.dataclass
class Renamed:
    """Registered under an explicit name."""

    n: int


def test_registering_returns_the_class_as_call_and_as_decorators() -> None:
    class Shade(enum.Enum):
        DARK = "dark"

    assert register_payload_type(Shade) is Shade
    assert register_payload_type(name="tests:Renamed")(Renamed) is Renamed
    assert round_trip(Shade.DARK) is Shade.DARK


def test_registering_a_class_again_under_its_name_changes_nothing() -> None:
    register_payload_type(Order, name="tests:Order")

    assert shape(round_trip(ORDER)) == shape(ORDER)


@pytest.mark.parametrize(
    "value",
    [Status.NEW, Point(1, 2), Item("a", 1), ORDER, TYPED_PAYLOAD],
    ids=["enum", "namedtuple", "dataclass", "nested", "every-kind"],
)
def test_registered_values_round_trip_with_their_types(value: object) -> None:
    assert shape(round_trip(value)) == shape(value)


def test_a_pydantic_model_round_trips_with_its_nested_model_and_extras() -> None:
    @register_payload_type
    class Loose(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")
        customer: Customer

    customer = TYPED_PAYLOAD["customer"]
    assert isinstance(customer, Customer)
    value = Loose(customer=customer, note=Point(5, 6))  # type: ignore[call-arg]

    loaded = round_trip(value)

    assert shape(loaded) == shape(value)
    assert isinstance(loaded, Loose)
    assert loaded.model_extra == {"note": Point(5, 6)}


@pytest.mark.parametrize(
    "cls",
    [int, object, Path, "Order"],
    ids=["int", "object", "plain-class", "not-a-class"],
)
def test_registering_another_kind_is_refused(cls: Any) -> None:
    with pytest.raises(ArgumentTypeError, match="expects a dataclass, an Enum"):
        register_payload_type(cls)


@pytest.mark.parametrize("name", ["", 5], ids=["empty", "not-str"])
def test_registering_under_a_bad_name_is_refused(name: Any) -> None:
    with pytest.raises(ArgumentTypeError, match="name must be a non-empty str"):
        register_payload_type(Unregistered, name=name)


def test_a_name_taken_by_another_class_is_refused() -> None:
    @dataclasses.dataclass
    class Other:
        n: int

    with pytest.raises(DuplicateNameError, match="'tests:Order' is taken by"):
        register_payload_type(Other, name="tests:Order")


def test_a_class_has_one_name() -> None:
    with pytest.raises(DuplicateNameError, match="registered as 'tests:Order'"):
        register_payload_type(Order, name="tests:Order2")


def test_a_dataclass_that_cannot_be_rebuilt_from_its_fields_is_refused() -> None:
    @dataclasses.dataclass
    class Derived:
        n: int
        seed: dataclasses.InitVar[int]

    with pytest.raises(ArgumentTypeError, match="needs 'seed', which is no field"):
        register_payload_type(Derived)


# -- what is refused ----------------------------------------------------------------


def test_an_unregistered_dataclass_is_refused_with_how_to_register_it() -> None:
    job = job_with({"rows": [Unregistered(1)]})

    with pytest.raises(
        SerializationError,
        match=re.escape(
            "entry_params['rows'][0]: cannot save a value of type 'Unregistered'; "
            "register its class to save it: "
            "flowforge.register_payload_type(Unregistered)"
        ),
    ):
        job.serialize()


def test_a_subclass_of_a_registered_class_is_not_saved_as_its_base() -> None:
    @dataclasses.dataclass(frozen=True)
    class Special(Item):
        extra: int = 0

    with pytest.raises(SerializationError, match=r"Special'; register its class"):
        round_trip(Special("a", 1))


def test_a_bad_value_inside_a_registered_one_is_named_by_its_field() -> None:
    with pytest.raises(
        SerializationError,
        match=r"entry_params\['value'\]\.content\.right\[1\]: cannot save",
    ):
        round_trip(Box(Pair(1, [Item("a", 1), Unregistered(2)])))


def saved(value: object) -> dict[str, object]:
    return job_with({"value": value}).serialize()


def test_loading_an_unregistered_name_is_refused_and_imports_nothing() -> None:
    data = json.loads(
        json.dumps(saved(Renamed(1))).replace("tests:Renamed", "os:system")
    )

    with pytest.raises(
        SerializationError,
        match=re.escape(
            "entry_params['value']: unknown payload type 'os:system': no class is "
            "registered under this name; call flowforge.register_payload_type(cls) "
            "(with name='os:system' for a renamed class) before loading"
        ),
    ):
        JobState.deserialize(data)


def test_a_field_the_class_gained_takes_its_default() -> None:
    data = json.loads(json.dumps(saved(Point(1, 2))).replace(', "y": 2', ""))

    assert JobState.deserialize(data).entry_params["value"] == Point(1, 0)


def test_a_saved_field_the_class_lost_is_refused() -> None:
    data = json.loads(json.dumps(saved(Point(1, 2))).replace('"y"', '"z"'))

    with pytest.raises(
        SerializationError,
        match=r"cannot rebuild a '_payloads:Point' from its saved fields: saved "
        r"fields \['z'\] are no fields of Point",
    ):
        JobState.deserialize(data)


def test_a_malformed_payload_tag_is_refused() -> None:
    data = saved(None)
    data["entry_params"] = {"value": {"__ff__": "payload", "v": ["tests:Renamed"]}}

    with pytest.raises(SerializationError, match=r"must be \[<type name>, \{field"):
        JobState.deserialize(data)


def test_registered_values_survive_save_and_load(tmp_path: Path) -> None:
    job = job_with(dict(TYPED_PAYLOAD))
    job.save(tmp_path / "job.json")

    loaded = JobState.load(tmp_path / "job.json")

    assert shape(loaded.entry_params) == shape(TYPED_PAYLOAD)


# -- nested registered values, generated ---------------------------------------------


@register_payload_type
@dataclasses.dataclass
class Box:
    """A dataclass that holds anything."""

    content: object
    label: str = ""


@register_payload_type
class Pair(NamedTuple):
    """A named tuple that holds anything."""

    left: object
    right: object


@register_payload_type
class Wrapper(pydantic.BaseModel):
    """A pydantic model that holds anything."""

    content: Any


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=5),
    st.sampled_from(Status),
    st.builds(Point, st.integers(), st.integers()),
    st.builds(Item, st.text(max_size=3), st.integers()),
)


def containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=3), children, max_size=3),
        st.builds(Box, children, st.text(max_size=3)),
        st.builds(Pair, children, children),
        st.builds(Wrapper, content=children),
    )


@settings(max_examples=150, deadline=None)
@given(value=st.recursive(leaves, containers, max_leaves=12))
def test_any_nesting_of_registered_values_round_trips(value: object) -> None:
    assert shape(round_trip(value)) == shape(value)


# -- a job whose checkpoint cannot be saved ------------------------------------------


class Emitter(Routine):
    """Emit ``value`` (an unregistered dataclass) on ``output``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, n: int) -> None:
        self.emit("output", value=Unregistered(n))


def emitting_flow(strategy: str) -> Flow:
    flow = Flow("emitting", execution_strategy=strategy)
    flow.add_routine(Emitter(), "emitter")
    flow.add_routine(Recorder(), "sink")
    flow.connect("emitter", "output", "sink", "input")
    return flow


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return (
        MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "j.db")
    )


@pytest.mark.parametrize(
    ("strategy", "on_loop"),
    [("sequential", False), ("concurrent", False), ("concurrent", True)],
    ids=["sequential", "concurrent", "async"],
)
def test_a_job_whose_checkpoint_cannot_be_saved_is_stored_failed_with_the_reason(
    store: Store, strategy: str, on_loop: bool
) -> None:
    flow = emitting_flow(strategy)

    with pytest.raises(SerializationError, match=r"register_payload_type\(Unregist"):
        if on_loop:
            start = flow.execute_async("emitter", {"n": 1}, job_id="job", store=store)
            asyncio.run(start)
        else:
            flow.execute("emitter", {"n": 1}, job_id="job", store=store)

    record = store.get("job")
    assert (record.status, record.owner, record.lease_until) == (
        JobStatus.FAILED,
        None,
        None,
    )
    stored = store.load("job")
    [error] = stored.errors
    assert (error.routine_id, error.error_type) == ("emitter", "SerializationError")
    assert "cannot save a value of type 'Unregistered'" in error.message
    assert [d.routine_id for d in stored.pending] == ["emitter"]
    assert stored.finished_at is not None


def test_a_job_stored_failed_that_way_resumes_once_the_type_is_registered(
    store: Store,
) -> None:
    @dataclasses.dataclass
    class Later:
        n: int

    class LaterEmitter(Emitter):
        def handle(self, n: int) -> None:
            self.emit("output", value=Later(n))

    flow = Flow("later")
    flow.add_routine(LaterEmitter(), "emitter")
    sink = Recorder()
    flow.add_routine(sink, "sink")
    flow.connect("emitter", "output", "sink", "input")
    with pytest.raises(SerializationError, match=r"register_payload_type\(Later\)"):
        flow.execute("emitter", {"n": 1}, job_id="job", store=store)
    register_payload_type(Later)

    resumed = flow.resume("job", store=store)

    assert resumed.status is JobStatus.COMPLETED
    assert sink.received == [{"value": Later(1)}]
    assert store.get("job").status is JobStatus.COMPLETED


def test_a_job_whose_entry_params_cannot_be_saved_is_not_stored(store: Store) -> None:
    flow = emitting_flow("sequential")

    with pytest.raises(SerializationError, match=r"entry_params\['n'\]: cannot save"):
        flow.execute("emitter", {"n": Unregistered(1)}, job_id="job", store=store)

    assert store.list_jobs() == []
