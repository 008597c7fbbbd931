"""The Store contract, run against every backend; then each backend's own failures."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import re
import sqlite3
import threading
import urllib.parse
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import _store_worker
import pytest
from _payloads import TYPED_PAYLOAD

from flowforge.store._change_log import FOLD_EVERY
from flowforge.store import _json as store_json
from flowforge.store import _shapes
from flowforge.store._shapes import stored_shape
from flowforge.store.sqlite import SCHEMA_VERSION

from flowforge import (
    ArgumentTypeError,
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    ExecutionTracker,
    Flow,
    FlowForgeError,
    FlowForgeWarning,
    JobNotFoundError,
    JobState,
    JobStateError,
    JobStatus,
    Routine,
    SerializationError,
    StoreError,
)
from flowforge.record import Delivery
from flowforge.store import (
    Change,
    JsonDirectoryStore,
    MemoryStore,
    SqliteStore,
    Store,
)
from flowforge.testing import Recorder, Relay, StoreWrapper

BACKENDS: Final = ["memory", "json_directory", "sqlite", "sqlite_grouped"]
SHARED_BACKENDS: Final = ["json_directory", "sqlite"]
WAIT: Final = 30.0
"""Seconds a thread or process may take before the test gives up on it."""
NOW: Final = 2_000_000_000.0
"""A fixed "now" for lease checks, in seconds since the epoch."""
CREATED: Final = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PAYLOAD: Final[dict[str, object]] = {
    "tuple": (1, "two", (3.5, None)),
    "set": {3, 1, 2},
    "frozenset": frozenset({"a", "b"}),
    "bytes": b"\x00\xffraw",
    "bytearray": bytearray(b"mutable"),
    "when": datetime(2024, 5, 17, 12, 30, 1, 500, tzinfo=UTC),
    "amount": Decimal("12.50"),
    "id": UUID("12345678-1234-5678-1234-567812345678"),
    "gap": timedelta(days=1, seconds=2),
    "nested": {"list": [1, None, True, -0.5], 3: "int key", "__ff__": "not a tag"},
    "text": "héllo ☃ 日本",
    "big": 2**70,
}


# -- routines and flows ------------------------------------------------------------


class Source(Routine):
    """A source routine: emits its entry params on ``output``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self, **params: object) -> None:
        self.emit("output", **params)


class Gate(Routine):
    """Counts deliveries in its stats, pauses through ``controller`` if set."""

    def __init__(self) -> None:
        super().__init__()
        self.controller: Flow | None = None
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, **data: object) -> None:
        self.increment_stat("seen")
        self.set_stat("last_keys", tuple(sorted(data)))
        if self.controller is not None:
            self.controller.pause(
                reason="inspect", checkpoint={"at": (1, 2), "tags": {"x"}}
            )
        self.emit("output", **data)


class Joiner(Routine):
    """A join slot that emits the merged data of all its connections."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle, join=True)
        self.define_event("output")

    def handle(self, **data: object) -> None:
        self.emit("output", **data)


class Countdown(Routine):
    """Emit ``n - 1`` to itself until ``n`` is 1; call ``probe(n)`` first if set."""

    def __init__(self) -> None:
        super().__init__()
        self.probe: Callable[[int], None] | None = None
        self.define_slot("input", self.handle)
        self.define_event("again")

    def handle(self, n: int) -> None:
        if self.probe is not None:
            self.probe(n)
        if n > 1:
            self.emit("again", n=n - 1)


def rich_flow() -> Flow:
    """``start`` feeds a waiting join, a failing routine, a pausing gate and a sink.

    A job of it pauses with a pending delivery (to ``sink``), slot buffers,
    join arrivals, an error, a pause point, history and tracker figures.
    """
    flow = Flow("rich")
    flow.add_routine(Source(), "start")
    flow.add_routine(Source(), "idle")
    flow.add_routine(Joiner(), "joiner")
    broken = Recorder()
    broken.set_config(fail_times=1)
    broken.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(broken, "broken")
    gate = Gate()
    gate.controller = flow
    flow.add_routine(gate, "gate")
    flow.add_routine(Recorder(), "sink")
    for target in ("joiner", "broken", "gate", "sink"):
        flow.connect("start", "output", target, "input")
    flow.connect("idle", "output", "joiner", "input")
    return flow


def diamond_flow() -> Flow:
    """``start -> left, right -> joiner (join) -> sink``: the join fires once."""
    flow = Flow("diamond")
    flow.add_routine(Source(), "start")
    flow.add_routine(Relay(), "left")
    flow.add_routine(Relay(), "right")
    flow.add_routine(Joiner(), "joiner")
    flow.add_routine(Recorder(), "sink")
    flow.connect("start", "output", "left", "input")
    flow.connect("start", "output", "right", "input")
    flow.connect("left", "output", "joiner", "input")
    flow.connect("right", "output", "joiner", "input")
    flow.connect("joiner", "output", "sink", "input")
    return flow


def countdown_flow(history_limit: int = 3) -> Flow:
    """A routine that loops into itself, with a short history."""
    flow = Flow("countdown", history_limit=history_limit)
    flow.add_routine(Countdown(), "loop")
    flow.connect("loop", "again", "loop", "input")
    return flow


FLOWS: Final[dict[str, tuple[Callable[[], Flow], str, dict[str, object]]]] = {
    "rich_paused": (rich_flow, "start", PAYLOAD),
    "diamond_join": (diamond_flow, "start", {"value": (1, 2)}),
    "countdown_history": (countdown_flow, "loop", {"n": 8}),
    "typed_payloads": (rich_flow, "start", TYPED_PAYLOAD),
}


def paused_job(job_id: str = "rich-job") -> JobState:
    """Run ``rich_flow`` without a store; return the paused job."""
    job = rich_flow().execute("start", PAYLOAD, job_id=job_id)
    assert job.status is JobStatus.PAUSED
    return job


def plain_job(
    job_id: str,
    status: JobStatus = JobStatus.COMPLETED,
    *,
    flow_id: str = "plain",
) -> JobState:
    """Return a small job state with the given status."""
    return JobState(
        job_id=job_id,
        flow_id=flow_id,
        entry_routine_id="start",
        entry_params={"value": 1},
        entry_slot=None,
        created_at=CREATED,
        status=status,
    )


def typed(value: object) -> object:
    """Return ``value`` with each item paired with its exact type.

    ``{1} == frozenset({1})`` and ``b"x" == bytearray(b"x")``; comparing
    ``typed`` results tells them apart.
    """
    if isinstance(value, dict):
        return (dict, [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value), [typed(v) for v in value])
    if isinstance(value, (set, frozenset)):
        return (type(value), sorted(repr(typed(v)) for v in value))
    return (type(value), value)


def without_tracker(job: JobState) -> JobState:
    """Return ``job`` with empty tracker figures, to compare everything else."""
    job.tracker = ExecutionTracker()
    return job


def no_change(job: JobState) -> Change:
    """Return a change that says only the pending deliveries may differ."""
    return Change(
        pending_from=0,
        routine_id=None,
        buffer_key=None,
        history_from=job.history_total,
        errors_from=len(job.errors),
    )


def with_extra_delivery(job: JobState) -> JobState:
    """Return a copy of ``job`` with one more pending delivery."""
    copy = JobState.deserialize(job.serialize())
    copy.pending.append(Delivery(99, "sink", "input", {"late": True}))
    return copy


# -- stores --------------------------------------------------------------------


def open_store(backend: str, tmp_path: Path) -> Store:
    """Open an empty store of ``backend`` under ``tmp_path``."""
    if backend == "memory":
        return MemoryStore()
    if backend == "json_directory":
        return JsonDirectoryStore(tmp_path / "jobs")
    if backend == "sqlite_grouped":  # group commit, by count only: deterministic
        return SqliteStore(tmp_path / "jobs.db", commit_every=16, commit_interval=3600)
    return SqliteStore(tmp_path / "jobs.db")


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each backend."""
    opened = open_store(request.param, tmp_path)
    yield opened
    opened.close()


class CheckedStore(StoreWrapper):
    """Delegate to ``inner``; after each checkpoint, keep what loads back.

    ``pairs`` holds ``(loaded, live)`` job states: the job as the store
    returns it right after the checkpoint, and a copy of the running job.
    """

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.pairs: list[tuple[JobState, JobState]] = []

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)
        loaded = self.inner.load(job_state.job_id)
        self.pairs.append((loaded, JobState.deserialize(job_state.serialize())))


