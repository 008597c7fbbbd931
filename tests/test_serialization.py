"""Round trips of every serialized shape, as Hypothesis properties, and refusals.

Flows and routines are equal when their serialized forms are; the other model
objects, the execution tracker and job states compare with ``==``. Payload
values are also compared with their exact types (see :func:`typed`).
"""

from __future__ import annotations

import json
import keyword
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from flowforge import (
    Connection,
    ErrorHandler,
    ErrorStrategy,
    Event,
    ExecutionTracker,
    Flow,
    JobState,
    JobStatus,
    Routine,
    SerializationError,
    Slot,
    UnknownRoutineTypeError,
)
from flowforge.testing import FakeClock

# A failing property makes Hypothesis import libcst to write a patch, and libcst
# warns on import; under ``filterwarnings = error`` that hides the real failure.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

# -- routines and an exception the generated flows use ---------------------------------


class ProbeError(Exception):
    """A user-defined exception that retry policies may name."""


class Node(Routine):
    """A routine whose ports are added after construction; one handler for all.

    Config: ``value`` (what it emits), ``fail_every`` (raise ``ProbeError`` on
    every n-th run), ``pause_at`` (pause its job on that run, through
    ``controller``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.controller: Flow | None = None

    def handle(self, /, **data: object) -> None:
        run = self.increment_stat("handled")
        fail_every = self.get_config("fail_every")
        if isinstance(fail_every, int) and run % fail_every == 0:
            raise ProbeError(f"failing on run {run}")
        if self.controller is not None and self.get_config("pause_at") == run:
            self.controller.pause(reason=f"run {run}", checkpoint={"run": run})
        value = self.get_config("value")
        for port in self.events.values():
            if port.output_params is None:
                self.emit(port.name, value=value, run=run)
            else:
                self.emit(port.name, **{name: value for name in port.output_params})

    def keep_first(
        self, old: dict[str, object], new: dict[str, object]
    ) -> dict[str, object]:
        return {**new, **old}


class Fixed(Node):
    """A routine that declares its ports in ``__init__``, as most do."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output", ["value", "run"])


class Source(Node):
    """A source routine: as a job's entry it is called with the entry params."""

    def __call__(self, /, **params: object) -> None:
        self.handle(**params)


KINDS: dict[str, type[Node]] = {"node": Node, "fixed": Fixed, "source": Source}
CONTROL_KEYS = frozenset({"value", "fail_every", "pause_at"})
RESERVED_NAMES = frozenset({"input", "output"})


# -- exact comparison of payload values ------------------------------------------------


