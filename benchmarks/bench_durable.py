"""Measure what durability costs: a job checkpointed into its store per delivery.

One job of source -> transform -> sink (the source emits N messages, so the job
makes 2N + 1 deliveries; default history limit) runs at a short and a long size,
to show whether the cost per delivery grows with the job's length:

- sqlite: durable, with a ``SqliteStore`` in a fresh database file per repeat
  (a commit per delivery, the default);
- sqlite16: the same with group commit, ``commit_every=16`` (and the interval
  out of reach, so that the figure is the grouping's);
- memory: durable, with a fresh ``MemoryStore`` per repeat;
- none: no store, the in-memory figure;
- raw: the baseline, plain ``sqlite3`` committing one row per iteration in its
  own ``BEGIN IMMEDIATE`` transaction, in WAL mode with ``synchronous=NORMAL``
  like ``SqliteStore``. Each row is as long as the JSON text one checkpoint
  writes on average, and a repeat commits as many rows as the job has
  deliveries;
- raw16: the same rows, committed 16 per transaction: what batching costs
  plain ``sqlite3``, beside sqlite16;
- rawauto: the same rows, each one ``INSERT`` committed on its own (SQLite's
  autocommit), the statement shape of a checkpoint with nothing else due: the
  cheapest way ``sqlite3`` commits a row, so ratios over it are the stricter.

Targets: sqlite's cost per delivery in the long job over the short job's
(checked); sqlite's per delivery over raw's per commit (<= 2.5x) and
sqlite16's over raw's (<= 1.7x), goals reported, not checked (the ratio moves
with the machine's load). The ratios over rawauto are printed beside them.

Run ``python benchmarks/bench_durable.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from _harness import Options, Stats, Target, parse_options, publish, time_per_operation
from bench_dispatch import Sink, Source, Transform

from flowforge.testing import StoreWrapper
from flowforge import Flow, JobState, JobStatus
from flowforge.store import MemoryStore, SqliteStore

# Private, but it is exactly what SqliteStore writes per checkpoint.
from flowforge.store._change_log import change_document
from flowforge.store._json import dumps

if TYPE_CHECKING:
    from flowforge.store import Change, Store

SHORT_DELIVERIES: Final = 1_000
LONG_DELIVERIES: Final = 100_000
QUICK_LONG_DELIVERIES: Final = 10_000
KINDS: Final = ("sqlite", "sqlite16", "memory", "none", "raw", "raw16", "rawauto")
JOB_KINDS: Final = KINDS[:4]
GROUP: Final = 16
RAW_WINDOW: Final = 1_000
"""Raw rows cycle through this many keys, as a job's history keeps 1,000 rows."""
GROWTH_TARGET: Final = 1.5
RAW_RATIO_GOAL: Final = 2.5
GROUP_RATIO_GOAL: Final = 1.7

Run = Callable[[], object]
Prepare = Callable[[Path, ExitStack], Run]
"""Set a repeat up in an empty folder (untimed); return the run to time."""


class StreamJob:
    """A flow of source -> transform -> sink and the job that streams through it."""

    def __init__(self, deliveries: int) -> None:
        self.messages = deliveries // 2
        self.deliveries = 2 * self.messages + 1
        self.sink = Sink()
        self.flow = Flow(flow_id="durable_stream", max_deliveries=self.deliveries)
        self.flow.add_routine(Source(), "source")
        self.flow.add_routine(Transform(), "transform")
        self.flow.add_routine(self.sink, "sink")
        self.flow.connect("source", "output", "transform", "input")
        self.flow.connect("transform", "output", "sink", "input")

    def run(self, store: Store | None) -> JobState:
        """Run one job, durable in ``store`` if given, and check that it finished."""
        self.sink.reset_stats()
        job = self.flow.execute("source", {"count": self.messages}, store=store)
        _expect(job.status is JobStatus.COMPLETED, f"job ended {job.status}")
        _expect(job.delivery_count == self.deliveries, "wrong delivery count")
        _expect(self.sink.get_stat("received") == self.messages, "sink missed some")
        return job


