"""Measure FlowForge's dispatch cost against plain method calls doing the same work.

Workloads:

- chain: one message through a chain of routines, per hop (one delivery);
  baseline: plain objects, each calling the next one's method.
- stream: many messages through source -> transform -> sink in one job, per
  message; baseline: a loop calling a transform method calling a sink method.

Run ``python benchmarks/bench_dispatch.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Final

from _harness import (
    SHORT_JOBS,
    SHORT_REPEATS,
    Comparison,
    Options,
    Target,
    compare,
    parse_options,
    report,
)

from flowforge import Flow, JobStatus, Routine

CHAIN_LENGTH: Final = 100
MESSAGE: Final[dict[str, object]] = {"order_id": 7, "item": "widget", "amount": 12.5}
HOP_RATIO_TARGET: Final = 60.0


class Relay(Routine):
    """Pass each message on to whatever is connected to ``output``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.relay)
        self.define_event("output")

    def relay(self, message: dict[str, object]) -> None:
        self.emit("output", message=message)


class PlainRelay:
    """Baseline for :class:`Relay`: call the next object's method directly."""

    def __init__(self, successor: PlainRelay | None) -> None:
        self.successor = successor

    def relay(self, message: dict[str, object]) -> None:
        if self.successor is not None:
            self.successor.relay(message)


class Source(Routine):
    """Emit the numbers ``0 .. count - 1``, one message each."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self, count: int) -> None:
        for index in range(count):
            self.emit("output", value=index)


class Transform(Routine):
    """Emit a value derived from each one received."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.transform)
        self.define_event("output")

    def transform(self, value: int) -> None:
        self.emit("output", value=value * 2)


class Sink(Routine):
    """Count the messages received."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.count)

    def count(self, value: int) -> None:
        self.increment_stat("received")


class PlainSink:
    """Baseline for :class:`Sink`."""

    def __init__(self) -> None:
        self.received = 0

    def count(self, value: int) -> None:
        self.received += 1


class PlainTransform:
    """Baseline for :class:`Transform`."""

    def __init__(self, sink: PlainSink) -> None:
        self.sink = sink

    def transform(self, value: int) -> None:
        self.sink.count(value * 2)


def measure_chain(jobs: int, repeats: int) -> Comparison:
    """Time ``jobs`` messages through a chain of ``CHAIN_LENGTH`` routines."""
    flow = Flow(flow_id="chain")
    ids = [flow.add_routine(Relay(), f"relay_{i}") for i in range(CHAIN_LENGTH)]
    for source_id, target_id in pairwise(ids):
        flow.connect(source_id, "output", target_id, "input")
    head = PlainRelay(None)
    for _ in range(CHAIN_LENGTH - 1):
        head = PlainRelay(head)

    def through_flowforge() -> None:
        for _ in range(jobs):
            job = flow.execute(ids[0], {"message": MESSAGE})
            if job.status is not JobStatus.COMPLETED:
                raise RuntimeError(f"chain job went wrong: {job!r}")

    def through_plain() -> None:
        for _ in range(jobs):
            head.relay(MESSAGE)

    hops = jobs * CHAIN_LENGTH
    return compare("chain", "hop", hops, through_flowforge, through_plain, repeats)


def measure_stream(messages: int, repeats: int) -> Comparison:
    """Time ``messages`` messages through source -> transform -> sink in one job."""
    flow = Flow(flow_id="stream", max_deliveries=2 * messages + 1)
    sink = Sink()
    flow.add_routine(Source(), "source")
    flow.add_routine(Transform(), "transform")
    flow.add_routine(sink, "sink")
    flow.connect("source", "output", "transform", "input")
    flow.connect("transform", "output", "sink", "input")
    plain_sink = PlainSink()
    plain_transform = PlainTransform(plain_sink)

    def through_flowforge() -> None:
        sink.reset_stats()
        job = flow.execute("source", {"count": messages})
        _expect(job.status is JobStatus.COMPLETED, f"stream job ended {job!r}")
        _expect(sink.get_stat("received") == messages, "sink missed messages")

    def through_plain() -> None:
        plain_sink.received = 0
        for index in range(messages):
            plain_transform.transform(index)
        _expect(plain_sink.received == messages, "plain sink missed messages")

    return compare(
        "stream", "message", messages, through_flowforge, through_plain, repeats
    )


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise RuntimeError(f"benchmark workload went wrong: {problem}")


def main(options: Options) -> int:
    """Run both workloads, report them and return the exit status."""
    jobs = 100 if options.quick else SHORT_JOBS
    messages = 10_000 if options.quick else 100_000
    chain = measure_chain(jobs, options.repeats)
    stream = measure_stream(messages, options.repeats)
    settings: dict[str, object] = {
        "chain_length": CHAIN_LENGTH,
        "chain_jobs_per_repeat": jobs,
        "stream_messages": messages,
    }
    target = Target("chain per-hop ratio", chain.ratio, HOP_RATIO_TARGET)
    return report(options, settings, [chain, stream], [target])


if __name__ == "__main__":
    raise SystemExit(main(parse_options(__doc__ or "", repeats=SHORT_REPEATS)))
