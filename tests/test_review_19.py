"""Regressions found by the adversarial review of issue 19 (failures, observers)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import weakref

import pytest

from flowforge import (
    ArgumentTypeError,
    DeliveryInfo,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    InvalidFlowError,
    JobFailedError,
    JobState,
    Routine,
)
from flowforge.store import MemoryStore
from flowforge.testing import Recorder


class AsyncEnd:
    async def on_job_end(self, job: object) -> None:
        """Never awaited if accepted."""


def test_add_observer_refuses_an_async_callback() -> None:
    flow = Flow("async_observer")
    flow.add_routine(Recorder(), "r")

    with pytest.raises(ArgumentTypeError, match="AsyncEnd.on_job_end"):
        flow.add_observer(AsyncEnd())

    assert flow.execute("r", {"a": 1}).status == "completed"


class Big:
    """Stands for a large object a failing handler's frame holds."""


class Failing(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[weakref.ref[Big]] = []
        self.define_slot("input", self.call)

    def call(self, n: int) -> None:
        big = Big()
        self.refs.append(weakref.ref(big))
        raise ValueError(f"cannot handle {n}")


@pytest.mark.parametrize("strategy", ["sequential", "concurrent", "async"])
def test_completed_job_lets_go_of_the_exceptions_it_handled(
    strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest's log capture would keep the WARNING record's exc_info alive
    monkeypatch.setattr(logging.getLogger("flowforge"), "propagate", False)
    flow = Flow("let_go", error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    failing = Failing()
    flow.add_routine(failing, "failing")

    if strategy == "async":
        job = asyncio.run(flow.execute_async("failing", {"n": 1}))
    else:
        job = flow.execute("failing", {"n": 1}, execution_strategy=strategy)
    gc.collect()

    assert job.status == "completed"
    assert job.error_count == 1
    assert failing.refs[0]() is None


def test_failed_job_keeps_its_cause_for_raise_for_status() -> None:
    flow = Flow("keep_cause")
    flow.add_routine(Failing(), "failing")

    job = flow.execute("failing", {"n": 2})

    with pytest.raises(JobFailedError, match="cannot handle 2") as raised:
        job.raise_for_status()
    assert isinstance(raised.value.__cause__, ValueError)


class Refuse(Routine):
    """Fail every delivery; record what each one got."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[dict[str, object]] = []
        self.define_slot("input", self.call)

    def call(self, **data: object) -> None:
        self.got.append(data)
        raise ValueError("refused")


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_failing_fallback_loop_passes_the_payload_on_unnested(strategy: str) -> None:
    flow = Flow("loop", max_deliveries=300)
    refuse = Refuse()
    flow.add_routine(refuse, "refuse")
    flow.connect_failures("refuse", "refuse", "input")

    job = flow.execute("refuse", {"sku": "B-2"}, execution_strategy=strategy)

    assert job.status == "failed"
    assert len(refuse.got) == 300
    assert refuse.got[-1]["payload"] == {"sku": "B-2"}
    error = refuse.got[-1]["error"]
    assert isinstance(error, dict) and error["seq"] == 298
    assert job.errors[-2].payload == refuse.got[-1]
    assert len(json.dumps(job.serialize())) < 1_000_000


def test_fallback_of_a_fallback_gets_the_original_payload() -> None:
    flow = Flow("chain")
    flow.add_routine(Refuse(), "fetch")
    flow.add_routine(Refuse(), "cache")
    last = Recorder()
    flow.add_routine(last, "last")
    flow.connect_failures("fetch", "cache", "input")
    flow.connect_failures("cache", "last", "input")

    job = flow.execute("fetch", {"sku": "B-2"})

    assert job.status == "completed"
    (received,) = last.received
    assert received["payload"] == {"sku": "B-2"}
    error = received["error"]
    assert isinstance(error, dict) and error["routine_id"] == "cache"


class Row:
    """A value no store can save."""


class RefuseRows(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.call)

    def call(self, rows: list[Row]) -> None:
        raise ValueError("bad batch")


def test_error_record_keeps_a_bounded_repr_of_an_unsaveable_payload() -> None:
    flow = Flow("rows", error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(RefuseRows(), "rows")

    job = flow.execute("rows", {"rows": [Row() for _ in range(1000)]})

    (record,) = job.errors
    assert not record.payload_saved
    assert isinstance(record.payload, str)
    assert record.payload.startswith("{'rows': [<")
    assert len(record.payload) < 2100
    assert record.payload.endswith("characters>")


class Fallback(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[object] = []
        self.define_slot("failed", self.call)

    def call(self, error: dict[str, object], payload: object) -> None:
        self.got.append(payload)


def routed_flow(strategy: str, *, extra_connection: bool) -> Flow:
    flow = Flow("routed", execution_strategy=strategy)
    flow.add_routine(Refuse(), "fetch")
    flow.add_routine(Fallback(), "cache")
    flow.connect_failures("fetch", "cache", "failed")
    if extra_connection:
        flow.add_routine(Recorder(), "audit")
        flow.add_routine(Recorder(), "archive")
        flow.connect("audit", "output", "archive", "input")
    return flow


class PauseOnError:
    def __init__(self, flow: Flow) -> None:
        self.flow = flow

    def on_error(self, delivery: object, error: BaseException) -> None:
        self.flow.pause(reason="look at it")


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "store"])
@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_forced_resume_delivers_a_routed_failure_on_a_flow_with_a_new_connection(
    strategy: str, durable: bool
) -> None:
    flow = routed_flow(strategy, extra_connection=False)
    flow.add_observer(PauseOnError(flow))
    store = MemoryStore() if durable else None
    paused = flow.execute("fetch", {"sku": "B-2"}, job_id="j1", store=store)
    assert paused.status == "paused"
    changed = routed_flow(strategy, extra_connection=True)

    with pytest.raises(InvalidFlowError, match="routine 'audit' was added"):
        changed.resume(JobState.deserialize(paused.serialize()))
    job = changed.resume("j1" if durable else paused, store=store, force=True)

    assert job.status == "completed"
    fallback = changed.get_routine("cache")
    assert isinstance(fallback, Fallback)
    assert fallback.got == [{"sku": "B-2"}]


class Stop(Routine):
    """Fail at once; its failure stops the job."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.call)

    def call(self, x: int) -> None:
        raise ValueError("stops the job")


class Late(Routine):
    """Fail once the job has failed: an optional, handled failure."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = threading.Event()
        self.define_slot("input", self.call)

    def call(self, x: int) -> None:
        assert self.failed.wait(10)
        raise KeyError("handled")


class Signal:
    def __init__(self, late: Late) -> None:
        self.late = late

    def on_error(self, delivery: DeliveryInfo, error: BaseException) -> None:
        if delivery.routine_id == "stop":
            self.late.failed.set()


def test_concurrent_job_reports_the_error_that_failed_it_not_a_later_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = Flow("late", execution_strategy="concurrent")
    flow.add_routine(Recorder(), "source")
    late = Late()
    late.set_as_optional()
    flow.add_routine(late, "late")
    flow.add_routine(Stop(), "stop")
    flow.connect("source", "output", "late", "input")
    flow.connect("source", "output", "stop", "input")
    flow.add_observer(Signal(late))

    job = flow.execute("source", {"x": 1})

    assert [e.routine_id for e in job.errors] == ["stop", "late"]
    assert job.error is not None and job.error.routine_id == "stop"
    with pytest.raises(JobFailedError, match="routine 'stop'") as raised:
        job.raise_for_status()
    assert isinstance(raised.value.__cause__, ValueError)
    loaded = JobState.deserialize(job.serialize())
    assert loaded.error is not None and loaded.error.routine_id == "stop"
    assert "routine 'stop' slot 'input': ValueError" in caplog.messages[-1]


class Editor(Routine):
    """Add a connection to the flow while the job runs, then emit."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.define_slot("input", self.call)
        self.define_event("output")
        self.define_event("other")

    def call(self, **data: object) -> None:
        self.calls.append(sorted(data))
        flow = self.get_config("flow")
        assert isinstance(flow, Flow)
        flow.connect("editor", "other", "audit", "input")
        self.emit("output", sku="B-2")


@pytest.mark.parametrize("strategy", ["sequential", "concurrent", "async"])
def test_routed_failure_reaches_its_fallback_when_the_flow_changes_mid_job(
    strategy: str,
) -> None:
    flow = Flow("edited")
    editor = Editor()
    editor.set_config(flow=flow)
    flow.add_routine(editor, "editor")
    flow.add_routine(Refuse(), "fetch")
    fallback = Fallback()
    flow.add_routine(fallback, "cache")
    flow.add_routine(Recorder(), "audit")
    flow.connect("editor", "output", "fetch", "input")
    flow.connect_failures("fetch", "cache", "failed")

    if strategy == "async":
        job = asyncio.run(flow.execute_async("editor", {"go": 1}))
    else:
        job = flow.execute("editor", {"go": 1}, execution_strategy=strategy)

    assert job.status == "completed"
    assert editor.calls == [["go"]]
    assert fallback.got == [{"sku": "B-2"}]


class Verbose(Routine):
    """Fail with a message that carries a whole response body."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.call)

    def call(self, n: int) -> None:
        raise ValueError("server said " + "x" * 100_000 + " (end of body)")


def test_error_record_keeps_a_bounded_message_and_traceback() -> None:
    flow = Flow("verbose", error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(Verbose(), "verbose")

    job = flow.execute("verbose", {"n": 1})

    (record,) = job.errors
    assert record.message.startswith("server said xxx")
    assert record.message.endswith("(end of body)")
    assert "characters cut" in record.message
    assert len(record.message) < 10_100
    assert len(record.traceback) < 10_100
    assert record.traceback.endswith("(end of body)\n")


def test_failed_job_without_its_stopped_delivery_reports_its_last_error() -> None:
    flow = Flow("no_pending", error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(Failing(), "failing")
    job = flow.execute("failing", {"n": 3})
    data = job.serialize()
    data["status"] = "failed"  # as a job stored failed on a value it cannot save

    loaded = JobState.deserialize(data)

    assert loaded.pending == []
    assert loaded.error is not None and loaded.error.message == "cannot handle 3"