def typed(value: object) -> object:
    """Return a hashable picture of ``value`` that keeps every type and detail.

    ``==`` says ``1 == True == 1.0``, ``-0.0 == 0.0``, ``(1,) != [1]`` but
    ``Decimal("1.1") == Decimal("1.10")``; this picture tells them all apart.
    """
    kind = type(value).__qualname__
    if isinstance(value, (dict,)):
        return (kind, tuple((typed(k), typed(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (kind, tuple(typed(item) for item in value))
    if isinstance(value, (set, frozenset)):
        return (kind, frozenset(typed(item) for item in value))
    if isinstance(value, (datetime, time)):
        return (kind, value.isoformat(), repr(value.tzinfo))
    if isinstance(value, (float, Decimal)):
        return (kind, repr(value))
    return (kind, value)


# -- strategies ------------------------------------------------------------------------

IDENTIFIERS = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name)
) | st.sampled_from(["données", "名前"])
OFFSETS = st.sampled_from(
    [
        timezone.utc,
        timezone(timedelta(hours=5, minutes=30)),
        timezone(-timedelta(hours=8)),
    ]
)
ZONES = st.sampled_from([ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")])
HASHABLES = st.one_of(
    st.integers(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.uuids(),
    st.tuples(st.integers(), st.text(max_size=3)),
)
DICT_KEYS = st.text(max_size=6) | st.just("__ff__")
# Any text a store can hold: not blank, UTF-8 (no lone surrogate) and no NUL
# (which SQL text refuses). Flow refuses the others (tests/test_flow.py).
FLOW_IDS = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8
).filter(str.strip)


def scalars(*, nan: bool) -> st.SearchStrategy[object]:
    """Every scalar type the codec saves; ``nan`` adds values unequal to themselves."""
    big = st.integers(min_value=2**63 - 2, max_value=2**70)
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        big,
        big.map(lambda n: -n),
        st.floats(allow_nan=nan),
        st.text(max_size=8),
        st.binary(max_size=8),
        st.binary(max_size=8).map(bytearray),
        st.datetimes(timezones=st.one_of(st.none(), OFFSETS, ZONES)),
        st.dates(),
        st.times(timezones=st.one_of(st.none(), OFFSETS)),
        st.timedeltas(),
        st.decimals(allow_nan=nan),
        st.uuids(),
    )


def payloads(*, nan: bool, leaves: int = 8) -> st.SearchStrategy[object]:
    """Nested payload values of every type the codec saves."""

    def containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
        return st.one_of(
            st.lists(children, max_size=4),
            st.lists(children, max_size=4).map(tuple),
            st.dictionaries(DICT_KEYS, children, max_size=4),
            st.dictionaries(HASHABLES, children, max_size=3),
            st.sets(HASHABLES, max_size=4),
            st.frozensets(HASHABLES, max_size=4),
        )

    return st.recursive(scalars(nan=nan), containers, max_leaves=leaves)


def user_keys(excluded: frozenset[str]) -> st.SearchStrategy[str]:
    return DICT_KEYS.filter(lambda key: key not in excluded)


EXCEPTIONS: list[type[BaseException]] = [
    Exception,
    ValueError,
    KeyError,
    OSError,
    ZeroDivisionError,
    ProbeError,
]
ERROR_HANDLERS = st.builds(
    ErrorHandler,
    st.sampled_from(list(ErrorStrategy)),
    max_retries=st.integers(0, 3),
    retry_delay=st.floats(0, 10),
    retry_backoff=st.floats(1, 4),
    max_retry_delay=st.none() | st.floats(0, 100),
    retry_jitter=st.floats(0, 1),
    retryable_exceptions=st.lists(st.sampled_from(EXCEPTIONS), max_size=3).map(tuple),
    is_critical=st.booleans(),
)


@dataclass(frozen=True)
class SlotSpec:
    name: str
    merge: str  # "override", "append", or "method" for Node.keep_first
    join: bool
    collects_only: bool


@dataclass(frozen=True)
class RoutineSpec:
    routine_id: str
    kind: str
    slots: tuple[SlotSpec, ...]
    events: tuple[tuple[str, tuple[str, ...] | None], ...]
    config: dict[str, object]
    stats: dict[str, object]
    error_handler: ErrorHandler | None

    def slot_names(self) -> list[str]:
        fixed = ["input"] if self.kind == "fixed" else []
        return fixed + [slot.name for slot in self.slots]

    def event_params(self) -> list[tuple[str, tuple[str, ...] | None]]:
        fixed = [("output", ("value", "run"))] if self.kind == "fixed" else []
        return fixed + list(self.events)


@dataclass(frozen=True)
class ConnectionSpec:
    source_id: str
    event: str
    target_id: str
    slot: str
    mapping: dict[str, str]


@dataclass(frozen=True)
class FlowSpec:
    flow_id: str
    routines: tuple[RoutineSpec, ...]
    connections: tuple[ConnectionSpec, ...]
    error_handler: ErrorHandler | None
    max_deliveries: int
    history_limit: int
    entry_params: dict[str, object] = field(default_factory=dict)

    def entry(self) -> tuple[str, str | None]:
        """Return the entry routine's id and slot: the first that can start a job."""
        for routine in self.routines:
            if routine.kind == "source":
                return routine.routine_id, None
            if routine.slot_names():
                return routine.routine_id, routine.slot_names()[0]
        raise AssertionError("flow_specs() always makes an entry")


@st.composite
def routine_specs(
    draw: st.DrawFn, routine_id: str = "routine", *, nan: bool = True, leaves: int = 8
) -> RoutineSpec:
    kind = draw(st.sampled_from(sorted(KINDS)))
    names = draw(
        st.lists(
            IDENTIFIERS.filter(lambda n: n not in RESERVED_NAMES),
            unique=True,
            max_size=6,
        )
    )
    slot_count = draw(st.integers(0, min(3, len(names))))
    slots = tuple(
        SlotSpec(
            name,
            draw(st.sampled_from(["override", "append", "method"])),
            draw(st.booleans()),
            draw(st.booleans()),
        )
        for name in names[:slot_count]
    )
    events = tuple(
        (
            name,
            draw(st.none() | st.lists(IDENTIFIERS, unique=True, max_size=3).map(tuple)),
        )
        for name in names[slot_count : slot_count + 3]
    )
    values = payloads(nan=nan, leaves=leaves)
    config = draw(st.dictionaries(user_keys(CONTROL_KEYS), values, max_size=2))
    config["value"] = draw(values)
    config["fail_every"] = draw(st.none() | st.integers(1, 5))
    config["pause_at"] = draw(st.none() | st.integers(1, 4))
    stats = draw(st.dictionaries(user_keys(frozenset({"handled"})), values, max_size=2))
    handler = draw(st.none() | ERROR_HANDLERS)
    return RoutineSpec(routine_id, kind, slots, events, config, stats, handler)


def mappings(params: tuple[str, ...] | None) -> st.SearchStrategy[dict[str, str]]:
    if params == ():
        return st.just({})
    keys = IDENTIFIERS if params is None else st.sampled_from(params)
    return st.dictionaries(keys, IDENTIFIERS, max_size=2)


@st.composite
def flow_specs(draw: st.DrawFn, *, nan: bool = True) -> FlowSpec:
    ids = draw(st.lists(IDENTIFIERS, min_size=1, max_size=5, unique=True))
    routines = [draw(routine_specs(rid, nan=nan, leaves=3)) for rid in ids]
    if routines[0].kind == "node" and not routines[0].slots:
        routines[0] = replace(routines[0], kind="fixed")
    if not routines[0].event_params():
        routines[0] = replace(routines[0], events=(("output", None),))
    pairs = [
        (source.routine_id, event, params, target.routine_id, slot)
        for source in routines
        for event, params in source.event_params()
        for target in routines
        for slot in target.slot_names()
    ]
    edges = (
        draw(st.lists(st.sampled_from(pairs), unique=True, max_size=8)) if pairs else []
    )
    if pairs and pairs[0][0] not in [edge[0] for edge in edges]:
        # The entry feeds someone, so that most jobs do more than one delivery.
        entry_pairs = [pair for pair in pairs if pair[0] == pairs[0][0]]
        edges.insert(0, draw(st.sampled_from(entry_pairs)))
    connections = tuple(
        ConnectionSpec(source, event, target, slot, draw(mappings(params)))
        for source, event, params, target, slot in edges
    )
    return FlowSpec(
        flow_id=draw(FLOW_IDS),
        routines=tuple(routines),
        connections=connections,
        error_handler=draw(st.none() | ERROR_HANDLERS),
        max_deliveries=draw(st.integers(1, 60)),
        history_limit=draw(st.integers(1, 50)),
        entry_params=draw(
            st.dictionaries(DICT_KEYS, payloads(nan=nan, leaves=6), max_size=3)
        ),
    )


def build_routine(spec: RoutineSpec) -> Node:
    routine = KINDS[spec.kind]()
    for slot in spec.slots:
        merge = routine.keep_first if slot.merge == "method" else slot.merge
        handler = None if slot.collects_only else routine.handle
        routine.define_slot(slot.name, handler, merge, join=slot.join)
    for name, params in spec.events:
        routine.define_event(name, params)
    routine.set_config(**spec.config)
    for key, value in spec.stats.items():
        routine.set_stat(key, value)
    routine.set_error_handler(spec.error_handler)
    return routine


def build_flow(spec: FlowSpec, clock: FakeClock | None = None) -> Flow:
    flow = Flow(
        spec.flow_id,
        error_handler=spec.error_handler,
        max_deliveries=spec.max_deliveries,
        history_limit=spec.history_limit,
        clock=clock,
    )
    for routine_spec in spec.routines:
        routine = build_routine(routine_spec)
        routine.controller = flow
        flow.add_routine(routine, routine_spec.routine_id)
    for c in spec.connections:
        flow.connect(c.source_id, c.event, c.target_id, c.slot, c.mapping)
    return flow


def through_json(data: dict[str, object]) -> object:
    """Return ``data`` after a trip through strict JSON text."""
    loaded: object = json.loads(json.dumps(data, allow_nan=False))
    return loaded


def round_trip_job(job: JobState) -> JobState:
    return JobState.deserialize(through_json(job.serialize()))


# -- properties: definitions -----------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(spec=flow_specs())
def test_flow_round_trips_through_json_to_the_same_definition(spec: FlowSpec) -> None:
    flow = build_flow(spec)

    data = flow.serialize()
    rebuilt = Flow.deserialize(through_json(data))

    assert rebuilt.serialize() == data
    assert list(rebuilt.routines) == list(flow.routines)
    assert [type(r) for r in rebuilt.routines.values()] == [
        type(r) for r in flow.routines.values()
    ]
    assert rebuilt.connections == flow.connections
    assert rebuilt.error_handler == flow.error_handler
    for routine_id, routine in flow.routines.items():
        copy = rebuilt.routines[routine_id]
        assert typed(copy.config()) == typed(routine.config())
        assert typed(copy.stats()) == typed(routine.stats())


@settings(max_examples=60, deadline=None)
@given(spec=routine_specs())
def test_routine_round_trips_with_its_ports_config_stats_and_handler(
    spec: RoutineSpec,
) -> None:
    routine = build_routine(spec)

    data = routine.serialize()
    rebuilt = Routine.deserialize(through_json(data))

    assert rebuilt.serialize() == data
    assert type(rebuilt) is type(routine)
    assert list(rebuilt.slots) == list(routine.slots)
    assert list(rebuilt.events.values()) == list(routine.events.values())
    assert rebuilt.get_error_handler() == routine.get_error_handler()
    assert typed(rebuilt.config()) == typed(routine.config())
    assert typed(rebuilt.stats()) == typed(routine.stats())


@settings(max_examples=50, deadline=None)
@given(spec=routine_specs())
def test_slot_round_trips_with_its_owner(spec: RoutineSpec) -> None:
    routine = build_routine(spec)

    for slot in routine.slots.values():
        rebuilt = Slot.deserialize(through_json(slot.serialize()), routine)

        assert rebuilt == slot
        assert rebuilt.serialize() == slot.serialize()


@settings(max_examples=50, deadline=None)
@given(
    name=IDENTIFIERS,
    params=st.none() | st.lists(IDENTIFIERS, unique=True, max_size=4),
)
def test_event_round_trips(name: str, params: list[str] | None) -> None:
    port = Event(name, params)

    rebuilt = Event.deserialize(through_json(port.serialize()))

    assert rebuilt == port
    assert hash(rebuilt) == hash(port)


@settings(max_examples=50, deadline=None)
@given(
    ends=st.tuples(IDENTIFIERS, IDENTIFIERS, IDENTIFIERS, IDENTIFIERS),
    mapping=st.dictionaries(IDENTIFIERS, IDENTIFIERS, max_size=3),
)
def test_connection_round_trips(
    ends: tuple[str, str, str, str], mapping: dict[str, str]
) -> None:
    connection = Connection(*ends, mapping)

    rebuilt = Connection.deserialize(through_json(connection.serialize()))

    assert rebuilt == connection
    assert rebuilt.serialize() == connection.serialize()


@settings(max_examples=50, deadline=None)
@given(handler=ERROR_HANDLERS)
def test_error_handler_round_trips_with_builtin_and_user_exceptions(
    handler: ErrorHandler,
) -> None:
    rebuilt = ErrorHandler.deserialize(through_json(handler.serialize()))

    assert rebuilt == handler
    assert rebuilt.retryable_exceptions == handler.retryable_exceptions


TRACKER_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("run"),
            IDENTIFIERS,
            st.sampled_from(["completed", "failed", "retried"]),
            st.floats(0, 1e6),
        ),
        st.tuples(
            st.just("emit"),
            IDENTIFIERS,
            IDENTIFIERS,
            st.lists(st.tuples(IDENTIFIERS, IDENTIFIERS), max_size=3),
        ),
        st.tuples(st.just("wall"), st.floats(0, 1e6)),
    ),
    max_size=30,
)


