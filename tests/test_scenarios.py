"""Topologies x error strategies x position of the failing routine, as one table.

Every routine is a ``Step``: it receives a ``path`` (the names of the routines
the data went through), records it, and emits ``path + its name``. A reference
run without failures gives each topology's log of ``(routine, path)`` in the
order handlers ran; each row then states what the failure changes:

- STOP (and exhausted critical retries): the job fails at the failing
  routine's first delivery; only what ran before it in the log ran.
- CONTINUE (and exhausted non-critical retries, and a non-retryable error
  under RETRY): every delivery to the failing routine fails, so nothing that
  would have gone through it arrives anywhere; the job completes.
- SKIP: the first delivery fails, later ones to the routine are dropped.
- RETRY that recovers: the result equals the reference run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from flowforge import ErrorHandler, ErrorStrategy, Flow, JobState, JobStatus, Routine
from flowforge.testing import FakeClock


class Step(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[str] = []
        self.define_slot("input", self.handle)
        self.define_event("out")
        self.define_event("loop")

    def handle(self, path: str | list[str]) -> None:
        name = self.get_config("name")
        assert isinstance(name, str)
        self.increment_stat("calls")
        failures = self.get_config("failures", 0)
        assert isinstance(failures, int)
        if failures:
            self.set_config(failures=failures - 1)
            error = self.get_config("error", RuntimeError)
            assert isinstance(error, type)
            raise error(f"{name} fails")
        text = "+".join(path) if isinstance(path, list) else path
        self.received.append(text)
        LOG.append((name, text))
        loops = self.get_config("loops", 0)
        assert isinstance(loops, int)
        if text.count(name) < loops:
            self.emit("loop", path=text + name)
        else:
            self.emit("out", path=text + name)


LOG: list[tuple[str, str]] = []


@dataclass(frozen=True)
class Topology:
    name: str
    edges: tuple[tuple[str, str, str], ...]
    joins: tuple[str, ...]
    positions: dict[str, str]
    reference: tuple[tuple[str, str], ...]
    loops: tuple[tuple[str, int], ...] = ()

    @property
    def nodes(self) -> list[str]:
        names = ["a"]
        for source, _, target in self.edges:
            names += [n for n in (source, target) if n not in names]
        return names


TOPOLOGIES = [
    Topology("single", (), (), {"entry": "a"}, (("a", ""),)),
    Topology(
        "chain",
        (("a", "out", "b"), ("b", "out", "c")),
        (),
        {"entry": "a", "middle": "b", "leaf": "c"},
        (("a", ""), ("b", "a"), ("c", "ab")),
    ),
    Topology(
        "fan_out",
        (("a", "out", "b"), ("b", "out", "c"), ("b", "out", "d")),
        (),
        {"entry": "a", "middle": "b", "leaf": "c"},
        (("a", ""), ("b", "a"), ("c", "ab"), ("d", "ab")),
    ),
    Topology(
        "fan_in",
        (("a", "out", "b"), ("a", "out", "c"), ("b", "out", "d"), ("c", "out", "d")),
        (),
        {"entry": "a", "middle": "b", "leaf": "d"},
        (("a", ""), ("b", "a"), ("d", "ab"), ("c", "a"), ("d", "ac")),
    ),
    Topology(
        "diamond",
        (("a", "out", "b"), ("a", "out", "c"), ("b", "out", "d"), ("c", "out", "d")),
        ("d",),
        {"entry": "a", "middle": "b", "leaf": "d"},
        (("a", ""), ("b", "a"), ("c", "a"), ("d", "ab+ac")),
    ),
    Topology(
        "cycle",
        (("a", "out", "b"), ("b", "loop", "b"), ("b", "out", "c")),
        (),
        {"entry": "a", "middle": "b", "leaf": "c"},
        (
            ("a", ""),
            ("b", "a"),
            ("b", "ab"),
            ("b", "abb"),
            ("b", "abbb"),
            ("c", "abbbb"),
        ),
        loops=(("b", 3),),
    ),
]

STRATEGIES = {
    "stop": (ErrorHandler(ErrorStrategy.STOP), 99, RuntimeError),
    "continue": (ErrorHandler(ErrorStrategy.CONTINUE), 99, RuntimeError),
    "skip": (ErrorHandler(ErrorStrategy.SKIP), 99, RuntimeError),
    "retry_recovers": (ErrorHandler("retry", max_retries=3, retry_delay=0.5), 2, None),
    "retry_exhausted": (ErrorHandler("retry", max_retries=2), 99, RuntimeError),
    "retry_exhausted_critical": (
        ErrorHandler("retry", max_retries=2, is_critical=True),
        99,
        RuntimeError,
    ),
    "retry_not_retryable": (
        ErrorHandler("retry", retryable_exceptions=(KeyError,)),
        99,
        ValueError,
    ),
    "retry_exhausted_optional": (
        ErrorHandler("retry", max_retries=2, is_optional=True),
        99,
        RuntimeError,
    ),
    "retry_not_retryable_optional": (
        ErrorHandler("retry", retryable_exceptions=(KeyError,), is_optional=True),
        99,
        ValueError,
    ),
}
STOPPING = (
    "stop",
    "retry_exhausted_critical",
    "retry_exhausted",
    "retry_not_retryable",
)
"""Strategies whose final failure fails the job: retries that run out stop it."""


def build(topology: Topology, failing: str, strategy: str) -> Flow:
    handler, failures, error = STRATEGIES[strategy]
    flow = Flow(flow_id=topology.name, clock=FakeClock())
    for name in topology.nodes:
        step = Step()
        step.set_config(name=name, loops=dict(topology.loops).get(name, 0))
        if name in topology.joins:
            step._slots.clear()
            step.define_slot("input", step.handle, "append", join=True)
        flow.add_routine(step, name)
    for source, event, target in topology.edges:
        flow.connect(source, event, target, "input")
    failing_step = flow.routines[failing]
    failing_step.set_config(failures=failures, error=error or RuntimeError)
    failing_step.set_error_handler(handler)
    return flow


def run(topology: Topology, failing: str, strategy: str) -> tuple[Flow, JobState]:
    LOG.clear()
    flow = build(topology, failing, strategy)
    return flow, flow.execute("a", {"path": ""})


def steps(flow: Flow) -> dict[str, Step]:
    return {rid: r for rid, r in flow.routines.items() if isinstance(r, Step)}


def received(flow: Flow) -> dict[str, list[str]]:
    return {rid: list(step.received) for rid, step in steps(flow).items()}


def calls(flow: Flow) -> dict[str, int]:
    counts = {rid: step.get_stat("calls", 0) for rid, step in steps(flow).items()}
    assert all(isinstance(count, int) for count in counts.values())
    return counts  # type: ignore[return-value]  # checked just above


def expected_without(topology: Topology, failing: str) -> list[tuple[str, str]]:
    """The reference log minus the failing routine and all that went through it."""
    return [(n, p) for n, p in topology.reference if n != failing and failing not in p]


def deliveries_to(topology: Topology, failing: str) -> int:
    return sum(1 for n, p in topology.reference if n == failing and failing not in p)


def as_received(topology: Topology, log: list[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {name: [] for name in topology.nodes}
    for name, path in log:
        result[name].append(path)
    return result


def as_calls(topology: Topology, log: list[tuple[str, str]]) -> dict[str, int]:
    return {name: len(paths) for name, paths in as_received(topology, log).items()}


ROWS = [
    (topology, position, failing, strategy)
    for topology in TOPOLOGIES
    for position, failing in topology.positions.items()
    for strategy in STRATEGIES
]


@pytest.mark.parametrize(
    ("topology", "position", "failing", "strategy"),
    ROWS,
    ids=[f"{t.name}-{p}-{s}" for t, p, _, s in ROWS],
)
def test_failure_outcome(
    topology: Topology, position: str, failing: str, strategy: str
) -> None:
    flow, job = run(topology, failing, strategy)

    if strategy in STOPPING:
        before = list(
            topology.reference[: [n for n, _ in topology.reference].index(failing)]
        )
        attempts = 3 if strategy.startswith("retry_exhausted") else 1
        error_type = "ValueError" if "not_retryable" in strategy else "RuntimeError"
        assert job.status is JobStatus.FAILED
        assert received(flow) == as_received(topology, before)
        assert calls(flow) == {**as_calls(topology, before), failing: attempts}
        assert [(e.routine_id, e.error_type) for e in job.errors] == [
            (failing, error_type)
        ]
        assert job.error is job.errors[0]
        assert job.pending[-1].routine_id == failing
    elif strategy == "retry_recovers":
        reference = list(topology.reference)
        assert job.status is JobStatus.COMPLETED
        assert received(flow) == as_received(topology, reference)
        expected_calls = as_calls(topology, reference)
        expected_calls[failing] += 2
        assert calls(flow) == expected_calls
        assert job.errors == []
        assert job.tracker is not None
        assert job.tracker.get_routine_performance(failing).retries == 2
        assert flow.clock.sleeps == [0.5, 1.0]  # type: ignore[union-attr]
    else:
        without = expected_without(topology, failing)
        count = deliveries_to(topology, failing)
        failed = 1 if strategy == "skip" else count
        per_delivery = 3 if strategy == "retry_exhausted_optional" else 1
        error_type = "ValueError" if "not_retryable" in strategy else "RuntimeError"
        assert job.status is JobStatus.COMPLETED
        assert received(flow) == as_received(topology, without)
        assert calls(flow) == {
            **as_calls(topology, without),
            failing: failed * per_delivery,
        }
        assert [(e.routine_id, e.error_type) for e in job.errors] == [
            (failing, error_type)
        ] * failed
        assert job.routine_states[failing].errors == job.errors
        dropped = [
            r for r in job.get_execution_history(failing) if r.outcome == "dropped"
        ]
        assert len(dropped) == count - failed
        assert job.pending == []


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=[t.name for t in TOPOLOGIES])
def test_reference_run_matches_its_log(topology: Topology) -> None:
    LOG.clear()
    flow = build(topology, "a", "continue")
    flow.routines["a"].set_config(failures=0)

    job = flow.execute("a", {"path": ""})

    assert job.status is JobStatus.COMPLETED
    assert LOG == list(topology.reference)


def test_join_with_failed_source_is_reported_waiting() -> None:
    diamond = next(t for t in TOPOLOGIES if t.name == "diamond")

    _, job = run(diamond, "b", "continue")

    assert job.status is JobStatus.COMPLETED
    assert set(job.waiting_joins) == {("d", "input")}
