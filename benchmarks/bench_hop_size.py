"""Measure whether a chain's hop costs more in a bigger chain.

Workloads, each the same number of hops per sample:

- hop at 10,000 routines: one message through a chain of 10,000 relays, per
  hop (one delivery); baseline: the same hops through a chain of 100 relays
  (``bench_dispatch.py``'s chain), timed in turn with it.
- hop at 100,000 routines: the same with a chain of 100,000 relays (one job
  per sample).

The ratio is the growth of a hop's cost with the flow's size. A job touches a
routine state, a slot buffer and run times per routine it reaches, and the
plan's entries for each hop: in a huge chain these are spread over more
memory than the caches hold. Goal (not checked): at most 1.5 times the
100-routine hop. ``--quick`` times 10,000 hops at 1,000 and 10,000 routines.

Run ``python benchmarks/bench_hop_size.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Final

from _harness import Comparison, Options, Target, compare, parse_options, report
from bench_dispatch import MESSAGE, Relay

from flowforge import Flow, JobStatus

SMALL: Final = 100
SIZES: Final = (10_000, 100_000)
QUICK_SIZES: Final = (1_000, 10_000)
HOPS: Final = 100_000
QUICK_HOPS: Final = 10_000
GROWTH_GOAL: Final = 1.5
REPEATS: Final = 7


def chain_jobs(length: int, hops: int) -> tuple[Flow, int]:
    """Return a chain of ``length`` relays and how many jobs make ``hops`` hops."""
    flow = Flow(flow_id=f"chain_{length}", max_deliveries=length + 1)
    ids = [flow.add_routine(Relay(), f"relay_{i}") for i in range(length)]
    for source_id, target_id in pairwise(ids):
        flow.connect(source_id, "output", target_id, "input")
    return flow, max(1, hops // length)


def runner(flow: Flow, jobs: int) -> Callable[[], None]:
    """Return what runs ``jobs`` jobs through the chain ``flow``."""

    def run() -> None:
        for _ in range(jobs):
            job = flow.execute("relay_0", {"message": MESSAGE})
            if job.status is not JobStatus.COMPLETED:
                raise RuntimeError(f"chain job went wrong: {job!r}")

    return run


def measure(length: int, hops: int, repeats: int) -> Comparison:
    """Time ``hops`` hops in a chain of ``length`` against a chain of ``SMALL``."""
    big, big_jobs = chain_jobs(length, hops)
    small, small_jobs = chain_jobs(SMALL, hops)
    return compare(
        f"hop at {length:,} routines",
        "hop",
        hops,
        runner(big, big_jobs),
        runner(small, small_jobs),
        repeats,
    )


def main(options: Options) -> int:
    """Time the hop at each size against the small chain's; report them."""
    sizes = QUICK_SIZES if options.quick else SIZES
    hops = QUICK_HOPS if options.quick else HOPS
    comparisons = [measure(length, hops, options.repeats) for length in sizes]
    settings: dict[str, object] = {
        "small_chain": SMALL,
        "sizes": list(sizes),
        "hops_per_sample": hops,
    }
    targets = [
        Target(f"{c.name}: x the {SMALL}-routine hop", c.ratio, GROWTH_GOAL, False)
        for c in comparisons
    ]
    return report(options, settings, comparisons, targets)


if __name__ == "__main__":
    raise SystemExit(main(parse_options(__doc__ or "", repeats=REPEATS)))
