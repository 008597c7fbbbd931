"""Measure the peak memory of long jobs: it must not grow with the job's length.

A ticker routine emits to itself and to a sink until it has ticked N/2
times, so a job makes N deliveries while holding only a few at a time. Each
size runs in a fresh process under :mod:`tracemalloc`; the figure is the peak
of Python allocations during ``execute`` (history retention at its default).

Run ``python benchmarks/bench_memory.py [--quick] [--check]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from typing import Final

from _harness import Options, Target, parse_options, publish

from flowforge import Flow, JobStatus, Routine

GROWTH_TARGET: Final = 1.2


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


def measure(deliveries: int) -> int:
    """Run :func:`peak_bytes` in a fresh interpreter and return its figure."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(deliveries)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(result.stdout)["peak"])


def main(options: Options) -> int:
    """Measure a short and a ten times longer job; report the growth."""
    short = 10_000 if options.quick else 100_000
    long = short * 10
    peaks = {size: measure(size) for size in (short, long)}
    growth = peaks[long] / peaks[short]
    lines = [f"{'deliveries':>12}  {'peak KiB':>10}"]
    lines += [f"{size:>12,}  {peak / 1024:>10,.0f}" for size, peak in peaks.items()]
    lines.append("")
    lines.append(f"growth: {growth:.2f}x peak for {long // short}x the deliveries")
    workloads = [
        {"deliveries": size, "peak_bytes": peak} for size, peak in peaks.items()
    ]
    target = Target("peak memory growth (long/short)", growth, GROWTH_TARGET)
    return publish(
        options, {"short": short, "long": long}, "\n".join(lines), workloads, [target]
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps({"peak": peak_bytes(int(sys.argv[2]))}))
    else:
        raise SystemExit(main(parse_options(__doc__ or "")))
