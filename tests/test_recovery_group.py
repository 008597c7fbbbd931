"""SIGKILL a durable job run with group commit; recover it: same job as unkilled.

``test_recovery.py``'s machinery, with ``_kill_flow.py --commit-every N``: the
store commits a transaction per N checkpoints, so a kill loses up to the last
N checkpoints (the open group) and the recovery runs up to N handler bodies
again. The promises checked: the recovered job's results, counts and stored
history equal an uninterrupted run's (completions and emissions exactly once);
the handlers' side effects are the killed run's, then the uninterrupted run's
from a point at most N side effects back (a consistent prefix was stored).

Cases, for N = 1, 16 and 64: kills on both sides of the first and second group
commits (checkpoints N - 1, N, N + 1, 2N), inside a handler of each group, and
30 random points in all.
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final

import pytest

from _kill_flow import CHECKPOINTS, HANDLER_CALLS, HANDLER_POINTS, JOB_ID, POINTS
from flowforge.store import SqliteStore
from test_recovery import (
    Recovery,
    Reference,
    assert_each_delivery_finished_once,
    finished,
    kill_and_recover,
    read_log,
    run_script,
)

SIZES: Final = (1, 16, 64)
RANDOM_CASES: Final = 30
RANDOM_SEED: Final = 20261207
Case = tuple[int, str, int]
"""``(N, point, k)``: commit every N checkpoints, kill at ``point:k``."""


def flags(every: int) -> tuple[str, ...]:
    return ("--commit-every", str(every))


def boundary_cases() -> list[Case]:
    cases: list[Case] = []
    for every in SIZES:
        for k in sorted({every - 1, every, every + 1, 2 * every}):
            if 1 <= k <= CHECKPOINTS:
                cases += [(every, "before-commit", k), (every, "after-commit", k)]
        cases += [
            (every, "inside-handler", k)
            for k in sorted({every // 2 + 1, every + 2})
            if k <= HANDLER_CALLS
        ]
    return cases


def random_cases() -> list[Case]:
    taken = set(boundary_cases())
    others = [
        (every, point, k)
        for every in SIZES
        for point in POINTS
        for k in range(
            1, (HANDLER_CALLS if point in HANDLER_POINTS else CHECKPOINTS) + 1
        )
        if (every, point, k) not in taken
    ]
    return random.Random(RANDOM_SEED).sample(others, RANDOM_CASES)


CASES: Final = boundary_cases() + random_cases()


def case_id(case: Case) -> str:
    every, point, k = case
    return f"n{every}-{point}-{k}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The uninterrupted run (without group commit: the same for every N)."""
    directory = tmp_path_factory.mktemp("reference")
    log = directory / "side_effects.log"
    outcome = finished(run_script("full", directory / "jobs.sqlite", log))
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
                case[1],
                case[2],
                flags(case[0]),
            )
            for case in CASES
        }


@pytest.fixture(scope="module", params=CASES, ids=[case_id(c) for c in CASES])
def group_recovery(
    request: pytest.FixtureRequest, recoveries: dict[Case, Future[Recovery]]
) -> tuple[int, Recovery]:
    """N and a job SIGKILLed at ``POINT:K`` with group commit, then recovered."""
    case: Case = request.param
    return case[0], recoveries[case].result(timeout=600)


def test_cases_cover_every_size_with_boundaries_and_30_random_points() -> None:
    assert len(random_cases()) == RANDOM_CASES
    assert len(set(CASES)) == len(CASES)
    for every in SIZES:
        assert {(every, "after-commit", every), (every, "before-commit", every)} <= set(
            CASES
        )


def test_killed_group_run_dies_by_sigkill(group_recovery: tuple[int, Recovery]) -> None:
    _, killed = group_recovery

    assert killed.returncode == -signal.SIGKILL, killed.stderr


def test_recovered_group_job_has_the_uninterrupted_results(
    group_recovery: tuple[int, Recovery], reference: Reference
) -> None:
    _, killed = group_recovery
    outcome, expected = killed.outcome, reference.outcome

    assert outcome.status == "completed"
    assert outcome.results == expected.results
    assert outcome.deliveries == expected.deliveries
    assert outcome.delivery_count == expected.delivery_count
    assert outcome.runs == expected.runs
    assert outcome.events == expected.events
    assert outcome.history == expected.history


def test_recovered_group_job_records_each_delivery_completed_once(
    group_recovery: tuple[int, Recovery], reference: Reference
) -> None:
    _, killed = group_recovery
    store = SqliteStore(killed.db)
    try:
        job = store.load(JOB_ID)
    finally:
        store.close()

    assert_each_delivery_finished_once(job, reference)


def test_recovery_resumes_at_most_n_side_effects_back(
    group_recovery: tuple[int, Recovery], reference: Reference
) -> None:
    every, killed = group_recovery
    made = len(killed.killed_log)
    after = killed.log[made:]
    resumed_at = len(reference.log) - len(after)

    assert killed.killed_log == reference.log[:made]
    assert after == reference.log[resumed_at:]
    assert 0 <= made - resumed_at <= every
    assert max(Counter(killed.log).values()) <= 2


@pytest.mark.parametrize("every", [16, 64])
def test_a_kill_before_the_first_group_commit_redoes_the_whole_group(
    recoveries: dict[Case, Future[Recovery]], reference: Reference, every: int
) -> None:
    killed = recoveries[(every, "after-commit", every - 1)].result(timeout=600)

    made = len(killed.killed_log)
    redone = made - (len(reference.log) - len(killed.log[made:]))

    # Nothing was committed but the job's start: every side effect is redone.
    assert redone == len(killed.killed_log) > 1
