"""Time the working tree's flowforge against a git revision's, in one process.

The revision's package (``git archive``) is imported as ``flowforge``, then its
``sys.modules`` entries are renamed (``_ab_base_flowforge...``) so the working
tree's package imports under its own name; functions keep the globals they were
defined with, so both run side by side. Base and head are timed in turn, the
order alternating each repeat, so the machine's slow spells hit both alike.
Workloads (as in ``bench_dispatch.py`` and ``bench_durable.py``): chain, one
message through 100 routines, per hop; durable, a 101-delivery stream job in a
fresh ``SqliteStore`` file, per delivery; start, a job through 3 routines, per
job; stream, one job whose source emits 20,000 messages (1,000 with ``--quick``)
through a relay to a sink, per message. The collector runs before each sample and
is off during it, unless ``--keep-gc`` (which times as ``_harness.py`` does).

Run ``python benchmarks/ab.py --base REV [--repeats N] [--workloads chain,start]
[--quick] [--keep-gc] [--json PATH] [--deliveries N] [--commit-every N]``
(``--deliveries`` sizes the durable job, ``--commit-every`` gives its store
group commit, with the interval out of reach).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from flowforge import Flow, JobStatus, Routine
    from flowforge.store import SqliteStore

ROOT: Final = Path(__file__).resolve().parent.parent
ALIAS: Final = "_ab_base_flowforge"
NEEDED: Final = [f"flowforge{s}" for s in ("", ".store", ".store.sqlite", ".testing")]
WORKLOADS: Final = ("chain", "durable", "start", "stream")
CHAIN_LENGTH: Final = 100
START_LENGTH: Final = 3
MESSAGE: Final[dict[str, object]] = {"order_id": 7, "item": "widget", "amount": 12.5}

Sample = Callable[[], float]
"""Set one sample up (untimed), time it; return seconds per operation."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Workload sizes and how samples are timed."""

    chain_jobs: int
    deliveries: int
    start_jobs: int
    keep_gc: bool
    commit_every: int = 1
    stream_messages: int = 20_000


@dataclass(frozen=True, slots=True)
class Version:
    """One flowforge package's classes, with the workloads' routines on them."""

    flow: type[Flow]
    completed: JobStatus
    sqlite_store: type[SqliteStore]
    relay: type[Routine]
    source: type[Routine]
    sink: type[Routine]


