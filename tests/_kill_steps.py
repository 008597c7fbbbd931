"""A durable flow of function routines that a test kills with SIGKILL at a chosen point.

Used by ``test_function_routine_recovery.py``, like ``_kill_flow.py`` (whose
kill switch, killing store, kill points and summary it reuses)::

    python tests/_kill_steps.py full DB LOG                  # uninterrupted run
    python tests/_kill_steps.py run DB LOG --kill-at POINT:N  # dies by SIGKILL
    python tests/_kill_steps.py recover DB LOG               # Flow.recover(store)

The flow, wired with ``Flow.chain``: ``parse`` (a plain step) -> ``grow`` (an
``async def`` step that feeds itself LOOPS times) -> ``flaky`` (a plain step
that fails the first attempt of odd rounds, retried) -> ``sink`` (a ``Routine``
subclass that keeps the values in its stats). Every handler logs ``"<routine_id>
<seq> <attempt>"`` to ``$FLOWFORGE_KILL_LOG`` first, as ``_kill_flow`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Final

from _kill_flow import LOG_ENV, KillingStore, KillSwitch, side_effect, summary
from flowforge import ErrorHandler, ErrorStrategy, Flow, Routine
from flowforge import step
from flowforge.store import SqliteStore

FLOW_ID: Final = "kill_steps"
JOB_ID: Final = "kill-steps-job"
LOOPS: Final = 4
HANDLER_CALLS: Final = 16
"""Handler calls in an uninterrupted run: 14 deliveries and 2 retries."""
SWITCH = KillSwitch()


def logged() -> int:
    """Count the handler call, log its side effect around the kill points."""
    return side_effect(SWITCH)


@step(emits="value")
def parse(text: str) -> int:
    """Read the number."""
    logged()
    return int(text)


@step
async def grow(value: int, i: int = 0) -> dict[str, int] | None:
    """Double the value for LOOPS rounds, then stop."""
    logged()
    await asyncio.sleep(0)
    return {"value": value * 2, "i": i + 1} if i < LOOPS else None


class Flaky(Exception):
    """Raised by the first attempt of odd rounds."""


@step
def flaky(value: int, i: int) -> dict[str, int]:
    """Add the round to the value; the first attempt of odd rounds fails."""
    if logged() == 0 and i % 2:
        raise Flaky(f"round {i} fails first")
    return {"value": value + i, "i": i}


class Sink(Routine):
    """Keep every value it receives in its stats."""

    def __init__(self) -> None:
        """Declare the ``input`` slot."""
        super().__init__()
        self.define_slot("input", self.keep)

    def keep(self, value: int, i: int) -> None:
        """Log, then count, sum and list the values."""
        logged()
        self.increment_stat("count")
        self.increment_stat("total", value)
        values = self.get_stat("values", [])
        assert isinstance(values, list)  # noqa: S101  only this handler sets it
        self.set_stat("values", [*values, [i, value]])


def build_flow() -> Flow:
    """Return the flow: parse -> grow (looping) -> flaky (retried) -> sink."""
    flow = Flow(FLOW_ID, history_limit=100_000)
    sink = Sink()
    flow.add_routine(sink, "sink")
    retried = flaky()
    retried.set_error_handler(
        ErrorHandler(ErrorStrategy.RETRY, max_retries=2, retry_delay=0)
    )
    flow.chain(parse(), grow(), retried, sink)
    flow.connect("grow", "output", "grow", "input")
    return flow


def main(argv: list[str]) -> int:
    """Run the command in ``argv``; see the module's docstring."""
    parser = argparse.ArgumentParser(prog="_kill_steps.py")
    parser.add_argument("command", choices=("full", "run", "recover"))
    parser.add_argument("db", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--kill-at", type=KillSwitch.parse, default=KillSwitch())
    args = parser.parse_args(argv)
    os.environ[LOG_ENV] = str(args.log)
    switch: KillSwitch = args.kill_at
    SWITCH.point, SWITCH.n = switch.point, switch.n
    flow = build_flow()
    store = SqliteStore(args.db)
    if args.command == "recover":
        jobs = flow.recover(store)
        if [job.job_id for job in jobs] != [JOB_ID]:
            print(f"recovered {jobs!r}, expected job {JOB_ID!r}", file=sys.stderr)
            return 1
        job = jobs[0]
    else:
        killing = KillingStore(store, SWITCH)
        job = flow.execute("parse", {"text": "3"}, job_id=JOB_ID, store=killing)
    print(json.dumps(summary(job, SWITCH)))
    return 0


if __name__ == "__main__":
    # Run the module's own steps (registered as "_kill_steps:parse", ...), not
    # copies defined in __main__, so the flow's fingerprint is the same in
    # every process.
    from _kill_steps import main as module_main

    sys.exit(module_main(sys.argv[1:]))
