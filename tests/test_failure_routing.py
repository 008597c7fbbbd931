"""Failure routes: a routine's final failures go to a fallback, in every engine.

A flow routes a routine's final failures with ``flow.connect_failures``; the
fallback gets ``{"error": ..., "payload": ...}`` and the failure is handled.
Cases: every engine, retries, the fallback's own failure, a route to itself,
payloads that cannot be saved, pause and resume, kill -9 and recovery (through
``_kill_flow.py --fallback`` and ``test_recovery``'s helpers), serialization,
the fingerprint, diagrams and bad arguments.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import pytest

from flowforge import (
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    ExecutionTracker,
    Flow,
    InvalidFlowError,
    JobState,
    JobStatus,
    Routine,
    RoutineStatus,
    SerializationError,
    UnknownPortError,
)
from flowforge.record import error_from_data, error_to_data
from flowforge.store import SqliteStore
from flowforge.testing import FakeClock
from _kill_flow import JOB_ID
from test_recovery import Recovery, Reference, finished, kill_and_recover
from test_recovery import read_log, run_script

ENGINES: Final = ("sequential", "concurrent", "async", "async-concurrent")


class Numbers(Routine):
    """Emits ``item=i`` for each ``i`` below ``count``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self, count: int) -> None:
        for i in range(count):
            self.emit("output", item=i)


class Worker(Routine):
    """Fails on odd items; can ask its flow to pause first (``pause_at``)."""

    def __init__(self) -> None:
        super().__init__()
        self.controller: Flow | None = None
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, item: object) -> None:
        if self.controller is not None and item == self.get_config("pause_at"):
            self.controller.pause(reason="test")
        if not isinstance(item, int) or item % 2:
            raise ValueError(f"odd item {item!r}")
        self.emit("output", item=item)


class AsyncWorker(Worker):
    async def handle(self, item: object) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        Worker.handle(self, item)


class Fallback(Routine):
    """Records each routed failure and sends ``item * 100`` on."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("failed", self.handle)
        self.define_event("output")

    def handle(self, error: dict[str, object], payload: object) -> None:
        if self.get_config("fail", False):
            raise RuntimeError("the fallback fails too")
        rescued = self.get_stat("rescued", [])
        assert isinstance(rescued, list)
        self.set_stat("rescued", [*rescued, [error["error_type"], payload]])
        if isinstance(payload, dict):
            self.emit("output", item=payload["item"] * 100)


class AsyncFallback(Fallback):
    async def handle(  # type: ignore[override]
        self, error: dict[str, object], payload: object
    ) -> None:
        await asyncio.sleep(0)
        Fallback.handle(self, error, payload)


class Collect(Routine):
    """Keeps every item it gets in its stats."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, item: int) -> None:
        items = self.get_stat("items", [])
        assert isinstance(items, list)
        self.set_stat("items", [*items, item])


class Opaque:
    """A value the codec cannot save."""

    def __repr__(self) -> str:
        return "Opaque()"