# -- save and load ---------------------------------------------------------------


def test_every_backend_implements_the_store_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_saved_job_loads_back_equal(store: Store) -> None:
    job = paused_job()
    assert job.pending and job.slot_buffers and job.waiting_joins
    assert job.errors and job.pause_points and job.get_execution_history()
    assert job.tracker.routine_ids and job.routine_states["gate"].stats

    store.save(job)

    assert store.load(job.job_id) == job


def test_saved_job_keeps_the_exact_types_of_its_payloads(store: Store) -> None:
    job = paused_job()

    store.save(job)
    loaded = store.load(job.job_id)

    assert typed(loaded.entry_params) == typed(PAYLOAD)
    assert typed(loaded.pending[-1].data) == typed(PAYLOAD)
    assert typed(loaded.slot_buffers[("joiner", "input")]) == typed(PAYLOAD)
    assert typed(loaded.pause_points[0].checkpoint) == typed(
        {"at": (1, 2), "tags": {"x"}}
    )
    assert typed(loaded.routine_states["gate"].stats) == typed(
        job.routine_states["gate"].stats
    )


# -- flow shapes, kept once per flow definition ------------------------------------

MARKER: Final = "idle_marker_routine"
"""A routine id that only a stored flow shape holds: no job reaches it."""


def marked_flow() -> Flow:
    """``start -> sink``, beside a routine no job reaches (named ``MARKER``)."""
    flow = Flow("marked")
    flow.add_routine(Source(), "start")
    flow.add_routine(Recorder(), "sink")
    flow.add_routine(Relay(), MARKER)
    flow.connect("start", "output", "sink", "input")
    return flow


def stored_text(store: Store) -> str:
    """Return the job and shape data ``store`` holds, as text (behind its back)."""
    if isinstance(store, MemoryStore):
        headers = [entry.rows.header for entry in store._jobs.values()]
        return "".join(headers + list(store._shapes.values()))
    if isinstance(store, JsonDirectoryStore):
        files = sorted(p for p in store.folder.iterdir() if p.name != ".lock")
        return "".join(p.read_text("utf-8") for p in files)
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as db:
            return "\n".join(db.iterdump())
    postgres: Any = store  # Any: PostgresStore, which this module does not import
    query = (
        f"SELECT (SELECT string_agg(header, '') FROM \"{postgres.schema}\".jobs) "
        f"|| (SELECT string_agg(shape, '') FROM \"{postgres.schema}\".shapes)"
    )
    return str(postgres._run("read", lambda db: db.execute(query).fetchone()[0]))


def lose_shape(store: Store, shape: dict[str, object]) -> None:
    """Remove a flow shape from ``store`` behind its back, as damage would."""
    shape_id = stored_shape(shape).shape_id
    if isinstance(store, MemoryStore):
        del store._shapes[shape_id]
    elif isinstance(store, JsonDirectoryStore):
        (store.folder / f"{shape_id}.shape").unlink()
    elif isinstance(store, SqliteStore):
        corrupt(store.path, "DELETE FROM shapes WHERE shape_id = ?", shape_id)
    else:
        postgres: Any = store  # Any: PostgresStore, which this module does not import
        delete = f'DELETE FROM "{postgres.schema}".shapes WHERE shape_id = %s'
        postgres._run("write to", lambda db: db.execute(delete, (shape_id,)))


def test_jobs_of_one_flow_store_its_shape_once(store: Store) -> None:
    flow = marked_flow()

    jobs = [
        flow.execute("start", {"n": n}, job_id=f"job-{n}", store=store)
        for n in range(10)
    ]

    assert stored_text(store).count(MARKER) == 1
    for job in jobs:
        loaded = store.load(job.job_id)
        assert loaded == job
        assert json.dumps(loaded.flow_shape) == json.dumps(job.flow_shape)