@settings(max_examples=50, deadline=None)
@given(operations=TRACKER_OPS)
def test_execution_tracker_round_trips(operations: list[tuple[object, ...]]) -> None:
    tracker = ExecutionTracker()
    for operation in operations:
        if operation[0] == "run":
            _, routine_id, outcome, seconds = operation
            assert isinstance(routine_id, str) and isinstance(outcome, str)
            assert isinstance(seconds, float)
            tracker._record_run(routine_id, outcome, seconds)
        elif operation[0] == "emit":
            _, routine_id, event, targets = operation
            assert isinstance(routine_id, str) and isinstance(event, str)
            assert isinstance(targets, list)
            tracker._record_emission((routine_id, event), tuple(targets))
        else:
            assert isinstance(operation[1], float)
            tracker._add_wall_time(operation[1])

    rebuilt = ExecutionTracker.deserialize(through_json(tracker.serialize()))

    assert rebuilt == tracker
    assert rebuilt.get_flow_performance() == tracker.get_flow_performance()
    for routine_id in tracker.routine_ids:
        assert rebuilt.get_routine_performance(
            routine_id
        ) == tracker.get_routine_performance(routine_id)


# -- properties: job states ------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(spec=flow_specs(nan=False))
def test_job_state_round_trips_through_json_whatever_the_job_did(
    spec: FlowSpec,
) -> None:
    flow = build_flow(spec, clock=FakeClock())
    entry_id, entry_slot = spec.entry()

    job = flow.execute(entry_id, spec.entry_params, entry_slot=entry_slot)
    restored = round_trip_job(job)
    event(f"{job.status.value}, pending: {bool(job.pending)}")

    assert restored == job
    assert typed(restored.entry_params) == typed(job.entry_params)
    assert [typed(d.data) for d in restored.pending] == [
        typed(d.data) for d in job.pending
    ]
    assert typed(restored.slot_buffers) == typed(job.slot_buffers)
    if job.status in (JobStatus.PAUSED, JobStatus.FAILED):
        resumed = flow.resume(restored)
        assert round_trip_job(resumed) == resumed