class BadRepr:
    """A value the codec cannot save, whose repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def build(engine: str = "sequential", **options: object) -> Flow:
    is_async = engine.startswith("async")
    strategy = "concurrent" if engine.endswith("concurrent") else "sequential"
    flow = Flow(
        "fallback",
        clock=FakeClock(),
        execution_strategy=strategy,
        **options,  # type: ignore[arg-type]
    )
    flow.add_routine(Numbers(), "src")
    flow.add_routine(AsyncWorker() if is_async else Worker(), "worker")
    flow.add_routine(AsyncFallback() if is_async else Fallback(), "fallback")
    flow.add_routine(Collect(), "collect")
    flow.connect("src", "output", "worker", "input")
    flow.connect("worker", "output", "collect", "input")
    flow.connect("fallback", "output", "collect", "input")
    flow.connect_failures("worker", "fallback", "failed")
    return flow


def run(flow: Flow, engine: str, count: int = 4) -> JobState:
    return start(flow, engine, "src", {"count": count})


def start(flow: Flow, engine: str, entry: str, params: dict[str, object]) -> JobState:
    """Run a job in ``engine``: a strategy, or ``async`` plus one."""
    if engine.startswith("async"):
        strategy = "concurrent" if engine.endswith("concurrent") else "sequential"
        job = flow.execute_async(entry, params, execution_strategy=strategy)
        return asyncio.run(job)
    return flow.execute(entry, params, execution_strategy=engine)


def resume(flow: Flow, job: JobState, engine: str) -> JobState:
    if engine.startswith("async"):
        return asyncio.run(flow.resume_async(job))
    return flow.resume(job)


def stat(job: JobState, routine_id: str, name: str) -> object:
    return job.routine_states[routine_id].stats.get(name)


def items(job: JobState) -> list[int]:
    """Return the items ``collect`` got, sorted."""
    got = stat(job, "collect", "items")
    assert isinstance(got, list)
    return sorted(got)


# -- every engine ------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_final_failures_go_to_the_fallback_and_the_job_completes(engine: str) -> None:
    flow = build(engine)

    job = run(flow, engine)

    assert job.status is JobStatus.COMPLETED
    assert items(job) == [0, 2, 100, 300]
    assert stat(job, "fallback", "rescued") == [
        ["ValueError", {"item": 1}],
        ["ValueError", {"item": 3}],
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_routed_failure_is_an_error_record_with_its_payload(engine: str) -> None:
    job = run(build(engine), engine)

    assert [(e.routine_id, e.slot, e.attempt) for e in job.errors] == [
        ("worker", "input", 0),
        ("worker", "input", 0),
    ]
    assert [(e.payload, e.payload_saved) for e in job.errors] == [
        ({"item": 1}, True),
        ({"item": 3}, True),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_tracker_counts_routed_runs_apart_from_successes_and_failures(
    engine: str,
) -> None:
    job = run(build(engine), engine)

    worker = job.tracker.get_routine_performance("worker")
    assert (worker.successes, worker.failures, worker.routed) == (2, 0, 2)
    assert (worker.deliveries, worker.success_rate) == (4, 0.5)
    assert job.tracker.get_flow_performance().failures == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_history_marks_a_routed_delivery_routed(engine: str) -> None:
    job = run(build(engine), engine)

    outcomes = Counter((h.routine_id, h.outcome) for h in job.get_execution_history())
    assert outcomes[("worker", "routed")] == 2
    assert outcomes[("fallback", "completed")] == 2
    assert outcomes[("worker", "failed")] == 0


def test_sequential_runs_the_fallback_right_after_the_failure() -> None:
    job = run(build(), "sequential")

    order = [(h.routine_id, h.outcome) for h in job.get_execution_history()]
    assert order[3:7] == [
        ("worker", "routed"),
        ("fallback", "completed"),
        ("collect", "completed"),
        ("worker", "completed"),
    ]


class Spy(Routine):
    """Keeps the error data of each routed failure it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[dict[str, object]] = []
        self.define_slot("failed", self.handle)

    def handle(self, error: dict[str, object], payload: object) -> None:
        self.got.append(error)


def test_fallback_gets_the_error_as_plain_data() -> None:
    flow = Flow("spy")
    flow.add_routine(Numbers(), "src")
    flow.add_routine(Worker(), "worker")
    spy = Spy()
    flow.add_routine(spy, "spy")
    flow.connect("src", "output", "worker", "input")
    flow.connect_failures("worker", "spy", "failed")

    flow.execute("src", {"count": 2})

    (error,) = spy.got
    assert sorted(error) == [
        "at",
        "attempt",
        "error_type",
        "message",
        "payload_saved",
        "routine_id",
        "seq",
        "slot",
        "traceback",
    ]
    assert error["message"] == "odd item 1"
    assert json.loads(json.dumps(error)) == error


def test_retries_run_out_before_the_failure_is_routed() -> None:
    flow = build()
    flow.routines["worker"].set_error_handler(
        ErrorHandler(ErrorStrategy.RETRY, max_retries=2, retry_delay=1.0)
    )

    job = flow.execute("src", {"count": 2})

    worker = job.tracker.get_routine_performance("worker")
    assert job.status is JobStatus.COMPLETED
    assert (worker.retries, worker.routed, worker.successes) == (2, 1, 1)
    assert [e.attempt for e in job.errors] == [2]
    assert flow.clock.sleeps == [1.0, 2.0]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "strategy", [ErrorStrategy.STOP, ErrorStrategy.SKIP, ErrorStrategy.CONTINUE]
)
def test_a_routed_failure_is_handled_whatever_the_strategy(
    strategy: ErrorStrategy,
) -> None:
    flow = build()
    flow.routines["worker"].set_error_handler(ErrorHandler(strategy))

    job = flow.execute("src", {"count": 4})

    assert job.status is JobStatus.COMPLETED
    assert items(job) == [0, 2, 100, 300]


