"""Correlated joins: ``define_slot(..., join=True, correlate=...)`` fires once per key.

A fan-out/merge flow (``split`` sends each record to two sinks, which both
deliver to ``merge``) runs in every strategy: sequential, concurrent threads,
and ``execute_async`` with either. Then arrival order, bad keys, handler
failures, save/load/resume in the middle of a group, and the slot option.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowforge import (
    ArgumentTypeError,
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    InvalidFlowError,
    JobStatus,
    Routine,
    SerializationError,
    Slot,
)
from flowforge.store import JsonDirectoryStore, MemoryStore, SqliteStore, Store
from flowforge.types import Payload

MODES = ["sequential", "concurrent", "async-sequential", "async-concurrent"]
MERGE = ("merge", "parts")
Group = tuple[object, tuple[tuple[str, object], ...]]


class Split(Routine):
    """Emit each record on ``out``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("records", self.split)
        self.define_event("out")

    def split(self, records: list[object]) -> None:
        for record_id in records:
            self.emit("out", record_id=record_id)


class Sink(Routine):
    """Store a record under its config's ``name``; fail the ``fail`` record."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("item", self.store)
        self.define_event("stored")

    def store(self, record_id: object) -> None:
        if record_id == self.get_config("fail"):
            raise ValueError(f"cannot store {record_id}")
        if record_id == self.get_config("pause"):
            flow = self.get_config("flow")
            assert isinstance(flow, Flow)
            flow.pause(reason="mid-group")
        name = self.get_config("name")
        self.emit("stored", record_id=record_id, place=f"{name}-{record_id}")


class AsyncSink(Sink):
    """``Sink`` with an ``async def`` handler that yields to the loop first."""

    async def store(self, record_id: object) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        Sink.store(self, record_id)


class Merge(Routine):
    """Collect each group the correlated join fires with."""

    CORRELATE: str | None = "record_id"

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[Group] = []
        self.lock = threading.Lock()
        self.define_slot(
            "parts", self.merge, "append", join=True, correlate=self.CORRELATE
        )

    def merge(self, **buffer: object) -> None:
        fail_times = self.get_config("fail_times", 0)
        assert isinstance(fail_times, int)
        if self.increment_stat("calls") <= fail_times:
            raise RuntimeError("merge failed")
        record_ids = buffer["record_id"]
        assert isinstance(record_ids, list)
        with self.lock:
            self.groups.append((record_ids[0], tuple(sorted(buffer.items()))))


class PlainMerge(Merge):
    """``Merge`` with a join that has no correlation key: today's join."""

    CORRELATE = None


def build(
    fail: object = None,
    sinks: int = 2,
    sink: type[Sink] = Sink,
    pause: object = None,
    merge_type: type[Merge] = Merge,
) -> tuple[Flow, Merge]:
    flow = Flow("etl")
    flow.add_routine(Split(), "split")
    merge = merge_type()
    flow.add_routine(merge, "merge")
    for n in range(sinks):
        routine = sink()
        routine.set_config(name=f"s{n}")
        if n == sinks - 1:
            routine.set_config(fail=fail, pause=pause, flow=flow)
            routine.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
        flow.add_routine(routine, f"s{n}")
        flow.connect("split", "out", f"s{n}", "item")
    for n in range(sinks):
        flow.connect(f"s{n}", "stored", "merge", "parts")
    return flow, merge


def run(flow: Flow, mode: str, records: list[object]) -> JobState:
    params = {"records": records}
    if mode.startswith("async-"):
        strategy = mode.removeprefix("async-")
        return asyncio.run(
            flow.execute_async("split", params, execution_strategy=strategy)
        )
    return flow.execute("split", params, execution_strategy=mode)


def group(record_id: object, *sinks: str) -> Group:
    return (
        record_id,
        (
            ("place", [f"{s}-{record_id}" for s in sinks]),
            ("record_id", [record_id] * len(sinks)),
        ),
    )


@pytest.mark.parametrize("mode", MODES)
def test_join_fires_once_per_key_with_that_keys_inputs(mode: str) -> None:
    sink = AsyncSink if mode.startswith("async") else Sink
    flow, merge = build(sink=sink)

    job = run(flow, mode, [1, 2, 3, 4])

    assert job.status is JobStatus.COMPLETED
    assert sorted(merge.groups) == [group(n, "s0", "s1") for n in (1, 2, 3, 4)]
    assert job.waiting_groups == {}
    assert MERGE not in job.slot_buffers