# -- job states in each kind of end ----------------------------------------------------


def chain(*, clock: FakeClock | None = None) -> tuple[Flow, Node, Node, Node]:
    """Build ``first -> second -> third`` of Fixed routines, emitting ``value``."""
    flow = Flow("chain", clock=clock or FakeClock())
    routines = (Fixed(), Fixed(), Fixed())
    for routine_id, routine in zip(["first", "second", "third"], routines):
        routine.controller = flow
        routine.set_config(value=(1, {2, 3}, b"4"))
        flow.add_routine(routine, routine_id)
    flow.connect("first", "output", "second", "input")
    flow.connect("second", "output", "third", "input")
    return flow, *routines


def paused_with_pending_and_buffers() -> JobState:
    flow, first, second, _ = chain()
    second.define_slot("side", merge_strategy="append")
    flow.connect("first", "output", "second", "side")
    first.define_event("twice", ["value"])
    flow.connect("first", "twice", "third", "input", {"value": "echo"})
    second.set_config(pause_at=1)
    job = flow.execute("first", {"when": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    assert job.status is JobStatus.PAUSED
    assert job.pending and job.slot_buffers and job.pause_points
    return job


def waiting_join() -> JobState:
    flow, first, second, third = chain()
    third.define_slot("both", third.handle, "append", join=True)
    flow.connect("first", "output", "third", "both")
    flow.connect("second", "output", "third", "both")
    second.set_config(fail_every=1)
    second.set_as_optional()
    job = flow.execute("first", {"n": Decimal("1.10")})
    assert job.status is JobStatus.COMPLETED
    assert job.waiting_joins and job.errors
    return job


def errors_under_continue() -> JobState:
    flow, first, second, third = chain()
    flow.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    second.set_config(fail_every=1)
    job = flow.execute("first", {"id": UUID(int=7)})
    assert job.status is JobStatus.COMPLETED and job.errors
    return job


def failed_after_retries() -> JobState:
    flow, first, second, _ = chain()
    second.set_config(fail_every=1)
    second.set_error_handler(
        ErrorHandler(
            ErrorStrategy.RETRY,
            max_retries=2,
            retryable_exceptions=[ProbeError],
            is_critical=True,
        )
    )
    job = flow.execute("first", {"at": time(12, 30), "span": timedelta(days=2)})
    assert job.status is JobStatus.FAILED and job.pending
    return job


def cancelled() -> JobState:
    flow, first, second, _ = chain()
    second.set_config(pause_at=1)
    job = flow.execute("first", {"day": date(2026, 2, 3)})
    flow.cancel(job)
    assert job.status is JobStatus.CANCELLED
    return job


@pytest.mark.parametrize(
    "make_job",
    [
        paused_with_pending_and_buffers,
        waiting_join,
        errors_under_continue,
        failed_after_retries,
        cancelled,
    ],
    ids=["paused", "waiting_join", "continue_errors", "failed_retries", "cancelled"],
)
def test_job_state_round_trips_in_every_kind_of_end(
    make_job: Callable[[], JobState],
) -> None:
    job = make_job()

    restored = round_trip_job(job)

    assert restored == job
    assert restored.serialize() == job.serialize()


# -- refusals --------------------------------------------------------------------------


def saved_flow() -> dict[str, object]:
    flow, *_ = chain()
    return flow.serialize()


def first_routine(data: dict[str, object]) -> dict[str, object]:
    routines = data["routines"]
    assert isinstance(routines, list)
    routine = routines[0]["routine"]
    assert isinstance(routine, dict)
    return routine


@pytest.mark.parametrize(
    "rebuild",
    [
        lambda data: Flow.deserialize(data),
        lambda data: Routine.deserialize(first_routine(data)),
    ],
    ids=["flow", "routine"],
)
def test_unknown_routine_type_is_refused_with_how_to_register_it(
    rebuild: Callable[[dict[str, object]], object],
) -> None:
    data = saved_flow()
    first_routine(data)["type"] = "elsewhere:Missing"

    with pytest.raises(
        UnknownRoutineTypeError,
        match=r"'elsewhere:Missing' is not registered; import the module .* registry=",
    ) as caught:
        rebuild(data)

    assert caught.value.type_name == "elsewhere:Missing"


def test_unknown_routine_type_is_found_in_a_registry_passed_in() -> None:
    data = saved_flow()
    routines = data["routines"]
    assert isinstance(routines, list)
    for item in routines:
        item["routine"]["type"] = "renamed:Fixed"

    flow = Flow.deserialize(data, registry={"renamed:Fixed": Fixed})

    assert all(type(r) is Fixed for r in flow.routines.values())


def corrupt_version(data: dict[str, object]) -> dict[str, object]:
    return {**data, "version": 99}


def chain_job() -> JobState:
    flow, *_ = chain()
    return flow.execute("first", {"n": 1})


VERSIONED: list[tuple[Callable[[], dict[str, object]], Callable[[object], object]]] = [
    (saved_flow, Flow.deserialize),
    (lambda: first_routine(saved_flow()), Routine.deserialize),
    (lambda: Slot("input").serialize(), Slot.deserialize),
    (lambda: Event("output").serialize(), Event.deserialize),
    (lambda: Connection("a", "b", "c", "d").serialize(), Connection.deserialize),
    (lambda: ErrorHandler().serialize(), ErrorHandler.deserialize),
    (lambda: ExecutionTracker().serialize(), ExecutionTracker.deserialize),
    (lambda: chain_job().serialize(), JobState.deserialize),
]


@pytest.mark.parametrize(
    ("make_data", "rebuild"),
    VERSIONED,
    ids=[
        "flow",
        "routine",
        "slot",
        "event",
        "connection",
        "error_handler",
        "tracker",
        "job_state",
    ],
)
def test_data_of_another_version_is_refused(
    make_data: Callable[[], dict[str, object]], rebuild: Callable[[object], object]
) -> None:
    data = corrupt_version(make_data())

    with pytest.raises(SerializationError, match=r"version 99; this FlowForge reads"):
        rebuild(data)


def test_slot_added_later_with_a_lambda_handler_is_refused_naming_it() -> None:
    flow, _, second, _ = chain()
    second.define_slot("extra", lambda value: None)

    with pytest.raises(
        SerializationError, match=r"routine 'second'.*slot 'extra' field 'handler'"
    ):
        Flow.deserialize(flow.serialize())


def test_config_value_that_cannot_be_saved_is_refused_naming_it() -> None:
    flow, _, second, _ = chain()
    second.set_config(transform=lambda value: value)

    with pytest.raises(
        SerializationError,
        match=r"routine 'second'.*config\['transform'\]: cannot save .*'function'",
    ):
        flow.serialize()


def test_unknown_exception_in_an_error_handler_is_refused() -> None:
    data = ErrorHandler(ErrorStrategy.RETRY).serialize()
    data["retryable_exceptions"] = ["nowhere:VanishedError"]

    with pytest.raises(
        SerializationError,
        match=r"exception class 'nowhere:VanishedError' is not defined",
    ):
        ErrorHandler.deserialize(data)


PROBE_MODULE = '''
"""Record that this module was imported, then define what the data names."""
import pathlib

pathlib.Path({marker!r}).write_text("imported")

from flowforge import Routine


class Thing(Routine):
    pass


class ThingError(Exception):
    pass
'''


def write_probe_module(folder: Path, name: str) -> Path:
    marker = folder / f"{name}.imported"
    (folder / f"{name}.py").write_text(PROBE_MODULE.format(marker=str(marker)))
    return marker


def flow_naming_a_type(module: str) -> dict[str, object]:
    data = saved_flow()
    first_routine(data)["type"] = f"{module}:Thing"
    return data


def flow_naming_an_exception(module: str) -> dict[str, object]:
    data = saved_flow()
    handler = ErrorHandler(ErrorStrategy.RETRY).serialize()
    handler["retryable_exceptions"] = [f"{module}:ThingError"]
    data["error_handler"] = handler
    return data


@pytest.mark.parametrize(
    ("module", "make_data", "error"),
    [
        ("flowforge_probe_module_xyz", flow_naming_a_type, UnknownRoutineTypeError),
        ("flowforge_probe_module_exc", flow_naming_an_exception, SerializationError),
    ],
    ids=["routine_type", "exception"],
)
def test_deserializing_never_imports_a_module_named_in_data(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    make_data: Callable[[str], dict[str, object]],
    error: type[SerializationError],
) -> None:
    marker = write_probe_module(tmp_path, module)
    monkeypatch.syspath_prepend(str(tmp_path))
    data = make_data(module)

    with pytest.raises(error, match=f"'{module}:Thing(Error)?' is not"):
        Flow.deserialize(data)

    assert not marker.exists()
    assert module not in sys.modules


# -- methods that data may name as handlers -------------------------------------------


class HandlerBase(Routine):
    """A user's base class: its public methods are the routine's own."""

    def shared(self, value: object) -> None:
        self.set_stat("shared", value)


class Crafted(HandlerBase):
    """A routine whose slots data may add; ``label`` is not a method."""

    label = "a class attribute"

    def own(self, value: object) -> None:
        self.set_stat("own", value)

    def _private(self, value: object) -> None:
        self.set_stat("private", value)


def routine_naming(method: str) -> dict[str, object]:
    """Return ``Crafted``'s data with one more slot whose handler is ``method``."""
    data = Crafted().serialize()
    slot = Slot("extra").serialize()
    slot["handler"] = {"method": method}
    data["slots"] = [slot]
    return data


@pytest.mark.parametrize(
    ("method", "why"),
    [
        ("set_config", "inherited from Routine"),
        ("reset_stats", "inherited from Routine"),
        ("__init__", "only public methods"),
        ("__delattr__", "only public methods"),
        ("_private", "only public methods"),
        ("label", "Crafted.label is a str, not a method"),
        ("missing", "has no such method"),
    ],
    ids=["set_config", "reset_stats", "init", "delattr", "private", "attr", "missing"],
)
def test_data_may_not_name_a_method_the_routines_class_does_not_define(
    method: str, why: str
) -> None:
    data = routine_naming(method)

    with pytest.raises(
        SerializationError,
        match=rf"slot 'extra' field 'handler': cannot restore method '{method}' "
        rf"of Crafted: .*{why}",
    ):
        Routine.deserialize(data)


@pytest.mark.parametrize("method", ["own", "shared"], ids=["own", "user_base"])
def test_data_may_name_a_public_method_of_the_routines_own_classes(
    method: str,
) -> None:
    data = routine_naming(method)

    routine = Routine.deserialize(data)

    assert routine.slots["extra"].handler == getattr(routine, method)
    assert routine.serialize() == data
