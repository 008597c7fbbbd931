"""Measure whether a small job's cost depends on the size of its flow.

Workloads:

- start: a 3-hop job (``a -> b -> c``) in a flow that also holds 100,000
  routines the job never reaches, per job; baseline: the same job in a flow
  of those 3 routines alone. Target: at most 1.2 times the baseline.
- kept: the bytes a finished job keeps allocated (``tracemalloc``) in each
  flow, reported as a ratio with the same target.
- durable start: the same job run durably in a ``SqliteStore``, per job, in
  each flow: the flow's shape is stored once, by the first job of the flow,
  so later jobs do not write it again. Target: at most 1.5 times the baseline.
- chain (figures, no target): a chain of 100,000 ``Relay`` routines: its
  build time, the bytes it keeps per routine once built, the peak of Python
  allocations while building it and running one job through it (both under
  ``tracemalloc``), and the size of a SQLite file holding one and ten
  finished jobs of it.

Run ``python benchmarks/bench_flow_size.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

import gc
import tempfile
import time
import tracemalloc
from pathlib import Path
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

from flowforge import Flow, JobState, JobStatus
from flowforge.store import SqliteStore
from flowforge.testing import Relay

IDLE: Final = 100_000
QUICK_IDLE: Final = 10_000
RATIO_TARGET: Final = 1.2
DURABLE_TARGET: Final = 1.5
CHAIN: Final = 100_000
QUICK_CHAIN: Final = 5_000
SAVED_JOBS: Final = 10


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


def durable_jobs_of(flow: Flow, store: SqliteStore, jobs: int) -> None:
    """Run ``jobs`` 3-hop jobs of ``flow`` durably in ``store``."""
    for _ in range(jobs):
        job = flow.execute("a", {"n": 1}, store=store)
        if job.status is not JobStatus.COMPLETED:
            raise AssertionError(f"the job ended {job.status}")


def chain(length: int) -> Flow:
    """Return a chain of ``length`` relays, ``r0 -> r1 -> ...``."""
    flow = Flow(flow_id=f"chain_of_{length}")
    previous = flow.add_routine(Relay(), "r0")
    for index in range(1, length):
        current = flow.add_routine(Relay(), f"r{index}")
        flow.connect(previous, "output", current, "input")
        previous = current
    return flow


def run_chain(flow: Flow) -> JobState:
    """Run one job through the whole chain."""
    job = flow.execute("r0", {"n": 1})
    if job.status is not JobStatus.COMPLETED:
        raise AssertionError(f"the chain job ended {job.status}")
    return job


def saved_sizes(job: JobState, jobs: int) -> tuple[int, int]:
    """Return the bytes of a SQLite store holding ``job``, then ``jobs`` copies."""
    sizes = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "jobs.db"
        for first, last in ((0, 1), (1, jobs)):
            store = SqliteStore(path)
            for number in range(first, last):
                job.job_id = f"chain-{number}"
                store.save(job)
            store.close()  # the last connection folds the WAL into the file
            sizes.append(sum(p.stat().st_size for p in Path(folder).iterdir()))
    return sizes[0], sizes[1]


def chain_figures(length: int) -> dict[str, float]:
    """Build and run the chain: time, kept and peak bytes, stored bytes."""
    gc.collect()
    started = time.perf_counter()
    flow = chain(length)
    build = time.perf_counter() - started
    one, ten = saved_sizes(run_chain(flow), SAVED_JOBS)
    del flow
    gc.collect()
    tracemalloc.start()
    try:
        flow = chain(length)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0]
        run_chain(flow)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return {
        "chain_routines": length,
        "chain_build_seconds": round(build, 3),
        "chain_kept_bytes_per_routine": round(kept / length),
        "chain_peak_mb": round(peak / 2**20, 1),
        "chain_saved_mb_1_job": round(one / 2**20, 2),
        f"chain_saved_mb_{SAVED_JOBS}_jobs": round(ten / 2**20, 2),
    }


def durable_start(huge: Flow, small: Flow, jobs: int, repeats: int) -> Comparison:
    """Time durable 3-hop jobs of both flows, each in a store of its own."""
    with tempfile.TemporaryDirectory() as folder:
        stores = [SqliteStore(Path(folder) / f"{n}.db") for n in range(2)]
        try:
            return compare(
                "durable start",
                "durable 3-hop job",
                jobs,
                lambda: durable_jobs_of(huge, stores[0], jobs),
                lambda: durable_jobs_of(small, stores[1], jobs),
                repeats,
            )
        finally:
            for store in stores:
                store.close()


def main(options: Options) -> int:
    """Time and weigh the job in both flows, then the chain; report them."""
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
    durable = durable_start(huge, small, jobs // 10, options.repeats)
    kept_huge, kept_small = kept_bytes(huge), kept_bytes(small)
    print(f"kept per job: {kept_huge} bytes (huge flow), {kept_small} (3 routines)")
    figures = chain_figures(QUICK_CHAIN if options.quick else CHAIN)
    print("chain:", ", ".join(f"{key} {value}" for key, value in figures.items()))
    settings: dict[str, object] = {
        "idle_routines": idle,
        "jobs": jobs,
        "kept_bytes_huge": kept_huge,
        "kept_bytes_small": kept_small,
        **figures,
    }
    targets = [
        Target("start ratio (huge / small flow)", start.ratio, RATIO_TARGET),
        Target("kept ratio (huge / small flow)", kept_huge / kept_small, RATIO_TARGET),
        Target("durable start ratio (huge / small)", durable.ratio, DURABLE_TARGET),
    ]
    return report(options, settings, [start, durable], targets)


if __name__ == "__main__":
    raise SystemExit(main(parse_options(__doc__ or "", repeats=SHORT_REPEATS)))
