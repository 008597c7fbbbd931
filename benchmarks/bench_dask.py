"""Measure jobs run through ``flowforge.dask.DaskRunner`` on local Dask clusters.

Two ``LocalCluster`` objects of single-thread worker processes run side by side
in one run, one with 1 worker and one with 2; every workload is timed in turn,
per job. Workloads:

- cpu: jobs of one source routine doing about 50 ms of pure-Python work
  (calibrated on this machine at start), sent with ``run_many`` in batches, on
  2 workers and on 1. Throughput ratio: 1-worker time per job over 2-worker
  time per job.
- trivial: jobs of one source routine that does nothing, on 2 workers: in a
  batch (``run_many``) and one at a time (``submit(...).result()``, a round
  trip); beside a plain Dask task that does nothing (``client.map`` and
  ``client.submit``), and ``flow.execute`` in this process. The runner's
  overhead per job is its figure minus the local one; the part that is the
  runner's own, and not Dask's, is its figure minus the plain task's.

Both clusters share this machine's CPUs with everything else it runs, so the
script also reports the share of the machine's CPU time that other processes
used during the run (from ``/proc/stat``, on Linux): the figures hold when it
is near 0%.

Target: the cpu 2-worker time per job is at most 58.8% of the 1-worker time
(a throughput ratio of at least 1.7), checked by ``--check``.

Run ``python benchmarks/bench_dask.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Final

from _harness import Options, Stats, Target, parse_options, publish
from _harness import time_per_operation
from distributed import Client, LocalCluster

from flowforge import Flow, JobStatus, Routine
from flowforge.dask import DaskRunner

JOB_SECONDS: Final = 0.050
THROUGHPUT_TARGET: Final = 1.7
PRELOAD: Final = ["bench_dask"]
"""This module, imported by the workers, so that they know its routine classes."""

Run = Callable[[], object]


class Spin(Routine):
    """A source routine that burns the CPU: ``loops`` rounds of arithmetic."""

    def __init__(self) -> None:
        super().__init__()

    def __call__(self, loops: int) -> None:
        total = 0
        for i in range(loops):
            total += i * i % 7
        self.set_stat("total", total)


class Idle(Routine):
    """A source routine that does nothing: the smallest possible job."""

    def __init__(self) -> None:
        super().__init__()

    def __call__(self) -> None:
        pass


def build_flow(routine: Routine) -> Flow:
    flow = Flow(flow_id="bench_dask")
    flow.add_routine(routine, "start")
    return flow


def calibrate() -> int:
    """Return how many ``Spin`` loops take about ``JOB_SECONDS`` here.

    The fastest of a few runs counts: other work on the machine only slows a run.
    """
    flow = build_flow(Spin())
    loops = 200_000
    fastest = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        flow.execute("start", {"loops": loops})
        fastest = min(fastest, time.perf_counter() - started)
    return int(loops * JOB_SECONDS / fastest)


def noop(value: object) -> object:
    """A plain Dask task that does nothing: the engine's own cost per task."""
    return value


def batch(runner: DaskRunner, flow: Flow, params: list[dict[str, object]]) -> Run:
    def run() -> None:
        states = runner.run_many(flow, "start", params)
        _expect(all(s.status is JobStatus.COMPLETED for s in states), "a job failed")

    return run


def one_at_a_time(runner: DaskRunner, flow: Flow, jobs: int) -> Run:
    def run() -> None:
        for _ in range(jobs):
            state = runner.submit(flow, "start").result()
            _expect(state.status is JobStatus.COMPLETED, "a job failed")

    return run


def plain_batch(client: Client, jobs: int) -> Run:
    def run() -> None:
        futures = client.map(noop, range(jobs), pure=False)
        values = client.gather(futures)  # type: ignore[no-untyped-call]
        _expect(values == list(range(jobs)), "lost a task")

    return run


def plain_one_at_a_time(client: Client, jobs: int) -> Run:
    def run() -> None:
        for i in range(jobs):
            _expect(client.submit(noop, i, pure=False).result() == i, "lost a task")

    return run


def locally(flow: Flow, jobs: int) -> Run:
    def run() -> None:
        for _ in range(jobs):
            _expect(flow.execute("start").status is JobStatus.COMPLETED, "job failed")

    return run


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


def alternate(runs: Mapping[str, tuple[Run, int]], repeats: int) -> dict[str, Stats]:
    """Warm each run up once, then time them in turn ``repeats`` times."""
    for run, _ in runs.values():
        run()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (run, operations) in runs.items():
            samples[name].append(time_per_operation(run, operations))
    return {name: Stats.of(values) for name, values in samples.items()}


def start_cluster(workers: int) -> tuple[LocalCluster, Client]:
    # distributed leaves LocalCluster and Client unannotated.
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    return cluster, Client(cluster)  # type: ignore[no-untyped-call]


