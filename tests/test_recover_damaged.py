"""Recovery validates every stored job against the flow before touching it.

A job whose data parses but does not fit the flow (a connection index out of
range, an unknown routine or slot, an absurd attempt) is skipped with a
warning that names it and the problem, and left as it is; every other job is
recovered.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowforge import (
    Flow,
    FlowForgeWarning,
    InvalidFlowError,
    JobState,
    JobStatus,
    Routine,
    SerializationError,
)
from flowforge.record import RoutineState
from flowforge.store import MemoryStore, SqliteStore
from flowforge.store.base import Store


class Numbers(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("number")

    def __call__(self, count: int) -> None:
        for value in range(count):
            self.emit("number", value=value)


class Total(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.add)
        self.interrupt_at: int | None = None

    def add(self, value: int) -> None:
        if value == self.interrupt_at:
            raise KeyboardInterrupt
        self.increment_stat("total", value)


def build() -> Flow:
    flow = Flow("sums")
    flow.add_routine(Numbers(), "numbers")
    flow.add_routine(Total(), "total")
    flow.connect("numbers", "number", "total", "input")
    return flow


def left_running(flow: Flow, store: Store, job_id: str) -> JobState:
    """Run a durable job until a KeyboardInterrupt leaves it running in the store."""
    total = flow.routines["total"]
    assert isinstance(total, Total)
    total.interrupt_at = 2
    with pytest.raises(KeyboardInterrupt):
        flow.execute("numbers", {"count": 4}, job_id=job_id, store=store)
    total.interrupt_at = None
    stored = store.load(job_id)
    assert stored.status is JobStatus.RUNNING and stored.pending
    return stored


def wrong_connection(job: JobState) -> None:
    job.pending[-1].connection = 99


def unknown_routine(job: JobState) -> None:
    job.pending[-1].routine_id = "ghost"


def unknown_slot(job: JobState) -> None:
    job.pending[-1].slot = "nowhere"


def foreign_state(job: JobState) -> None:
    job.routine_states["ghost"] = RoutineState("ghost")


def absurd_attempt(job: JobState) -> None:
    job.pending[-1].attempt = 10**6 + 1


def attempt_past_retries(job: JobState) -> None:
    job.pending[-1].attempt = 20  # the default handler (STOP) retries nothing


DAMAGES: dict[str, tuple[Callable[[JobState], None], str]] = {
    "connection": (wrong_connection, "connection 99 does not exist"),
    "routine": (unknown_routine, "unknown routine 'ghost'"),
    "slot": (unknown_slot, "unknown slot 'total'.'nowhere'"),
    "state": (foreign_state, "routine state of unknown routine 'ghost'"),
    "attempt": (absurd_attempt, "attempt 1000001 is out of range"),
    "retries": (attempt_past_retries, "attempt 20 is past the 0 retries"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_recover_skips_a_damaged_job_with_a_warning_and_recovers_the_others(
    tmp_path: Path, damage: str
) -> None:
    flow = build()
    store = SqliteStore(tmp_path / "jobs.db")
    left_running(flow, store, "good")
    damaged = left_running(flow, store, "bad")
    edit, problem = DAMAGES[damage]
    edit(damaged)
    store.save(damaged)
    before = store.load("bad").serialize()

    with pytest.warns(FlowForgeWarning, match=f"job 'bad'.*{problem}"):
        recovered = flow.recover(store)

    assert [job.job_id for job in recovered] == ["good"]
    assert recovered[0].status is JobStatus.COMPLETED
    assert store.load("bad").serialize() == before
    assert store.get("bad").owner is None


def test_a_damaged_job_is_never_completed_by_a_later_recover(tmp_path: Path) -> None:
    flow = build()
    store = SqliteStore(tmp_path / "jobs.db")
    damaged = left_running(flow, store, "bad")
    wrong_connection(damaged)
    store.save(damaged)
    with pytest.warns(FlowForgeWarning, match="connection 99"):
        flow.recover(store)

    with pytest.warns(FlowForgeWarning, match="connection 99"):
        again = flow.recover(store)

    assert again == []
    assert store.load("bad").status is JobStatus.RUNNING
    assert len(store.load("bad").pending) == len(damaged.pending)


def test_resume_by_id_refuses_a_damaged_job_even_with_force(tmp_path: Path) -> None:
    flow = build()
    store = SqliteStore(tmp_path / "jobs.db")
    damaged = left_running(flow, store, "bad")
    unknown_slot(damaged)
    store.save(damaged)

    with pytest.raises(InvalidFlowError, match="does not fit flow 'sums'"):
        flow.resume("bad", store=store, force=True)

    assert store.load("bad").serialize() == damaged.serialize()


@pytest.mark.parametrize("field", [0, 1, 2, 7])
def test_an_infinite_tracker_figure_is_a_serialization_error(field: int) -> None:
    flow = build()
    data = flow.execute("numbers", {"count": 2}).serialize()
    tracker = data["tracker"]
    assert isinstance(tracker, dict)
    tracker["routines"]["total"][field] = math.inf

    with pytest.raises(SerializationError, match="execution tracker"):
        JobState.deserialize(data)


@settings(max_examples=25, deadline=None)
@given(kinds=st.lists(st.sampled_from(["good", *DAMAGES]), min_size=1, max_size=6))
def test_recover_of_any_mix_recovers_exactly_the_good_jobs(kinds: list[str]) -> None:
    flow = build()
    store = MemoryStore()
    before: dict[str, dict[str, object]] = {}
    for number, kind in enumerate(kinds):
        job = left_running(flow, store, f"{kind}-{number}")
        if kind != "good":
            DAMAGES[kind][0](job)
            store.save(job)
            before[job.job_id] = store.load(job.job_id).serialize()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recovered = flow.recover(store)

    good = {f"good-{n}" for n, kind in enumerate(kinds) if kind == "good"}
    assert {job.job_id for job in recovered} == good
    assert all(job.status is JobStatus.COMPLETED for job in recovered)
    assert len(caught) == len(before)
    assert all(issubclass(w.category, FlowForgeWarning) for w in caught)
    for job_id, data in before.items():
        assert store.load(job_id).serialize() == data
        assert store.get(job_id).owner is None