def test_only_the_first_job_of_a_flow_writes_its_shape_out(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = marked_flow()
    written: list[object] = []

    def counting(value: object) -> str:
        written.append(value)
        return store_json.dumps(value)

    monkeypatch.setattr(_shapes, "dumps", counting)

    jobs = [
        flow.execute("start", {"n": n}, job_id=f"job-{n}", store=store)
        for n in range(5)
    ]

    assert written == [jobs[0].flow_shape]
    assert all(job.flow_shape is jobs[0].flow_shape for job in jobs)


def test_saving_a_job_again_keeps_its_shape_once(store: Store) -> None:
    job = paused_job()
    store.save(job)
    store.save(JobState.deserialize(job.serialize()))  # an equal shape, a new dict
    store.save(plain_job("other", flow_id="rich"))  # another shape: empty

    assert store.load(job.job_id) == job
    assert store.load("other") == plain_job("other", flow_id="rich")
    assert stored_text(store).count('"connections":[') == 1


def test_deleting_every_job_of_a_shape_leaves_the_store_usable(store: Store) -> None:
    job = paused_job()
    store.save(job)
    store.delete(job.job_id)

    store.save(job)

    assert store.load(job.job_id) == job


def test_a_job_naming_a_shape_the_store_lacks_raises_serialization_error(
    store: Store,
) -> None:
    job = paused_job()
    store.save(job)
    lose_shape(store, job.flow_shape)

    with pytest.raises(SerializationError, match="names flow shape '[0-9a-f]{64}'"):
        store.load(job.job_id)
    assert store.get(job.job_id).status is JobStatus.PAUSED


def test_recover_skips_a_job_whose_shape_is_lost_and_recovers_the_rest(
    store: Store,
) -> None:
    flow = rich_flow()
    sound = paused_job("sound")
    damaged = paused_job("damaged")
    damaged.flow_shape = {**damaged.flow_shape, "lost": True}  # a shape of its own
    for job in (sound, damaged):
        job.status = JobStatus.RUNNING
        store.save(job)
    lose_shape(store, damaged.flow_shape)

    with pytest.warns(FlowForgeWarning, match="job 'damaged' was not recovered"):
        recovered = flow.recover(store)

    assert [job.job_id for job in recovered] == ["sound"]
    assert store.get("damaged").status is JobStatus.RUNNING
    assert store.get("sound").status is not JobStatus.RUNNING


def damage_shape(store: Store, shape: dict[str, object]) -> None:
    """Change a stored flow shape's text behind the store's back, as bit rot would."""
    shape_id = stored_shape(shape).shape_id
    if isinstance(store, JsonDirectoryStore):
        with open(store.folder / f"{shape_id}.shape", "a", encoding="utf-8") as file:
            file.write(" ")
    elif isinstance(store, SqliteStore):
        corrupt(store.path, "UPDATE shapes SET shape = shape || ' '")
    else:
        postgres: Any = store  # Any: PostgresStore, which this module does not import
        update = f"UPDATE \"{postgres.schema}\".shapes SET shape = shape || ' '"
        postgres._run("write to", lambda db: db.execute(update))


def opened_again(store: Store) -> Store:
    """Open the store's data anew, as another process would."""
    if isinstance(store, JsonDirectoryStore):
        return JsonDirectoryStore(store.folder)
    copy: Store = pickle.loads(pickle.dumps(store))  # noqa: S301  our own pickle
    return copy


def test_a_damaged_stored_shape_is_mended_by_the_next_process_storing_its_flow(
    store: Store,
) -> None:
    if isinstance(store, MemoryStore):
        pytest.skip("nothing outside the process can damage a memory store")
    flow = marked_flow()
    first = flow.execute("start", {"n": 0}, job_id="first", store=store)
    damage_shape(store, first.flow_shape)
    with pytest.raises(SerializationError, match="corrupted: its text does not"):
        store.load("first")
    other = opened_again(store)

    try:
        second = flow.execute("start", {"n": 1}, job_id="second", store=other)

        assert other.load("second") == second
        assert other.load("first") == first
    finally:
        other.close()


def test_a_shape_changed_after_its_job_was_stored_is_stored_under_its_new_id(
    store: Store,
) -> None:
    flow = marked_flow()
    elsewhere = MemoryStore()
    first = flow.execute("start", {"n": 0}, job_id="first", store=elsewhere)
    first.flow_shape["note"] = "changed"  # the flow's own shape, changed in place

    store.save(first)
    second = flow.execute("start", {"n": 1}, job_id="second", store=store)

    assert store.load("first") == first
    assert store.load("second") == second
    assert store.load("second").flow_shape["note"] == "changed"
    assert "note" not in elsewhere.load("first").flow_shape  # as it was stored


class WeakShape(dict[str, object]):
    """A flow shape that can be referenced weakly, to see when it is let go."""


def test_a_stored_shape_is_let_go_once_nothing_else_holds_it(store: Store) -> None:
    job = plain_job("shaped")
    job.flow_shape = WeakShape(connections=["start.output -> sink.input"])
    shape = weakref.ref(job.flow_shape)
    store.save(job)
    was_alive = shape() is not None  # not in an assert, whose rewriting holds it

    del job
    gc.collect()  # the job's own reference cycles
    store.save(plain_job("other"))

    assert was_alive
    assert shape() is None
    assert store.load("shaped").flow_shape == {
        "connections": ["start.output -> sink.input"]
    }


def test_saving_again_replaces_the_stored_job(store: Store) -> None:
    first = plain_job("job", JobStatus.RUNNING)
    second = plain_job("job", JobStatus.COMPLETED)
    store.save(first)

    store.save(second)

    assert store.load("job") == second
    assert store.get("job").status is JobStatus.COMPLETED


UNUSUAL_IDS: Final = [
    "ジョブ-一番",
    "a/b/../c",
    "with space",
    "100%",
    "a%2Fb",
    ".hidden",
    "..",
    "line\nbreak\ttab",
    "emoji-🚀",
]


@pytest.mark.parametrize(
    "job_id",
    UNUSUAL_IDS,
    ids=[
        "unicode",
        "slashes",
        "space",
        "percent",
        "encoded-slash",
        "dot-file",
        "dot-dot",
        "control-chars",
        "emoji",
    ],
)
def test_unusual_job_id_round_trips(store: Store, job_id: str) -> None:
    job = plain_job(job_id)

    store.save(job)

    assert store.load(job_id) == job
    assert store.get(job_id).job_id == job_id
    assert [r.job_id for r in store.list_jobs()] == [job_id]


def test_ids_that_differ_only_in_escaping_are_distinct_jobs(store: Store) -> None:
    ids = ["a/b", "a%2Fb", "a%252Fb", "a_2Fb"]
    for n, job_id in enumerate(ids):
        store.save(plain_job(job_id, flow_id=f"flow{n}"))

    loaded = {job_id: store.load(job_id).flow_id for job_id in ids}

    assert loaded == {job_id: f"flow{n}" for n, job_id in enumerate(ids)}
    assert sorted(r.job_id for r in store.list_jobs()) == sorted(ids)


def test_get_describes_a_job_without_loading_it(store: Store) -> None:
    store.create(
        plain_job("job", JobStatus.RUNNING, flow_id="f"), owner="A", lease_until=NOW
    )

    record = store.get("job")

    assert (record.job_id, record.flow_id, record.status) == (
        "job",
        "f",
        JobStatus.RUNNING,
    )
    assert (record.owner, record.lease_until) == ("A", NOW)
    assert record.updated_at.tzinfo is not None


# -- create ------------------------------------------------------------------------


def test_create_saves_a_new_job_leased_to_its_owner(store: Store) -> None:
    job = plain_job("job", JobStatus.PENDING)

    created = store.create(job, owner="A", lease_until=NOW + 60)

    assert created is True
    assert store.load("job") == job
    assert (store.get("job").owner, store.get("job").lease_until) == ("A", NOW + 60)


def test_create_of_an_existing_id_returns_false_and_keeps_the_job(
    store: Store,
) -> None:
    original = plain_job("job", JobStatus.RUNNING, flow_id="original")
    store.create(original, owner="A", lease_until=NOW + 60)

    created = store.create(
        plain_job("job", JobStatus.PENDING, flow_id="intruder"),
        owner="B",
        lease_until=NOW + 120,
    )

    assert created is False
    assert store.load("job") == original
    assert store.get("job").owner == "A"


# -- unknown ids ------------------------------------------------------------------

UNKNOWN_ID_OPERATIONS: Final[dict[str, Callable[[Store, str], object]]] = {
    "load": lambda s, job_id: s.load(job_id),
    "get": lambda s, job_id: s.get(job_id),
    "delete": lambda s, job_id: s.delete(job_id),
    "acquire": lambda s, job_id: s.acquire(
        job_id, owner="A", lease_until=NOW + 60, now=NOW
    ),
}


@pytest.mark.parametrize(
    "operation", UNKNOWN_ID_OPERATIONS.values(), ids=UNKNOWN_ID_OPERATIONS.keys()
)
def test_unknown_job_id_raises_job_not_found(
    store: Store, operation: Callable[[Store, str], object]
) -> None:
    store.save(plain_job("known"))

    with pytest.raises(JobNotFoundError, match="'missing/job ☃'") as caught:
        operation(store, "missing/job ☃")

    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, StoreError)


# -- list_jobs ---------------------------------------------------------------------


def test_list_jobs_orders_by_last_update_oldest_first(store: Store) -> None:
    for job_id in ("c", "a", "b"):
        store.save(plain_job(job_id))
    store.save(plain_job("c", JobStatus.FAILED))

    listed = [record.job_id for record in store.list_jobs()]

    assert listed == ["a", "b", "c"]


def test_list_jobs_of_an_empty_store_is_empty(store: Store) -> None:
    assert store.list_jobs() == []


def test_list_jobs_filters_by_flow_id(store: Store) -> None:
    store.save(plain_job("one", flow_id="f"))
    store.save(plain_job("two", flow_id="g"))
    store.save(plain_job("three", flow_id="f"))

    listed = [record.job_id for record in store.list_jobs(flow_id="f")]

    assert listed == ["one", "three"]


@pytest.mark.parametrize(
    "status", ["paused", JobStatus.PAUSED], ids=["string", "job-status"]
)
def test_list_jobs_filters_by_status(store: Store, status: JobStatus | str) -> None:
    store.save(plain_job("done", JobStatus.COMPLETED))
    store.save(plain_job("waiting", JobStatus.PAUSED))
    store.save(plain_job("other-flow", JobStatus.PAUSED, flow_id="g"))

    listed = [r.job_id for r in store.list_jobs(flow_id="plain", status=status)]

    assert listed == ["waiting"]


def test_list_jobs_with_an_unknown_status_raises_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown job status 'finished'.*completed"):
        store.list_jobs(status="finished")


# -- delete and prune --------------------------------------------------------------


def test_delete_removes_only_that_job(store: Store) -> None:
    store.save(plain_job("gone"))
    store.save(plain_job("kept"))

    store.delete("gone")

    with pytest.raises(JobNotFoundError, match="'gone'"):
        store.load("gone")
    assert [record.job_id for record in store.list_jobs()] == ["kept"]


def test_deleted_id_can_be_created_again(store: Store) -> None:
    store.save(plain_job("job", flow_id="old"))
    store.delete("job")

    created = store.create(plain_job("job", flow_id="new"), owner="A", lease_until=NOW)

    assert created is True
    assert store.load("job").flow_id == "new"


def save_one_job_per_status(store: Store) -> None:
    for status in JobStatus:
        store.save(plain_job(status.value, status))


def test_prune_older_than_zero_deletes_every_ended_job(store: Store) -> None:
    save_one_job_per_status(store)

    deleted = store.prune(older_than=timedelta(0))

    assert sorted(deleted) == ["cancelled", "completed", "failed"]
    assert sorted(r.job_id for r in store.list_jobs()) == [
        "paused",
        "pending",
        "running",
    ]


def test_prune_older_than_a_long_time_deletes_nothing(store: Store) -> None:
    save_one_job_per_status(store)

    deleted = store.prune(older_than=timedelta(days=365))

    assert deleted == []
    assert len(store.list_jobs()) == len(JobStatus)


def test_prune_older_than_the_calendar_deletes_nothing(store: Store) -> None:
    save_one_job_per_status(store)

    deleted = store.prune(older_than=timedelta.max)  # reaches before year 1

    assert deleted == []
    assert len(store.list_jobs()) == len(JobStatus)


def test_prune_keep_leaves_the_newest_ended_jobs(store: Store) -> None:
    store.save(plain_job("oldest", JobStatus.COMPLETED))
    store.save(plain_job("old-running", JobStatus.RUNNING))
    store.save(plain_job("middle", JobStatus.FAILED))
    store.save(plain_job("old-paused", JobStatus.PAUSED))
    store.save(plain_job("newest", JobStatus.CANCELLED))

    deleted = store.prune(keep=1)

    assert sorted(deleted) == ["middle", "oldest"]
    assert [r.job_id for r in store.list_jobs()] == [
        "old-running",
        "old-paused",
        "newest",
    ]


