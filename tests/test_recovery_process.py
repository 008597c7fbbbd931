"""A job paused and saved by one process, resumed by another on a rebuilt flow.

Each process runs ``tests/_pause_resume_flow.py``, which builds the same
20-routine flow (fan-out, fan-in through a join, and a loop) from scratch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flowforge import JobState, JobStatus

from _pause_resume_flow import PAUSE_ROUTINE, ROUNDS, build_flow, summarize

SCRIPT = Path(__file__).with_name("_pause_resume_flow.py")


def run_script(*args: Path | str) -> None:
    """Run the script in a new Python process and fail loudly if it fails."""
    child = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr


def read_json(path: Path) -> object:
    data: object = json.loads(path.read_text())
    return data


def test_job_resumed_in_a_new_process_matches_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    state, resumed, full = (tmp_path / n for n in ("state", "resumed", "full"))

    run_script("run", state)
    run_script("resume", state, resumed)
    run_script("full", full)

    assert read_json(resumed) == read_json(full)


def test_job_resumed_in_a_new_process_matches_an_in_process_run(
    tmp_path: Path,
) -> None:
    state, resumed = tmp_path / "state", tmp_path / "resumed"
    flow = build_flow()
    expected = summarize(flow, flow.execute("source", {"rounds": ROUNDS}))

    run_script("run", state)
    run_script("resume", state, resumed)

    assert read_json(resumed) == json.loads(json.dumps(expected))
    assert expected["status"] == "completed"


def test_first_process_leaves_a_job_paused_midway_with_a_waiting_join(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"

    run_script("run", state)

    job = JobState.load(state)
    assert job.status is JobStatus.PAUSED
    assert job.pause_points[0].reason == "midway"
    assert job.pending
    assert list(job.waiting_joins) == [("join", "parts")]
    assert list(job.slot_buffers[("join", "parts")]) == ["a"]
    done = job.get_routine_state(PAUSE_ROUTINE).deliveries
    assert 0 < done < ROUNDS
