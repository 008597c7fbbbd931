"""The ``flowforge`` commands that change jobs: resume, cancel, recover, prune."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _cli_flows
import pytest
from click.testing import CliRunner, Result

from flowforge import JobStatus
from flowforge.cli._app import cli
from flowforge.cli._recovery import PROGRESS_FROM, Summary
from flowforge.store import JsonDirectoryStore, SqliteStore, Store

FLOW = "_cli_flows:build_flow"
LENIENT = "_cli_flows:build_lenient_flow"

Invoke = Callable[..., Result]


@pytest.fixture
def invoke() -> Invoke:
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, list(args))

    return run


@pytest.fixture(params=["sqlite", "json"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Store, str]:
    """An empty store of each file backend, and its URL."""
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "jobs.db"), f"sqlite:///{tmp_path}/jobs.db"
    return JsonDirectoryStore(tmp_path / "jobs"), f"json:///{tmp_path}/jobs"


def test_resume_retries_a_failed_job_on_the_fixed_flow(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    store, url = backend
    _cli_flows.run_job(store, "broken", [1, 2], bad=[2])

    result = invoke("resume", url, "broken", "--flow", LENIENT)

    assert (result.exit_code, result.stdout) == (0, "job broken completed\n")
    assert store.get("broken").status is JobStatus.COMPLETED


def test_resume_on_a_changed_flow_says_how_to_force_it(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    store, url = backend
    _cli_flows.run_job(store, "broken", [1, 2], bad=[2])
    changed = "_cli_flows:build_extended_flow"

    refused = invoke("resume", url, "broken", "--flow", changed)
    forced = invoke("resume", url, "broken", "--flow", changed, "--force")

    assert refused.exit_code == 1
    assert "started on a different definition" in refused.stderr
    assert "flowforge resume --force" in refused.stderr
    assert (forced.exit_code, forced.stdout) == (0, "job broken completed\n")


def test_resume_of_a_job_that_fails_again_exits_1(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    store, url = backend
    _cli_flows.run_job(store, "broken", [1, 2], bad=[2])

    result = invoke("resume", url, "broken", "--flow", FLOW)

    assert result.exit_code == 1
    assert result.stdout == "job broken failed: check: ValueError: cannot check 2\n"


def test_resume_of_a_completed_job_is_refused_in_one_line(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    store, url = backend
    _cli_flows.run_job(store, "done", [1])

    result = invoke("resume", url, "done", "--flow", FLOW)

    assert result.exit_code == 1
    assert result.stderr == (
        "error: job 'done' is completed: only a paused, failed or interrupted job "
        "can be resumed\n"
    )


def test_resume_of_a_missing_job_exits_1(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    result = invoke("resume", backend[1], "nope", "--flow", FLOW)

    assert result.exit_code == 1
    assert result.stderr == "error: no stored job with id 'nope'\n"


def test_resume_needs_a_flow(invoke: Invoke, backend: tuple[Store, str]) -> None:
    result = invoke("resume", backend[1], "job")

    assert result.exit_code == 2
    assert "Missing option '--flow'" in result.stderr


def test_resume_with_a_flow_that_cannot_be_imported_exits_1(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    result = invoke("resume", backend[1], "job", "--flow", "no_such_module_xyz:f")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot import 'no_such_module_xyz'")


def test_cancel_ends_a_paused_job(invoke: Invoke, backend: tuple[Store, str]) -> None:
    store, url = backend
    _cli_flows.paused_job(store, "paused")

    result = invoke("cancel", url, "paused", "--flow", FLOW)

    assert (result.exit_code, result.stdout) == (0, "job paused cancelled\n")
    assert store.load("paused").pending == []


def test_cancel_refuses_a_running_job(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    store, url = backend
    _cli_flows.abandon(store, ["running"])

    result = invoke("cancel", url, "running", "--flow", FLOW)

    assert result.exit_code == 1
    assert result.stderr == (
        "error: job 'running' is running (owner 'elsewhere:1:x'): only a paused "
        "job can be cancelled from outside the process that runs it\n"
    )
    assert store.get("running").status is JobStatus.RUNNING


def test_cancel_refuses_an_ended_job(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    store, url = backend
    _cli_flows.run_job(store, "done", [1])

    result = invoke("cancel", url, "done", "--flow", FLOW)

    assert result.exit_code == 1
    assert result.stderr == "error: job 'done' is completed: cannot cancel it\n"


def test_recover_finishes_abandoned_jobs_and_leaves_live_ones(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    store, url = backend
    _cli_flows.abandon(store, ["lost-1", "lost-2"])
    live = "elsewhere:2:y"
    _cli_flows.abandon(store, ["live"], owner=live)
    assert store.acquire(
        "live", owner=live, lease_until=time.time() + 600, now=time.time()
    )

    result = invoke("recover", url, "--flow", FLOW)

    assert result.exit_code == 0, result.stdout
    assert result.stdout == (
        "recovered 2 of 3 running or pending jobs (2 completed)\n"
        "left alone 1 (a live process runs them)\n"
    )
    assert store.get("lost-1").status is JobStatus.COMPLETED
    assert store.get("live").status is JobStatus.RUNNING


def test_recover_of_jobs_that_fail_again_exits_1(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    store, url = backend
    _cli_flows.abandon(store, ["lost"])

    result = invoke("recover", url, "--flow", "_cli_flows:build_strict_flow")

    assert result.exit_code == 1
    assert result.stdout.startswith(
        "recovered 1 of 1 running or pending jobs (1 failed)"
    )


def test_recover_of_1000_jobs_shows_progress_and_a_summary(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    _cli_flows.abandon(store, [f"lost-{n:04d}" for n in range(1000)])

    started = time.perf_counter()
    result = CliRunner().invoke(
        cli, ["recover", f"sqlite:///{tmp_path}/jobs.db", "--flow", FLOW]
    )
    took = time.perf_counter() - started

    assert result.exit_code == 0, result.stdout
    assert result.stdout == (
        "recovered 1000 of 1000 running or pending jobs (1000 completed)\n"
        "left alone 0 (a live process runs them)\n"
    )
    assert "recovering" in result.stderr and "1000/1000" in result.stderr
    assert [r.status for r in store.list_jobs()] == [JobStatus.COMPLETED] * 1000
    print(f"recover of 1,000 jobs: {took:.2f} s")


def test_few_jobs_are_recovered_without_a_progress_bar(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    store, url = backend
    _cli_flows.abandon(store, [f"lost-{n}" for n in range(PROGRESS_FROM - 1)])

    result = invoke("recover", url, "--flow", FLOW)

    assert result.stderr == ""


def test_recover_summary_lists_the_jobs_it_could_not_recover() -> None:
    summary = Summary(candidates=2, ended={"completed": 1}, refused=["j: bad data"])

    assert summary.text() == (
        "recovered 1 of 2 running or pending jobs (1 completed)\n"
        "left alone 0 (a live process runs them)\n"
        "not recovered 1:\n"
        "  j: bad data"
    )


def age_jobs(store: Store, tmp_path: Path) -> None:
    """Make ``done`` and ``broken`` ten days old, ``fresh`` new, ``paused`` old."""
    _cli_flows.run_job(store, "done", [1])
    _cli_flows.run_job(store, "broken", [1], bad=[1])
    _cli_flows.paused_job(store, "paused")
    old = (datetime.now(UTC) - timedelta(days=10)).timestamp()
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            db.execute("UPDATE jobs SET updated_at = ?", (old,))
    else:
        for path in (tmp_path / "jobs").glob("*.json"):
            text = re.sub(
                r'"updated_at":[^,}]+', f'"updated_at":{old}', path.read_text()
            )
            path.write_text(text)
    _cli_flows.run_job(store, "fresh", [1])


@pytest.mark.parametrize(
    ("options", "gone"),
    [
        ([], ["broken", "done"]),
        (["--status", "failed"], ["broken"]),
        (["--status", "completed"], ["done"]),
    ],
    ids=["ended", "failed", "completed"],
)
def test_prune_deletes_old_ended_jobs_only(
    invoke: Invoke,
    backend: tuple[Store, str],
    tmp_path: Path,
    options: list[str],
    gone: list[str],
) -> None:
    store, url = backend
    age_jobs(store, tmp_path)

    result = invoke("prune", url, "--older-than", "7d", *options)

    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[-1] == f"deleted {len(gone)} jobs older than 7d"
    left = sorted(r.job_id for r in store.list_jobs())
    assert left == sorted({"broken", "done", "fresh", "paused"} - set(gone))


def test_prune_dry_run_deletes_nothing(
    invoke: Invoke, backend: tuple[Store, str], tmp_path: Path
) -> None:
    store, url = backend
    age_jobs(store, tmp_path)

    result = invoke("prune", url, "--older-than", "7d", "--dry-run")

    assert result.exit_code == 0
    assert sorted(result.stdout.splitlines()[:2]) == [
        "would delete broken", "would delete done"
    ]  # fmt: skip
    assert len(store.list_jobs()) == 4


@pytest.mark.parametrize("age", ["7", "seven days", "7y", "-1d"])
def test_prune_with_a_bad_age_is_a_usage_error(
    invoke: Invoke, backend: tuple[Store, str], age: str
) -> None:
    result = invoke("prune", backend[1], "--older-than", age)

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: bad age {age!r}")


def test_prune_refuses_to_select_running_jobs(
    invoke: Invoke, backend: tuple[Store, str]
) -> None:
    result = invoke("prune", backend[1], "--older-than", "1d", "--status", "running")

    assert result.exit_code == 2