@pytest.mark.parametrize("mode", MODES)
def test_failed_input_under_continue_leaves_its_group_reported(mode: str) -> None:
    sink = AsyncSink if mode.startswith("async") else Sink
    flow, merge = build(fail=2, sink=sink)

    job = run(flow, mode, [1, 2, 3])

    assert job.status is JobStatus.COMPLETED
    assert sorted(merge.groups) == [group(1, "s0", "s1"), group(3, "s0", "s1")]
    assert [e.message for e in job.errors] == ["cannot store 2"]
    first_sink_connection = 2
    assert job.waiting_groups == {MERGE: {2: {first_sink_connection}}}
    assert job.slot_buffers[MERGE] == {
        "groups": {2: {2: [{"record_id": 2, "place": "s0-2"}]}}
    }


@pytest.mark.parametrize("mode", MODES)
def test_three_way_join_in_every_strategy(mode: str) -> None:
    sink = AsyncSink if mode.startswith("async") else Sink
    flow, merge = build(sinks=3, sink=sink)

    run(flow, mode, ["a", "b"])

    assert sorted(merge.groups) == [group(k, "s0", "s1", "s2") for k in "ab"]


class Emitter(Routine):
    """Emit ``(event, key)`` pairs in the order given: the join's arrival order."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("arrivals", self.emit_all)
        self.define_event("left")
        self.define_event("right")

    def emit_all(self, arrivals: list[tuple[str, int]]) -> None:
        for event, key in arrivals:
            self.emit(event, key=key, side=event)


class Pair(Routine):
    """A correlated join on ``key``, collecting each fired buffer by key."""

    def __init__(self) -> None:
        super().__init__()
        self.fired: dict[object, dict[str, object]] = {}
        self.define_slot("both", self.pair, "append", join=True, correlate="key")

    def pair(self, **buffer: object) -> None:
        keys = buffer["key"]
        assert isinstance(keys, list)
        assert keys[0] not in self.fired
        self.fired[keys[0]] = buffer


def pair_flow() -> tuple[Flow, Pair]:
    flow = Flow("pairs")
    flow.add_routine(Emitter(), "emit")
    pair = Pair()
    flow.add_routine(pair, "pair")
    flow.connect("emit", "left", "pair", "both")
    flow.connect("emit", "right", "pair", "both")
    return flow, pair


def expected_pairs(keys: list[int]) -> dict[object, dict[str, object]]:
    return {k: {"key": [k, k], "side": ["left", "right"]} for k in keys}


def test_out_of_order_arrivals_are_merged_in_connection_order() -> None:
    flow, pair = pair_flow()
    arrivals = [("right", 2), ("right", 1), ("left", 1), ("left", 2)]

    flow.execute("emit", {"arrivals": arrivals})

    assert pair.fired == expected_pairs([1, 2])
    assert list(pair.fired) == [1, 2]


@settings(max_examples=40, deadline=None)
@given(
    keys=st.lists(st.integers(0, 5), min_size=1, max_size=6, unique=True),
    data=st.data(),
    strategy=st.sampled_from(["sequential", "concurrent"]),
)
def test_any_arrival_order_gives_the_same_groups(
    keys: list[int], data: st.DataObject, strategy: str
) -> None:
    flow, pair = pair_flow()
    arrivals = [(side, k) for k in keys for side in ("left", "right")]
    order = data.draw(st.permutations(arrivals))

    job = flow.execute("emit", {"arrivals": order}, execution_strategy=strategy)

    assert pair.fired == expected_pairs(keys)
    assert job.waiting_groups == {}


def test_a_delivery_without_the_key_is_its_failure() -> None:
    flow = Flow("missing")
    flow.add_routine(Emitter(), "emit")
    pair = Pair()
    pair.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(pair, "pair")
    flow.connect("emit", "left", "pair", "both")
    flow.connect("emit", "right", "pair", "both", param_mapping={"key": "other"})

    job = flow.execute("emit", {"arrivals": [("left", 1), ("right", 1)]})

    assert job.status is JobStatus.COMPLETED
    (error,) = job.errors
    assert error.routine_id == "pair"
    assert error.error_type == "ExecutionError"
    assert "no correlation key 'key' (keys: ['other', 'side'])" in error.message
    assert job.waiting_groups == {("pair", "both"): {1: {0}}}


class Keyed(Routine):
    """A correlated join whose key is its config's ``key``, whatever the data."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("both", None, join=True, correlate=self.key)

    def key(self, data: dict[str, object]) -> object:
        return self.get_config("key")


