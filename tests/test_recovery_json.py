"""SIGKILL a durable job kept in a JsonDirectoryStore; recover it: same job as unkilled.

``test_recovery.py``'s machinery, with ``_kill_flow.py --store json``: the job
lives in a JSON directory, whose checkpoints append to the job's change log
and fold it into the job's file every ``FOLD_EVERY`` checkpoints. Cases: kills
on both sides of a checkpoint's append at the first, last and fold-adjacent
checkpoints, inside a handler, inside the fold itself (after the job's file was
rewritten, before the log was removed: ``inside-fold:1``), and 30 random
points. The promises: the recovered job's results, counts and stored history
equal an uninterrupted run's (completions and emissions exactly once), and
only the delivery in flight at the kill runs its handler again.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final

import pytest

from _kill_flow import (
    CHECKPOINTS,
    FOLD_POINT,
    HANDLER_CALLS,
    HANDLER_POINTS,
    JOB_ID,
    JSON_FOLDER,
    POINTS,
)
from flowforge.store import JsonDirectoryStore
from flowforge.store._change_log import FOLD_EVERY
from test_recovery import (
    Recovery,
    Reference,
    assert_each_delivery_finished_once,
    assert_recovered_as_uninterrupted,
    finished,
    kill_and_recover,
    read_log,
    run_script,
)

FLAGS: Final = ("--store", "json")
RANDOM_CASES: Final = 30
RANDOM_SEED: Final = 20261208
Case = tuple[str, int]
"""A kill point and N."""


def boundary_cases() -> list[Case]:
    cases: list[Case] = []
    for n in (1, FOLD_EVERY - 1, FOLD_EVERY, FOLD_EVERY + 1, CHECKPOINTS):
        cases += [("before-commit", n), ("after-commit", n)]
    cases += [("inside-handler", 1), ("inside-handler", 30), (FOLD_POINT, 1)]
    return cases


def random_cases() -> list[Case]:
    taken = set(boundary_cases())
    others = [
        (point, n)
        for point in POINTS
        for n in range(
            1, (HANDLER_CALLS if point in HANDLER_POINTS else CHECKPOINTS) + 1
        )
        if (point, n) not in taken
    ]
    return random.Random(RANDOM_SEED).sample(others, RANDOM_CASES)


CASES: Final = boundary_cases() + random_cases()


def case_id(case: Case) -> str:
    return f"{case[0]}-{case[1]}"


def as_checkpoint_point(case: Case) -> Case:
    """A kill inside the fold of checkpoint FOLD_EVERY is one after its commit."""
    return ("after-commit", FOLD_EVERY) if case[0] == FOLD_POINT else case


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The uninterrupted run, in a JSON directory too."""
    directory = tmp_path_factory.mktemp("reference")
    log = directory / "side_effects.log"
    outcome = finished(run_script("full", directory / "jobs.sqlite", log, flags=FLAGS))
    return Reference(outcome, read_log(log))


@pytest.fixture(scope="module")
def recoveries(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[Case, Future[Recovery]]]:
    """Every case's kill and recovery, one per core at a time."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        yield {
            case: pool.submit(
                kill_and_recover,
                tmp_path_factory.mktemp(case_id(case)),
                case[0],
                case[1],
                FLAGS,
            )
            for case in CASES
        }


@pytest.fixture(scope="module", params=CASES, ids=[case_id(c) for c in CASES])
def json_recovery(
    request: pytest.FixtureRequest, recoveries: dict[Case, Future[Recovery]]
) -> tuple[Case, Recovery]:
    """A job in a JSON directory SIGKILLed at ``POINT:N``, then recovered."""
    case: Case = request.param
    return case, recoveries[case].result(timeout=600)


def stored_folder(recovery: Recovery) -> Path:
    return recovery.db.parent / JSON_FOLDER


def test_cases_cover_both_sides_of_the_append_and_fold_and_30_random_points() -> None:
    cases = set(CASES)

    assert len(cases) == len(CASES)
    assert len(random_cases()) == RANDOM_CASES
    assert CHECKPOINTS > FOLD_EVERY
    for n in (FOLD_EVERY - 1, FOLD_EVERY, FOLD_EVERY + 1):
        assert {("before-commit", n), ("after-commit", n)} <= cases
    assert (FOLD_POINT, 1) in cases


def test_recovered_json_job_is_the_uninterrupted_one_each_side_effect_once(
    json_recovery: tuple[Case, Recovery], reference: Reference
) -> None:
    case, recovery = json_recovery

    point, n = as_checkpoint_point(case)

    assert recovery.returncode == -signal.SIGKILL, recovery.stderr
    assert_recovered_as_uninterrupted(recovery, reference, point, n)


def test_recovered_json_job_records_each_delivery_completed_once(
    json_recovery: tuple[Case, Recovery], reference: Reference
) -> None:
    _, recovery = json_recovery

    job = JsonDirectoryStore(stored_folder(recovery)).load(JOB_ID)

    assert_each_delivery_finished_once(job, reference)
    assert not (stored_folder(recovery) / f"{JOB_ID}.log").exists()


def test_a_kill_inside_the_fold_leaves_a_log_whose_lines_are_all_folded(
    tmp_path: Path,
) -> None:
    db, log = tmp_path / "jobs.sqlite", tmp_path / "side_effects.log"
    at = f"{FOLD_POINT}:1"

    killed = run_script("run", db, log, "--kill-at", at, flags=FLAGS)

    folder = tmp_path / JSON_FOLDER
    store = JsonDirectoryStore(folder)
    lines = (folder / f"{JOB_ID}.log").read_bytes().splitlines()
    assert killed.returncode == -signal.SIGKILL
    assert len(lines) == FOLD_EVERY
    assert store.load(JOB_ID).history_total == FOLD_EVERY
