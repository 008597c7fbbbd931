"""SIGKILL a durable job anywhere, recover it in a new process: same job as unkilled.

Each case runs ``_kill_flow.py run`` in a child process that SIGKILLs itself
at one point (before a delivery, inside a handler, after a handler but
before its commit, right after a commit; see ``_kill_flow`` for exactly
where), then ``_kill_flow.py recover`` in a second process, and compares with
an uninterrupted run: the same results and delivery counts, every delivery
completed once in the stored history, and the handlers' side-effect log equal
to the uninterrupted one except for the one delivery in flight at the kill.

The kill-and-recover run of a case is a module-scoped fixture, so that the
tests stating its separate promises share two processes per case.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import _kill_flow
from _kill_flow import (
    CHECKPOINTS,
    ENTRY,
    ENTRY_PARAMS,
    HANDLER_CALLS,
    HANDLER_POINTS,
    JOB_ID,
    LOG_ENV,
    LOOPS,
    POINTS,
    build_flow,
    summary,
)
from flowforge import JobState, JobStateError, JobStatus
from flowforge.store import SqliteStore
from flowforge.store._change_log import FOLD_EVERY

SCRIPT = Path(_kill_flow.__file__)
FINAL_OUTCOMES = ("completed", "buffered")
"""A delivery's last record: handled, or (a join arrival) waiting for the rest."""

History = tuple[int, str, "str | None", str, int]
"""``(seq, routine_id, slot, outcome, attempt)``"""
Key = tuple[str, int, int]
"""A side effect: ``(routine_id, seq, attempt)``."""
Case = tuple[str, int]
"""A kill point and N."""

CHECKPOINT_CASES = {
    1: ("entry", ("start", "completed", 0)),
    7: ("join-waits", ("join", "buffered", 0)),
    10: ("retried", ("b2", "retried", 0)),
    11: ("retry-succeeds", ("b2", "completed", 1)),
    26: ("join-fires", ("join", "completed", 0)),
    28: ("loop-round", ("t0", "completed", 0)),
    CHECKPOINTS: ("last", ("sink", "completed", 0)),
}
"""Checkpoint N -> (name, the delivery it commits as (routine, outcome, attempt))."""
HANDLER_CASES = {
    1: ("entry", ("start", 0)),
    9: ("failing-attempt", ("b2", 0)),
    10: ("retry-attempt", ("b2", 1)),
    23: ("join-fires", ("join", 0)),
    24: ("loop", ("loop", 0)),
    HANDLER_CALLS: ("last", ("sink", 0)),
}
"""Handler call N -> (name, the call as (routine, attempt))."""
RANDOM_CASES = 30
RANDOM_SEED = 20260101


def named_cases() -> list[tuple[str, int, str]]:
    cases = []
    for point in POINTS:
        table = HANDLER_CASES if point in HANDLER_POINTS else CHECKPOINT_CASES
        cases += [(point, n, f"{point}-{n}-{name}") for n, (name, _) in table.items()]
    return cases


def random_cases() -> list[tuple[str, int, str]]:
    named = {(point, n) for point, n, _ in named_cases()}
    others = [
        (point, n)
        for point in POINTS
        for n in range(1, limit(point) + 1)
        if (point, n) not in named
    ]
    chosen = random.Random(RANDOM_SEED).sample(others, RANDOM_CASES)
    return [(point, n, f"random-{point}-{n}") for point, n in chosen]


def limit(point: str) -> int:
    return HANDLER_CALLS if point in HANDLER_POINTS else CHECKPOINTS


def fold_cases() -> list[tuple[str, int, str]]:
    """Kill points around the first fold of the job's change log into its rows.

    Checkpoint ``FOLD_EVERY`` folds the log in its own transaction: killed
    before it, the recovery replays ``FOLD_EVERY - 1`` logged changes; after
    it, none; one checkpoint later, one.
    """
    taken = {(point, n) for point, n, _ in named_cases() + random_cases()}
    cases = [
        (point, n, f"{point}-{n}-fold-{where}")
        for n, where in zip(
            (FOLD_EVERY - 1, FOLD_EVERY, FOLD_EVERY + 1), ("before", "at", "after")
        )
        for point in ("before-commit", "after-commit")
    ]
    return [case for case in cases if case[:2] not in taken]


