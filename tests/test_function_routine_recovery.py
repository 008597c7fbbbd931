"""SIGKILL a durable job of function routines, recover it in a new process: as unkilled.

The harness of ``test_recovery.py`` (its kill points, kill switch, summary and
checks) on ``_kill_steps.py``: a flow wired with ``Flow.chain`` of plain and
``async def`` steps, a retried step, a step that feeds itself, and a
``Routine`` subclass at the end. Steps are rebuilt from their registered
classes in the recovering process.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final

import pytest

import _kill_steps
from _kill_flow import POINTS
from _kill_steps import HANDLER_CALLS, LOOPS
from test_recovery import (
    Recovery,
    Reference,
    assert_recovered_as_uninterrupted,
    finished,
    kill_and_recover,
    read_log,
    run_script,
)

SCRIPT: Final = Path(_kill_steps.__file__)
CHECKPOINTS: Final = HANDLER_CALLS
"""Every delivery and every retry is checkpointed once; no join waits here."""
CASES: Final = [(point, n) for point in POINTS for n in (1, 9, HANDLER_CALLS)]
Case = tuple[str, int]


def run_steps(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_script(*args, script=SCRIPT)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The uninterrupted run, in a child process like the killed ones."""
    directory = tmp_path_factory.mktemp("steps-reference")
    log = directory / "side_effects.log"
    outcome = finished(run_steps("full", directory / "jobs.sqlite", log))
    return Reference(outcome, read_log(log))


@pytest.fixture(scope="module")
def recoveries(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[Case, Future[Recovery]]]:
    """Every case's kill and recovery, two at a time."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {
            (point, n): pool.submit(
                kill_and_recover,
                tmp_path_factory.mktemp(f"steps-{point}-{n}"),
                point,
                n,
                script=SCRIPT,
            )
            for point, n in CASES
        }


def test_uninterrupted_run_loops_retries_and_ends_in_the_sink(
    reference: Reference,
) -> None:
    outcome = reference.outcome

    outcomes = Counter(o for _, _, _, o, _ in outcome.history)

    assert outcome.status == "completed"
    assert outcomes == {"completed": 14, "retried": 2}
    assert outcome.deliveries == {"parse": 1, "grow": LOOPS + 1, "flaky": 4, "sink": 4}
    assert outcome.results["values"] == [[1, 7], [2, 14], [3, 27], [4, 52]]
    assert (outcome.handler_calls, outcome.checkpoints) == (HANDLER_CALLS, CHECKPOINTS)


@pytest.mark.parametrize(("point", "n"), CASES, ids=[f"{p}-{n}" for p, n in CASES])
def test_killed_job_of_steps_recovers_to_the_uninterrupted_result(
    point: str,
    n: int,
    reference: Reference,
    recoveries: dict[Case, Future[Recovery]],
) -> None:
    recovery = recoveries[(point, n)].result(timeout=300)

    assert_recovered_as_uninterrupted(recovery, reference, point, n)