def test_a_failing_fallback_follows_its_own_strategy_stop() -> None:
    flow = build()
    flow.routines["fallback"].set_config(fail=True)

    job = flow.execute("src", {"count": 4})

    assert job.status is JobStatus.FAILED
    assert [(e.routine_id, e.error_type) for e in job.errors] == [
        ("worker", "ValueError"),
        ("fallback", "RuntimeError"),
    ]
    assert job.errors[1].payload["payload"] == {"item": 1}  # type: ignore[index]
    assert job.pending[-1].routine_id == "fallback"


def test_a_failing_fallback_follows_its_own_strategy_continue() -> None:
    flow = build()
    fallback = flow.routines["fallback"]
    fallback.set_config(fail=True)
    fallback.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))

    job = flow.execute("src", {"count": 4})

    assert job.status is JobStatus.COMPLETED
    assert items(job) == [0, 2]
    assert job.tracker.get_routine_performance("fallback").failures == 2


class Stubborn(Routine):
    """Fails on everything it gets, including its own routed failures."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, **data: object) -> None:
        raise ValueError("always")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_routine_routing_to_itself_stops_at_the_delivery_limit(engine: str) -> None:
    flow = Flow("self", max_deliveries=50)
    flow.add_routine(Stubborn(), "stubborn")
    flow.connect_failures("stubborn", "stubborn", "input")

    job = start(flow, engine, "stubborn", {"x": 1})

    assert job.status is JobStatus.FAILED
    assert job.delivery_count == 50
    assert "limit of 50 deliveries" in job.errors[-1].message


def test_two_routines_routing_to_each_other_stop_at_the_delivery_limit() -> None:
    flow = Flow("cycle", max_deliveries=20)
    flow.add_routine(Stubborn(), "a")
    flow.add_routine(Stubborn(), "b")
    flow.connect_failures("a", "b", "input")
    flow.connect_failures("b", "a", "input")

    job = flow.execute("a", {"x": 1})

    assert job.status is JobStatus.FAILED
    assert "limit of 20 deliveries" in job.errors[-1].message


# -- payloads that cannot be saved -----------------------------------------------


class Unsaveable(Routine):
    """Emits an item the codec cannot save: ``Opaque()``, or a ``BadRepr``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self, bad_repr: bool) -> None:
        self.emit("output", item=BadRepr() if bad_repr else Opaque())


def unsaveable_flow() -> Flow:
    flow = Flow("unsaveable")
    flow.add_routine(Unsaveable(), "src")
    flow.add_routine(Worker(), "worker")
    flow.add_routine(Fallback(), "fallback")
    flow.connect("src", "output", "worker", "input")
    flow.connect_failures("worker", "fallback", "failed")
    return flow


def test_an_unsaveable_payload_is_kept_as_its_repr() -> None:
    job = unsaveable_flow().execute("src", {"bad_repr": False})

    (error,) = job.errors
    assert job.status is JobStatus.COMPLETED
    assert (error.payload, error.payload_saved) == ("{'item': Opaque()}", False)
    assert stat(job, "fallback", "rescued") == [["ValueError", "{'item': Opaque()}"]]
    assert json.dumps(job.serialize())


def test_a_payload_whose_repr_raises_still_gives_a_record() -> None:
    job = unsaveable_flow().execute("src", {"bad_repr": True})

    (error,) = job.errors
    assert error.payload == "<payload: its repr raised RuntimeError>"
    assert error.payload_saved is False
    assert job.status is JobStatus.COMPLETED