def test_prune_keep_zero_never_deletes_running_or_paused_jobs(store: Store) -> None:
    save_one_job_per_status(store)

    store.prune(keep=0, older_than=timedelta(0))

    assert sorted(r.status.value for r in store.list_jobs()) == [
        "paused",
        "pending",
        "running",
    ]


@pytest.mark.parametrize(
    ("prune", "message"),
    [
        (lambda s: s.prune(keep=-1), "keep must be zero or more, got -1"),
        (
            lambda s: s.prune(older_than=timedelta(seconds=-1)),
            "older_than must not be negative",
        ),
    ],
    ids=["negative-keep", "negative-age"],
)
def test_prune_with_a_negative_limit_raises_store_error(
    store: Store, prune: Callable[[Store], object], message: str
) -> None:
    store.save(plain_job("done"))

    with pytest.raises(StoreError, match=message):
        prune(store)

    assert [r.job_id for r in store.list_jobs()] == ["done"]


# -- leases ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "now", "replacing", "taken"),
    [
        ("B", NOW, None, False),
        ("B", NOW + 61, None, True),
        ("A", NOW, None, True),
        ("B", NOW, "A", True),
        ("B", NOW, "C", False),
    ],
    ids=[
        "held-by-a-live-owner-refused",
        "expired-lease-taken",
        "same-owner-renews",
        "replacing-the-owner-taken",
        "replacing-someone-else-refused",
    ],
)
def test_acquire_of_a_leased_job(
    store: Store, owner: str, now: float, replacing: str | None, taken: bool
) -> None:
    store.create(plain_job("job", JobStatus.RUNNING), owner="A", lease_until=NOW + 60)

    result = store.acquire(
        "job", owner=owner, lease_until=NOW + 600, now=now, replacing=replacing
    )

    record = store.get("job")
    assert result is taken
    expected = (owner, NOW + 600) if taken else ("A", NOW + 60)
    assert (record.owner, record.lease_until) == expected


@pytest.mark.parametrize(
    ("setup", "renewed"),
    [
        ("live", True),
        ("expired-not-taken", True),
        ("taken-over", False),
        ("released", False),
        ("deleted", False),
    ],
)
def test_renew_extends_only_a_lease_its_owner_still_holds(
    store: Store, setup: str, renewed: bool
) -> None:
    store.create(plain_job("job", JobStatus.RUNNING), owner="A", lease_until=NOW + 60)
    if setup == "expired-not-taken":
        assert store.renew("job", owner="A", lease_until=NOW - 1) is True
    elif setup == "taken-over":
        store.acquire("job", owner="B", lease_until=NOW + 60, now=NOW, replacing="A")
    elif setup == "released":
        store.save(plain_job("job", JobStatus.COMPLETED), owner="A", lease_until=None)
    elif setup == "deleted":
        store.delete("job")
    before = None if setup == "deleted" else store.get("job")

    result = store.renew("job", owner="A", lease_until=NOW + 600)

    assert result is renewed
    if renewed:
        assert (store.get("job").owner, store.get("job").lease_until) == (
            "A",
            NOW + 600,
        )
    elif before is not None:
        assert store.get("job") == before  # refused: nothing written


def test_acquire_takes_a_job_nobody_holds(store: Store) -> None:
    store.save(plain_job("job", JobStatus.PAUSED))

    taken = store.acquire("job", owner="B", lease_until=NOW + 60, now=NOW)

    assert taken is True
    assert store.get("job").owner == "B"


def test_save_without_a_lease_leaves_the_job_free(store: Store) -> None:
    store.create(plain_job("job", JobStatus.RUNNING), owner="A", lease_until=NOW + 60)

    store.save(plain_job("job", JobStatus.COMPLETED), owner="A", lease_until=None)

    record = store.get("job")
    assert (record.owner, record.lease_until) == (None, None)


def test_save_by_an_owner_of_a_new_job_creates_it_leased(store: Store) -> None:
    job = plain_job("job", JobStatus.RUNNING)

    store.save(job, owner="A", lease_until=NOW + 60)

    assert store.load("job") == job
    assert store.get("job").owner == "A"


def test_save_by_an_owner_of_an_unleased_job_leases_it_to_that_owner(
    store: Store,
) -> None:
    store.save(plain_job("job", JobStatus.PAUSED))
    job = plain_job("job", JobStatus.RUNNING)

    store.save(job, owner="A", lease_until=NOW + 60)

    assert store.load("job") == job
    assert (store.get("job").owner, store.get("job").lease_until) == ("A", NOW + 60)


def test_save_by_a_non_owner_raises_and_keeps_the_stored_job(store: Store) -> None:
    original = paused_job()
    store.create(original, owner="A", lease_until=NOW + 60)

    with pytest.raises(StoreError, match="leased to 'A', not 'B'"):
        store.save(with_extra_delivery(original), owner="B", lease_until=NOW + 60)

    assert store.load(original.job_id) == original
    assert store.get(original.job_id).owner == "A"


def test_checkpoint_by_a_non_owner_raises_and_keeps_the_stored_job(
    store: Store,
) -> None:
    original = paused_job()
    store.create(original, owner="A", lease_until=NOW + 60)
    changed = with_extra_delivery(original)

    with pytest.raises(StoreError, match="leased to 'A', not 'B'"):
        store.checkpoint(changed, no_change(changed), owner="B", lease_until=NOW + 60)

    assert store.load(original.job_id) == original
    assert store.get(original.job_id).owner == "A"


def test_checkpoint_after_another_owner_finished_the_job_is_refused(
    store: Store,
) -> None:
    running = paused_job()
    running.status = JobStatus.RUNNING
    store.create(running, owner="A", lease_until=NOW + 60)
    assert store.acquire(running.job_id, owner="B", lease_until=NOW + 600, now=NOW + 61)
    finished = JobState.deserialize(running.serialize())
    finished.status = JobStatus.COMPLETED
    finished.pending.clear()
    store.save(finished, owner="B", lease_until=None)
    late = with_extra_delivery(running)

    with pytest.raises(StoreError, match="'A'"):
        store.checkpoint(late, no_change(late), owner="A", lease_until=NOW + 60)

    assert store.load(running.job_id) == finished
    assert store.get(running.job_id).owner is None


# -- durable runs ------------------------------------------------------------------


@pytest.mark.parametrize("name", FLOWS.keys(), ids=FLOWS.keys())
def test_durable_execute_leaves_the_returned_job_in_the_store(
    store: Store, name: str
) -> None:
    build, entry, params = FLOWS[name]

    job = build().execute(entry, params, job_id=f"{name}-job", store=store)

    assert store.load(job.job_id) == job
    record = store.get(job.job_id)
    assert (record.status, record.owner, record.lease_until) == (
        job.status,
        None,
        None,
    )


@pytest.mark.parametrize("name", FLOWS.keys(), ids=FLOWS.keys())
def test_every_checkpoint_loads_back_equal_to_the_running_job(
    store: Store, name: str
) -> None:
    build, entry, params = FLOWS[name]
    checked = CheckedStore(store)

    build().execute(entry, params, job_id="job", store=checked)

    assert checked.pairs
    loaded = [without_tracker(pair[0]) for pair in checked.pairs]
    live = [without_tracker(pair[1]) for pair in checked.pairs]
    assert loaded == live


def test_checkpoints_keep_the_tracker_counts(store: Store) -> None:
    checked = CheckedStore(store)

    diamond_flow().execute("start", {"value": 1}, job_id="job", store=checked)

    for loaded, live in checked.pairs:
        assert loaded.tracker.get_event_counts() == live.tracker.get_event_counts()
        for routine_id in live.tracker.routine_ids:
            saved = loaded.tracker.get_routine_performance(routine_id)
            running = live.tracker.get_routine_performance(routine_id)
            assert (saved.deliveries, saved.runs, saved.retries, saved.max_time) == (
                running.deliveries,
                running.runs,
                running.retries,
                running.max_time,
            )


def test_a_finished_job_keeps_its_whole_tracker(store: Store) -> None:
    job = diamond_flow().execute("start", {"value": 1}, job_id="job", store=store)

    assert store.load("job").tracker == job.tracker