@dataclass(frozen=True, slots=True)
class Workload:
    """One store kind at one job size."""

    kind: str
    size: str
    operations: int
    prepare: Prepare


@dataclass(frozen=True, slots=True)
class Measured:
    """A workload's seconds per operation over the timed repeats."""

    workload: Workload
    stats: Stats


def job_side(job: StreamJob, kind: str) -> Prepare:
    """Return the set-up of one ``job`` run with a fresh store of ``kind``."""

    def prepare(folder: Path, cleanup: ExitStack) -> Run:
        store: Store | None = None
        if kind.startswith("sqlite"):
            every = GROUP if kind == "sqlite16" else 1
            sqlite_store = SqliteStore(
                folder / "jobs.db", commit_every=every, commit_interval=3600
            )
            cleanup.callback(sqlite_store.close)
            store = sqlite_store
        elif kind == "memory":
            store = MemoryStore()
        return lambda: job.run(store)

    return prepare


def raw_side(commits: int, row_bytes: int, per_commit: int = 1) -> Prepare:
    """Return the set-up of ``commits`` rows of ``row_bytes``, ``per_commit`` a time.

    ``per_commit`` 0 commits each row's ``INSERT`` alone, without ``BEGIN``.
    """

    def prepare(folder: Path, cleanup: ExitStack) -> Run:
        db = sqlite3.connect(folder / "raw.db", isolation_level=None)
        cleanup.callback(db.close)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("CREATE TABLE rows (n INTEGER PRIMARY KEY, row TEXT NOT NULL)")
        row = "x" * row_bytes

        def autocommit_rows() -> None:
            execute = db.execute
            for n in range(commits):
                execute(
                    "INSERT OR REPLACE INTO rows VALUES (?, ?)", (n % RAW_WINDOW, row)
                )

        def commit_rows() -> None:
            execute = db.execute
            for first in range(0, commits, per_commit):
                execute("BEGIN IMMEDIATE")
                for n in range(first, min(first + per_commit, commits)):
                    execute(
                        "INSERT OR REPLACE INTO rows VALUES (?, ?)",
                        (n % RAW_WINDOW, row),
                    )
                execute("COMMIT")

        return commit_rows if per_commit else autocommit_rows

    return prepare


def time_once(workload: Workload) -> float:
    """Set ``workload`` up in a fresh temporary folder; time one run of it."""
    with (
        tempfile.TemporaryDirectory(prefix="flowforge-bench-") as folder,
        ExitStack() as cleanup,
    ):
        run = workload.prepare(Path(folder), cleanup)
        return time_per_operation(run, workload.operations)


def measure(workloads: Sequence[Workload], repeats: int) -> list[Measured]:
    """Warm each short workload up once, then time all in turn ``repeats`` times.

    Taking turns keeps slow drifts of the machine from favouring any one.
    """
    for workload in workloads:
        if workload.size == "short":
            time_once(workload)
    samples: list[list[float]] = [[] for _ in workloads]
    for _ in range(repeats):
        for workload, taken in zip(workloads, samples, strict=True):
            taken.append(time_once(workload))
    return [Measured(w, Stats.of(s)) for w, s in zip(workloads, samples, strict=True)]


