"""Measure the peak memory of long jobs: it must not grow with the job's length.

A ticker routine emits to itself and to a sink until it has ticked N/2
times, so a job makes N deliveries while holding only a few at a time. Each
size runs in a fresh process under :mod:`tracemalloc`; the figure is the peak
of Python allocations during ``execute`` (history retention at its default).

A second pair of jobs fails every tick under ``CONTINUE`` (30,000 and 300,000
failures): the job keeps the first 100 and the last 1,000 error records and
exact totals, so its peak memory and the size of its JSON must not grow with
the failures either.

Run ``python benchmarks/bench_memory.py [--quick] [--check]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from typing import Final

from _harness import Options, Target, parse_options, publish

from flowforge import ErrorHandler, Flow, JobStatus, Routine

GROWTH_TARGET: Final = 1.2
JSON_TARGET_MB: Final = 5.0


class Ticker(Routine):
    """Tick ``ticks`` times, announcing every tick to the sink."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.tick)
        self.define_event("next")
        self.define_event("tick")

    def tick(self, n: int, ticks: int) -> None:
        self.emit("tick", n=n)
        if n + 1 < ticks:
            self.emit("next", n=n + 1, ticks=ticks)


class Sink(Routine):
    """Count the ticks."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.define_slot("input", self.count)

    def count(self, n: int) -> None:
        self.seen += 1


class Failing(Routine):
    """Fail every tick."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.fail)

    def fail(self, n: int) -> None:
        raise ValueError(f"tick {n} failed")


def failure_figures(failures: int) -> dict[str, int]:
    """Run a job of ``failures`` failed deliveries; return peak bytes and sizes."""
    flow = Flow(flow_id="failures", max_deliveries=2 * failures + 1)
    flow.add_routine(Ticker(), "ticker")
    failing = Failing()
    failing.set_error_handler(ErrorHandler("continue"))
    flow.add_routine(failing, "failing")
    flow.connect("ticker", "next", "ticker", "input")
    flow.connect("ticker", "tick", "failing", "input")
    tracemalloc.start()
    job = flow.execute("ticker", {"n": 0, "ticks": failures})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if job.status is not JobStatus.COMPLETED or job.error_count != failures:
        raise RuntimeError(f"failure job went wrong: {job!r}")
    return {
        "peak": peak,
        "json": len(json.dumps(job.serialize())),
        "records": len(job.errors),
    }


def peak_bytes(deliveries: int) -> int:
    """Run one job of ``deliveries`` deliveries; return the peak traced bytes."""
    ticks = deliveries // 2
    flow = Flow(flow_id="memory", max_deliveries=deliveries + 1)
    flow.add_routine(Ticker(), "ticker")
    sink = Sink()
    flow.add_routine(sink, "sink")
    flow.connect("ticker", "next", "ticker", "input")
    flow.connect("ticker", "tick", "sink", "input")
    tracemalloc.start()
    job = flow.execute("ticker", {"n": 0, "ticks": ticks})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if job.status is not JobStatus.COMPLETED or sink.seen != ticks:
        raise RuntimeError(f"memory job went wrong: {job!r}")
    return peak


def measure(deliveries: int, mode: str = "--child") -> dict[str, int]:
    """Run one job in a fresh interpreter (``mode`` says which) and return figures."""
    result = subprocess.run(
        [sys.executable, __file__, mode, str(deliveries)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, int] = json.loads(result.stdout)
    return figures


def failure_report(quick: bool) -> tuple[list[str], list[dict[str, int]], list[Target]]:
    """Measure the failing jobs; return table lines, JSON workloads and targets."""
    short = 3_000 if quick else 30_000
    long = short * 10
    figures = {size: measure(size, "--child-failures") for size in (short, long)}
    growth = figures[long]["peak"] / figures[short]["peak"]
    json_mb = figures[long]["json"] / 1e6
    lines = ["", f"{'failures':>12}  {'peak KiB':>10}  {'JSON KB':>10}  {'records':>8}"]
    lines += [
        f"{size:>12,}  {f['peak'] / 1024:>10,.0f}  {f['json'] / 1000:>10,.0f}  "
        f"{f['records']:>8,}"
        for size, f in figures.items()
    ]
    lines.append(f"growth: {growth:.2f}x peak for {long // short}x the failures")
    workloads = [{"failures": size, **f} for size, f in figures.items()]
    targets = [
        Target("failing job: peak memory growth (long/short)", growth, GROWTH_TARGET),
        Target("failing job: JSON of the long job, MB", json_mb, JSON_TARGET_MB),
    ]
    return lines, workloads, targets


def main(options: Options) -> int:
    """Measure a short and a ten times longer job; report the growth."""
    short = 10_000 if options.quick else 100_000
    long = short * 10
    peaks = {size: measure(size)["peak"] for size in (short, long)}
    growth = peaks[long] / peaks[short]
    lines = [f"{'deliveries':>12}  {'peak KiB':>10}"]
    lines += [f"{size:>12,}  {peak / 1024:>10,.0f}" for size, peak in peaks.items()]
    lines.append("")
    lines.append(f"growth: {growth:.2f}x peak for {long // short}x the deliveries")
    workloads: list[dict[str, int]] = [
        {"deliveries": size, "peak_bytes": peak} for size, peak in peaks.items()
    ]
    targets = [Target("peak memory growth (long/short)", growth, GROWTH_TARGET)]
    failure_lines, failure_workloads, failure_targets = failure_report(options.quick)
    return publish(
        options,
        {"short": short, "long": long},
        "\n".join(lines + failure_lines),
        workloads + failure_workloads,
        targets + failure_targets,
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps({"peak": peak_bytes(int(sys.argv[2]))}))
    elif len(sys.argv) == 3 and sys.argv[1] == "--child-failures":
        print(json.dumps(failure_figures(int(sys.argv[2]))))
    else:
        raise SystemExit(main(parse_options(__doc__ or "")))