def test_execute_of_a_finished_job_id_returns_it_without_running_again(
    store: Store,
) -> None:
    flow = diamond_flow()
    sink = flow.routines["sink"]
    assert isinstance(sink, Recorder)
    first = flow.execute("start", {"value": 1}, job_id="job", store=store)

    again = flow.execute("start", {"value": 2}, job_id="job", store=store)

    assert again == first
    assert sink.received == [{"value": 1}]


@pytest.mark.parametrize(
    "status",
    [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.PAUSED],
    ids=["pending", "running", "paused"],
)
def test_execute_of_a_job_id_that_has_not_ended_is_refused(
    store: Store, status: JobStatus
) -> None:
    flow = diamond_flow()
    store.create(
        plain_job("job", status, flow_id=flow.flow_id), owner="A", lease_until=NOW
    )

    with pytest.raises(JobStateError, match=f"'job' is {status.value}.*never run"):
        flow.execute("start", {"value": 1}, job_id="job", store=store)

    sink = flow.routines["sink"]
    assert isinstance(sink, Recorder)
    assert sink.received == []
    assert store.get("job").status is status


@pytest.mark.parametrize(
    "status",
    [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED],
    ids=["completed", "failed", "cancelled"],
)
def test_execute_of_an_ended_job_id_returns_the_stored_job(
    store: Store, status: JobStatus
) -> None:
    flow = diamond_flow()
    stored = plain_job("job", status, flow_id=flow.flow_id)
    store.save(stored)

    returned = flow.execute("start", {"value": 1}, job_id="job", store=store)

    assert returned == stored
    sink = flow.routines["sink"]
    assert isinstance(sink, Recorder)
    assert sink.received == []


def test_durable_job_keeps_only_its_last_history_records(store: Store) -> None:
    flow = countdown_flow(history_limit=3)

    job = flow.execute("loop", {"n": 8}, job_id="job", store=store)
    loaded = store.load("job")

    assert (job.history_total, loaded.history_total) == (8, 8)
    assert [r.seq for r in loaded.get_execution_history()] == [5, 6, 7]
    assert loaded == job


def test_sqlite_checkpoints_keep_the_change_log_and_history_rows_bounded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteStore(path)
    flow = countdown_flow(history_limit=3)
    loop = flow.routines["loop"]
    assert isinstance(loop, Countdown)
    counts: list[tuple[int, int]] = []  # (history rows, logged changes)

    def count_rows(n: int) -> None:
        with closing(sqlite3.connect(path)) as db:
            history = db.execute("SELECT COUNT(*) FROM history").fetchone()[0]
            changes = db.execute(
                "SELECT COUNT(*) FROM changes JOIN jobs USING (job_id) "
                "WHERE n > folded"
            ).fetchone()[0]
            counts.append((history, changes))

    loop.probe = count_rows

    job = flow.execute("loop", {"n": 2 * FOLD_EVERY + 5}, job_id="job", store=store)

    # Call k (from 0) sees the k checkpoints before it.
    assert [c for _, c in counts] == [k % FOLD_EVERY for k in range(len(counts))]
    # A fold writes the history records it keeps as one row, and drops old rows.
    assert max(h for h, _ in counts) == 1
    assert len(store.load("job").get_execution_history()) == 3
    assert store.load("job") == job
    store.close()


# -- the change log: checkpoints logged, then folded into the rows -------------------

FOLD_SPAN: Final = 2 * FOLD_EVERY + 5
"""Deliveries of a countdown job whose checkpoints fold its log twice."""


class FailingCheckpoints(StoreWrapper):
    """Raise ``StoreError`` instead of writing checkpoint ``fail_at`` (from 1)."""

    def __init__(self, inner: Store, fail_at: int) -> None:
        super().__init__(inner)
        self.fail_at = fail_at
        self.checkpoints = 0

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        self.checkpoints += 1
        if self.checkpoints == self.fail_at:
            raise StoreError("disk full (simulated)")
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)


def test_every_checkpoint_around_folds_loads_back_equal_to_the_running_job(
    store: Store,
) -> None:
    checked = CheckedStore(store)

    countdown_flow(history_limit=5).execute(
        "loop", {"n": FOLD_SPAN}, job_id="job", store=checked
    )

    assert len(checked.pairs) == FOLD_SPAN
    for loaded, live in checked.pairs:  # the tracker keeps its samples in memory
        assert without_tracker(loaded) == without_tracker(live)


@pytest.mark.parametrize(
    "stopped_at",
    [FOLD_EVERY - 1, FOLD_EVERY, FOLD_EVERY + 1],
    ids=["before-fold", "at-fold", "after-fold"],
)
def test_job_stopped_around_a_fold_resumes_to_the_uninterrupted_result(
    store: Store, stopped_at: int
) -> None:
    expected = countdown_flow().execute("loop", {"n": FOLD_SPAN}, job_id="whole")
    flow = countdown_flow()
    failing = FailingCheckpoints(store, fail_at=stopped_at + 1)
    with pytest.raises(StoreError, match="disk full"):
        flow.execute("loop", {"n": FOLD_SPAN}, job_id="job", store=failing)
    stored = store.load("job")
    assert stored.delivery_count == stopped_at

    resumed = countdown_flow().resume("job", store=store)

    assert resumed.status is JobStatus.COMPLETED
    assert resumed.delivery_count == expected.delivery_count == FOLD_SPAN
    assert [r.seq for r in resumed.get_execution_history()] == [
        r.seq for r in expected.get_execution_history()
    ]
    assert store.load("job") == resumed


def test_job_paused_right_after_a_fold_resumes_to_the_uninterrupted_result(
    store: Store,
) -> None:
    flow = countdown_flow()
    loop = flow.routines["loop"]
    assert isinstance(loop, Countdown)

    def pause_after_the_fold(n: int) -> None:
        if n == FOLD_SPAN - FOLD_EVERY:  # this delivery's checkpoint folds
            flow.pause("job", reason="after fold")

    loop.probe = pause_after_the_fold
    paused = flow.execute("loop", {"n": FOLD_SPAN}, job_id="job", store=store)
    assert paused.status is JobStatus.PAUSED
    assert paused.delivery_count == FOLD_EVERY + 1
    loop.probe = None

    resumed = flow.resume("job", store=store)

    assert resumed.status is JobStatus.COMPLETED
    assert resumed.delivery_count == FOLD_SPAN
    assert store.load("job") == resumed


def test_sqlite_checkpoint_after_losing_the_lease_raises_and_logs_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteStore(path)
    flow = countdown_flow()
    loop = flow.routines["loop"]
    assert isinstance(loop, Countdown)
    logged: list[int] = []

    def steal_the_lease(n: int) -> None:
        if n == FOLD_SPAN - 3:  # the job's fourth delivery
            with closing(sqlite3.connect(path)) as db:
                logged.append(db.execute("SELECT COUNT(*) FROM changes").fetchone()[0])
            assert store.acquire("job", owner="thief", lease_until=NOW, now=NOW)

    loop.probe = steal_the_lease

    with pytest.raises(StoreError, match="leased to 'thief'"):
        flow.execute("loop", {"n": FOLD_SPAN}, job_id="job", store=store)

    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM changes").fetchone()[0] == 3
    assert logged == [3]
    assert store.load("job").delivery_count == 3
    assert store.get("job").owner == "thief"
    store.close()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{not json", "change 2 of job 'job'"),
        ("[1, 2]", "change 2 of job 'job': not a change document"),
        ('["running", "x", 0, 0, 1, 0, [], null, null, 0, [], []]', "bad fields"),
    ],
    ids=["not-json", "not-a-document", "bad-field"],
)
def test_sqlite_load_of_a_corrupted_change_says_which(
    tmp_path: Path, row: str, message: str
) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteStore(path)
    with pytest.raises(StoreError):
        countdown_flow().execute(
            "loop", {"n": 10}, job_id="job", store=FailingCheckpoints(store, 4)
        )
    corrupt(path, "UPDATE changes SET row = ? WHERE n = 2", row)

    with pytest.raises(SerializationError, match=re.escape(message)):
        store.load("job")
    store.close()


V2_DUMP: Final = Path(__file__).with_name("data") / "store_v2.sql"
"""A schema version 2 store (shapes inside job headers), from ``make_store_v2.py``."""
V2_JOBS: Final = V2_DUMP.with_suffix(".json")
"""What FlowForge of schema version 2 loaded from it, job by job."""


