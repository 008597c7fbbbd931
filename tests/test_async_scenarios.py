"""The scenario tables under ``execute_async``, compared with the synchronous engine.

Each row of ``test_scenarios`` (topology x failing routine x error strategy:
joins, cycles, retries through the fake clock) is built twice, once with
plain handlers and once with ``async def`` ones. Under the ``sequential``
strategy the async run's serialized job state (tracebacks aside, whose engine
frames differ) and handler log equal the synchronous run's; under
``concurrent`` its outcome equals the thread strategy's. Then pause, resume,
cancel (from a handler, from another task, and of the awaiting task), the
delivery limit, and random DAGs with a random mix of plain and async handlers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import test_scenarios
from flowforge import Flow, JobState, JobStatus, Routine
from flowforge.store import MemoryStore
from flowforge.testing import FakeClock
from test_scenarios import LOG, ROWS, Step, Topology

ROW_IDS = [f"{t.name}-{p}-{s}" for t, p, _, s in ROWS]


class AsyncStep(Step):
    """``test_scenarios.Step`` with an ``async def`` handler that yields once."""

    # The override returns a coroutine: that is the point of the class.
    async def handle(self, path: str | list[str]) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        Step.handle(self, path)


def build(topology: Topology, failing: str, strategy: str, step: type[Step]) -> Flow:
    """``test_scenarios.build`` with routines of class ``step``."""
    original = test_scenarios.Step
    test_scenarios.Step = step  # type: ignore[misc]  # build reads the module's Step
    try:
        return test_scenarios.build(topology, failing, strategy)
    finally:
        test_scenarios.Step = original  # type: ignore[misc]


def comparable(job: JobState) -> object:
    """The job's serialized state, without what names the routine classes
    (``flow_shape``) or the engine's frames (error tracebacks)."""
    data = job.serialize()
    del data["flow_shape"]
    return _without_tracebacks(data)


def _without_tracebacks(data: object) -> object:
    if isinstance(data, dict):
        return {k: _without_tracebacks(v) for k, v in data.items() if k != "traceback"}
    if isinstance(data, list):
        return [_without_tracebacks(v) for v in data]
    return data


def run_sync(flow: Flow, strategy: str = "sequential") -> tuple[JobState, list[object]]:
    LOG.clear()
    job = flow.execute("a", {"path": ""}, job_id="job", execution_strategy=strategy)
    return job, list(LOG)


def run_async(flow: Flow, strategy: str) -> tuple[JobState, list[object]]:
    LOG.clear()
    job = asyncio.run(
        flow.execute_async("a", {"path": ""}, job_id="job", execution_strategy=strategy)
    )
    return job, list(LOG)


def clock_of(flow: Flow) -> FakeClock:
    clock = flow.clock
    assert isinstance(clock, FakeClock)
    return clock


@pytest.mark.parametrize(
    ("topology", "position", "failing", "strategy"), ROWS, ids=ROW_IDS
)
def test_sequential_async_run_equals_the_sync_run(
    topology: Topology, position: str, failing: str, strategy: str
) -> None:
    plain = build(topology, failing, strategy, Step)
    awaiting = build(topology, failing, strategy, AsyncStep)

    expected, expected_log = run_sync(plain)
    job, log = run_async(awaiting, "sequential")

    assert comparable(job) == comparable(expected)
    assert log == expected_log
    assert clock_of(awaiting).sleeps == clock_of(plain).sleeps


def outcome(flow: Flow, job: JobState) -> object:
    return (
        job.status,
        {rid: sorted(steps) for rid, steps in test_scenarios.received(flow).items()},
        test_scenarios.calls(flow),
        sorted((e.routine_id, e.error_type, e.attempt) for e in job.errors),
        sorted(
            (h.routine_id, h.outcome, h.attempt) for h in job.get_execution_history()
        ),
        job.delivery_count,
        sorted(clock_of(flow).sleeps),
    )


@pytest.mark.parametrize(
    ("topology", "position", "failing", "strategy"), ROWS, ids=ROW_IDS
)
def test_concurrent_async_run_equals_the_thread_strategy_run(
    topology: Topology, position: str, failing: str, strategy: str
) -> None:
    plain = build(topology, failing, strategy, Step)
    awaiting = build(topology, failing, strategy, AsyncStep)

    expected, _ = run_sync(plain, "concurrent")
    job, _ = run_async(awaiting, "concurrent")

    assert outcome(awaiting, job) == outcome(plain, expected)


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_delivery_limit_fails_an_endless_async_cycle_like_the_sync_engine(
    strategy: str,
) -> None:
    cycle = Topology("endless", (("a", "loop", "a"),), (), {}, (), (("a", 10**9),))
    plain, awaiting = (
        build(cycle, "a", "continue", step) for step in (Step, AsyncStep)
    )
    for flow in (plain, awaiting):
        flow.max_deliveries = 25
        flow.routines["a"].set_config(failures=0)

    expected, _ = run_sync(plain, strategy)
    job, _ = run_async(awaiting, strategy)

    assert job.status is expected.status is JobStatus.FAILED
    assert job.delivery_count == expected.delivery_count == 25
    assert job.error is not None and expected.error is not None
    assert job.error.message == expected.error.message
    assert "limit of 25 deliveries" in job.error.message