def format_rows(stats: Mapping[str, Stats]) -> str:
    """Return an aligned table of milliseconds per job."""
    header = ("workload", "side", "median ms", "min ms", "max ms", "jobs/s")
    lines = [header]
    for key, item in stats.items():
        name, _, side = key.partition(": ")
        lines.append(
            (
                name,
                side,
                f"{item.median * 1e3:.3f}",
                f"{item.minimum * 1e3:.3f}",
                f"{item.maximum * 1e3:.3f}",
                f"{1 / item.median:,.0f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def summary(stats: Mapping[str, Stats], loops: int) -> tuple[str, dict[str, float]]:
    """Return the derived figures, as text and as data."""
    median = {key: item.median for key, item in stats.items()}
    figures = {
        "throughput_ratio": median[ONE_CPU] / median[TWO_CPU],
        "batch_overhead": median[RUNNER_BATCH] - median[LOCAL],
        "single_overhead": median[RUNNER_SINGLE] - median[LOCAL],
        "batch_over_plain_dask": median[RUNNER_BATCH] - median[PLAIN_BATCH],
        "single_over_plain_dask": median[RUNNER_SINGLE] - median[PLAIN_SINGLE],
    }
    ms = {key: value * 1e3 for key, value in figures.items()}
    text = (
        f"cpu: {loops:,} loops per job; throughput 2 workers / 1 worker: "
        f"{figures['throughput_ratio']:.2f}x\n"
        f"runner overhead per trivial job over flow.execute: "
        f"{ms['batch_overhead']:.3f} ms in a batch, "
        f"{ms['single_overhead']:.3f} ms one at a time\n"
        f"of which above a plain Dask task: {ms['batch_over_plain_dask']:.3f} ms in "
        f"a batch, {ms['single_over_plain_dask']:.3f} ms one at a time"
    )
    return text, figures


TWO_CPU: Final = "cpu: 2 workers"
ONE_CPU: Final = "cpu: 1 worker"
RUNNER_BATCH: Final = "trivial, batch: runner, 2 workers"
PLAIN_BATCH: Final = "trivial, batch: plain Dask task, 2 workers"
RUNNER_SINGLE: Final = "trivial, one at a time: runner, 2 workers"
PLAIN_SINGLE: Final = "trivial, one at a time: plain Dask task, 2 workers"
LOCAL: Final = "trivial: flow.execute, local"


def busy_seconds() -> float:
    """Return the CPU seconds all processes of this machine used so far (Linux)."""
    try:
        first = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0]
    except OSError:  # not Linux: the share of other processes stays unknown
        return math.nan
    ticks = [int(field) for field in first.split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """Return the CPU seconds of this process and its ended children (workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main(options: Options) -> int:
    """Start both clusters, run the workloads, report them; return the exit status."""
    cpu_jobs = 12 if options.quick else 40
    batch_jobs = 100 if options.quick else 400
    single_jobs = 20 if options.quick else 50
    started, busy, own = time.perf_counter(), busy_seconds(), own_seconds()
    loops = calibrate()
    spin, idle = build_flow(Spin()), build_flow(Idle())
    one_cluster, one_client = start_cluster(1)
    two_cluster, two_client = start_cluster(2)
    with one_cluster, one_client, two_cluster, two_client:
        one = DaskRunner(one_client, preload=PRELOAD)
        two = DaskRunner(two_client, preload=PRELOAD)
        work: list[dict[str, object]] = [{"loops": loops}] * cpu_jobs
        runs: dict[str, tuple[Run, int]] = {
            TWO_CPU: (batch(two, spin, work), cpu_jobs),
            ONE_CPU: (batch(one, spin, work), cpu_jobs),
            RUNNER_BATCH: (batch(two, idle, [{}] * batch_jobs), batch_jobs),
            PLAIN_BATCH: (plain_batch(two_client, batch_jobs), batch_jobs),
            RUNNER_SINGLE: (one_at_a_time(two, idle, single_jobs), single_jobs),
            PLAIN_SINGLE: (plain_one_at_a_time(two_client, single_jobs), single_jobs),
            LOCAL: (locally(idle, batch_jobs), batch_jobs),
        }
        stats = alternate(runs, options.repeats)
    others = (busy_seconds() - busy) - (own_seconds() - own)
    capacity = (time.perf_counter() - started) * (os.cpu_count() or 1)
    text, figures = summary(stats, loops)
    figures["other_processes_cpu_share"] = max(others, 0.0) / capacity
    text += (
        "\nother processes used "
        f"{100 * figures['other_processes_cpu_share']:.0f}% of the machine's CPU "
        "time during the run (figures are meaningful near 0%)"
    )
    settings: dict[str, object] = {
        "cpu_jobs_per_repeat": cpu_jobs,
        "cpu_loops_per_job": loops,
        "batch_jobs_per_repeat": batch_jobs,
        "single_jobs_per_repeat": single_jobs,
    }
    workloads = [
        {"name": key, "unit": "seconds per job", **asdict(item)}
        for key, item in stats.items()
    ]
    target = Target(
        "cpu 2-worker time per job, % of 1-worker",
        100 / figures["throughput_ratio"],
        100 / THROUGHPUT_TARGET,
    )
    table = format_rows(stats) + "\n\n" + text
    return publish(options, settings, table, workloads, [target], figures)


if __name__ == "__main__":
    # Run this module's classes, registered as "bench_dask:Spin", a name that the
    # workers import through PRELOAD, not copies defined in __main__.
    from bench_dask import main as module_main

    raise SystemExit(module_main(parse_options(__doc__ or "")))
