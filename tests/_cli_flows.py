"""Flows that the CLI and inspector tests name by import path (``_cli_flows:...``).

``build_flow`` numbers its input and checks each value: a value in the job's
``bad`` list fails the check (a ``ValueError`` whose message holds the value),
unless the flow was built lenient, which is how a resumed job succeeds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from flowforge import ErrorHandler, ErrorStrategy, Flow, JobState, JobStatus, Routine
from flowforge.store import SqliteStore, Store

FLOW_ID = "numbers"
not_a_flow = 42


class Numbers(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("number", ["value", "bad"])

    def __call__(self, values: Sequence[object], bad: Sequence[object] = ()) -> None:
        for value in values:
            self.emit("number", value=value, bad=value in bad)


class Check(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.check)
        self.define_event("checked", ["value"])
        self.controller: Flow | None = None

    def check(self, value: object, bad: bool) -> None:
        if self.controller is not None and self.get_config("pause_on") == value:
            self.controller.pause()
        if self.get_config("fail_all") or (bad and not self.get_config("lenient")):
            raise ValueError(f"cannot check {value}")
        self.emit("checked", value=value)


class Total(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.add)

    def add(self, value: object) -> None:
        self.increment_stat("count")


def build_flow(
    *, lenient: bool = False, retries: int = 0, pause_on: object = None
) -> Flow:
    flow = Flow(flow_id=FLOW_ID)
    flow.add_routine(Numbers(), "numbers")
    check = Check()
    check.set_config(lenient=lenient, pause_on=pause_on)
    check.controller = flow
    if retries:
        check.set_error_handler(
            ErrorHandler(
                ErrorStrategy.RETRY,
                max_retries=retries,
                retry_delay=0,
                is_critical=True,
            )
        )
    flow.add_routine(check, "check")
    flow.add_routine(Total(), "total")
    flow.connect("numbers", "number", "check", "input")
    flow.connect("check", "checked", "total", "input")
    return flow


def build_lenient_flow() -> Flow:
    return build_flow(lenient=True)


def build_retrying_flow() -> Flow:
    return build_flow(retries=2)


def build_extended_flow() -> Flow:
    """A changed definition: ``build_lenient_flow`` with a second total."""
    flow = build_flow(lenient=True)
    flow.add_routine(Total(), "audit")
    flow.connect("check", "checked", "audit", "input")
    return flow


def broken() -> Flow:
    raise RuntimeError("the builder is broken")


def run_job(
    store: Store, job_id: str, values: Sequence[object], bad: Sequence[object] = ()
) -> JobState:
    """Run one durable job of ``build_flow`` in ``store``."""
    flow = build_flow()
    return flow.execute(
        "numbers",
        {"values": list(values), "bad": list(bad)},
        job_id=job_id,
        store=store,
    )


def paused_job(store: Store, job_id: str) -> JobState:
    """Leave a paused job of ``build_flow`` in ``store``, two numbers pending."""
    flow = build_flow(pause_on=1)
    return flow.execute("numbers", {"values": [1, 2, 3]}, job_id=job_id, store=store)


def fill(path: Path) -> SqliteStore:
    """Return a SQLite store at ``path`` with one completed and one failed job."""
    store = SqliteStore(path)
    run_job(store, "done", [1, 2])
    run_job(store, "broken", [1, "<b>bad</b>"], bad=["<b>bad</b>"])
    return store


def abandon(store: Store, job_ids: Sequence[str], owner: str = "elsewhere:1:x") -> None:
    """Leave jobs of ``build_flow`` running in ``store``, as a dead process would.

    Each is a job paused after its first check, saved as running with
    ``owner``'s lease expired a minute ago: ``recover`` may take it over.
    """
    job = build_flow(pause_on=1).execute("numbers", {"values": [1, 2, 3]})
    job.status = JobStatus.RUNNING
    for job_id in job_ids:
        job.job_id = job_id
        store.save(job, owner=owner, lease_until=time.time() - 60)


def build_strict_flow() -> Flow:
    """``build_flow`` whose check fails every value (its bad list says so)."""
    flow = build_flow()
    check = flow.routines["check"]
    assert isinstance(check, Check)
    check.set_config(fail_all=True)
    return flow