class _Sizer(StoreWrapper):
    """A MemoryStore that adds up the JSON text each SQLite checkpoint writes."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.checkpoints = 0
        self.written = 0

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        text = dumps(change_document(job_state, change))
        self.checkpoints += 1
        self.written += len(text.encode())
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)


def bytes_per_delivery(job: StreamJob) -> int:
    """Run ``job`` once; return the JSON bytes its checkpoints write per delivery."""
    sizer = _Sizer()
    job.run(sizer)
    return round(sizer.written / sizer.checkpoints)


def format_table(results: Sequence[Measured]) -> str:
    """Return the measurements as an aligned text table (times in microseconds)."""
    header = ("store", "size", "per", "ops", "median µs", "min µs", "max µs", "per s")
    rows = [header]
    for item in results:
        w, stats = item.workload, item.stats
        rows.append(
            (
                w.kind,
                w.size,
                "row" if w.kind.startswith("raw") else "delivery",
                f"{w.operations:,}",
                f"{stats.median * 1e6:.2f}",
                f"{stats.minimum * 1e6:.2f}",
                f"{stats.maximum * 1e6:.2f}",
                f"{1 / stats.median:,.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def median_of(results: Sequence[Measured], kind: str, size: str) -> float:
    """Return the median seconds per operation of one workload."""
    for item in results:
        if (item.workload.kind, item.workload.size) == (kind, size):
            return item.stats.median
    raise LookupError(f"no workload {kind!r} {size!r}")


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise RuntimeError(f"benchmark workload went wrong: {problem}")


def main(options: Options) -> int:
    """Run every workload, report them and return the exit status."""
    long_deliveries = QUICK_LONG_DELIVERIES if options.quick else LONG_DELIVERIES
    jobs = {"short": StreamJob(SHORT_DELIVERIES), "long": StreamJob(long_deliveries)}
    row_bytes = bytes_per_delivery(jobs["short"])
    workloads = [
        Workload(kind, size, job.deliveries, job_side(job, kind))
        for kind in JOB_KINDS
        for size, job in jobs.items()
    ]
    workloads += [
        Workload(kind, size, job.deliveries, raw_side(job.deliveries, row_bytes, n))
        for kind, n in (("raw", 1), ("raw16", GROUP), ("rawauto", 0))
        for size, job in jobs.items()
    ]
    results = measure(workloads, options.repeats)

    growth = {
        k: median_of(results, k, "long") / median_of(results, k, "short") for k in KINDS
    }
    over_raw = {
        f"{kind} {size}": median_of(results, kind, size)
        / median_of(results, "raw", size)
        for kind in ("sqlite", "sqlite16", "raw16", "rawauto")
        for size in jobs
    }
    over_auto = {
        f"{kind} {size}": median_of(results, kind, size)
        / median_of(results, "rawauto", size)
        for kind in ("sqlite", "sqlite16")
        for size in jobs
    }
    lines = [format_table(results), ""]
    lines.append(
        "long/short per-operation cost: "
        + ", ".join(f"{k} {g:.2f}x" for k, g in growth.items())
    )
    lines.append(
        "per delivery (raw16: per row) / raw one-row commit: "
        + ", ".join(f"{key} {r:.2f}x" for key, r in over_raw.items())
    )
    lines.append(
        "per delivery / rawauto one-statement commit: "
        + ", ".join(f"{key} {r:.2f}x" for key, r in over_auto.items())
    )
    lines.append(f"raw row: {row_bytes} bytes (checkpoint JSON per delivery, mean)")
    settings: dict[str, object] = {
        "short_deliveries": jobs["short"].deliveries,
        "long_deliveries": jobs["long"].deliveries,
        "raw_row_bytes": row_bytes,
        "raw_window": RAW_WINDOW,
        "temp_dir": tempfile.gettempdir(),
    }
    workload_data = [
        {
            "store": item.workload.kind,
            "size": item.workload.size,
            "operation": "row" if item.workload.kind.startswith("raw") else "delivery",
            "operations_per_repeat": item.workload.operations,
            "unit": "seconds per operation",
            "stats": asdict(item.stats),
        }
        for item in results
    ]
    extra = {
        "ratios": {
            "long_over_short": growth,
            "sqlite_over_raw": over_raw,
            "sqlite_over_rawauto": over_auto,
        }
    }
    targets = [
        Target("sqlite long/short per-delivery cost", growth["sqlite"], GROWTH_TARGET),
        Target(
            "sqlite per delivery / raw commit (long)",
            over_raw["sqlite long"],
            RAW_RATIO_GOAL,
            checked=False,
        ),
        Target(
            "sqlite16 per delivery / raw commit (long)",
            over_raw["sqlite16 long"],
            GROUP_RATIO_GOAL,
            checked=False,
        ),
    ]
    table = "\n".join(lines)
    return publish(options, settings, table, workload_data, targets, extra)


if __name__ == "__main__":
    raise SystemExit(main(parse_options(__doc__ or "")))
