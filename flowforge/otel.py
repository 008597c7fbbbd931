"""OpenTelemetry tracing of FlowForge jobs: one span per job, one per delivery.

Install the extra (``pip install "flowforge[otel]"``) and add the observer to
a flow::

    flow.add_observer(TracingObserver())

Each run of a job is a span; each delivery attempt is a child span of it,
with the flow, job, routine, slot, attempt and outcome as attributes, the
handler's exception recorded on it and status ERROR when the attempt failed.
The handler runs with its delivery's span as the current span, so the spans
that user code makes (HTTP clients, database drivers) nest under it, in the
sequential, concurrent and async engines alike. This module is an
integration on top of FlowForge's public API.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final, final

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode
except ImportError as error:  # pragma: no cover - needs the extra missing
    raise ImportError(
        "flowforge.otel needs OpenTelemetry, an optional extra: "
        'pip install "flowforge[otel]"'
    ) from error

from flowforge._names import check_type
from flowforge.job_state import JobState, JobStatus
from flowforge.observer import DeliveryInfo, DeliveryResult

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["TracingObserver"]

FLOW_ID: Final = "flowforge.flow_id"
JOB_ID: Final = "flowforge.job_id"
JOB_STATUS: Final = "flowforge.job_status"
ROUTINE_ID: Final = "flowforge.routine_id"
SLOT: Final = "flowforge.slot"
SEQ: Final = "flowforge.seq"
ATTEMPT: Final = "flowforge.attempt"
OUTCOME: Final = "flowforge.outcome"
FAILURES: Final = ("retried", "failed", "routed")


@final
class TracingObserver:
    """An observer that turns a flow's jobs and deliveries into OpenTelemetry spans.

    Args:
        tracer_provider: Where the tracer comes from; OpenTelemetry's global
            provider when omitted.

    A job's span is a child of the span current where the job starts (the
    caller's, say a web request's). Add one observer to any number of flows.

    Thread safety: any number of jobs may report to one observer at once,
    from any threads and tasks.
    """

    __slots__ = ("_tracer", "_jobs", "_deliveries", "_lock")

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        """Make spans with a ``flowforge`` tracer of ``tracer_provider``.

        Raises:
            ArgumentTypeError: If ``tracer_provider`` is neither an
                OpenTelemetry ``TracerProvider`` nor ``None``.
        """
        if tracer_provider is not None:
            kind = trace.TracerProvider
            check_type(tracer_provider, kind, "tracer_provider", "a TracerProvider")
        self._tracer = trace.get_tracer("flowforge", tracer_provider=tracer_provider)
        self._jobs: dict[str, Span] = {}
        self._deliveries: dict[tuple[str, int], tuple[Span, Token[Context]]] = {}
        self._lock = threading.Lock()

    def on_job_start(self, job: JobState) -> None:
        """Start the span of the job's run."""
        span = self._tracer.start_span(
            f"flowforge job {job.flow_id}",
            attributes={FLOW_ID: job.flow_id, JOB_ID: job.job_id},
        )
        with self._lock:
            self._jobs[job.job_id] = span

    def on_job_end(self, job: JobState) -> None:
        """End the span of the job's run, with status ERROR if the job failed."""
        with self._lock:
            span = self._jobs.pop(job.job_id, None)
        if span is None:
            return
        span.set_attribute(JOB_STATUS, job.status.value)
        if job.status is JobStatus.FAILED:
            last = job.error  # the error that failed it, not the last recorded
            text = "" if last is None else f"{last.error_type}: {last.message}"
            span.set_status(Status(StatusCode.ERROR, text))
        span.end()

    def on_delivery_start(self, delivery: DeliveryInfo) -> None:
        """Start the delivery's span under its job's and make it current."""
        with self._lock:
            parent = self._jobs.get(delivery.job_id)
        attributes: dict[str, str | int] = {
            FLOW_ID: delivery.flow_id,
            JOB_ID: delivery.job_id,
            ROUTINE_ID: delivery.routine_id,
            SEQ: delivery.seq,
            ATTEMPT: delivery.attempt,
        }
        name = delivery.routine_id
        if delivery.slot is not None:
            attributes[SLOT] = delivery.slot
            name = f"{name}.{delivery.slot}"
        span = self._tracer.start_span(
            name,
            context=None if parent is None else trace.set_span_in_context(parent),
            attributes=attributes,
        )
        # Called on the thread or task that runs the handler, as the end is.
        token = otel_context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._deliveries[(delivery.job_id, delivery.seq)] = (span, token)

    def on_delivery_end(self, delivery: DeliveryInfo, result: DeliveryResult) -> None:
        """Record the outcome (and exception) on the delivery's span and end it."""
        with self._lock:
            found = self._deliveries.pop((delivery.job_id, delivery.seq), None)
        if found is None:
            return
        span, token = found
        otel_context.detach(token)
        try:
            span.set_attribute(OUTCOME, result.outcome)
            error = result.error
            if error is not None:
                if result.outcome in FAILURES:
                    span.set_status(Status(StatusCode.ERROR, _describe(error)))
                _record_exception(span, error)
        finally:
            span.end()

    def __repr__(self) -> str:
        """Return how many jobs and deliveries have a span open."""
        with self._lock:
            jobs, deliveries = len(self._jobs), len(self._deliveries)
        return f"TracingObserver(open_jobs={jobs}, open_deliveries={deliveries})"


def _record_exception(span: Span, error: BaseException) -> None:
    """Record ``error`` on ``span``; only its type if rendering it raises."""
    try:
        span.record_exception(error)
    except Exception:  # noqa: BLE001  an exception whose __str__ raises
        span.add_event("exception", {"exception.type": type(error).__qualname__})


def _describe(error: BaseException) -> str:
    """Return ``"Type: message"``; user code is not trusted to render itself."""
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:  # noqa: BLE001  an exception whose __str__ raises
        return type(error).__name__