# Pause, resume and cancel


class Gate(Routine):
    """Emits the sum of its inputs once ``opened`` is set; records a CancelledError.

    Its slot appends: a delivery merged twice (say, once before its handler
    was cancelled and again on resume) would double the sum.
    """

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle, "append")
        self.define_event("out")
        self.started = asyncio.Event()
        self.opened = asyncio.Event()
        self.seen: list[str] = []

    async def handle(self, x: list[int]) -> None:
        self.started.set()
        try:
            await self.opened.wait()
        except asyncio.CancelledError:
            self.seen.append("cancelled")
            raise
        self.emit("out", x=sum(x))


class Split(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")

    def handle(self, x: int) -> None:
        self.emit("out", x=x)


class Collect(Routine):
    """Records every buffer of its ``append`` slot."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle, "append")
        self.got: list[list[int]] = []

    async def handle(self, x: list[int]) -> None:
        self.got.append(list(x))


def gated_flow(width: int = 2) -> tuple[Flow, list[Gate], Collect]:
    """``split`` fans out to ``width`` gates, each feeding ``collect``."""
    flow = Flow(flow_id="gated", max_workers=4, clock=FakeClock())
    flow.add_routine(Split(), "split")
    collect = Collect()
    flow.add_routine(collect, "collect")
    gates = [Gate() for _ in range(width)]
    for k, gate in enumerate(gates):
        flow.add_routine(gate, f"g{k}")
        flow.connect("split", "out", f"g{k}", "input")
        flow.connect(f"g{k}", "out", "collect", "input")
    return flow, gates, collect


def open_all(gates: list[Gate]) -> None:
    for gate in gates:
        gate.opened.set()


def finished_summary(job: JobState, collect: Collect) -> object:
    history = [(h.seq, h.routine_id, h.outcome) for h in job.get_execution_history()]
    return job.status, collect.got, job.delivery_count, sorted(history)


def uninterrupted(strategy: str) -> object:
    flow, gates, collect = gated_flow()
    open_all(gates)
    job = asyncio.run(
        flow.execute_async("split", {"x": 1}, execution_strategy=strategy)
    )
    return finished_summary(job, collect)


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_cancel_from_another_task_cancels_awaiting_handlers(strategy: str) -> None:
    flow, gates, collect = gated_flow()

    async def main() -> JobState:
        task = asyncio.create_task(
            flow.execute_async(
                "split", {"x": 1}, job_id="j", execution_strategy=strategy
            )
        )
        await gates[0].started.wait()
        flow.cancel("j", reason="enough")
        return await task

    job = asyncio.run(main())

    assert job.status is JobStatus.CANCELLED
    assert gates[0].seen == ["cancelled"]
    outcomes = {h.routine_id: h.outcome for h in job.get_execution_history()}
    assert outcomes == {"split": "completed", "g0": "cancelled", "g1": "cancelled"}
    assert job.pending == [] and collect.got == []


class SelfCanceller(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")
        self.flow: Flow | None = None
        self.finished = False

    async def handle(self, x: int) -> None:
        assert self.flow is not None
        self.flow.cancel(reason="from inside")
        await asyncio.sleep(0)
        self.finished = True
        self.emit("out", x=x)


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_cancel_from_inside_a_handler_lets_it_finish(strategy: str) -> None:
    flow = Flow()
    canceller = SelfCanceller()
    canceller.flow = flow
    flow.add_routine(canceller, "c")
    flow.add_routine(Collect(), "collect")
    flow.connect("c", "out", "collect", "input")

    job = asyncio.run(flow.execute_async("c", {"x": 1}, execution_strategy=strategy))

    assert job.status is JobStatus.CANCELLED
    assert canceller.finished
    assert [(h.routine_id, h.outcome) for h in job.get_execution_history()] == [
        ("c", "completed"),
        ("collect", "cancelled"),
    ]


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_pause_from_another_task_waits_for_running_handlers_then_resumes(
    strategy: str,
) -> None:
    flow, gates, collect = gated_flow()

    async def main() -> tuple[JobState, JobState]:
        task = asyncio.create_task(
            flow.execute_async(
                "split", {"x": 1}, job_id="j", execution_strategy=strategy
            )
        )
        await gates[0].started.wait()
        flow.pause("j", reason="later")
        await asyncio.sleep(0)
        assert not task.done()  # the running handlers are not interrupted
        open_all(gates)
        paused = await task
        snapshot = JobState.deserialize(paused.serialize())
        return snapshot, await flow.resume_async(paused)

    paused, resumed = asyncio.run(main())

    assert paused.status is JobStatus.PAUSED
    assert [p.reason for p in paused.pause_points] == ["later"]
    assert paused.get_routine_state("g0").deliveries == 1
    assert paused.pending
    assert gates[0].seen == []
    assert finished_summary(resumed, collect) == uninterrupted(strategy)


class Pauser(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")
        self.flow: Flow | None = None

    async def handle(self, x: int) -> None:
        assert self.flow is not None
        if x == 1:
            self.flow.pause(reason="from inside")
        await asyncio.sleep(0)
        self.emit("out", x=x)


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_pause_from_a_handler_stops_after_it_and_resume_async_continues(
    strategy: str,
) -> None:
    flow = Flow()
    pauser = Pauser()
    pauser.flow = flow
    flow.add_routine(Split(), "split")
    flow.add_routine(pauser, "p")
    collect = Collect()
    flow.add_routine(collect, "collect")
    flow.connect("split", "out", "p", "input")
    flow.connect("p", "out", "collect", "input")

    async def main() -> tuple[JobStatus, list[list[int]], JobState]:
        job = await flow.execute_async("split", {"x": 1}, execution_strategy=strategy)
        status, got = job.status, list(collect.got)
        return status, got, await flow.resume_async(job)

    status, got_when_paused, job = asyncio.run(main())

    assert status is JobStatus.PAUSED
    assert got_when_paused == []
    assert job.status is JobStatus.COMPLETED
    assert collect.got == [[1]]


@pytest.mark.parametrize("how", ["resume", "resume_async", "recover"])
@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_cancelling_the_awaiting_task_leaves_a_durable_job_resumable(
    strategy: str, how: str
) -> None:
    flow, gates, collect = gated_flow()
    store = MemoryStore()

    async def interrupted() -> None:
        task = asyncio.create_task(
            flow.execute_async(
                "split", {"x": 1}, job_id="j", store=store, execution_strategy=strategy
            )
        )
        await gates[1].started.wait() if strategy == "concurrent" else None
        await gates[0].started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    record = store.get("j")
    open_all(gates)
    flow.execution_strategy = strategy
    if how == "resume_async":
        job = asyncio.run(flow.resume_async("j", store=store))
    else:
        job = (
            flow.recover(store)[0]
            if how == "recover"
            else flow.resume("j", store=store)
        )

    assert (record.status, record.owner) == (JobStatus.RUNNING, None)
    assert finished_summary(job, collect) == uninterrupted(strategy)
    assert store.load("j").status is JobStatus.COMPLETED


# Random DAGs, random handler mix


class Node(Routine):
    """Appends its name to ``path`` and emits it; async if configured so."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("out")

    def handle(self, path: str) -> None:
        name = self.get_config("name")
        assert isinstance(name, str)
        self.emit("out", path=path + name)


class AsyncNode(Node):
    async def handle(self, path: str) -> None:  # type: ignore[override]  # async
        await asyncio.sleep(0)
        Node.handle(self, path)


@st.composite
def dags(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[bool]]:
    size = draw(st.integers(2, 7))
    edges = [
        (i, j)
        for j in range(1, size)
        for i in draw(
            st.lists(st.integers(0, j - 1), min_size=1, max_size=3, unique=True)
        )
    ]
    mix = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    return size, edges, mix


def dag_flow(
    size: int, edges: list[tuple[int, int]], kind: Callable[[int], type[Node]]
) -> Flow:
    flow = Flow(flow_id="dag", clock=FakeClock())
    for i in range(size):
        node = kind(i)()
        node.set_config(name=f"n{i}")
        flow.add_routine(node, f"n{i}")
    for i, j in edges:
        flow.connect(f"n{i}", "out", f"n{j}", "input")
    return flow


@settings(max_examples=30, deadline=None)
@given(dag=dags())
def test_sequential_async_history_of_a_random_mixed_dag_equals_sync(
    dag: tuple[int, list[tuple[int, int]], list[bool]],
) -> None:
    size, edges, mix = dag
    plain = dag_flow(size, edges, lambda i: Node)
    mixed = dag_flow(size, edges, lambda i: AsyncNode if mix[i] else Node)

    expected = plain.execute("n0", {"path": ""}, job_id="job")
    job = asyncio.run(mixed.execute_async("n0", {"path": ""}, job_id="job"))

    assert comparable(job) == comparable(expected)
