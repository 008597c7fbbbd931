"""Run a durable job in SQLite, kill its process mid-job, then recover the job.

A child process runs ``numbers -> charge`` with a SqliteStore and dies inside the
third charge; ``flow.recover(store)`` then finishes the job its dead owner left
running. The charge in flight runs twice, its keyed side effect only once. Prints:

    child exited with 1; stored job is running
    recovered: completed, stats {'charged': 3}
    charge ran 4 times, 3 receipts written
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from flowforge import Flow, Routine, current_delivery
from flowforge.store import SqliteStore


class Numbers(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("number", ["value"])

    def __call__(self, values: list[int]) -> None:
        for value in values:
            self.emit("number", value=value)


class Charge(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.charge)

    def charge(self, value: int) -> None:
        folder = Path(str(self.get_config("folder")))
        with open(folder / "runs.log", "a", encoding="utf-8") as runs:
            runs.write(f"{value}\n")  # the handler body: at least once
        key = "-".join(map(str, current_delivery().delivery_key))
        (folder / f"receipt-{key}").touch()  # keyed: a repeat changes nothing
        self.increment_stat("charged")
        if value == self.get_config("crash_at"):
            os._exit(1)  # the process dies at once: no cleanup, no final save


def build_flow(folder: str = ".", crash_at: int | None = None) -> Flow:
    flow = Flow(flow_id="payments")
    flow.add_routine(Numbers(), "numbers")
    flow.add_routine(Charge(), "charge")
    flow.connect("numbers", "number", "charge", "input")
    flow.routines["charge"].set_config(folder=folder, crash_at=crash_at)
    return flow


def main() -> None:
    if len(sys.argv) > 1:  # the child process: start the job, die at 30
        store = SqliteStore(Path(sys.argv[1], "jobs.db"))
        flow = build_flow(sys.argv[1], crash_at=30)
        flow.execute("numbers", {"values": [10, 20, 30]}, job_id="pay-1", store=store)
        return
    with tempfile.TemporaryDirectory() as folder:
        child = subprocess.run([sys.executable, __file__, folder])
        store = SqliteStore(Path(folder, "jobs.db"))
        status = store.get("pay-1").status
        print(f"child exited with {child.returncode}; stored job is {status}")
        flow = build_flow(folder)
        [job] = flow.recover(store)
        print(f"recovered: {job.status}, stats {flow.routines['charge'].stats()}")
        runs = Path(folder, "runs.log").read_text().count("\n")
        receipts = len(list(Path(folder).glob("receipt-*")))
        print(f"charge ran {runs} times, {receipts} receipts written")


if __name__ == "__main__":
    main()
