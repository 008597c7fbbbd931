"""A 20-routine flow that one process pauses and saves, and another resumes.

The flow has a loop (``loop`` feeds itself), a fan-out (``split`` feeds three
branches of four steps), a fan-in (``join`` waits for all three branches) and
a second fan-out after it. Run it as a script::

    python tests/_pause_resume_flow.py run STATE          # pause midway, save
    python tests/_pause_resume_flow.py resume STATE OUT   # load, resume, report
    python tests/_pause_resume_flow.py full OUT           # run without a pause

``OUT`` receives :func:`summarize`'s JSON. Run as a script, the module imports
itself by name, so its routine classes are registered as
``_pause_resume_flow:Step`` and so on in every process, as a user's would be.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from flowforge import Flow, JobState, Routine

ROUNDS = 6
PAUSE_ROUTINE = "b1"  # the first step of branch b: it sees the round number
PAUSE_ROUND = 3
BRANCHES = {"a": (2, 1), "b": (3, -1), "c": (1, 5)}  # branch: (multiply, add)


class Source(Routine):
    """The entry: starts the loop with the number of rounds to run."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("start", ["n"])

    def __call__(self, rounds: int) -> None:
        self.increment_stat("calls")
        self.emit("start", n=rounds)


class Loop(Routine):
    """Emit ``tick`` for round ``n``, then ``again`` with ``n - 1`` until 1."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.turn)
        self.define_event("tick", ["value"])
        self.define_event("again", ["n"])

    def turn(self, n: int) -> None:
        self.increment_stat("turns")
        self.emit("tick", value=n)
        if n > 1:
            self.emit("again", n=n - 1)


class Step(Routine):
    """Emit ``value * multiply + add`` from config; pause where told to.

    With ``pause_on`` in its config, it pauses its job (through
    ``controller``) after handling that value.
    """

    def __init__(self) -> None:
        super().__init__()
        self.controller: Flow | None = None
        self.define_slot("input", self.step)
        self.define_event("output", ["value"])

    def step(self, value: int) -> None:
        multiply = self.get_config("multiply", 1)
        add = self.get_config("add", 0)
        assert isinstance(multiply, int) and isinstance(add, int)
        result = value * multiply + add
        self.increment_stat("handled")
        self.increment_stat("sum", result)
        if self.controller is not None and self.get_config("pause_on") == value:
            self.controller.pause(reason="midway", checkpoint={"value": value})
        self.emit("output", value=result)


class Split(Routine):
    """Send each value down three branches."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.split)
        for branch in BRANCHES:
            self.define_event(branch, ["value"])

    def split(self, value: int) -> None:
        self.increment_stat("splits")
        for branch in BRANCHES:
            self.emit(branch, value=value)


class Join(Routine):
    """Wait for all three branches, then emit their total."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("parts", self.combine, "append", join=True)
        self.define_event("combined", ["value"])

    def combine(self, a: list[int], b: list[int], c: list[int]) -> None:
        self.increment_stat("joins")
        self.emit("combined", value=sum(a) + sum(b) + sum(c))


class Collect(Routine):
    """Keep every value it receives, in order, in its stats."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.collect)

    def collect(self, value: int) -> None:
        collected = self.get_stat("collected", [])
        assert isinstance(collected, list)
        self.set_stat("collected", [*collected, value])


class Count(Routine):
    """Count what it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.count)

    def count(self, value: int) -> None:
        self.increment_stat("count")
        self.increment_stat("sum", value)


def build_flow() -> Flow:
    """Build the 20-routine flow; the same call in every process."""
    flow = Flow("pause_resume")
    flow.add_routine(Source(), "source")
    flow.add_routine(Loop(), "loop")
    flow.add_routine(Split(), "split")
    flow.add_routine(Count(), "audit")
    for branch, (multiply, add) in BRANCHES.items():
        for index in range(1, 5):
            step = Step()
            step.controller = flow
            step.set_config(multiply=multiply, add=add + index)
            flow.add_routine(step, f"{branch}{index}")
    flow.add_routine(Join(), "join")
    flow.add_routine(Step(), "scale")
    flow.add_routine(Collect(), "collect")
    flow.add_routine(Count(), "tally")
    assert len(flow.routines) == 20
    _wire(flow)
    return flow


def _wire(flow: Flow) -> None:
    flow.connect("source", "start", "loop", "input")
    flow.connect("loop", "tick", "split", "input")
    flow.connect("loop", "tick", "audit", "input")
    flow.connect("loop", "again", "loop", "input")
    for branch in BRANCHES:
        flow.connect("split", branch, f"{branch}1", "input")
        for index in range(1, 4):
            flow.connect(f"{branch}{index}", "output", f"{branch}{index + 1}", "input")
        flow.connect(f"{branch}4", "output", "join", "parts", {"value": branch})
    flow.connect("join", "combined", "scale", "input")
    flow.connect("join", "combined", "tally", "input")
    flow.connect("scale", "output", "collect", "input")


def summarize(flow: Flow, job: JobState) -> dict[str, object]:
    """Return a job's outcome as JSON data: outputs, stats and counts."""
    return {
        "status": job.status.value,
        "collected": flow.routines["collect"].get_stat("collected"),
        "stats": {rid: routine.stats() for rid, routine in flow.routines.items()},
        "deliveries": {rid: s.deliveries for rid, s in job.routine_states.items()},
        "delivery_count": job.delivery_count,
        "events": {
            f"{rid}.{event}": count
            for (rid, event), count in sorted(job.tracker.get_event_counts().items())
        },
        "errors": [error.message for error in job.errors],
    }


def main(argv: Sequence[str]) -> int:
    """Run one of the commands in the module docstring; return the exit code."""
    command, *paths = argv
    flow = build_flow()
    if command == "run":
        flow.routines[PAUSE_ROUTINE].set_config(pause_on=PAUSE_ROUND)
        job = flow.execute("source", {"rounds": ROUNDS})
        job.save(paths[0])
        return 0 if job.status.value == "paused" else 1
    if command == "resume":
        job = flow.resume(JobState.load(paths[0]))
    elif command == "full":
        job = flow.execute("source", {"rounds": ROUNDS})
    else:
        print(f"unknown command {command!r}; use run, resume or full", file=sys.stderr)
        return 2
    Path(paths[-1]).write_text(json.dumps(summarize(flow, job), indent=1))
    return 0


if __name__ == "__main__":
    from _pause_resume_flow import main as imported_main

    sys.exit(imported_main(sys.argv[1:]))
