"""Shared measuring code: time a workload beside its plain-Python baseline.

Each benchmark script builds :class:`Comparison` objects with :func:`compare`,
then hands them to :func:`report`, which prints a table, checks the targets
and writes the figures as JSON to ``benchmarks/results/<script>.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

DEFAULT_REPEATS: Final = 5
SHORT_REPEATS: Final = 25
"""The default for scripts whose samples take a fraction of a second."""
SHORT_JOBS: Final = 200
"""Jobs per repeat in those scripts: 25 short samples rather than 5 long
ones, so that a stall of the machine moves fewer samples than the median."""
QUICK_REPEATS: Final = 3
RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Options:
    """Command-line settings shared by every benchmark script."""

    quick: bool
    repeats: int
    check: bool
    output: Path


@dataclass(frozen=True, slots=True)
class Stats:
    """Seconds per operation over the timed repeats."""

    median: float
    minimum: float
    maximum: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Summarise ``samples``."""
        return cls(statistics.median(samples), min(samples), max(samples), (*samples,))


@dataclass(frozen=True, slots=True)
class Comparison:
    """One workload timed through FlowForge and through plain Python."""

    name: str
    operation: str
    operations: int
    flowforge: Stats
    baseline: Stats

    @property
    def ratio(self) -> float:
        """Return the median over repeats of FlowForge's cost over the baseline's.

        Each repeat times the two sides back to back, so a slow spell of a
        shared machine (about half a second here) slows both of one repeat
        and leaves its ratio nearly unchanged, where it would move a ratio of
        the two sides' medians: FlowForge's side takes most of the time, so
        it meets most of the slow spells.
        """
        pairs = zip(self.flowforge.samples, self.baseline.samples, strict=True)
        return statistics.median(ours / plain for ours, plain in pairs)


@dataclass(frozen=True, slots=True)
class Target:
    """An upper limit that a measured figure should stay under."""

    name: str
    value: float
    limit: float
    checked: bool = True
    """Whether ``--check`` fails on a miss; False for a goal only reported."""

    @property
    def passed(self) -> bool:
        """Whether the figure meets the limit."""
        return self.value <= self.limit


def parse_options(
    description: str,
    argv: Sequence[str] | None = None,
    *,
    repeats: int = DEFAULT_REPEATS,
) -> Options:
    """Read the shared flags; the JSON file is named after the running script.

    ``repeats`` is the script's default number of timed repeats. Scripts
    whose samples are short take more of them: the median of many short
    samples spread over the run is less moved by a stall of a shared
    machine, which lasts about half a second, than the median of five.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--repeats", type=int, help=f"timed repeats (default {repeats})"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 on a miss")
    parser.add_argument("--output", type=Path, help="JSON results file")
    args = parser.parse_args(argv)
    default = QUICK_REPEATS if args.quick else repeats
    chosen: int = default if args.repeats is None else args.repeats
    if chosen < 1:
        parser.error("--repeats must be at least 1")
    script = Path(sys.argv[0]).stem
    output: Path = args.output or RESULTS_DIR / f"{script}.json"
    return Options(args.quick, chosen, args.check, output)


def time_per_operation(run: Callable[[], object], operations: int) -> float:
    """Return the seconds ``run()`` takes, divided by its ``operations``."""
    gc.collect()
    # perf_counter is monotonic too, with the finest resolution available.
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / operations


def compare(
    name: str,
    operation: str,
    operations: int,
    flowforge: Callable[[], object],
    baseline: Callable[[], object],
    repeats: int,
) -> Comparison:
    """Warm both callables up once, then time them in turn ``repeats`` times.

    Alternating the two keeps slow drifts of the machine (frequency, other
    load) from favouring either side.
    """
    flowforge()
    baseline()
    ours: list[float] = []
    plain: list[float] = []
    for _ in range(repeats):
        ours.append(time_per_operation(flowforge, operations))
        plain.append(time_per_operation(baseline, operations))
    return Comparison(name, operation, operations, Stats.of(ours), Stats.of(plain))


def machine_info() -> dict[str, object]:
    """Describe the machine and interpreter the figures come from."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }


def format_table(comparisons: Sequence[Comparison]) -> str:
    """Return the comparisons as an aligned text table (times in microseconds)."""
    header = ("workload", "side", "median µs", "min µs", "max µs", "per second")
    rows = [header]
    for item in comparisons:
        for side, stats in (("flowforge", item.flowforge), ("baseline", item.baseline)):
            rows.append(
                (
                    f"{item.name} (per {item.operation})",
                    side,
                    f"{stats.median * 1e6:.3f}",
                    f"{stats.minimum * 1e6:.3f}",
                    f"{stats.maximum * 1e6:.3f}",
                    f"{1 / stats.median:,.0f}",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.extend(
        f"{c.name}: ratio {c.ratio:.1f}x (median of the repeats' ratios)"
        for c in comparisons
    )
    return "\n".join(lines)


def report(
    options: Options,
    settings: dict[str, object],
    comparisons: Sequence[Comparison],
    targets: Sequence[Target],
) -> int:
    """Print the results, write them as JSON and return the exit status."""
    workloads = [_comparison_dict(c) for c in comparisons]
    return publish(options, settings, format_table(comparisons), workloads, targets)


def publish(
    options: Options,
    settings: dict[str, object],
    table: str,
    workloads: Sequence[Mapping[str, object]],
    targets: Sequence[Target],
    extra: Mapping[str, object] | None = None,
) -> int:
    """Print ``table`` and the targets, write them as JSON; return the exit status.

    ``workloads`` and ``extra`` (more top-level keys) go to the JSON file only.
    """
    machine = machine_info()
    print(
        f"Python {machine['python']} on {machine['platform']}, "
        f"{machine['cpu_count']} CPUs; repeats={options.repeats}, "
        f"quick={options.quick}"
    )
    print()
    print(table)
    print()
    for target in targets:
        verdict = "PASS" if target.passed else "FAIL"
        note = "" if target.checked else " (goal, not checked)"
        print(
            f"target {target.name} <= {target.limit:g}: "
            f"{target.value:.1f} {verdict}{note}"
        )
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "settings": {"repeats": options.repeats, "quick": options.quick, **settings},
        "workloads": list(workloads),
        **(extra or {}),
        "targets": [{**asdict(t), "passed": t.passed} for t in targets],
    }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {options.output}")
    missed = any(target.checked and not target.passed for target in targets)
    return 1 if options.check and missed else 0


def _comparison_dict(item: Comparison) -> dict[str, object]:
    return {
        "name": item.name,
        "operation": item.operation,
        "operations_per_repeat": item.operations,
        "unit": "seconds per operation",
        "flowforge": asdict(item.flowforge),
        "baseline": asdict(item.baseline),
        "ratio": item.ratio,
    }