CASES = named_cases() + random_cases() + fold_cases()


@dataclass(frozen=True)
class Outcome:
    """A run's JSON summary (see ``_kill_flow.summary``)."""

    status: str
    results: dict[str, object]
    deliveries: dict[str, int]
    delivery_count: int
    runs: dict[str, list[int]]
    events: list[list[object]]
    history: list[History]
    handler_calls: int
    checkpoints: int

    @classmethod
    def parse(cls, text: str) -> Outcome:
        data: dict[str, Any] = json.loads(text)
        return cls(
            status=data["status"],
            results=data["results"],
            deliveries=data["deliveries"],
            delivery_count=data["delivery_count"],
            runs=data["runs"],
            events=data["events"],
            history=[(s, r, slot, o, a) for s, r, slot, o, a in data["history"]],
            handler_calls=data["handler_calls"],
            checkpoints=data["checkpoints"],
        )


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run: its outcome and its side effects in order."""

    outcome: Outcome
    log: list[Key]


@dataclass(frozen=True)
class Recovery:
    """A case: the killed run's exit and side effects, then the recovery's."""

    point: str
    n: int
    db: Path
    log_path: Path
    returncode: int
    stderr: str
    killed_log: list[Key]
    outcome: Outcome
    log: list[Key]


def run_script(
    *args: str | Path, flags: tuple[str, ...] = (), script: Path = SCRIPT
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (``_kill_flow.py``) with ``args`` and ``flags`` (``--async``)."""
    command = [sys.executable, str(script), *map(str, args), *flags]
    for attempt in range(3):
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=60, check=False
            )
        except OSError as error:
            # CPython 3.11's vfork spawn, run from several threads at once, has
            # been seen to fail the child's exec with EFAULT before the script
            # starts: nothing ran, so spawning again is safe.
            if error.errno != errno.EFAULT or attempt == 2:
                raise
    raise AssertionError("unreachable")


def read_log(path: Path) -> list[Key]:
    if not path.exists():
        return []
    keys = []
    for line in path.read_text().splitlines():
        routine_id, seq, attempt = line.split()
        keys.append((routine_id, int(seq), int(attempt)))
    return keys


def finished(process: subprocess.CompletedProcess[str], before: str = "") -> Outcome:
    assert process.returncode == 0, (
        f"{before}{process.args} exited with {process.returncode}\n"
        f"stdout: {process.stdout}\nstderr: {process.stderr}"
    )
    return Outcome.parse(process.stdout)


def kill_and_recover(
    directory: Path,
    point: str,
    n: int,
    flags: tuple[str, ...] = (),
    script: Path = SCRIPT,
) -> Recovery:
    db, log = directory / "jobs.sqlite", directory / "side_effects.log"
    at = f"{point}:{n}"
    killed = run_script("run", db, log, "--kill-at", at, flags=flags, script=script)
    killed_log = read_log(log)
    recovered = finished(
        run_script("recover", db, log, flags=flags, script=script),
        f"killed run exited with {killed.returncode}, stderr: {killed.stderr}\n",
    )
    return Recovery(
        point=point,
        n=n,
        db=db,
        log_path=log,
        returncode=killed.returncode,
        stderr=killed.stderr,
        killed_log=killed_log,
        outcome=recovered,
        log=read_log(log),
    )


def in_flight(reference: Reference, point: str, n: int) -> tuple[int, Key | None]:
    """Return how many side effects the killed run made, and the one repeated.

    Handler call N made the N-th side effect of the uninterrupted run, and
    checkpoint N committed its N-th history record.
    """
    if point == "before-delivery":
        return n - 1, None
    if point == "inside-handler":
        return n, reference.log[n - 1]
    committed = reference.outcome.history[:n]
    made = sum(outcome != "buffered" for _, _, _, outcome, _ in committed)
    seq, routine_id, _, outcome, attempt = committed[-1]
    if point == "before-commit" and outcome != "buffered":
        return made, (routine_id, seq, attempt)
    return made, None


