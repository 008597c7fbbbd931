"""The benchmark suite runs, and its harness computes what its README says.

``make bench`` is how the performance figures are made; these tests keep its
scripts runnable (a smoke run of each with ``--quick``) and pin the harness's
arithmetic: a workload's ratio is the median of its repeats' own ratios.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
CORE = [
    "dispatch",
    "shapes",
    "memory",
    "durable",
    "concurrency",
    "async",
    "flow_size",
    "hop_size",
    "json_checkpoint",
]


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _harness

    yield _harness


def test_make_bench_runs_every_core_script() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    listed = next(line for line in makefile.splitlines() if line.startswith("BENCH"))

    assert listed.split(":=")[1].split() == CORE
    assert {f"bench_{name}.py" for name in CORE} <= {
        path.name for path in BENCHMARKS.glob("bench_*.py")
    }


@pytest.mark.parametrize("name", CORE)
def test_each_core_script_runs_quick_and_writes_its_results(
    name: str, tmp_path: Path
) -> None:
    output = tmp_path / f"{name}.json"
    script = BENCHMARKS / f"bench_{name}.py"

    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    results = json.loads(output.read_text(encoding="utf-8"))
    assert results["settings"]["quick"] is True
    assert results["workloads"]
    assert results["targets"]
    assert all(isinstance(t["passed"], bool) for t in results["targets"])
    assert "target" in done.stdout


def test_ab_script_runs_quick_against_head_and_prints_each_ratio() -> None:
    script = BENCHMARKS / "ab.py"

    done = subprocess.run(
        [sys.executable, str(script), "--base", "HEAD", "--repeats", "1", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )

    assert done.returncode == 0, done.stderr
    for name in ("chain", "durable", "start", "stream"):
        assert re.search(rf"^{name}: head/base \d+\.\d+ ", done.stdout, re.MULTILINE)


def test_a_ratio_is_the_median_of_the_repeats_ratios(harness: ModuleType) -> None:
    stats = harness.Stats.of
    ours = [2.0, 3.0, 9.0, 2.2, 2.1]
    plain = [0.1, 0.1, 0.1, 0.11, 0.1]
    comparison = harness.Comparison("w", "op", 10, stats(ours), stats(plain))

    expected = statistics.median(o / p for o, p in zip(ours, plain, strict=True))
    assert comparison.ratio == pytest.approx(expected)
    assert comparison.ratio == pytest.approx(21.0)  # not 22.0 = median / median
    assert comparison.flowforge.median == 2.2


def test_compare_times_both_sides_in_turn(harness: ModuleType) -> None:
    calls: list[str] = []

    comparison = harness.compare(
        "w", "op", 4, lambda: calls.append("ours"), lambda: calls.append("plain"), 3
    )

    assert calls == ["ours", "plain"] * 4  # a warm-up, then three timed turns
    assert len(comparison.flowforge.samples) == len(comparison.baseline.samples) == 3


def test_scripts_with_short_samples_take_more_repeats(harness: ModuleType) -> None:
    parse = harness.parse_options

    assert parse("d", []).repeats == harness.DEFAULT_REPEATS
    assert parse("d", [], repeats=25).repeats == 25
    assert parse("d", ["--quick"], repeats=25).repeats == 3
    assert parse("d", ["--repeats", "7"], repeats=25).repeats == 7
    with pytest.raises(SystemExit):
        parse("d", ["--repeats", "0"])
