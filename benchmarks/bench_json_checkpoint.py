"""Measure a JsonDirectoryStore checkpoint's cost as a job reaches more routines.

A job keeps the state of every routine it reached, so a store that rewrites
the job's whole file at each checkpoint pays more per delivery the further the
job gets: a chain through N routines costs O(N^2) in all. The job here ran a
chain of N routines (N = 100 and 10,000; 100 and 1,000 with ``--quick``) and
is marked running again; each repeat saves it to a fresh folder (untimed),
then times C checkpoints of one delivery (the last routine's state, one
history record) through:

- log: ``JsonDirectoryStore.checkpoint`` as it is: one line appended to the
  job's change log and flushed, the lease read from its small ``.held`` file,
  and every 64 checkpoints a fold that rewrites the job's file (C = 128, two
  folds per repeat: their cost is in the figure);
- rewrite: the checkpoint of FlowForge before the change log, with the same
  store's own methods: read the job's whole file to check the lease, then
  rewrite the whole file atomically (temporary file, fsync, rename).

Each repeat times both kinds at both sizes back to back. Reported: the cost
per checkpoint, each kind's large/small growth, and rewrite/log at each size,
all from this one run. Target (checked): log's growth at most 64x the small
job's, i.e. the fold's amortized share, not a rewrite per checkpoint.

Run ``python benchmarks/bench_json_checkpoint.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Final

from _harness import Options, Stats, Target, parse_options, publish, time_per_operation

from flowforge import Flow, JobState, Routine
from flowforge.store import Change, JsonDirectoryStore

SIZES: Final = (100, 10_000)
QUICK_SIZES: Final = (100, 1_000)
CHECKPOINTS: Final = 128
KINDS: Final = ("log", "rewrite")
OWNER: Final = "bench"
LEASE: Final = 4e9
GROWTH_TARGET: Final = 64.0


class Relay(Routine):
    """Pass ``n`` on to the next routine of the chain."""

    def __init__(self) -> None:
        """Declare ``input`` and ``output``."""
        super().__init__()
        self.define_slot("input", self.relay)
        self.define_event("output")

    def relay(self, n: int) -> None:
        """Emit ``n + 1``."""
        self.emit("output", n=n + 1)


def reached(routines: int) -> tuple[JobState, Change]:
    """Return a running job that reached ``routines`` routines, and a change."""
    flow = Flow(flow_id=f"json_chain_{routines}", max_deliveries=routines + 1)
    for i in range(routines):
        flow.add_routine(Relay(), f"r{i}")
        if i:
            flow.connect(f"r{i - 1}", "output", f"r{i}", "input")
    done = flow.execute("r0", {"n": 0})
    job = JobState.deserialize({**done.serialize(), "status": "running"})
    change = Change(
        pending_from=len(job.pending),
        routine_id=f"r{routines - 1}",
        buffer_key=None,
        history_from=job.history_total - 1,
        errors_from=job.error_count,
    )
    return job, change


def rewrite_checkpoint(store: JsonDirectoryStore, job: JobState) -> None:
    """Checkpoint as FlowForge did before the change log: the whole file, twice."""
    with store._locked():
        store._read(job.job_id)  # the lease check read the whole file
        store._write(job, OWNER, LEASE, folded=0)


def timed(kind: str, job: JobState, change: Change) -> float:
    """Save ``job`` to a fresh folder; return the seconds per checkpoint of ``kind``."""
    with tempfile.TemporaryDirectory(prefix="flowforge-bench-") as folder:
        store = JsonDirectoryStore(Path(folder))
        store.save(job, owner=OWNER, lease_until=LEASE)
        run: Callable[[], object]
        if kind == "log":

            def run() -> None:
                for _ in range(CHECKPOINTS):
                    store.checkpoint(job, change, owner=OWNER, lease_until=LEASE)

        else:

            def run() -> None:
                for _ in range(CHECKPOINTS):
                    rewrite_checkpoint(store, job)

        return time_per_operation(run, CHECKPOINTS)


def main(options: Options) -> int:
    """Time both kinds at both sizes, report and return the exit status."""
    sizes = QUICK_SIZES if options.quick else SIZES
    jobs = {size: reached(size) for size in sizes}
    samples: dict[tuple[str, int], list[float]] = {
        (kind, size): [] for kind in KINDS for size in sizes
    }
    for kind, size in samples:  # warm up
        timed(kind, *jobs[size])
    for _ in range(options.repeats):
        for (kind, size), taken in samples.items():
            taken.append(timed(kind, *jobs[size]))
    stats = {key: Stats.of(taken) for key, taken in samples.items()}
    small, large = sizes
    growth = {k: _ratio(samples[(k, large)], samples[(k, small)]) for k in KINDS}
    gain = {s: _ratio(samples[("rewrite", s)], samples[("log", s)]) for s in sizes}
    lines = [f"{'kind':8} {'routines':>9} {'median µs':>11} {'min µs':>10}"]
    for (kind, size), item in stats.items():
        lines.append(
            f"{kind:8} {size:>9,} {item.median * 1e6:>11.1f} "
            f"{item.minimum * 1e6:>10.1f}"
        )
    lines.append("")
    lines.append(
        f"{large:,}/{small:,} routines, per checkpoint: "
        + ", ".join(f"{k} {g:.2f}x" for k, g in growth.items())
    )
    lines.append(
        "rewrite/log per checkpoint: "
        + ", ".join(f"{s:,} routines {r:.2f}x" for s, r in gain.items())
    )
    workloads = [
        {
            "store": kind,
            "routines": size,
            "operation": "checkpoint",
            "operations_per_repeat": CHECKPOINTS,
            "unit": "seconds per operation",
            "stats": asdict(item),
        }
        for (kind, size), item in stats.items()
    ]
    targets = [
        Target("log large/small per-checkpoint cost", growth["log"], GROWTH_TARGET)
    ]
    settings: dict[str, object] = {"sizes": list(sizes), "checkpoints": CHECKPOINTS}
    extra = {"ratios": {"large_over_small": growth, "rewrite_over_log": gain}}
    return publish(options, settings, "\n".join(lines), workloads, targets, extra)


def _ratio(ours: list[float], base: list[float]) -> float:
    """Return the median of the repeats' own ratios (see ``Comparison.ratio``)."""
    return statistics.median(a / b for a, b in zip(ours, base, strict=True))


if __name__ == "__main__":
    raise SystemExit(main(parse_options(__doc__ or "")))