def selected_cases(items: list[pytest.Item]) -> list[Case]:
    """Return the cases of the collected tests that use ``recovery``, in order."""
    cases: dict[Case, None] = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "recovery" in callspec.params:
            cases[callspec.params["recovery"]] = None
    return list(cases)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The uninterrupted run, in a child process like the killed ones."""
    directory = tmp_path_factory.mktemp("reference")
    log = directory / "side_effects.log"
    outcome = finished(run_script("full", directory / "jobs.sqlite", log))
    return Reference(outcome, read_log(log))


@pytest.fixture(scope="module")
def recoveries(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Case, Future[Recovery]]]:
    """Every selected case's kill and recovery, run a few at a time.

    The children mostly start up and wait on SQLite, so running one case per
    core in threads keeps the module fast; each test waits for its own case.
    """
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        yield {
            (point, n): pool.submit(
                kill_and_recover, tmp_path_factory.mktemp(f"{point}-{n}"), point, n
            )
            for point, n in selected_cases(request.session.items)
        }


@pytest.fixture(
    scope="module", params=[p[:2] for p in CASES], ids=[p[2] for p in CASES]
)
def recovery(
    request: pytest.FixtureRequest, recoveries: dict[Case, Future[Recovery]]
) -> Recovery:
    """A job SIGKILLed at ``POINT:N`` in one process and recovered in another."""
    case: Case = request.param
    return recoveries[case].result(timeout=300)


def test_uninterrupted_run_has_fan_out_join_loop_and_retries(
    reference: Reference,
) -> None:
    outcome = reference.outcome

    outcomes = Counter(o for _, _, _, o, _ in outcome.history)

    assert outcome.status == "completed"
    assert len(outcome.deliveries) == 30
    assert outcomes == {"completed": 62, "buffered": 3, "retried": 3}
    assert outcome.deliveries["loop"] == LOOPS + 1
    assert outcome.results["count"] == LOOPS + 1
    assert (outcome.handler_calls, outcome.checkpoints) == (HANDLER_CALLS, CHECKPOINTS)
    assert len(reference.log) == HANDLER_CALLS


def test_kill_points_include_both_sides_of_a_change_log_fold() -> None:
    cases = {(point, n) for point, n, _ in CASES}

    assert CHECKPOINTS > FOLD_EVERY
    for n in (FOLD_EVERY - 1, FOLD_EVERY, FOLD_EVERY + 1):
        assert {("before-commit", n), ("after-commit", n)} <= cases


def test_named_kill_points_are_where_their_ids_say(reference: Reference) -> None:
    checkpoints = {
        n: (routine_id, outcome, attempt)
        for n, (_, routine_id, _, outcome, attempt) in enumerate(
            reference.outcome.history, start=1
        )
    }
    calls = {n: (key[0], key[2]) for n, key in enumerate(reference.log, start=1)}

    assert {n: checkpoints[n] for n in CHECKPOINT_CASES} == {
        n: where for n, (_, where) in CHECKPOINT_CASES.items()
    }
    assert {n: calls[n] for n in HANDLER_CASES} == {
        n: where for n, (_, where) in HANDLER_CASES.items()
    }


def test_random_kill_points_are_reproducible_and_distinct() -> None:
    again = random_cases()

    assert again == random_cases()
    assert len({(point, n) for point, n, _ in CASES}) == len(CASES)
    assert len(again) >= 30


def assert_recovered_as_uninterrupted(
    recovery: Recovery, reference: Reference, point: str, n: int
) -> None:
    """A killed and recovered run ends as the reference, each side effect once."""
    outcome, expected = recovery.outcome, reference.outcome
    made, repeated = in_flight(reference, point, n)
    resumed_at = made - (repeated is not None)
    final = Counter(seq for seq, _, _, o, _ in outcome.history if o in FINAL_OUTCOMES)

    assert recovery.returncode == -signal.SIGKILL, recovery.stderr
    assert outcome.status == "completed"
    assert outcome.results == expected.results
    assert outcome.deliveries == expected.deliveries
    assert outcome.delivery_count == expected.delivery_count
    assert outcome.history == expected.history
    assert final == {seq: 1 for seq in range(len(final))}
    assert recovery.killed_log == reference.log[:made]
    assert recovery.log[made:] == reference.log[resumed_at:]
    assert [k for k, c in Counter(recovery.log).items() if c > 1] == (
        [] if repeated is None else [repeated]
    )


def test_killed_run_dies_by_sigkill(recovery: Recovery) -> None:
    assert recovery.returncode == -signal.SIGKILL, recovery.stderr


def test_recovered_job_has_the_uninterrupted_results(
    recovery: Recovery, reference: Reference
) -> None:
    outcome, expected = recovery.outcome, reference.outcome

    assert outcome.status == "completed"
    assert outcome.results == expected.results
    assert outcome.deliveries == expected.deliveries
    assert outcome.delivery_count == expected.delivery_count


def test_recovered_job_records_each_delivery_completed_once(
    recovery: Recovery, reference: Reference
) -> None:
    store = SqliteStore(recovery.db)
    try:
        job = store.load(JOB_ID)
    finally:
        store.close()

    assert_each_delivery_finished_once(job, reference)


def assert_each_delivery_finished_once(job: JobState, reference: Reference) -> None:
    """The stored history has one final record per delivery, as the reference."""
    history = job.get_execution_history()
    final = Counter(h.seq for h in history if h.outcome in FINAL_OUTCOMES)

    assert job.status is JobStatus.COMPLETED
    assert final == {seq: 1 for seq in range(job.next_seq)}
    assert [
        (h.seq, h.routine_id, h.slot, h.outcome, h.attempt) for h in history
    ] == reference.outcome.history


def test_no_handler_runs_more_than_twice_for_one_delivery(
    recovery: Recovery,
) -> None:
    runs = Counter(recovery.log)

    assert max(runs.values()) <= 2
    assert len([key for key, count in runs.items() if count == 2]) <= 1


def test_recovery_repeats_only_the_delivery_in_flight(
    recovery: Recovery, reference: Reference
) -> None:
    made, repeated = in_flight(reference, recovery.point, recovery.n)

    resumed_at = made - (repeated is not None)

    assert recovery.killed_log == reference.log[:made]
    assert recovery.log[made:] == reference.log[resumed_at:]
    assert [k for k, c in Counter(recovery.log).items() if c > 1] == (
        [] if repeated is None else [repeated]
    )


def test_executing_the_recovered_job_id_again_runs_nothing(
    recovery: Recovery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOG_ENV, str(recovery.log_path))
    store = SqliteStore(recovery.db)

    try:
        job = build_flow().execute(ENTRY, ENTRY_PARAMS, job_id=JOB_ID, store=store)
    finally:
        store.close()

    assert job.status is JobStatus.COMPLETED
    assert summary(job)["results"] == recovery.outcome.results
    assert read_log(recovery.log_path) == recovery.log


def test_resuming_the_recovered_job_is_refused(recovery: Recovery) -> None:
    store = SqliteStore(recovery.db)

    try:
        with pytest.raises(JobStateError, match="only a paused, failed or interr"):
            build_flow().resume(JOB_ID, store=store)
    finally:
        store.close()


def test_executing_a_killed_job_id_again_is_refused_until_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, log = tmp_path / "jobs.sqlite", tmp_path / "side_effects.log"
    killed = run_script("run", db, log, "--kill-at", "inside-handler:23")
    monkeypatch.setenv(LOG_ENV, str(log))
    store = SqliteStore(db)

    try:
        with pytest.raises(JobStateError, match="it is never run twice"):
            build_flow().execute(ENTRY, ENTRY_PARAMS, job_id=JOB_ID, store=store)
    finally:
        store.close()

    assert killed.returncode == -signal.SIGKILL
    assert len(read_log(log)) == 23


@pytest.mark.parametrize(
    ("point", "n"),
    [
        ("before-delivery", 24),
        ("inside-handler", 10),
        ("before-commit", 10),
        ("after-commit", 26),
    ],
    ids=[
        "before-delivery-24",
        "inside-handler-10",
        "before-commit-10",
        "after-commit-26",
    ],
)
def test_recovered_job_counts_each_run_and_emission_once(
    tmp_path: Path, reference: Reference, point: str, n: int
) -> None:
    recovery = kill_and_recover(tmp_path, point, n)

    outcome, expected = recovery.outcome, reference.outcome

    assert recovery.returncode == -signal.SIGKILL
    assert outcome.runs == expected.runs
    assert outcome.events == expected.events
