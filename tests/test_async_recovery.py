"""SIGKILL a durable async job anywhere, recover it in a new process: as unkilled.

The harness of ``test_recovery.py`` with ``_kill_flow.py --async``: every
routine of the 30-routine flow has an ``async def`` handler, the killed run
goes through ``asyncio.run(flow.execute_async(...))`` and the recovery through
``Flow.recover``, which runs the async flow on a private loop. The cases are
the deterministic boundaries (the named kill points: entry, join waits and
fires, a failed attempt and its retry, a loop round, the last delivery, at
each of the four points) and 30 random points. Each case is one test stating
the per-delivery checkpoint promise; ``test_recovery.py`` splits the same
promises into separate tests for the synchronous engine.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final

import pytest

from _kill_flow import CHECKPOINTS, HANDLER_CALLS, HANDLER_POINTS, POINTS
from test_recovery import (
    Recovery,
    Reference,
    assert_recovered_as_uninterrupted,
    finished,
    kill_and_recover,
    named_cases,
    read_log,
    run_script,
)

RANDOM_CASES = 30
RANDOM_SEED = 20261207
Case = tuple[str, int]


def random_cases() -> list[tuple[str, int, str]]:
    named = {(point, n) for point, n, _ in named_cases()}
    others = [
        (point, n)
        for point in POINTS
        for n in range(
            1, (HANDLER_CALLS if point in HANDLER_POINTS else CHECKPOINTS) + 1
        )
        if (point, n) not in named
    ]
    chosen = random.Random(RANDOM_SEED).sample(others, RANDOM_CASES)
    return [(point, n, f"random-{point}-{n}") for point, n in chosen]


CASES = named_cases() + random_cases()


ASYNC: Final = ("--async",)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The uninterrupted async run, in a child process like the killed ones."""
    directory = tmp_path_factory.mktemp("async-reference")
    log = directory / "side_effects.log"
    outcome = finished(run_script("full", directory / "jobs.sqlite", log, flags=ASYNC))
    return Reference(outcome, read_log(log))


@pytest.fixture(scope="module")
def recoveries(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[Case, Future[Recovery]]]:
    """Every case's kill and recovery, one per core at a time."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        yield {
            (point, n): pool.submit(
                kill_and_recover,
                tmp_path_factory.mktemp(f"async-{point}-{n}"),
                point,
                n,
                ASYNC,
            )
            for point, n, _ in CASES
        }


def test_uninterrupted_async_run_equals_the_sync_flow_run(
    reference: Reference, tmp_path: Path
) -> None:
    log = tmp_path / "side_effects.log"

    sync = finished(run_script("full", tmp_path / "db", log))

    assert reference.outcome == sync
    assert reference.log == read_log(log)
    assert reference.outcome.status == "completed"
    assert (reference.outcome.handler_calls, reference.outcome.checkpoints) == (
        HANDLER_CALLS,
        CHECKPOINTS,
    )


@pytest.mark.parametrize(
    ("point", "n"), [case[:2] for case in CASES], ids=[case[2] for case in CASES]
)
def test_killed_async_job_recovers_to_the_uninterrupted_result(
    point: str,
    n: int,
    reference: Reference,
    recoveries: dict[Case, Future[Recovery]],
) -> None:
    recovery = recoveries[(point, n)].result(timeout=300)

    assert_recovered_as_uninterrupted(recovery, reference, point, n)