def test_an_unsaveable_payload_without_a_route_is_recorded_too() -> None:
    flow = Flow("plain", error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(Unsaveable(), "src")
    flow.add_routine(Worker(), "worker")
    flow.connect("src", "output", "worker", "input")

    job = flow.execute("src", {"bad_repr": False})

    assert [(e.payload, e.payload_saved) for e in job.errors] == [
        ("{'item': Opaque()}", False)
    ]


# -- error records as data -----------------------------------------------------------


def test_an_error_record_with_its_payload_round_trips() -> None:
    job = run(build(), "sequential")
    record = job.errors[0]

    data = json.loads(json.dumps(error_to_data(record)))

    assert data["payload"] == {"item": 1}
    assert error_from_data(data, "error") == record


def test_an_error_record_with_a_repr_payload_round_trips() -> None:
    job = unsaveable_flow().execute("src", {"bad_repr": False})

    data = json.loads(json.dumps(error_to_data(job.errors[0])))

    assert error_from_data(data, "error") == job.errors[0]


def test_an_error_record_saved_before_payloads_were_kept_loads() -> None:
    data = error_to_data(run(build(), "sequential").errors[0])
    del data["payload"], data["payload_saved"]

    record = error_from_data(data, "error")

    assert (record.payload, record.payload_saved) == (None, False)


def test_a_job_state_with_payloads_round_trips_and_stays_hashable() -> None:
    job = run(build(), "sequential")

    again = JobState.deserialize(json.loads(json.dumps(job.serialize())))

    assert again == job
    assert again.errors[0].payload == {"item": 1}
    assert len({*job.errors}) == 2


def test_a_malformed_error_payload_is_refused() -> None:
    data = error_to_data(run(build(), "sequential").errors[0])
    data["payload"] = [1, 2]

    with pytest.raises(SerializationError, match="expected a dict"):
        error_from_data(data, "error")


def test_tracker_routed_counts_survive_serialization_and_old_rows_load() -> None:
    tracker = run(build(), "sequential").tracker
    data = json.loads(json.dumps(tracker.serialize()))
    old = json.loads(json.dumps(data))
    old["routines"]["worker"] = old["routines"]["worker"][:8]

    again = ExecutionTracker.deserialize(data)
    older = ExecutionTracker.deserialize(old)

    assert again.get_routine_performance("worker").routed == 2
    assert older.get_routine_performance("worker").routed == 0


# -- pause, resume and durability --------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_routed_failure_pending_at_a_pause_reaches_the_fallback_on_resume(
    engine: str,
) -> None:
    flow = build(engine)
    worker = flow.routines["worker"]
    assert isinstance(worker, Worker)
    worker.controller = flow
    worker.set_config(pause_at=1)

    paused = run(flow, engine)
    saved = JobState.deserialize(json.loads(json.dumps(paused.serialize())))
    rebuilt = build(engine)
    done = resume(rebuilt, saved, engine)

    assert paused.status is JobStatus.PAUSED
    assert "fallback" in {d.routine_id for d in paused.pending}
    assert done.status is JobStatus.COMPLETED
    assert items(done) == [0, 2, 100, 300]
    assert done.tracker.get_routine_performance("worker").routed == 2


def test_a_durable_job_keeps_payloads_and_routed_counts_in_its_store(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "jobs.sqlite")
    try:
        job = build().execute("src", {"count": 4}, store=store, job_id="j")
        loaded = store.load("j")
    finally:
        store.close()

    assert job.status is JobStatus.COMPLETED
    assert [e.payload for e in loaded.errors] == [{"item": 1}, {"item": 3}]
    assert loaded.tracker.get_routine_performance("worker").routed == 2


FALLBACK: Final = ("--fallback",)
KILL_CASES: Final = (
    ("before-commit", 42),  # t4's last retry
    ("before-commit", 43),  # t4 routed: the failure and the rescue's delivery
    ("after-commit", 43),
    ("before-commit", 44),  # the rescue
    ("after-commit", 44),
    ("inside-handler", 40),  # t4's final attempt, which fails
    ("before-delivery", 41),  # the rescue's call
    ("inside-handler", 41),
    ("after-commit", 63),  # the second routed failure
)
"""Kill points around the first routed failure of ``_kill_flow.py --fallback``."""
ASYNC_KILL_CASES: Final = (("before-commit", 43), ("after-commit", 43))


@pytest.fixture(scope="module")
def fallback_reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    directory = tmp_path_factory.mktemp("fallback-reference")
    log = directory / "side_effects.log"
    outcome = finished(
        run_script("full", directory / "jobs.sqlite", log, flags=FALLBACK)
    )
    return Reference(outcome, read_log(log))


