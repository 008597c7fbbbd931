"""Every script in examples/ runs, exits 0 and prints what its docstring promises.

``EXPECTED`` lists each example's whole output, line by line: a ``str`` is an
exact line, a pattern must match a line whose figures vary (timings). Each
entry must also appear in the example's docstring, so the docstring cannot
drift from the code. A new example without an entry fails the suite.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ERROR_2 = "['worker: ValueError: bad 2']"
MERGED = "merged 1: wh/1.csv + lake/1.json, 3: wh/3.csv + lake/3.json"

Line = str | re.Pattern[str]

EXPECTED: dict[str, list[Line]] = {
    "async_example.py": [
        "downloads: completed, 8 pages, 208 bytes",
        # Eight 0.1 s waits overlap: well under their 0.8 s sum even when busy.
        re.compile(r"8 waits of 0\.1 s overlapped: the job took 0\.[1-3]\d s"),
    ],
    "basic_example.py": ["completed", "{'processed_count': 3}"],
    "data_processing.py": [
        "status: completed",
        "validate: {'rejected': 1}",
        "aggregate: {'lines': 3, 'premium': 1, 'total': 31.5}",
    ],
    "concurrent_example.py": [
        "sequential: completed, 8 pages, 208 bytes",
        "concurrent: completed, 8 pages, 208 bytes",
        # Eight 0.1 s waits overlap: at least twice as fast even on a busy machine.
        re.compile(r"concurrent was ([2-9]|[1-9]\d)\.\dx faster"),
    ],
    "dask_example.py": [
        "8 jobs: completed",
        "sums of squares: [0, 1, 5, 14, 30, 55, 91, 140]",
        "stats here: {}",
    ],
    "durable_recovery_example.py": [
        "child exited with 1; stored job is running",
        "recovered: completed, stats {'charged': 3}",
        "charge ran 4 times, 3 receipts written",
    ],
    "etl_merge_example.py": [
        f"sequential: completed, {MERGED}",
        f"concurrent: completed, {MERGED}",
        "errors: ['lake: lake is full for record 2']",
        "waiting: record 2 has heard from ['warehouse'], not from ['lake']",
    ],
    "error_handling_example.py": [
        f"stop: failed, sink [1], retries 0, errors {ERROR_2}",
        f"continue: completed, sink [1, 3], retries 0, errors {ERROR_2}",
        f"skip: completed, sink [1], retries 0, errors {ERROR_2}",
        "retry: completed, sink [1, 2, 3], retries 2, errors []",
    ],
    "fallback_example.py": [
        "a: api",
        "b: fallback (ConnectionError after 3 attempts: b is down)",
        "c: api",
        "d: fallback (ConnectionError after 3 attempts: d is down)",
        "e: api",
        "job: completed, errors kept for [{'item': 'b'}, {'item': 'd'}]",
        "api: 3 succeeded, 5 retried, 2 routed, 0 failed",
    ],
    "pause_resume_example.py": [
        "paused: 'B-2 is over 100', 2 pending",
        "resumed: completed, ship {'shipped': 3, 'total': 190}",
        "cancelled: 2 dropped, ship {'shipped': 1, 'total': 40}",
    ],
    "state_management_example.py": [
        "stats now: {'count': 5, 'sum': 55}; job 1 saw {'count': 3, 'sum': 14}",
        "numbers: completed, 1 deliveries, 0 errors",
        "square: completed, 2 deliveries, 0 errors",
        "total: completed, 2 deliveries, 0 errors",
        "history: #0 numbers, #1 square, #3 total, #2 square, #4 total",
        re.compile(r"square: 2 runs, success rate 100%, avg \d+\.\d{3} ms"),
        re.compile(r"flow: 5 deliveries, 4 events, \d+\.\d{3} ms"),
    ],
}


def example_scripts() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py"))


def run_example(script: Path) -> subprocess.CompletedProcess[str]:
    # Put this checkout first, so the examples run against the code under test.
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )


def matches(expected: Line, line: str) -> bool:
    if isinstance(expected, str):
        return line == expected
    return expected.fullmatch(line) is not None


def promised_in(expected: Line, docstring: str) -> bool:
    if isinstance(expected, str):
        return expected in docstring
    return expected.search(docstring) is not None


SCRIPTS = example_scripts()
NAMES = [script.name for script in SCRIPTS]


def test_examples_directory_holds_the_known_examples() -> None:
    assert {"basic_example.py", "data_processing.py"} <= set(NAMES)


@pytest.mark.parametrize("script", SCRIPTS, ids=NAMES)
def test_every_example_has_expected_output(script: Path) -> None:
    assert script.name in EXPECTED, f"add {script.name}'s output to EXPECTED"


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_expected_output_belongs_to_an_existing_example(name: str) -> None:
    assert name in NAMES


@pytest.mark.parametrize("script", SCRIPTS, ids=NAMES)
def test_example_docstring_promises_its_expected_output(script: Path) -> None:
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))

    assert docstring, f"{script.name} needs a docstring saying what it prints"
    missing = [
        e for e in EXPECTED.get(script.name, []) if not promised_in(e, docstring)
    ]
    assert missing == []


@pytest.mark.parametrize("script", SCRIPTS, ids=NAMES)
def test_example_exits_zero_and_prints_its_expected_output(script: Path) -> None:
    expected = EXPECTED.get(script.name)
    assert expected is not None, f"add {script.name}'s output to EXPECTED"
    module, message = NEEDS_EXTRA.get(script.name, ("flowforge", ""))
    if importlib.util.find_spec(module) is None and not os.environ.get("CI"):
        pytest.skip(message)  # CI installs every extra: there it must run

    result = run_example(script)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected), result.stdout
    for want, line in zip(expected, lines, strict=True):
        assert matches(want, line), f"expected {want!r}, got {line!r}"


# The examples that need an optional extra: the module that extra provides,
# and the one line each prints, with status 1, when it is missing.
NEEDS_EXTRA = {
    "dask_example.py": (
        "distributed",
        'dask_example.py needs the "dask" extra: pip install "flowforge[dask]"',
    ),
}
OPTIONAL = {"distributed", "dask", "psycopg", "psycopg_pool", "flowforge.dask"}
OPTIONAL |= {"flowforge.store.postgres"}


def imported_modules(script: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def run_without(script: Path, module: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as ``python script`` would, with ``module`` not installed."""
    code = (
        "import runpy, sys\n"
        f"sys.modules[{module!r}] = None\n"
        f"sys.path.insert(0, {str(script.parent)!r})\n"
        f"sys.argv = [{str(script)!r}]\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.parametrize("script", SCRIPTS, ids=NAMES)
def test_every_example_that_imports_an_extra_says_how_to_install_it(
    script: Path,
) -> None:
    optional = sorted(imported_modules(script) & OPTIONAL)

    assert not optional or script.name in NEEDS_EXTRA, optional


@pytest.mark.parametrize("name", sorted(NEEDS_EXTRA), ids=sorted(NEEDS_EXTRA))
def test_example_without_its_extra_prints_one_line_and_exits_1(name: str) -> None:
    module, message = NEEDS_EXTRA[name]

    result = run_without(EXAMPLES / name, module)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == message + "\n"
