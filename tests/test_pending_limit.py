"""A job that makes work faster than it does it fails before it fills the memory.

A cycle that emits twice per delivery doubles its pending work at each step;
``Flow(max_pending=...)`` bounds it with a clear failure, in every strategy.
"""

from __future__ import annotations

import asyncio

import pytest

from flowforge import DefinitionError, Flow, JobState, JobStatus, Routine


class Doubler(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.double)
        self.define_event("output")

    def double(self, n: int) -> None:
        self.emit("output", n=n + 1)
        self.emit("output", n=n + 1)


def doubling_flow(strategy: str, max_pending: int) -> Flow:
    flow = Flow("doubling", execution_strategy=strategy, max_pending=max_pending)
    flow.add_routine(Doubler(), "double")
    flow.connect("double", "output", "double", "input")
    return flow


def run(flow: Flow, mode: str) -> JobState:
    if mode == "async":
        return asyncio.run(flow.execute_async("double", {"n": 0}))
    return flow.execute("double", {"n": 0})


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_job_that_holds_too_much_pending_work_fails_clearly(
    strategy: str, mode: str
) -> None:
    flow = doubling_flow(strategy, max_pending=50)

    job = run(flow, mode)

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "reached the flow's limit of 50 pending deliveries" in job.error.message
    assert "Flow(max_pending=...)" in job.error.message
    assert len(job.pending) <= 60
    assert job.delivery_count < 100


def test_max_pending_survives_the_flow_round_trip() -> None:
    flow = doubling_flow("sequential", max_pending=7)

    assert Flow.deserialize(flow.serialize()).max_pending == 7


def test_max_pending_must_be_a_positive_int() -> None:
    with pytest.raises(DefinitionError, match="max_pending must be a positive int"):
        Flow(max_pending=0)


def test_the_delivery_limit_still_applies_under_a_generous_pending_bound() -> None:
    flow = doubling_flow("sequential", max_pending=10**6)
    flow.max_deliveries = 200

    job = flow.execute("double", {"n": 0})

    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "limit of 200 deliveries" in job.error.message
