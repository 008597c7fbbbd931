"""A helper process for ``test_store_postgres.py``: one PostgresStore per process.

Used as a script; ``DSN`` is a libpq connection string and ``SCHEMA`` the
schema of the store. ``run``, ``create`` and ``recover-all`` first wait for a
line on stdin, so that a test can start several workers and release them
together::

    python tests/_pg_worker.py run DSN SCHEMA PREFIX COUNT
    python tests/_pg_worker.py create DSN SCHEMA PREFIX COUNT
    python tests/_pg_worker.py hold DSN SCHEMA PREFIX COUNT LOG
    python tests/_pg_worker.py recover-all DSN SCHEMA LOG
    python tests/_pg_worker.py kill-flow COMMAND DSN SCHEMA LOG [--kill-at POINT:N]

``run`` and ``create``
    As in ``_store_worker.py``, on :func:`_store_worker.build_chain`'s flow.
``hold``
    Runs ``COUNT`` durable jobs of that flow at once, one per thread, with ids
    ``PREFIX-0`` ...; each stops in its middle handler after appending
    ``"<job_id> <pid>"`` to ``LOG``. When all of them are there it prints
    ``holding`` and waits, so that the test can SIGKILL it: the jobs stay
    ``running``, owned by a dead process.
``recover-all``
    Calls ``Flow.recover`` on that flow, whose middle handler appends
    ``"<job_id> <pid>"`` to ``LOG``; prints ``{"pid": ..., "resumed": [ids]}``.
``kill-flow``
    ``_kill_flow.py``'s ``full``, ``run`` and ``recover`` commands, with a
    PostgresStore in place of the SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Final

import _kill_flow
import _store_worker
from _kill_flow import KillingStore, KillSwitch, summary

from flowforge import Flow, current_delivery
from flowforge.store import Store
from flowforge.store.postgres import PostgresStore

WAIT: Final = 60.0


def append(path: str, line: str) -> None:
    """Append one line to ``path`` with a single ``O_APPEND`` write."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def logging_chain(log: str, hold: threading.Barrier | None = None) -> Flow:
    """Return the chain flow; its middle handler logs, and waits if ``hold``."""
    flow = _store_worker.build_chain()

    def middle(data: dict[str, object]) -> dict[str, object]:
        append(log, f"{current_delivery().job.job_id} {os.getpid()}")
        if hold is not None:
            hold.wait()
            threading.Event().wait()  # until SIGKILL
        return data

    flow.routines["middle"].set_config(transform=middle)
    return flow


def hold(store: Store, prefix: str, count: int, log: str) -> None:
    """Start ``count`` jobs in threads; print ``holding`` once all are stuck."""
    arrived = threading.Barrier(count + 1, timeout=WAIT)
    flow = logging_chain(log, arrived)

    def run(n: int) -> None:
        flow.execute(
            _store_worker.ENTRY,
            _store_worker.ENTRY_PARAMS,
            job_id=f"{prefix}-{n}",
            store=store,
        )

    for n in range(count):
        threading.Thread(target=run, args=(n,), daemon=True).start()
    arrived.wait()
    print("holding", flush=True)
    threading.Event().wait()


def recover_all(store: Store, log: str) -> None:
    """Recover every interrupted job of the chain flow; print which ones."""
    resumed = logging_chain(log).recover(store)
    print(json.dumps({"pid": os.getpid(), "resumed": [j.job_id for j in resumed]}))


def kill_flow(argv: list[str]) -> int:
    """Run ``_kill_flow.py``'s commands on a PostgresStore."""
    parser = argparse.ArgumentParser(prog="_pg_worker.py kill-flow")
    parser.add_argument("command", choices=("full", "run", "recover"))
    parser.add_argument("dsn")
    parser.add_argument("schema")
    parser.add_argument("log", type=Path)
    parser.add_argument("--kill-at", type=KillSwitch.parse, default=KillSwitch())
    args = parser.parse_args(argv)
    os.environ[_kill_flow.LOG_ENV] = str(args.log)
    switch: KillSwitch = args.kill_at
    flow = _kill_flow.build_flow(switch)
    store = PostgresStore(args.dsn, schema=args.schema)
    if args.command == "recover":
        jobs = flow.recover(store)
        if [job.job_id for job in jobs] != [_kill_flow.JOB_ID]:
            print(
                f"recovered {jobs!r}, expected {_kill_flow.JOB_ID!r}", file=sys.stderr
            )
            return 1
        job = jobs[0]
    else:
        job = flow.execute(
            _kill_flow.ENTRY,
            _kill_flow.ENTRY_PARAMS,
            job_id=_kill_flow.JOB_ID,
            store=KillingStore(store, switch),
        )
    print(json.dumps(summary(job, switch)))
    store.close()
    return 0


def main(argv: list[str]) -> int:
    """Dispatch on the mode named by the first argument."""
    mode, *args = argv
    if mode == "kill-flow":
        return kill_flow(args)
    store = PostgresStore(args[0], schema=args[1])
    try:
        if mode == "hold":
            hold(store, args[2], int(args[3]), args[4])
            return 0
        sys.stdin.readline()
        if mode == "run":
            _store_worker.run_jobs(store, args[2], int(args[3]))
        elif mode == "create":
            _store_worker.create_jobs(store, args[2], int(args[3]))
        elif mode == "recover-all":
            recover_all(store, args[2])
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