@pytest.fixture(scope="module")
def fallback_recoveries(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, int, bool], Recovery]:
    cases = [(p, n, False) for p, n in KILL_CASES]
    cases += [(p, n, True) for p, n in ASYNC_KILL_CASES]

    def one(case: tuple[str, int, bool]) -> Recovery:
        point, n, is_async = case
        flags = (*FALLBACK, "--async") if is_async else FALLBACK
        directory = tmp_path_factory.mktemp(f"fallback-{point}-{n}")
        return kill_and_recover(directory, point, n, flags)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(cases, pool.map(one, cases), strict=True))


def test_the_kill_points_are_around_the_routed_failures(
    fallback_reference: Reference,
) -> None:
    history = fallback_reference.outcome.history
    log = fallback_reference.log

    assert fallback_reference.outcome.status == "completed"
    assert history[42][1:] == ("t4", "input", "routed", 2)
    assert history[43][1:] == ("rescue", "failed", "completed", 0)
    assert history[62][1:] == ("t4", "input", "routed", 2)
    assert (log[39][0], log[39][2], log[40][0]) == ("t4", 2, "rescue")


@pytest.mark.parametrize(
    "case",
    [(p, n, False) for p, n in KILL_CASES]
    + [(p, n, True) for p, n in ASYNC_KILL_CASES],
    ids=lambda case: f"{'async-' if case[2] else ''}{case[0]}-{case[1]}",
)
def test_kill_9_and_recovery_never_lose_or_repeat_a_routed_failure(
    case: tuple[str, int, bool],
    fallback_recoveries: dict[tuple[str, int, bool], Recovery],
    fallback_reference: Reference,
) -> None:
    recovery = fallback_recoveries[case]
    expected = fallback_reference.outcome

    store = SqliteStore(recovery.db)
    try:
        job = store.load(JOB_ID)
    finally:
        store.close()

    assert recovery.returncode == -signal.SIGKILL, recovery.stderr
    assert recovery.outcome.status == "completed"
    assert recovery.outcome.results == expected.results
    assert recovery.outcome.deliveries == expected.deliveries
    assert recovery.outcome.history == expected.history
    assert [e.routine_id for e in job.errors] == ["t4", "t4"]
    assert [e.payload["i"] for e in job.errors] == [1, 3]  # type: ignore[index]
    assert job.tracker.get_routine_performance("t4").routed == 2
    assert Counter(key for key in recovery.log if key[0] == "rescue") == {
        ("rescue", 40, 0): 1
        + (case[:2] in {("inside-handler", 41), ("before-commit", 44)}),
        ("rescue", 57, 0): 1,
    }


# -- definition: serialization, fingerprint, diagrams -------------------------------


def test_a_flow_with_a_failure_route_round_trips() -> None:
    flow = build()

    again = Flow.deserialize(json.loads(json.dumps(flow.serialize())))

    assert again.failure_routes == {"worker": ("fallback", "failed")}
    assert again.serialize() == flow.serialize()


def test_a_flow_without_failure_routes_serializes_as_before() -> None:
    flow = build()
    plain = Flow("fallback")
    for routine_id, routine in flow.routines.items():
        plain.add_routine(type(routine)(), routine_id)

    data = plain.serialize()

    assert "failures" not in data
    assert Flow.deserialize(data).failure_routes == {}


@pytest.mark.parametrize(
    ("failures", "match"),
    [
        ("nope", "field 'failures' must be list"),
        ([["worker", "fallback"]], r"failures\[0\] must be a list"),
        ([["worker", "fallback", "failed"]] * 2, "has a failure route already"),
        ([["worker", "fallback", "nope"]], "has no slot 'nope'"),
    ],
    ids=["not-a-list", "short", "duplicate", "unknown-slot"],
)
def test_malformed_failure_routes_are_refused(failures: object, match: str) -> None:
    data = build().serialize()
    data["failures"] = failures

    with pytest.raises(SerializationError, match=match):
        Flow.deserialize(data)


def test_resuming_on_a_flow_without_the_failure_route_is_a_changed_flow() -> None:
    flow = build()
    worker = flow.routines["worker"]
    assert isinstance(worker, Worker)
    worker.controller = flow
    worker.set_config(pause_at=0)
    paused = flow.execute("src", {"count": 4})
    plain = Flow("fallback")
    for routine_id, routine in flow.routines.items():
        plain.add_routine(type(routine)(), routine_id)
    for c in flow.connections:
        plain.connect(c.source_id, c.event, c.target_id, c.slot)

    with pytest.raises(InvalidFlowError, match="failure route worker -> fallback"):
        plain.resume(paused)