def define_version() -> Version:
    """Define the routines on whichever package is named ``flowforge`` now."""
    from flowforge import Flow, JobStatus, Routine
    from flowforge.store import SqliteStore

    class Relay(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", handler=self.relay)
            self.define_event("output")

        def relay(self, message: dict[str, object]) -> None:
            self.emit("output", message=message)

    class Source(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_event("output")

        def __call__(self, count: int) -> None:
            for index in range(count):
                self.emit("output", message=index)

    class Sink(Routine):
        def __init__(self) -> None:
            super().__init__()
            self.define_slot("input", handler=self.count)

        def count(self, message: int) -> None:
            self.increment_stat("received")

    completed = JobStatus.COMPLETED
    return Version(Flow, completed, SqliteStore, Relay, Source, Sink)


def import_version(folder: Path) -> Version:
    """Import the ``flowforge`` package in ``folder``; define the routines on it."""
    sys.path.insert(0, str(folder))
    try:
        modules = [importlib.import_module(name) for name in NEEDED]
    finally:
        sys.path.remove(str(folder))
    _expect(all(str(folder) in str(m.__file__) for m in modules), f"not from {folder}")
    return define_version()


def import_base(revision: str, folder: Path) -> Version:
    """Import ``revision``'s package, define its routines, then rename its modules."""
    _expect("flowforge" not in sys.modules, "flowforge was imported first")
    archive = _git("archive", revision, "flowforge")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    version = import_version(folder)
    for name in [n for n in sys.modules if n.split(".")[0] == "flowforge"]:
        sys.modules[ALIAS + name.removeprefix("flowforge")] = sys.modules.pop(name)
    return version


def timed(run: Callable[[], object], operations: int, settings: Settings) -> float:
    """Return the seconds ``run()`` takes per operation, collected garbage first."""
    gc.collect()
    if not settings.keep_gc:
        gc.disable()
    try:
        started = time.perf_counter()
        run()
        return (time.perf_counter() - started) / operations
    finally:
        gc.enable()


def relay_chain(v: Version, length: int, jobs: int, settings: Settings) -> Sample:
    """Return a sample of ``jobs`` jobs through ``length`` relays, per delivery."""
    flow = v.flow(flow_id=f"chain_{length}")
    ids = [flow.add_routine(v.relay(), f"relay_{i}") for i in range(length)]
    for source_id, target_id in pairwise(ids):
        flow.connect(source_id, "output", target_id, "input")

    def run() -> None:
        for _ in range(jobs):
            job = flow.execute(ids[0], {"message": MESSAGE})
            _expect(job.status is v.completed, f"chain job ended {job.status}")

    return lambda: timed(run, jobs * length, settings)


def stream_flow(v: Version, flow_id: str, max_deliveries: int) -> Flow:
    """Return ``v``'s flow of source -> relay -> sink."""
    flow = v.flow(flow_id=flow_id, max_deliveries=max_deliveries)
    flow.add_routine(v.source(), "source")
    flow.add_routine(v.relay(), "relay")
    flow.add_routine(v.sink(), "sink")
    flow.connect("source", "output", "relay", "input")
    flow.connect("relay", "output", "sink", "input")
    return flow


def durable(v: Version, deliveries: int, settings: Settings) -> Sample:
    """Return a sample of one stream job in a fresh SQLite file, per delivery."""
    messages = deliveries // 2
    total = 2 * messages + 1
    flow = stream_flow(v, "durable_stream", total)

    def sample() -> float:
        with tempfile.TemporaryDirectory(prefix="flowforge-ab-") as folder:
            path, every = Path(folder) / "jobs.db", settings.commit_every
            # Only a group commit names its options: older bases lack them.
            store = (
                v.sqlite_store(path)
                if every == 1
                else v.sqlite_store(path, commit_every=every, commit_interval=3600)
            )
            try:
                return timed(lambda: run(store), total, settings)
            finally:
                store.close()

    def run(store: SqliteStore) -> None:
        job = flow.execute("source", {"count": messages}, store=store)
        _expect(job.status is v.completed, f"durable job ended {job.status}")
        _expect(job.delivery_count == total, "wrong delivery count")

    return sample


def stream(v: Version, messages: int, settings: Settings) -> Sample:
    """Return a sample of one source -> relay -> sink job, per message."""
    flow = stream_flow(v, "stream", 2 * messages + 1)

    def run() -> None:
        job = flow.execute("source", {"count": messages})
        _expect(job.status is v.completed, f"stream job ended {job.status}")

    return lambda: timed(run, messages, settings)


def workload(name: str, v: Version, settings: Settings) -> Sample:
    """Return the sample of workload ``name`` on version ``v``."""
    if name == "chain":
        return relay_chain(v, CHAIN_LENGTH, settings.chain_jobs, settings)
    if name == "durable":
        return durable(v, settings.deliveries, settings)
    if name == "stream":
        return stream(v, settings.stream_messages, settings)
    chain = relay_chain(v, START_LENGTH, settings.start_jobs, settings)
    return lambda: chain() * START_LENGTH


Samples = tuple[list[float], list[float]]
"""A workload's seconds per operation, repeat by repeat: base's, then head's."""


def measure(base: Sample, head: Sample, repeats: int) -> Samples:
    """Warm both up, then time them in turn, the order alternating each repeat."""
    base()
    head()
    taken: Samples = ([], [])
    for repeat in range(repeats):
        for side in (0, 1) if repeat % 2 == 0 else (1, 0):
            taken[side].append((base, head)[side]())
    return taken


def figures(samples: Samples) -> dict[str, float]:
    """Return the two medians, their ratio and the per-repeat ratios' spread."""
    base, head = statistics.median(samples[0]), statistics.median(samples[1])
    ratios = [h / b for b, h in zip(*samples, strict=True)]
    return {
        "base_median": base,
        "head_median": head,
        "ratio_of_medians": head / base,
        "median_ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def format_table(results: dict[str, Samples]) -> str:
    """Return the figures as a Markdown table (µs per operation) and ratio lines."""
    per = {"chain": "hop", "durable": "delivery", "start": "job", "stream": "message"}
    lines = [
        "| workload | base µs | head µs | head/base | median ratio | ratio range |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    table = {name: figures(samples) for name, samples in results.items()}
    for name, f in table.items():
        lines.append(
            f"| {name} (per {per[name]}) | {f['base_median'] * 1e6:.3f} "
            f"| {f['head_median'] * 1e6:.3f} | {f['ratio_of_medians']:.3f} "
            f"| {f['median_ratio']:.3f} | {f['ratio_min']:.3f}-{f['ratio_max']:.3f} |"
        )
    lines.append("")
    lines.extend(
        f"{name}: head/base {f['ratio_of_medians']:.3f} "
        f"(median of per-repeat ratios {f['median_ratio']:.3f})"
        for name, f in table.items()
    )
    return "\n".join(lines)


def _git(*args: str) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, check=True
    ).stdout


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise RuntimeError(f"A/B benchmark went wrong: {problem}")


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="git revision to compare to")
    parser.add_argument("--repeats", type=int, default=15, help="default 15")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--keep-gc", action="store_true", help="GC on in samples")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--deliveries", type=int, help="durable job's deliveries (default 101)"
    )
    parser.add_argument(
        "--commit-every", type=int, default=1, help="durable group commit N (1)"
    )
    args = parser.parse_args(argv)
    args.workloads = args.workloads.split(",")
    if args.repeats < 1 or not set(args.workloads) <= set(WORKLOADS):
        parser.error(f"need --repeats >= 1 and --workloads among {WORKLOADS}")
    return args


def revisions(base: str) -> tuple[str, str]:
    """Return the base and head revisions as short hashes, head marked if dirty."""
    base_rev = _git("rev-parse", "--short", base).decode().strip()
    head_rev = _git("rev-parse", "--short", "HEAD").decode().strip()
    if _git("status", "--porcelain", "--", "flowforge"):
        head_rev += " (+ working tree)"
    return base_rev, head_rev


def main(args: argparse.Namespace) -> int:
    """Load both versions, time the chosen workloads, print and save the figures."""
    loads = [os.getloadavg()]
    chain_jobs, deliveries, start_jobs = (10, 20, 20) if args.quick else (200, 100, 500)
    settings = Settings(
        chain_jobs,
        deliveries if args.deliveries is None else args.deliveries,
        start_jobs,
        keep_gc=args.keep_gc,
        commit_every=args.commit_every,
        stream_messages=1_000 if args.quick else 20_000,
    )
    base_rev, head_rev = revisions(args.base)
    with tempfile.TemporaryDirectory(prefix="flowforge-ab-base-") as folder:
        base, head = import_base(args.base, Path(folder)), import_version(ROOT)
        results = {
            name: measure(
                workload(name, base, settings),
                workload(name, head, settings),
                args.repeats,
            )
            for name in args.workloads
        }
    loads.append(os.getloadavg())
    start, end = (", ".join(f"{x:.2f}" for x in load) for load in loads)
    print(f"base {base_rev}, head {head_rev}; CPython {platform.python_version()}")
    print(
        f"repeats={args.repeats}, quick={args.quick}, keep_gc={args.keep_gc}, "
        f"deliveries={settings.deliveries}, commit_every={settings.commit_every}"
    )
    print(f"load average (1, 5, 15 min): start {start}; end {end}")
    print()
    print(format_table(results))
    if args.json:
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "revisions": {"base": base_rev, "head": head_rev},
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg": {"start": loads[0], "end": loads[1]},
            "settings": {"repeats": args.repeats, **asdict(settings)},
            "unit": "seconds per operation",
            "workloads": {
                name: {**figures(r), "base": r[0], "head": r[1]}
                for name, r in results.items()
            },
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(parse()))
