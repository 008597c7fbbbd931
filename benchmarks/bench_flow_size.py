"""Measure whether a small job's cost depends on the size of its flow.

Workloads:

- start: a 3-hop job (``a -> b -> c``) in a flow that also holds 100,000
  routines the job never reaches, per job; baseline: the same job in a flow
  of those 3 routines alone. Target: at most 1.2 times the baseline.
- kept: the bytes a finished job keeps allocated (``tracemalloc``) in each
  flow, reported as a ratio with the same target.

Run ``python benchmarks/bench_flow_size.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Final

from _harness import (
    SHORT_JOBS,
    SHORT_REPEATS,
    Options,
    Target,
    compare,
    parse_options,
    report,
)

from flowforge import Flow, JobStatus
from flowforge.testing import Relay

IDLE: Final = 100_000
QUICK_IDLE: Final = 10_000
RATIO_TARGET: Final = 1.2


def chain_in_flow(idle: int) -> Flow:
    """Return ``a -> b -> c`` beside ``idle`` routines that no job reaches."""
    flow = Flow(flow_id=f"chain_among_{idle}")
    for routine_id in ("a", "b", "c"):
        flow.add_routine(Relay(), routine_id)
    flow.connect("a", "output", "b", "input")
    flow.connect("b", "output", "c", "input")
    for index in range(idle):
        flow.add_routine(Relay(), f"idle_{index}")
    return flow


def jobs_of(flow: Flow, jobs: int) -> None:
    """Run ``jobs`` 3-hop jobs of ``flow``."""
    for _ in range(jobs):
        job = flow.execute("a", {"n": 1})
        if job.status is not JobStatus.COMPLETED:
            raise AssertionError(f"the job ended {job.status}")


def kept_bytes(flow: Flow) -> int:
    """Return how many bytes one finished job of ``flow`` keeps allocated."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        job = flow.execute("a", {"n": 1})
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del job
    return kept


def main(options: Options) -> int:
    """Time and weigh the job in both flows; report them."""
    idle = QUICK_IDLE if options.quick else IDLE
    jobs = 100 if options.quick else SHORT_JOBS
    huge, small = chain_in_flow(idle), chain_in_flow(0)
    start = compare(
        "start",
        "3-hop job",
        jobs,
        lambda: jobs_of(huge, jobs),
        lambda: jobs_of(small, jobs),
        options.repeats,
    )
    kept_huge, kept_small = kept_bytes(huge), kept_bytes(small)
    print(f"kept per job: {kept_huge} bytes (huge flow), {kept_small} (3 routines)")
    settings: dict[str, object] = {
        "idle_routines": idle,
        "jobs": jobs,
        "kept_bytes_huge": kept_huge,
        "kept_bytes_small": kept_small,
    }
    targets = [
        Target("start ratio (huge / small flow)", start.ratio, RATIO_TARGET),
        Target("kept ratio (huge / small flow)", kept_huge / kept_small, RATIO_TARGET),
    ]
    return report(options, settings, [start], targets)


if __name__ == "__main__":
    raise SystemExit(main(parse_options(__doc__ or "", repeats=SHORT_REPEATS)))