def old_store(path: Path, version: int) -> dict[str, dict[str, Any]]:
    """Write the version 2 store at ``path`` (cut back to ``version``).

    Return each job's serialized state as that FlowForge loaded it.
    """
    expected: dict[str, dict[str, Any]] = json.loads(V2_JOBS.read_text("utf-8"))
    with closing(sqlite3.connect(path)) as db:
        db.executescript(V2_DUMP.read_text("utf-8"))
        if version == 1:  # the same rows, without the change log
            for table in ("jobs", "pending", "buffers", "routines", "errors"):
                db.execute(f"DELETE FROM {table} WHERE job_id = 'rich-logged'")
            db.executescript(
                "DROP TABLE changes; ALTER TABLE jobs DROP COLUMN folded; "
                "UPDATE meta SET value = '1' WHERE key = 'schema_version';"
            )
            del expected["rich-logged"]
    return expected


def stored_shape_ids(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT shape_id FROM shapes")]


@pytest.mark.parametrize("version", [1, 2])
def test_sqlite_store_upgrades_an_old_file_and_loads_its_jobs_as_they_were(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "jobs.db"
    expected = old_store(path, version)

    upgraded = SqliteStore(path)

    loaded = {
        r.job_id: upgraded.load(r.job_id).serialize() for r in upgraded.list_jobs()
    }
    assert loaded == expected
    with closing(sqlite3.connect(path)) as db:
        version_now = db.execute("SELECT value FROM meta").fetchone()[0]
        columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    assert (version_now, columns[-1]) == (str(SCHEMA_VERSION), "folded")
    assert stored_shape_ids(path) == []  # old jobs keep their shape until saved
    done = countdown_flow().execute(
        "loop", {"n": FOLD_SPAN}, job_id="new", store=upgraded
    )
    assert upgraded.load("new") == done
    upgraded.close()


def test_sqlite_jobs_of_an_upgraded_file_resume_and_share_one_shape(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    old_store(path, 2)
    store = SqliteStore(path)
    flow = rich_flow()

    paused = ["rich-1", "rich-2", "rich-durable"]  # rich-logged is leased

    resumed = [flow.resume(store.load(job_id), store=store) for job_id in paused]

    assert [job.status for job in resumed] == [JobStatus.COMPLETED] * 3
    assert len(stored_shape_ids(path)) == 1  # the three rich jobs' shape, once
    for job in resumed:
        assert store.load(job.job_id) == job
    store.close()


# -- concurrency -----------------------------------------------------------------


def test_threads_running_durable_jobs_on_one_store_lose_nothing(
    store: Store,
) -> None:
    flow = diamond_flow()
    threads_count, jobs_each = 8, 4
    start = threading.Barrier(threads_count, timeout=WAIT)
    returned: dict[str, JobState] = {}
    failures: list[Exception] = []
    lock = threading.Lock()

    def run(thread: int) -> None:
        try:
            start.wait()
            for n in range(jobs_each):
                job_id = f"thread-{thread}/job-{n}"
                job = flow.execute(
                    "start", {"value": (thread, n)}, job_id=job_id, store=store
                )
                with lock:
                    returned[job_id] = job
        except Exception as error:  # reported by the main thread
            with lock:
                failures.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert len(returned) == threads_count * jobs_each
    assert all(job.status is JobStatus.COMPLETED for job in returned.values())
    assert {job_id: store.load(job_id) for job_id in returned} == returned
    assert len(store.list_jobs(status="completed")) == threads_count * jobs_each


def run_workers(argument_lists: list[list[str]]) -> list[str]:
    """Start one worker per argument list, release them together, return stdouts."""
    workers = [_store_worker.spawn(*arguments) for arguments in argument_lists]
    try:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = []
        for worker in workers:
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            outputs.append(out)
        return outputs
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.communicate()


def shared_path(backend: str, tmp_path: Path) -> Path:
    """Return where the shared store of ``backend`` lives."""
    return tmp_path / ("jobs.db" if backend == "sqlite" else "jobs")


@pytest.mark.parametrize("backend", SHARED_BACKENDS, ids=SHARED_BACKENDS)
def test_processes_writing_to_one_store_lose_and_tear_nothing(
    backend: str, tmp_path: Path
) -> None:
    path = shared_path(backend, tmp_path)
    processes, jobs_each = 4, 10

    outputs = run_workers(
        [["run", backend, str(path), f"p{n}", str(jobs_each)] for n in range(processes)]
    )

    returned = {
        job_id: JobState.deserialize(data)
        for out in outputs
        for job_id, data in json.loads(out).items()
    }
    store = open_store(backend, tmp_path)
    assert len(returned) == processes * jobs_each
    assert all(job.status is JobStatus.COMPLETED for job in returned.values())
    assert {job_id: store.load(job_id) for job_id in returned} == returned
    assert len(store.list_jobs()) == processes * jobs_each
    # Every process created jobs of one flow at once: its shape is stored once.
    assert stored_text(store).count('"connections":[') == 1
    store.close()


@pytest.mark.parametrize("backend", SHARED_BACKENDS, ids=SHARED_BACKENDS)
def test_processes_racing_to_create_one_job_id_have_exactly_one_winner(
    backend: str, tmp_path: Path
) -> None:
    path = shared_path(backend, tmp_path)
    contested = 20

    outputs = run_workers(
        [["create", backend, str(path), "race", str(contested)] for _ in range(2)]
    )

    results = [json.loads(out) for out in outputs]
    winners = {job_id: r["owner"] for r in results for job_id in r["won"]}
    everything = [f"race-{n}" for n in range(contested)]
    assert sorted(results[0]["won"] + results[1]["won"]) == sorted(everything)
    store = open_store(backend, tmp_path)
    assert {r.job_id: r.owner for r in store.list_jobs()} == winners
    store.close()


# -- corrupted data: SQLite --------------------------------------------------------


def corrupt(path: Path, sql: str, *parameters: object) -> None:
    """Run one statement on the database behind the store's back."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(sql, parameters)
    finally:
        db.close()


@pytest.fixture
def sqlite_with_job(tmp_path: Path) -> Iterator[tuple[SqliteStore, Path, str]]:
    """A SQLite store holding the paused rich job: every table has rows."""
    path = tmp_path / "jobs.db"
    store = SqliteStore(path)
    job = paused_job()
    store.save(job)
    yield store, path, job.job_id
    store.close()


@pytest.mark.parametrize(
    ("table", "column", "value", "message"),
    [
        ("jobs", "header", "garbage", "corrupted"),
        ("jobs", "header", "[1, 2]", "corrupted"),
        ("pending", "row", "{not json", "corrupted"),
        ("buffers", "buffer", "{not json", "corrupted"),
        ("buffers", "arrivals", "[1,", "corrupted"),
        ("routines", "row", "{not json", "corrupted"),
        ("errors", "row", "{not json", "corrupted"),
        ("history", "row", "{not json", "corrupted"),
        ("pending", "row", "{}", "pending"),
        ("jobs", "status", "bogus", "bogus"),
        ("jobs", "header", b"\x80", "corrupted: 'utf-8' codec can't decode"),
        ("pending", "row", b"\xff[]", "corrupted: 'utf-8' codec can't decode"),
        ("history", "row", "[" * 100_000, "corrupted: maximum recursion depth"),
    ],
    ids=[
        "header-not-json",
        "header-not-an-object",
        "pending-not-json",
        "buffer-not-json",
        "arrivals-not-json",
        "routine-not-json",
        "error-not-json",
        "history-not-json",
        "pending-wrong-shape",
        "unknown-status",
        "header-not-utf8",
        "pending-not-utf8",
        "history-nested-too-deep",
    ],
)
def test_sqlite_load_of_corrupted_data_says_what_is_wrong(
    sqlite_with_job: tuple[SqliteStore, Path, str],
    table: str,
    column: str,
    value: str | bytes,
    message: str,
) -> None:
    store, path, job_id = sqlite_with_job
    corrupt(path, f"UPDATE {table} SET {column} = ?", value)

    with pytest.raises(FlowForgeError, match=message) as caught:
        store.load(job_id)

    assert isinstance(caught.value, (SerializationError, StoreError))


def name_shape(path: Path, text: str | bytes, shape_id: str | None = None) -> None:
    """Store ``text`` as a flow shape and make the job name it (by its own id)."""
    if shape_id is None:
        raw = text if isinstance(text, bytes) else text.encode()
        shape_id = hashlib.sha256(raw).hexdigest()
        corrupt(path, "INSERT OR REPLACE INTO shapes VALUES (?, ?)", shape_id, text)
    corrupt(
        path,
        "UPDATE jobs SET header = json_set(header, '$.flow_shape_id', ?)",
        shape_id,
    )


@pytest.mark.parametrize(
    ("text", "shape_id", "message"),
    [
        ("{}", "not-an-id", "malformed flow shape id 'not-an-id'"),
        ("{}", "0" * 64, "names flow shape '0{64}', which the store does not hold"),
        ("[1, 2]", None, "is corrupted: not a JSON object"),
        ('{"routines": ', None, "is corrupted: Expecting value"),
        (b"\xff{}", None, "is corrupted: its text does not match its id"),
    ],
    ids=["malformed-id", "missing", "not-an-object", "not-json", "a-blob"],
)
def test_sqlite_load_of_a_damaged_shape_says_what_is_wrong(
    sqlite_with_job: tuple[SqliteStore, Path, str],
    text: str | bytes,
    shape_id: str | None,
    message: str,
) -> None:
    store, path, job_id = sqlite_with_job
    name_shape(path, text, shape_id)

    with pytest.raises(SerializationError, match=message):
        store.load(job_id)


def test_sqlite_load_of_a_history_row_numbered_with_text_says_so(
    sqlite_with_job: tuple[SqliteStore, Path, str],
) -> None:
    store, path, job_id = sqlite_with_job
    corrupt(path, "UPDATE history SET n = 'row ' || n")

    with pytest.raises(SerializationError, match="history row number is not an int"):
        store.load(job_id)


def test_sqlite_record_with_a_corrupted_status_raises_store_error(
    sqlite_with_job: tuple[SqliteStore, Path, str],
) -> None:
    store, path, _ = sqlite_with_job
    corrupt(path, "UPDATE jobs SET status = 'bogus'")

    with pytest.raises(StoreError, match="bogus"):
        store.get("rich-job")


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("status", "bogus", "an unknown status 'bogus'"),
        ("updated_at", "yesterday", "bad metadata (updated_at 'yesterday')"),
        ("updated_at", 1e300, "bad metadata (updated_at 1e+300)"),
        ("lease_until", "soon", "bad metadata (lease_until 'soon')"),
        ("owner", b"A", "bad metadata (owner b'A')"),
        ("flow_id", b"f", "bad metadata (flow_id b'f')"),
    ],
    ids=["status", "updated_at-text", "updated_at-huge", "lease", "owner", "flow"],
)
def test_sqlite_list_jobs_leaves_out_a_row_it_cannot_read_with_a_warning(
    sqlite_with_job: tuple[SqliteStore, Path, str],
    column: str,
    value: object,
    shown: str,
) -> None:
    store, path, job_id = sqlite_with_job
    store.save(plain_job("good"))
    corrupt(path, f"UPDATE jobs SET {column} = ? WHERE job_id = ?", value, job_id)

    with pytest.warns(FlowForgeWarning) as caught:
        listed = store.list_jobs()

    assert [record.job_id for record in listed] == ["good"]
    (warning,) = caught
    assert str(warning.message).startswith(f"stored job {job_id!r} has {shown}")
    with pytest.raises(StoreError, match=re.escape(shown)):
        store.get(job_id)


def test_sqlite_store_on_a_file_that_is_not_a_database_names_the_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(b"definitely not SQLite\n" * 100)

    with pytest.raises(StoreError, match=re.escape(repr(str(path))) + ".*database"):
        SqliteStore(path)


def test_sqlite_store_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    SqliteStore(path).close()
    corrupt(path, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")

    with pytest.raises(StoreError, match="schema version 99, newer than"):
        SqliteStore(path)


def test_sqlite_store_with_a_garbled_schema_version_raises_store_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    SqliteStore(path).close()
    corrupt(path, "UPDATE meta SET value = 'one' WHERE key = 'schema_version'")

    with pytest.raises(StoreError, match="schema version"):
        SqliteStore(path)


def test_sqlite_store_reopened_on_the_same_file_sees_its_jobs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    job = paused_job()
    first = SqliteStore(path)
    first.save(job)
    first.close()

    second = SqliteStore(path)

    assert second.load(job.job_id) == job
    second.close()


# -- corrupted data: JSON directory ------------------------------------------------

FILE_OPERATIONS: Final[dict[str, Callable[[JsonDirectoryStore, str], object]]] = {
    "load": lambda s, job_id: s.load(job_id),
    "get": lambda s, job_id: s.get(job_id),
}


def job_file(folder: Path, job_id: str) -> Path:
    """Return the file that holds ``job_id`` in a JSON directory store."""
    return folder / (urllib.parse.quote(job_id, safe="") + ".json")


@pytest.mark.parametrize(
    "operation", FILE_OPERATIONS.values(), ids=FILE_OPERATIONS.keys()
)
def test_json_directory_truncated_job_file_is_reported_by_name(
    tmp_path: Path, operation: Callable[[JsonDirectoryStore, str], object]
) -> None:
    store = JsonDirectoryStore(tmp_path)
    store.save(paused_job("job one"))
    path = job_file(tmp_path, "job one")
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")

    with pytest.raises(StoreError, match=re.escape(repr(str(path))) + " is corrupted"):
        operation(store, "job one")


@pytest.mark.parametrize("updated_at", ["1e300", "NaN", "-1e20"])
def test_json_directory_file_with_an_impossible_update_time_is_not_listed(
    tmp_path: Path, updated_at: str
) -> None:
    store = JsonDirectoryStore(tmp_path)
    store.save(paused_job("job"))
    path = job_file(tmp_path, "job")
    text = re.sub(
        r'"updated_at":[^,}]+', f'"updated_at":{updated_at}', path.read_text()
    )
    path.write_text(text, encoding="utf-8")

    with pytest.raises(StoreError, match="has bad metadata: updated_at"):
        store.get("job")
    with pytest.warns(FlowForgeWarning, match="has bad metadata"):
        assert store.list_jobs() == []


def test_json_directory_list_jobs_warns_of_each_unreadable_file_and_lists_the_rest(
    tmp_path: Path,
) -> None:
    store = JsonDirectoryStore(tmp_path)
    store.save(paused_job("good"))
    store.save(paused_job("job one"))
    damaged = job_file(tmp_path, "job one")
    damaged.write_text(damaged.read_text(encoding="utf-8")[:50], encoding="utf-8")
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"hello": "world"}', encoding="utf-8")

    with pytest.warns(FlowForgeWarning) as caught:
        listed = store.list_jobs()

    assert [record.job_id for record in listed] == ["good"]
    first, second = (str(warning.message) for warning in caught)
    assert re.fullmatch(
        re.escape(f"job file {str(damaged)!r} is corrupted: ") + ".*; it is not listed",
        first,
    )
    assert second == f"{str(foreign)!r} is not a FlowForge job file; it is not listed"


@pytest.mark.parametrize(
    "operation", FILE_OPERATIONS.values(), ids=FILE_OPERATIONS.keys()
)
def test_json_directory_foreign_json_file_is_reported_by_name(
    tmp_path: Path, operation: Callable[[JsonDirectoryStore, str], object]
) -> None:
    store = JsonDirectoryStore(tmp_path)
    path = tmp_path / "notes.json"
    path.write_text('{"hello": "world"}', encoding="utf-8")

    with pytest.raises(
        StoreError, match=re.escape(repr(str(path))) + " is not a FlowForge job file"
    ):
        operation(store, "notes")


def test_json_directory_job_file_with_a_bad_job_state_is_reported_by_name(
    tmp_path: Path,
) -> None:
    store = JsonDirectoryStore(tmp_path)
    store.save(plain_job("job"))
    path = job_file(tmp_path, "job")
    document = json.loads(path.read_text(encoding="utf-8"))
    document["job_state"]["version"] = 999
    path.write_text(json.dumps(document), encoding="utf-8")

    with pytest.raises(SerializationError, match=re.escape(repr(str(path)))):
        store.load("job")


def test_json_directory_refuses_a_dangling_lock_link_and_writes_nothing_outside(
    tmp_path: Path,
) -> None:
    folder, outside = tmp_path / "jobs", tmp_path / "outside.txt"
    store = JsonDirectoryStore(folder)
    (folder / ".lock").symlink_to(outside)

    with pytest.raises(StoreError, match=r"\.lock'.*symbolic link"):
        store.save(plain_job("job"))

    assert not outside.exists()
    assert not job_file(folder, "job").exists()


def in_thread(call: Callable[[], object]) -> tuple[object, list[str]]:
    """Run ``call`` in a thread; return its result (or error) and its warnings.

    The test fails, instead of hanging, if ``call`` does not return in time.
    """
    outcome: list[tuple[object, list[str]]] = []

    def run() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result: object = call()
            except Exception as error:  # handed to the test to check
                result = error
        outcome.append((result, [str(w.message) for w in caught]))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT)
    assert outcome, f"the call did not return within {WAIT} s"
    return outcome[0]


@pytest.fixture
def store_with_a_fifo(tmp_path: Path) -> Iterator[tuple[JsonDirectoryStore, Path]]:
    """A JSON directory store holding job "good" and a FIFO named "stuck.json"."""
    store = JsonDirectoryStore(tmp_path)
    store.save(plain_job("good"))
    fifo = tmp_path / "stuck.json"
    os.mkfifo(fifo)
    yield store, fifo
    try:  # let a reader that the store left waiting (before the fix) go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def test_json_directory_list_jobs_skips_a_fifo_with_a_warning_instead_of_hanging(
    store_with_a_fifo: tuple[JsonDirectoryStore, Path],
) -> None:
    store, fifo = store_with_a_fifo

    listed, messages = in_thread(store.list_jobs)

    assert isinstance(listed, list)
    assert [record.job_id for record in listed] == ["good"]
    (message,) = messages
    assert re.fullmatch(
        re.escape(f"cannot read job file {str(fifo)!r}: it is not a regular file")
        + r" \(mode p[-rwx]{9}\); it is not listed",
        message,
    )


def test_json_directory_load_of_a_fifo_raises_store_error_instead_of_hanging(
    store_with_a_fifo: tuple[JsonDirectoryStore, Path],
) -> None:
    store, fifo = store_with_a_fifo

    error, _ = in_thread(lambda: store.load("stuck"))

    assert isinstance(error, StoreError)
    assert str(error).startswith(
        f"cannot read job file {str(fifo)!r}: it is not a regular file"
    )


@pytest.mark.parametrize(
    "operation", FILE_OPERATIONS.values(), ids=FILE_OPERATIONS.keys()
)
def test_json_directory_never_reads_a_job_file_through_a_symbolic_link(
    tmp_path: Path, operation: Callable[[JsonDirectoryStore, str], object]
) -> None:
    elsewhere = JsonDirectoryStore(tmp_path / "elsewhere")
    elsewhere.save(plain_job("job"))
    store = JsonDirectoryStore(tmp_path / "jobs")
    link = job_file(store.folder, "job")
    link.symlink_to(job_file(elsewhere.folder, "job"))

    with pytest.raises(StoreError, match=re.escape(repr(str(link))) + ".*symbolic"):
        operation(store, "job")
    with pytest.warns(FlowForgeWarning, match="symbolic link.*it is not listed"):
        assert store.list_jobs() == []


@pytest.mark.parametrize(
    "operation", FILE_OPERATIONS.values(), ids=FILE_OPERATIONS.keys()
)
def test_json_directory_file_nested_too_deep_is_reported_by_name(
    tmp_path: Path, operation: Callable[[JsonDirectoryStore, str], object]
) -> None:
    store = JsonDirectoryStore(tmp_path)
    path = job_file(tmp_path, "deep")
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")

    with pytest.raises(StoreError, match=re.escape(repr(str(path))) + " is corrupted"):
        operation(store, "deep")


@pytest.mark.parametrize("length", [237, 238, 250, 300])
def test_json_directory_job_id_too_long_for_a_file_name_raises_store_error(
    tmp_path: Path, length: int
) -> None:
    # The file is "<id>.json" and its temporary file ".<id>.json.XXXXXXXX.tmp":
    # 237 + 5 + 14 bytes is one more than a file name holds.
    store = JsonDirectoryStore(tmp_path)

    with pytest.raises(StoreError, match=f"too long .*{length + 5} bytes.*at most 241"):
        store.create(plain_job("x" * length), owner="A", lease_until=NOW)

    assert [path.name for path in tmp_path.iterdir()] == [".lock"]


def test_json_directory_job_id_of_the_longest_length_round_trips(
    tmp_path: Path,
) -> None:
    store = JsonDirectoryStore(tmp_path)
    job = plain_job("x" * 236)

    assert store.create(job, owner="A", lease_until=NOW)
    store.save(job)

    assert store.load(job.job_id) == job


@pytest.mark.parametrize("backend", ["json_directory", "sqlite"])
@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get("lone-\udc80"),
        lambda s: s.load("lone-\udc80"),
        lambda s: s.save(plain_job("lone-\udc80")),
    ],
    ids=["get", "load", "save"],
)
def test_job_id_that_utf8_cannot_encode_raises_store_error(
    tmp_path: Path, backend: str, call: Callable[[Store], object]
) -> None:
    store = open_store(backend, tmp_path)
    try:
        with pytest.raises(StoreError, match="surrogates not allowed"):
            call(store)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("job_id", "message"),
    [
        ("", "job_id must be a non-empty str, got ''"),
        ("  ", "job_id must be a non-empty str, got '  '"),
        (7, "job_id must be a non-empty str, got 7"),
        ("lone-\udc80", "surrogates not allowed at position 5; use valid Unicode"),
        ("nul\x00", "it holds a NUL character at position 3"),
    ],
    ids=["empty", "blank", "int", "lone-surrogate", "nul"],
)
def test_execute_refuses_a_job_id_no_store_can_hold(
    job_id: object, message: str
) -> None:
    flow = Flow()
    flow.add_routine(Recorder(), "sink")

    with pytest.raises(DefinitionError, match=re.escape(message)):
        flow.execute("sink", {"n": 1}, job_id=job_id)  # type: ignore[arg-type]

    assert flow.routines["sink"].received == []  # type: ignore[attr-defined]


def test_registered_payload_types_load_back_as_themselves(store: Store) -> None:
    # Equality alone would pass a named tuple loaded as a tuple, or an IntEnum
    # as an int: typed() compares the exact type of every part.
    job = rich_flow().execute("start", TYPED_PAYLOAD, job_id="typed", store=store)

    loaded = store.load(job.job_id)

    assert job.status is JobStatus.PAUSED
    assert typed(loaded.entry_params) == typed(TYPED_PAYLOAD)
    assert [typed(d.data) for d in loaded.pending] == [
        typed(d.data) for d in job.pending
    ]
    assert typed(loaded.pending[-1].data) == typed(TYPED_PAYLOAD)
    buffers = {key: typed(data) for key, data in job.slot_buffers.items()}
    assert {key: typed(data) for key, data in loaded.slot_buffers.items()} == buffers


def wrong(value: object) -> Any:  # Any: lets a call pass what its types forbid
    return value


LEASE_CALLS: Final[dict[str, Callable[[Store], object]]] = {
    "create-owner": lambda s: s.create(plain_job("j"), owner=wrong(7), lease_until=1),
    "create-lease": lambda s: s.create(
        plain_job("j"), owner="o", lease_until=wrong("soon")
    ),
    "save-owner": lambda s: s.save(plain_job("j"), owner=wrong(b"o"), lease_until=1),
    "save-lease": lambda s: s.save(plain_job("j"), owner="o", lease_until=wrong(True)),
    "checkpoint-owner": lambda s: s.checkpoint(
        plain_job("j"), no_change(plain_job("j")), owner=wrong(3), lease_until=1.0
    ),
    "acquire-now": lambda s: s.acquire(
        "j", owner="o", lease_until=1.0, now=wrong("now")
    ),
    "renew-lease": lambda s: s.renew("j", owner="o", lease_until=wrong([1.0])),
}


@pytest.mark.parametrize("call", list(LEASE_CALLS))
def test_lease_arguments_of_the_wrong_type_are_refused_before_any_write(
    store: Store, call: str
) -> None:
    store.save(plain_job("j"))
    before = store.load("j").serialize()

    with pytest.raises(ArgumentTypeError, match="(owner|lease_until|now) must be"):
        LEASE_CALLS[call](store)

    assert store.load("j").serialize() == before
    assert store.get("j").owner is None
