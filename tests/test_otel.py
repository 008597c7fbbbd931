"""OpenTelemetry: a span per job, one per delivery, user spans nested inside."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from _engines import ENGINES, Run

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

from flowforge import (  # noqa: E402
    DeliveryInfo,
    DeliveryResult,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobStatus,
    Routine,
)
from flowforge.otel import TracingObserver  # noqa: E402


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.exporter = exporter  # type: ignore[attr-defined]  # for spans()
    yield provider
    provider.shutdown()


def spans(provider: TracerProvider) -> list[ReadableSpan]:
    exporter: InMemorySpanExporter = provider.exporter  # type: ignore[attr-defined]
    return list(exporter.get_finished_spans())


def by_name(provider: TracerProvider) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in spans(provider):
        named.setdefault(span.name, []).append(span)
    return named


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


class Worker(Routine):
    """Makes a span of its own in its handler, then passes ``x`` on."""

    provider: TracerProvider | None = None

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, x: int) -> None:
        assert self.provider is not None
        with self.provider.get_tracer("user").start_as_current_span(f"user {x}"):
            self.emit("output", x=x + 1)


class AsyncWorker(Worker):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("later", self.handle_later)

    async def handle_later(self, x: int) -> None:
        assert self.provider is not None
        await asyncio.sleep(0)
        with self.provider.get_tracer("user").start_as_current_span(f"user {x}"):
            await asyncio.sleep(0)


def traced_flow(provider: TracerProvider, slot: str = "input") -> Flow:
    Worker.provider = provider
    flow = Flow("traced")
    flow.add_routine(Worker(), "first")
    flow.add_routine(AsyncWorker(), "second")
    flow.connect("first", "output", "second", slot)
    flow.add_observer(TracingObserver(provider))
    return flow


@pytest.mark.parametrize("slot", ["input", "later"])
@pytest.mark.parametrize("run", ENGINES.values(), ids=list(ENGINES))
def test_user_spans_nest_under_their_delivery_span(
    provider: TracerProvider, run: Run, slot: str
) -> None:
    flow = traced_flow(provider, slot)

    job = run(flow, "first", {"x": 1})

    assert job.status is JobStatus.COMPLETED
    named = by_name(provider)
    (job_span,) = named["flowforge job traced"]
    (first,) = named["first.input"]
    (second,) = named[f"second.{slot}"]
    (user_1,), (user_2,) = named["user 1"], named["user 2"]
    assert job_span.parent is None
    assert parent_of(first) == parent_of(second) == span_id(job_span)
    assert parent_of(user_1) == span_id(first)
    assert parent_of(user_2) == span_id(second)
    assert len({s.context.trace_id for s in spans(provider) if s.context}) == 1


def test_spans_carry_the_delivery_attributes(provider: TracerProvider) -> None:
    flow = traced_flow(provider)

    job = flow.execute("first", {"x": 1}, job_id="job-7")

    named = by_name(provider)
    (job_span,) = named["flowforge job traced"]
    (second,) = named["second.input"]
    assert dict(job_span.attributes or {}) == {
        "flowforge.flow_id": "traced",
        "flowforge.job_id": "job-7",
        "flowforge.job_status": "completed",
    }
    assert dict(second.attributes or {}) == {
        "flowforge.flow_id": "traced",
        "flowforge.job_id": "job-7",
        "flowforge.routine_id": "second",
        "flowforge.slot": "input",
        "flowforge.seq": 1,
        "flowforge.attempt": 0,
        "flowforge.outcome": "completed",
    }
    assert job.status is JobStatus.COMPLETED


class Flaky(Routine):
    """Fails its first ``failures`` deliveries with a ConnectionError."""

    failures = 1

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.define_slot("input", self.handle)

    def handle(self, x: int) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"call {self.calls} failed")


@pytest.mark.parametrize("run", ENGINES.values(), ids=list(ENGINES))
def test_failed_delivery_records_the_exception_and_error_status(
    provider: TracerProvider, run: Run
) -> None:
    flow = Flow("failing")
    flow.add_routine(Flaky(), "flaky")
    flow.add_observer(TracingObserver(provider))

    job = run(flow, "flaky", {"x": 1})

    assert job.status is JobStatus.FAILED
    named = by_name(provider)
    (delivery,) = named["flaky.input"]
    (job_span,) = named["flowforge job failing"]
    assert delivery.status.status_code is StatusCode.ERROR
    assert delivery.status.description == "ConnectionError: call 1 failed"
    assert (delivery.attributes or {})["flowforge.outcome"] == "failed"
    (event,) = delivery.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "ConnectionError"
    assert job_span.status.status_code is StatusCode.ERROR


def test_each_retry_is_a_span_of_its_own(provider: TracerProvider) -> None:
    flow = Flow("retrying")
    flow.add_routine(Flaky(), "flaky")
    flow.get_routine("flaky").set_error_handler(
        ErrorHandler(ErrorStrategy.RETRY, max_retries=2, retry_delay=0.0)
    )
    flow.add_observer(TracingObserver(provider))

    job = flow.execute("flaky", {"x": 1})

    assert job.status is JobStatus.COMPLETED
    attempts = sorted(
        by_name(provider)["flaky.input"],
        key=lambda s: str((s.attributes or {})["flowforge.attempt"]),
    )
    assert [(s.attributes or {})["flowforge.outcome"] for s in attempts] == [
        "retried",
        "completed",
    ]
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    (job_span,) = by_name(provider)["flowforge job retrying"]
    assert job_span.status.status_code is StatusCode.UNSET


def test_job_span_nests_under_the_callers_span(provider: TracerProvider) -> None:
    flow = traced_flow(provider)

    with provider.get_tracer("caller").start_as_current_span("request"):
        flow.execute("first", {"x": 1})

    named = by_name(provider)
    (request,) = named["request"]
    (job_span,) = named["flowforge job traced"]
    assert parent_of(job_span) == span_id(request)


def test_concurrent_deliveries_each_get_their_own_span(
    provider: TracerProvider,
) -> None:
    Worker.provider = provider
    flow = Flow("fan", execution_strategy="concurrent", max_workers=4)
    flow.add_routine(Worker(), "source")
    for index in range(8):
        flow.add_routine(Worker(), f"w{index}")
        flow.connect("source", "output", f"w{index}", "input")
    flow.add_observer(TracingObserver(provider))

    flow.execute("source", {"x": 0})

    named = by_name(provider)
    for index in range(8):
        (delivery,) = named[f"w{index}.input"]
        users = [s for s in named["user 1"] if parent_of(s) == span_id(delivery)]
        assert len(users) == 1
    assert len(named["user 1"]) == 8


def test_observer_without_open_spans_has_a_short_repr(
    provider: TracerProvider,
) -> None:
    observer = TracingObserver(provider)

    assert repr(observer) == "TracingObserver(open_jobs=0, open_deliveries=0)"


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


class RaisesUnprintable(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, x: int) -> None:
        raise Unprintable()


def test_error_that_cannot_be_printed_still_sets_the_status(
    provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    flow = Flow("unprintable")
    flow.add_routine(RaisesUnprintable(), "bad")
    flow.add_observer(TracingObserver(provider))

    job = flow.execute("bad", {"x": 1})

    assert not [r for r in caplog.records if "observer" in r.getMessage()]

    assert job.status is JobStatus.FAILED
    (delivery,) = by_name(provider)["bad.input"]
    assert delivery.status.status_code is StatusCode.ERROR
    assert delivery.status.description == "Unprintable"
    (event,) = delivery.events
    assert dict(event.attributes or {}) == {"exception.type": "Unprintable"}


def test_ends_without_a_start_are_ignored(provider: TracerProvider) -> None:
    observer = TracingObserver(provider)
    flow = Flow("unobserved")
    flow.add_routine(Flaky(), "flaky")
    job = flow.execute("flaky", {"x": 1})  # run without the observer

    observer.on_delivery_end(
        DeliveryInfo("unobserved", job.job_id, "flaky", "input", 0, 0),
        DeliveryResult("completed", 0.0, None),
    )
    observer.on_job_end(job)

    assert spans(provider) == []