@pytest.mark.parametrize(
    ("key", "error_type", "message"),
    [
        ([1, 2], "ExecutionError", r"key \[1, 2\] is a list, which is not hashable"),
        (object, "SerializationError", r"^correlation key of routine 'pair', slot"),
    ],
    ids=["unhashable", "unsaveable"],
)
def test_a_bad_key_is_that_deliverys_failure(
    key: object, error_type: str, message: str
) -> None:
    flow = Flow("bad_key")
    flow.add_routine(Emitter(), "emit")
    keyed = Keyed()
    keyed.set_config(key=key)
    keyed.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(keyed, "pair")
    flow.connect("emit", "left", "pair", "both")
    flow.connect("emit", "right", "pair", "both")

    job = flow.execute("emit", {"arrivals": [("left", 1)]})

    assert job.status is JobStatus.COMPLETED
    (error,) = job.errors
    assert (error.routine_id, error.slot, error.error_type) == (
        "pair",
        "both",
        error_type,
    )
    assert re.search(message, error.message)
    assert job.waiting_groups == {}


@pytest.mark.parametrize("mode", MODES)
def test_retried_join_handler_fires_its_group_again(mode: str) -> None:
    sink = AsyncSink if mode.startswith("async") else Sink
    flow, merge = build(sink=sink)
    merge.set_config(fail_times=1)
    merge.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, retry_delay=0))

    job = run(flow, mode, [1, 2])

    assert job.status is JobStatus.COMPLETED
    assert sorted(merge.groups) == [group(n, "s0", "s1") for n in (1, 2)]
    assert job.waiting_groups == {}


def test_failed_join_handler_keeps_its_group_for_resume(tmp_path: Path) -> None:
    flow, merge = build()
    merge.set_config(fail_times=1)

    failed = flow.execute("split", {"records": [1, 2]})
    failed.save(tmp_path / "job.json")
    rebuilt, merge_again = build()
    resumed = rebuilt.resume(JobState.load(tmp_path / "job.json"))

    assert failed.status is JobStatus.FAILED
    assert failed.waiting_groups == {MERGE: {1: {2}}}
    assert resumed.status is JobStatus.COMPLETED
    assert sorted(merge_again.groups) == [group(n, "s0", "s1") for n in (1, 2)]
    assert resumed.waiting_groups == {}


@pytest.mark.parametrize("mode", MODES)
def test_save_and_resume_in_the_middle_of_a_group(mode: str, tmp_path: Path) -> None:
    sink = AsyncSink if mode.startswith("async") else Sink
    flow, merge = build(sink=sink, pause=2)
    paused = run(flow, mode, [1, 2, 3])
    paused.save(tmp_path / "job.json")
    rebuilt, merge_again = build(sink=sink)
    loaded = JobState.load(tmp_path / "job.json")
    assert loaded == paused
    waiting = paused.waiting_groups

    if mode.startswith("async-"):
        resumed = asyncio.run(rebuilt.resume_async(loaded))
    else:
        resumed = rebuilt.resume(loaded)

    assert paused.status is JobStatus.PAUSED
    if mode.endswith("sequential"):  # depth first: s0's part of record 2 waits
        assert waiting == {MERGE: {2: {2}}}
    assert resumed.status is JobStatus.COMPLETED
    fired = sorted(merge.groups + merge_again.groups)
    assert fired == [group(n, "s0", "s1") for n in (1, 2, 3)]
    assert resumed.waiting_groups == {}


def test_resume_on_a_flow_whose_join_lost_its_key_is_refused(tmp_path: Path) -> None:
    flow, _ = build(pause=1)
    paused = flow.execute("split", {"records": [1]})
    rebuilt, _ = build(merge_type=PlainMerge)

    with pytest.raises(InvalidFlowError, match="correlated changed from \\['parts'\\]"):
        rebuilt.resume(paused)


def test_entry_delivery_to_a_correlated_join_fires_at_once() -> None:
    flow, merge = build()

    job = flow.execute("merge", {"record_id": 7, "place": "entry"})

    assert job.status is JobStatus.COMPLETED
    assert merge.groups == [(7, (("place", ["entry"]), ("record_id", [7])))]


def test_join_without_correlate_keeps_mixing_inputs() -> None:
    flow, merge = build(fail=1, merge_type=PlainMerge)

    flow.execute("split", {"records": [1, 2]})

    (fired,) = merge.groups
    assert fired[1][1] == ("record_id", [1, 2, 2])


def record_key(data: dict[str, object]) -> object:
    return data["record_id"]


