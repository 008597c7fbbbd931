"""Measure the concurrent execution strategy beside the sequential one, in one run.

Workloads:

- io_fan_out: a source emits one message to 50 routines whose handlers each wait
  20 ms in ``time.sleep`` (I/O that releases the GIL); per job. The concurrent
  strategy runs them on 16 workers, the sequential one on the calling thread.
  The speed-up is sequential time over concurrent time; 50 handlers in waves of
  16 can at best give 50 / 4 = 12.5x.
- chain: one message through a chain of 100 routines whose handlers only emit;
  per hop (one delivery). Nothing can overlap here, so the concurrent figure is
  the strategy's own cost per delivery: handing each handler to a pool thread
  and its outcome back to the coordinating thread.

Target: the io_fan_out concurrent time is at most 12.5% of the sequential time
(a speed-up of at least 8x), checked by ``--check``.

Run ``python benchmarks/bench_concurrency.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from itertools import pairwise
from typing import Final

from _harness import Comparison, Options, Target, compare, parse_options, publish
from bench_dispatch import MESSAGE, Relay

from flowforge import Flow, JobStatus, Routine

FAN_OUT_WIDTH: Final = 50
IO_SECONDS: Final = 0.020
FAN_OUT_WORKERS: Final = 16
CHAIN_LENGTH: Final = 100
SPEED_UP_TARGET: Final = 8.0
CONCURRENT: Final = "concurrent"
SEQUENTIAL: Final = "sequential"


class Start(Routine):
    """A source routine: emit one message on ``output``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self) -> None:
        self.emit("output", message=MESSAGE)


class Wait(Routine):
    """Wait ``IO_SECONDS`` as if for a network call, then count the message."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.wait)

    def wait(self, message: dict[str, object]) -> None:
        time.sleep(IO_SECONDS)
        self.increment_stat("waited")


def fan_out_flow() -> Flow:
    """A source connected to ``FAN_OUT_WIDTH`` waiting routines."""
    flow = Flow(flow_id="io_fan_out", max_workers=FAN_OUT_WORKERS)
    flow.add_routine(Start(), "start")
    for index in range(FAN_OUT_WIDTH):
        flow.add_routine(Wait(), f"wait_{index}")
        flow.connect("start", "output", f"wait_{index}", "input")
    return flow


def chain_flow() -> Flow:
    """``CHAIN_LENGTH`` relays, each connected to the next."""
    flow = Flow(flow_id="chain")
    ids = [flow.add_routine(Relay(), f"relay_{i}") for i in range(CHAIN_LENGTH)]
    for source_id, target_id in pairwise(ids):
        flow.connect(source_id, "output", target_id, "input")
    return flow


def jobs_of(
    flow: Flow, entry: str, params: dict[str, object], jobs: int, strategy: str
) -> Callable[[], None]:
    """Return a callable running ``jobs`` jobs of ``flow`` with ``strategy``."""

    def run() -> None:
        for _ in range(jobs):
            job = flow.execute(entry, params, execution_strategy=strategy)
            if job.status is not JobStatus.COMPLETED or job.errors:
                raise RuntimeError(f"benchmark job went wrong: {job!r}")

    return run


def measure(
    name: str,
    operation: str,
    operations: int,
    flow: Flow,
    entry: str,
    params: dict[str, object],
    jobs: int,
    repeats: int,
) -> Comparison:
    """Time the concurrent strategy (``flowforge``) beside the sequential one.

    In the returned comparison ``flowforge`` holds the concurrent figures and
    ``baseline`` the sequential ones, timed in turn as the harness does.
    """
    with flow:
        return compare(
            name,
            operation,
            operations,
            jobs_of(flow, entry, params, jobs, CONCURRENT),
            jobs_of(flow, entry, params, jobs, SEQUENTIAL),
            repeats,
        )


def format_table(comparisons: list[Comparison], unit: dict[str, str]) -> str:
    """Return both strategies' figures per workload, and their ratio."""
    header = ("workload", "strategy", "median", "min", "max", "per second")
    rows = [header]
    for item in comparisons:
        scale, label = (1e3, "ms") if unit[item.name] == "ms" else (1e6, "µs")
        sides = ((CONCURRENT, item.flowforge), (SEQUENTIAL, item.baseline))
        for side, stats in sides:
            rows.append(
                (
                    f"{item.name} (per {item.operation})",
                    side,
                    f"{stats.median * scale:.3f} {label}",
                    f"{stats.minimum * scale:.3f} {label}",
                    f"{stats.maximum * scale:.3f} {label}",
                    f"{1 / stats.median:,.1f}",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    for item in comparisons:
        scale, label = (1e3, "ms") if unit[item.name] == "ms" else (1e6, "µs")
        extra = (item.flowforge.median - item.baseline.median) * scale
        lines.append(
            f"{item.name}: speed-up {1 / item.ratio:.2f}x, concurrent/sequential "
            f"{item.ratio:.2f}x (median of the repeats' ratios), "
            f"concurrent {extra:+,.1f} {label} per {item.operation}"
        )
    return "\n".join(lines)


def workload_dict(item: Comparison) -> dict[str, object]:
    """The JSON figures of one workload, named by strategy."""
    return {
        "name": item.name,
        "operation": item.operation,
        "operations_per_repeat": item.operations,
        "unit": "seconds per operation",
        CONCURRENT: asdict(item.flowforge),
        SEQUENTIAL: asdict(item.baseline),
        "concurrent_over_sequential": item.ratio,
        "speed_up": 1 / item.ratio,
    }


def main(options: Options) -> int:
    """Run both workloads, report them and return the exit status."""
    fan_out_jobs = 1 if options.quick else 2
    chain_jobs = 20 if options.quick else 100
    fan_out = measure(
        "io_fan_out",
        "job",
        fan_out_jobs,
        fan_out_flow(),
        "start",
        {},
        fan_out_jobs,
        options.repeats,
    )
    chain = measure(
        "chain",
        "hop",
        chain_jobs * CHAIN_LENGTH,
        chain_flow(),
        "relay_0",
        {"message": MESSAGE},
        chain_jobs,
        options.repeats,
    )
    comparisons = [fan_out, chain]
    settings: dict[str, object] = {
        "fan_out_width": FAN_OUT_WIDTH,
        "io_seconds": IO_SECONDS,
        "fan_out_workers": FAN_OUT_WORKERS,
        "fan_out_jobs_per_repeat": fan_out_jobs,
        "chain_length": CHAIN_LENGTH,
        "chain_jobs_per_repeat": chain_jobs,
    }
    target = Target(
        "io_fan_out concurrent time, % of sequential",
        100 * fan_out.ratio,
        100 / SPEED_UP_TARGET,
    )
    table = format_table(comparisons, {"io_fan_out": "ms", "chain": "µs"})
    workloads = [workload_dict(item) for item in comparisons]
    extra = {"speed_up": {"io_fan_out": 1 / fan_out.ratio, "target": SPEED_UP_TARGET}}
    return publish(options, settings, table, workloads, [target], extra)


if __name__ == "__main__":
    raise SystemExit(main(parse_options(__doc__ or "")))
