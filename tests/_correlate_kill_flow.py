"""A durable fan-out/merge flow that kills itself in the middle of a correlated group.

Used by ``test_correlate.py``::

    python tests/_correlate_kill_flow.py run DB LOG STRATEGY     # dies by SIGKILL
    python tests/_correlate_kill_flow.py recover DB LOG STRATEGY # Flow.recover

``split`` sends records 1 to 3 to sinks ``s0`` and ``s1``, which both deliver
to ``merge``, a join correlated on ``record_id``. In ``run``, ``s1``'s handler
for record 2 kills the process (SIGKILL) before it emits: under the
sequential strategy ``s0``'s part of record 2 has been checkpointed by then,
so the stored job holds group 2 half complete. ``merge`` appends each group
it fires with to LOG (one ``os.write``), and ``recover`` prints the recovered
job's status and waiting groups as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Final

from flowforge import Flow, Routine
from flowforge.store import SqliteStore

JOB_ID: Final = "etl-job"
KILL_ENV: Final = "FLOWFORGE_CORRELATE_KILL"


class Split(Routine):
    """Emit each record on ``out``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("records", self.split)
        self.define_event("out")

    def split(self, records: list[int]) -> None:
        for record_id in records:
            self.emit("out", record_id=record_id)


class Sink(Routine):
    """Pass a record on with the sink's name; ``s1`` kills the run at record 2."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("item", self.store)
        self.define_event("stored")

    def store(self, record_id: int) -> None:
        name = self.get_config("name")
        if name == "s1" and record_id == 2 and os.environ.get(KILL_ENV):
            os.kill(os.getpid(), signal.SIGKILL)
        self.emit("stored", record_id=record_id, place=f"{name}-{record_id}")


class Merge(Routine):
    """Log each group the correlated join fires with."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("parts", self.merge, join=True, correlate="record_id")

    def merge(self, record_id: int, s0: str, s1: str) -> None:
        line = json.dumps([record_id, s0, s1]) + "\n"
        descriptor = os.open(sys.argv[3], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(descriptor, line.encode())
        finally:
            os.close(descriptor)


def build_flow(strategy: str) -> Flow:
    """Return the flow, running jobs with ``strategy``."""
    flow = Flow("correlate_kill")
    flow.set_execution_strategy(strategy)
    flow.add_routine(Split(), "split")
    flow.add_routine(Merge(), "merge")
    for name in ("s0", "s1"):
        sink = Sink()
        sink.set_config(name=name)
        flow.add_routine(sink, name)
        flow.connect("split", "out", name, "item")
        flow.connect(name, "stored", "merge", "parts", param_mapping={"place": name})
    return flow


def main() -> None:
    """Run or recover the job, as ``sys.argv`` says."""
    command, database, _, strategy = sys.argv[1:5]
    flow = build_flow(strategy.removeprefix("async-"))
    store = SqliteStore(database)
    if command == "run":
        os.environ[KILL_ENV] = "1"
        params = {"records": [1, 2, 3]}
        if strategy.startswith("async-"):
            asyncio.run(flow.execute_async("split", params, job_id=JOB_ID, store=store))
        else:
            flow.execute("split", params, job_id=JOB_ID, store=store)
        return
    (job,) = flow.recover(store)
    waiting = {f"{r}.{s}": list(g) for (r, s), g in job.waiting_groups.items()}
    print(json.dumps({"status": job.status.value, "waiting": waiting}))


if __name__ == "__main__":
    main()
