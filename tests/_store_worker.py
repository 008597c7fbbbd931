"""A helper process for the multi-process store tests in ``test_store*.py``.

Used as a module (:func:`spawn`, :func:`build_chain`) and as a script::

    python tests/_store_worker.py run BACKEND PATH PREFIX COUNT
    python tests/_store_worker.py create BACKEND PATH PREFIX COUNT
    python tests/_store_worker.py hold PATH JOB_ID

``BACKEND`` is ``sqlite`` (``PATH`` is the database file) or
``json_directory`` (``PATH`` is the folder). ``run`` and ``create`` first wait
for a line on stdin, so that a test can start several workers and release them
together:

``run``
    Runs ``COUNT`` durable jobs of :func:`build_chain`'s flow, with ids
    ``PREFIX-0`` ... ``PREFIX-<COUNT-1>``, and prints one JSON object mapping
    each job id to the serialized state ``execute`` returned.
``create``
    Calls ``store.create`` for the same ids, as owner ``worker-<pid>``, and
    prints ``{"owner": ..., "won": [the ids it created]}`` as JSON.
``hold``
    Runs the job ``JOB_ID`` on :func:`build_chain`'s flow in a SQLite store; in
    the middle routine's handler it prints ``holding`` and waits on stdin
    forever, so that the test can kill it there with SIGKILL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from flowforge import Flow, JobState
from flowforge.store import JsonDirectoryStore, SqliteStore, Store
from flowforge.testing import Recorder, Relay

ROOT: Final = Path(__file__).resolve().parent.parent
FLOW_ID: Final = "store_worker_chain"
ENTRY: Final = "first"
ENTRY_PARAMS: Final = {"value": 7}


def spawn(*arguments: str) -> subprocess.Popen[str]:
    """Start this script with ``arguments``; it imports this checkout's flowforge.

    Its stdin, stdout and stderr are text pipes.
    """
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def build_chain() -> Flow:
    """Build ``first -> middle -> last``, from ``flowforge.testing`` routines only.

    Its routine types are the same in every process, so a job a worker
    started resumes on the flow a test builds.
    """
    flow = Flow(FLOW_ID)
    flow.add_routine(Recorder(), "first")
    flow.add_routine(Relay(), "middle")
    flow.add_routine(Recorder(), "last")
    flow.connect("first", "output", "middle", "input")
    flow.connect("middle", "output", "last", "input")
    return flow


def open_store(backend: str, path: str | Path) -> Store:
    """Open the SQLite or JSON directory store at ``path``."""
    if backend == "sqlite":
        return SqliteStore(path)
    if backend == "json_directory":
        return JsonDirectoryStore(path)
    raise SystemExit(f"unknown backend {backend!r}")


def new_job(job_id: str) -> JobState:
    """Return a pending job state, as ``store.create`` receives it."""
    return JobState(
        job_id=job_id,
        flow_id=FLOW_ID,
        entry_routine_id=ENTRY,
        entry_params=dict(ENTRY_PARAMS),
        entry_slot="input",
        created_at=datetime.now(UTC),
    )


def run_jobs(store: Store, prefix: str, count: int) -> None:
    """Run ``count`` durable jobs and print their final states as JSON."""
    flow = build_chain()
    states = {}
    for n in range(count):
        job = flow.execute(ENTRY, ENTRY_PARAMS, job_id=f"{prefix}-{n}", store=store)
        states[job.job_id] = job.serialize()
    print(json.dumps(states))


def create_jobs(store: Store, prefix: str, count: int) -> None:
    """Race to create ``count`` jobs; print the ids this process created."""
    owner = f"worker-{os.getpid()}"
    won = []
    for n in range(count):
        job_id = f"{prefix}-{n}"
        if store.create(new_job(job_id), owner=owner, lease_until=time.time() + 60):
            won.append(job_id)
    print(json.dumps({"owner": owner, "won": won}))


def hold(path: str, job_id: str) -> None:
    """Run a durable job that stops in its middle handler until killed."""

    def wait_forever(data: object) -> None:
        print("holding", flush=True)
        sys.stdin.readline()
        raise SystemExit("stdin closed before the test killed this worker")

    flow = build_chain()
    flow.routines["middle"].set_config(transform=wait_forever)
    flow.execute(ENTRY, ENTRY_PARAMS, job_id=job_id, store=SqliteStore(path))


def main(argv: list[str]) -> None:
    """Dispatch on the mode named by the first argument."""
    mode, *args = argv
    if mode == "hold":
        hold(args[0], args[1])
        return
    backend, path, prefix, count = args
    store = open_store(backend, path)
    sys.stdin.readline()
    try:
        if mode == "run":
            run_jobs(store, prefix, int(count))
        elif mode == "create":
            create_jobs(store, prefix, int(count))
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
