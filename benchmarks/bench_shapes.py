"""Measure a fan-out/fan-in job and building a flow, each beside plain Python.

Workloads:

- fanout: one source emits to 50 workers whose results one collector joins
  (a join slot that waits for all 50), per full job; baseline: a source
  object calling 50 worker methods that hand results to a collector object,
  which acts once it has all 50.
- build: construct and wire a 1,000-routine chain, per routine; baseline:
  constructing 1,000 plain objects with a slot, an event and a link each.

Run ``python benchmarks/bench_shapes.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

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

WORKERS: Final = 50
CHAIN: Final = 1000
FANOUT_TARGET: Final = 40.0
BUILD_TARGET: Final = 30.0


class Source(Routine):
    """Emit the job's value once."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("value")

    def __call__(self, value: int) -> None:
        self.emit("value", value=value)


class Worker(Routine):
    """Square the value under its own key."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.work)
        self.define_event("result")

    def work(self, value: int) -> None:
        self.emit("result", result=value * value)


class Collector(Routine):
    """Sum all results once every worker has delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.define_slot("results", self.collect, "append", join=True)

    def collect(self, result: list[int]) -> None:
        self.total = sum(result)


class Link(Routine):
    """A routine with one slot and one event, as in a typical chain."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.relay)
        self.define_event("output")

    def relay(self, value: int) -> None:
        self.emit("output", value=value)


class PlainCollector:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.results: list[int] = []
        self.total = 0

    def collect(self, result: int) -> None:
        self.results.append(result)
        if len(self.results) == self.expected:
            self.total = sum(self.results)
            self.results = []


class PlainWorker:
    def __init__(self, collector: PlainCollector) -> None:
        self.collector = collector

    def work(self, value: int) -> None:
        self.collector.collect(value * value)


class PlainLink:
    def __init__(self) -> None:
        self.slots = {"input": self.relay}
        self.events = {"output": []}  # type: dict[str, list[PlainLink]]
        self.stats: dict[str, object] = {}

    def relay(self, value: int) -> None:
        for target in self.events["output"]:
            target.relay(value)


def measure_fanout(jobs: int, repeats: int) -> Comparison:
    """Time ``jobs`` whole fan-out/fan-in jobs."""
    flow = Flow(flow_id="fanout")
    flow.add_routine(Source(), "source")
    collector = Collector()
    flow.add_routine(collector, "collector")
    for index in range(WORKERS):
        worker_id = flow.add_routine(Worker(), f"worker_{index}")
        flow.connect("source", "value", worker_id, "input")
        flow.connect(worker_id, "result", "collector", "results")
    plain_collector = PlainCollector(WORKERS)
    plain_workers = [PlainWorker(plain_collector) for _ in range(WORKERS)]
    expected = WORKERS * 9

    def through_flowforge() -> None:
        for _ in range(jobs):
            job = flow.execute("source", {"value": 3})
            _expect(job.status is JobStatus.COMPLETED, f"fan-out job ended {job!r}")
        _expect(collector.total == expected, "collector missed results")

    def through_plain() -> None:
        for _ in range(jobs):
            for worker in plain_workers:
                worker.work(3)
        _expect(plain_collector.total == expected, "plain collector missed results")

    return compare("fanout", "job", jobs, through_flowforge, through_plain, repeats)


def measure_build(repeats: int) -> Comparison:
    """Time building and wiring a chain of ``CHAIN`` routines."""

    def through_flowforge() -> None:
        flow = Flow(flow_id="build")
        previous = flow.add_routine(Link(), "link_0")
        for index in range(1, CHAIN):
            current = flow.add_routine(Link(), f"link_{index}")
            flow.connect(previous, "output", current, "input")
            previous = current
        _expect(len(flow.routines) == CHAIN, "flow lost routines")

    def through_plain() -> None:
        links = [PlainLink() for _ in range(CHAIN)]
        for previous, current in zip(links, links[1:], strict=False):
            previous.events["output"].append(current)
        _expect(len(links) == CHAIN, "plain chain lost links")

    return compare("build", "routine", CHAIN, through_flowforge, through_plain, repeats)


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise RuntimeError(f"benchmark workload went wrong: {problem}")


def main(options: Options) -> int:
    """Run both workloads, report them and return the exit status."""
    jobs = 100 if options.quick else SHORT_JOBS
    fanout = measure_fanout(jobs, options.repeats)
    build = measure_build(options.repeats)
    settings: dict[str, object] = {
        "workers": WORKERS,
        "fanout_jobs": jobs,
        "chain": CHAIN,
    }
    targets = [
        Target("fan-out/fan-in ratio", fanout.ratio, FANOUT_TARGET),
        Target("build ratio", build.ratio, BUILD_TARGET),
    ]
    return report(options, settings, [fanout, build], targets)


if __name__ == "__main__":
    raise SystemExit(main(parse_options(__doc__ or "", repeats=SHORT_REPEATS)))