class TestSlotOption:
    def test_correlate_needs_join(self) -> None:
        with pytest.raises(DefinitionError, match="correlate .* needs join=True"):
            Slot("parts", correlate="record_id")

    def test_correlate_must_be_a_key_or_function(self) -> None:
        with pytest.raises(ArgumentTypeError, match="correlate must be a payload key"):
            Slot("parts", join=True, correlate=3)  # type: ignore[arg-type]

    def test_correlate_must_name_a_key(self) -> None:
        with pytest.raises(DefinitionError, match="correlate must name a payload key"):
            Slot("parts", join=True, correlate="")

    def test_async_key_function_is_refused(self) -> None:
        async def key(data: dict[str, object]) -> object:
            return data["id"]

        with pytest.raises(DefinitionError, match="not a coroutine"):
            Slot("parts", join=True, correlate=key)

    def test_key_name_round_trips(self) -> None:
        slot = Slot("parts", join=True, correlate="record_id")

        data = slot.serialize()

        assert data["correlate"] == "record_id"
        assert Slot.deserialize(data) == slot
        assert "correlate='record_id'" in repr(slot)

    def test_key_method_round_trips(self) -> None:
        keyed = Keyed()
        slot = keyed.get_slot("both")

        data = slot.serialize()

        assert data["correlate"] == {"method": "key"}
        assert Slot.deserialize(data, keyed) == slot
        assert "correlate='Keyed.key'" in repr(slot)

    def test_key_function_is_saved_by_name_and_not_restored(self) -> None:
        slot = Slot("parts", join=True, correlate=record_key)

        data = slot.serialize()

        assert data["correlate"] == {"function": "record_key"}
        with pytest.raises(SerializationError, match="field 'correlate': 'record_"):
            Slot.deserialize(data)

    def test_slot_without_correlate_saves_no_field(self) -> None:
        assert "correlate" not in Slot("parts", join=True).serialize()


KILL_SCRIPT = Path(__file__).with_name("_correlate_kill_flow.py")


def run_kill_script(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(KILL_SCRIPT), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("strategy", ["sequential", "concurrent", "async-sequential"])
def test_durable_job_killed_in_the_middle_of_a_group_recovers_it(
    strategy: str, tmp_path: Path
) -> None:
    db, log = tmp_path / "jobs.sqlite", tmp_path / "merged.log"

    killed = run_kill_script("run", db, log, strategy)
    stored = SqliteStore(db).load("etl-job")
    recovered = run_kill_script("recover", db, log, strategy)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert stored.status is JobStatus.RUNNING
    if strategy.endswith("sequential"):  # depth first: s0's part of 2 was stored
        assert stored.waiting_groups == {MERGE: {2: {1}}}
    assert recovered.returncode == 0, recovered.stderr
    assert json.loads(recovered.stdout) == {"status": "completed", "waiting": {}}
    merged = [tuple(json.loads(line)) for line in log.read_text().splitlines()]
    assert sorted(set(merged)) == [(n, f"s0-{n}", f"s1-{n}") for n in (1, 2, 3)]
    # At least once: only a merge in flight when the process died runs again.
    assert len(merged) <= (3 if strategy.endswith("sequential") else 4)


@pytest.mark.parametrize(
    "make_store",
    [
        MemoryStore,
        lambda path: JsonDirectoryStore(path),
        lambda path: SqliteStore(path / "db"),
    ],
    ids=["memory", "json", "sqlite"],
)
def test_stored_groups_match_the_running_job_at_every_checkpoint(
    make_store: Callable[..., Store], tmp_path: Path
) -> None:
    store = make_store() if make_store is MemoryStore else make_store(tmp_path)
    flow, merge = build(pause=3)

    paused = flow.execute("split", {"records": [1, 2, 3]}, job_id="j", store=store)
    stored = store.load("j")
    resumed = flow.resume("j", store=store)

    assert stored == paused
    assert stored.waiting_groups == {MERGE: {3: {2}}}
    assert resumed.status is JobStatus.COMPLETED
    assert sorted(merge.groups) == [group(n, "s0", "s1") for n in (1, 2, 3)]
    assert store.load("j").waiting_groups == {}


@pytest.mark.parametrize(
    ("buffer", "problem"),
    [
        ({"record_id": 2}, "holds no correlated groups"),
        ({"groups": {2: {9: [{"record_id": 2}]}}}, "group 2 fits no connection"),
        ({"groups": {2: {2: ["text"]}}}, "group 2 holds data that is no dict"),
    ],
    ids=["plain-buffer", "unknown-connection", "not-a-dict"],
)
def test_resume_refuses_damaged_groups(buffer: Payload, problem: str) -> None:
    flow, _ = build(pause=2)
    paused = flow.execute("split", {"records": [1, 2]})
    paused.slot_buffers[MERGE] = buffer

    with pytest.raises(
        InvalidFlowError, match=f"correlated join 'merge'.'parts' {problem}"
    ):
        flow.resume(paused)
