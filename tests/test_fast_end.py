"""Ending a job takes shortcuts that keep every observable behaviour.

A job's end copies the stats of each routine that ran into its state. Most
routines record none, so the end first reads the plan's stats dicts at once
(``Plan.stats``) and each state's snapshot, and copies nothing when all are
empty; a small job in a large flow checks only its own routines. These tests
assert what the snapshots hold, never speed.
"""

from __future__ import annotations

from flowforge import Flow, JobStatus, Routine


class Hop(Routine):
    """Pass ``n + 1`` on; count in stats when ``counts``; pause when asked."""

    def __init__(self, counts: bool = False, pause_first: bool = False) -> None:
        super().__init__()
        self.counts = counts
        self.pause_first = pause_first
        self.define_slot("input", self.hop)
        self.define_event("output")

    def hop(self, n: int) -> None:
        if self.counts:
            self.increment_stat("hops")
        if self.pause_first:
            self.pause_first = False
            self.emit("output", n=n + 1)
            self._flow.pause(reason="wait")
            return
        self.emit("output", n=n + 1)

    _flow: Flow


def chain(*hops: Hop) -> Flow:
    flow = Flow(flow_id="chain")
    for index, hop in enumerate(hops):
        hop._flow = flow
        flow.add_routine(hop, f"hop_{index}")
        if index:
            flow.connect(f"hop_{index - 1}", "output", f"hop_{index}", "input")
    return flow


def snapshots(flow: Flow, n: int = 0) -> dict[str, dict[str, object]]:
    job = flow.execute("hop_0", {"n": n})
    assert job.status is JobStatus.COMPLETED
    return {rid: state.stats for rid, state in job.routine_states.items()}


def test_routines_without_stats_get_empty_snapshots() -> None:
    flow = chain(*(Hop() for _ in range(5)))

    assert snapshots(flow) == {f"hop_{i}": {} for i in range(5)}


def test_one_routine_with_stats_among_many_gets_its_snapshot() -> None:
    flow = chain(*(Hop(counts=index == 3) for index in range(6)))

    first, second = snapshots(flow), snapshots(flow)

    assert first["hop_3"] == {"hops": 1}
    assert second["hop_3"] == {"hops": 2}
    assert all(stats == {} for rid, stats in second.items() if rid != "hop_3")


def test_a_small_job_in_a_large_flow_gets_the_stats_of_its_routines() -> None:
    flow = chain(Hop(counts=True), Hop(counts=True))
    for index in range(2, 40):  # never reached by the job
        flow.add_routine(Hop(), f"hop_{index}")

    assert snapshots(flow) == {"hop_0": {"hops": 1}, "hop_1": {"hops": 1}}


def test_a_routine_outside_the_job_with_stats_adds_no_state() -> None:
    flow = chain(Hop(), Hop())
    idle = Hop()
    idle.set_stat("mine", 1)
    flow.add_routine(idle, "idle")

    assert snapshots(flow) == {"hop_0": {}, "hop_1": {}}


def test_stats_reset_since_the_last_snapshot_leave_an_empty_snapshot() -> None:
    first = Hop(counts=True, pause_first=True)
    flow = chain(first, Hop())
    paused = flow.execute("hop_0", {"n": 0})
    assert paused.status is JobStatus.PAUSED
    assert paused.routine_states["hop_0"].stats == {"hops": 1}

    first.reset_stats()
    resumed = flow.resume(paused)

    assert resumed.status is JobStatus.COMPLETED
    assert resumed.routine_states["hop_0"].stats == {}


def test_a_deserialized_routine_keeps_its_restored_stats_in_snapshots() -> None:
    counted = Hop(counts=True)
    counted.set_stat("hops", 41)
    restored = Routine.deserialize(counted.serialize())
    assert isinstance(restored, Hop)
    restored.counts = True

    flow = chain(restored, Hop())

    assert snapshots(flow)["hop_0"] == {"hops": 42}


def test_the_plan_holds_each_routines_live_stats_dict() -> None:
    hops = [Hop(), Hop(counts=True)]
    flow = chain(*hops)
    plan = flow._engine_setup().plan()

    hops[0].set_stat("a", 1)
    hops[1].increment_stat("b")
    hops[0].reset_stats()

    assert plan.stats == ({}, {"b": 1})
    stats: tuple[dict[str, object], ...] = plan.stats
    assert all(r._stats is s for r, s in zip(hops, stats, strict=True))