def test_the_fingerprint_of_a_flow_without_routes_does_not_change() -> None:
    flow = build()
    shape = flow._plans.get().shape
    plain = Flow("x")
    plain.add_routine(Numbers(), "src")

    assert shape["failures"] == ["worker -> fallback.failed on failure"]
    assert "failures" not in plain._plans.get().shape


def test_mermaid_draws_a_failure_route_dotted_red_and_labelled() -> None:
    text = build().to_mermaid()

    assert '    r1 -.->|"on failure -> failed"| r2\n' in text
    assert "    linkStyle 3 stroke:#c62828" in text


def test_dot_draws_a_failure_route_dashed_red_and_labelled() -> None:
    text = build().to_dot()

    assert (
        '"worker" -> "fallback" [label="on failure -> failed", style="dashed", '
        'color="#c62828", fontcolor="#c62828"];'
    ) in text


def test_svg_draws_a_failure_route_with_its_own_class() -> None:
    from flowforge.ui._drawing import draw_svg

    text = draw_svg(build())

    assert text.count('<g class="ff-edge ff-failure">') == 1
    assert ">on failure -&gt; failed</text>" in text


# -- bad arguments --------------------------------------------------------------------


class Strict(Routine):
    """A slot whose handler needs ``item``, and a join."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("strict", self.handle)
        self.define_slot("join", lambda **data: None, join=True)
        self.define_slot("loose", self.loose)
        self.define_slot("whole", lambda data: None)
        self.define_slot("keys", self.keys)
        self.define_slot("nothing")
        self.define_slot("builtin", {}.update)

    def handle(self, error: object, item: object) -> None:
        pass

    def loose(self, error: object, item: object = None) -> None:
        pass

    def keys(self, *, payload: object, error: object) -> None:
        pass


def strict_flow() -> Flow:
    flow = Flow("strict")
    flow.add_routine(Numbers(), "src")
    flow.add_routine(Strict(), "strict")
    return flow


@pytest.mark.parametrize(
    ("ends", "error", "match"),
    [
        (("nope", "strict", "loose"), UnknownPortError, "no routine 'nope'"),
        (("src", "nope", "loose"), UnknownPortError, "no routine 'nope'"),
        (("src", "strict", "nope"), UnknownPortError, "no slot 'nope'"),
        (("src", "strict", "strict"), DefinitionError, r"\['item'\] cannot be bound"),
        (("src", "strict", "join"), DefinitionError, "is a join"),
    ],
    ids=["unknown-source", "unknown-target", "unknown-slot", "unbound", "join"],
)
def test_connect_failures_refuses_bad_ends(
    ends: tuple[str, str, str], error: type[Exception], match: str
) -> None:
    flow = strict_flow()

    with pytest.raises(error, match=match):
        flow.connect_failures(*ends)

    assert flow.failure_routes == {}


@pytest.mark.parametrize("slot", ["loose", "whole", "keys", "nothing", "builtin"])
def test_connect_failures_accepts_slots_that_can_take_the_keys(slot: str) -> None:
    flow = strict_flow()

    flow.connect_failures("src", "strict", slot)

    assert flow.failure_routes == {"src": ("strict", slot)}


def test_a_routine_has_one_failure_route() -> None:
    flow = strict_flow()
    flow.connect_failures("src", "strict", "loose")

    with pytest.raises(DefinitionError, match="already routes its failures"):
        flow.connect_failures("src", "strict", "keys")


def test_the_inspector_shows_each_error_with_its_kept_payload() -> None:
    from flowforge.ui._report import error_items

    saved = error_items(run(build(), "sequential"))
    kept_as_repr = error_items(unsaveable_flow().execute("src", {"bad_repr": False}))

    assert [(e["payload"], e["payload_is_repr"]) for e in saved] == [
        ({"item": 1}, False),
        ({"item": 3}, False),
    ]
    assert [(e["payload"], e["payload_is_repr"]) for e in kept_as_repr] == [
        ("{'item': Opaque()}", True)
    ]


def test_a_routine_whose_failures_were_all_routed_ends_completed() -> None:
    job = unsaveable_flow().execute("src", {"bad_repr": False})

    assert job.routine_states["worker"].status is RoutineStatus.COMPLETED
