"""A small job in a huge flow costs what it costs in a small flow.

A flow with more event routes than ``SPARSE_AT`` counts a run's emissions in
a dict instead of a list as long as the flow, so a job's start and its kept
state do not grow with the flow; the figures are the same either way.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from flowforge import Flow, JobState, JobStatus
from flowforge.execution_tracker import SPARSE_AT
from flowforge.store import SqliteStore
from flowforge.testing import Relay


def chain_in_flow(extra: int) -> Flow:
    """Return ``a -> b -> c`` among ``extra`` routines no job reaches."""
    flow = Flow("chain")
    for routine_id in ("a", "b", "c"):
        flow.add_routine(Relay(), routine_id)
    flow.connect("a", "output", "b", "input")
    flow.connect("b", "output", "c", "input")
    for index in range(extra):
        flow.add_routine(Relay(), f"idle_{index}")
    return flow


def figures(job: JobState) -> tuple[object, ...]:
    tracker = job.tracker
    performance = tracker.get_flow_performance()
    return (
        job.status,
        tracker.get_event_counts(),
        performance.events_emitted,
        performance.deliveries,
        [h.routine_id for h in job.get_execution_history()],
    )


def test_a_job_in_a_huge_flow_has_the_figures_it_has_in_a_small_one() -> None:
    small, huge = chain_in_flow(0), chain_in_flow(SPARSE_AT + 10)

    in_small = small.execute("a", {"n": 1})
    in_huge = huge.execute("a", {"n": 1})

    assert figures(in_huge) == figures(in_small)
    assert in_huge.tracker.get_event_counts() == {
        ("a", "output"): 1,
        ("b", "output"): 1,
        ("c", "output"): 1,
    }


def kept_bytes(flow: Flow) -> int:
    """Return how many bytes a finished job of ``flow`` keeps allocated."""
    flow.execute("a", {"n": 0})  # the plan is built and cached first
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        job = flow.execute("a", {"n": 1})
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert job.status is JobStatus.COMPLETED
    return kept


def test_a_job_in_a_huge_flow_keeps_no_state_as_large_as_the_flow() -> None:
    small, huge = chain_in_flow(0), chain_in_flow(SPARSE_AT * 4)

    kept_small, kept_huge = kept_bytes(small), kept_bytes(huge)

    assert kept_huge < kept_small * 1.2 + 512, (kept_small, kept_huge)


def test_a_durable_job_in_a_huge_flow_resumes_with_its_counts(tmp_path: Path) -> None:
    flow = chain_in_flow(SPARSE_AT + 10)
    store = SqliteStore(tmp_path / "jobs.db")
    flow.execute("a", {"n": 1}, job_id="j", store=store)

    stored = store.load("j")

    assert stored.status is JobStatus.COMPLETED
    assert stored.tracker.get_event_counts() == {
        ("a", "output"): 1,
        ("b", "output"): 1,
        ("c", "output"): 1,
    }
    assert stored.tracker.get_flow_performance().events_emitted == 3
