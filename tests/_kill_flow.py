"""A durable 30-routine flow that a test kills with SIGKILL at a chosen point.

Used by ``test_recovery.py``, as a module (:func:`build_flow`) and as a script::

    python tests/_kill_flow.py full DB LOG                  # uninterrupted run
    python tests/_kill_flow.py run DB LOG --kill-at POINT:N  # dies by SIGKILL
    python tests/_kill_flow.py recover DB LOG               # Flow.recover(store)

With ``--async``, every routine is the ``Async`` variant of its class (its
handler an ``async def`` that yields to the loop once, then does the same),
``full`` and ``run`` go through ``asyncio.run(flow.execute_async(...))``, and
``recover`` through ``Flow.recover``, which runs the async flow on a private
event loop. Its counts and history are the same as the synchronous flow's.
With ``--commit-every N``, the store commits a transaction per N checkpoints
(group commit): ``after-commit:K`` then means after checkpoint K's write, which
is committed only at the end of its group.

With ``--store json`` (used by ``test_recovery_json.py``), the job is kept in
a :class:`~flowforge.store.JsonDirectoryStore` in the folder ``json-jobs``
beside DB instead of in DB, and one more kill point exists:
``inside-fold:N`` dies inside the store's N-th fold of the job's change log,
after the job's file was rewritten and before the log is removed.

With ``--fallback`` (used by ``test_failure_routing.py``), ``t4`` fails every
attempt of odd rounds: after its retries these failures go, by the flow's
failure route, to ``rescue``, which sends them on to ``t5`` as ``t4`` would.

Each prints a JSON :func:`summary` of the job it ended with (``run`` prints
nothing: it dies first). Every handler appends ``"<routine_id> <seq>
<attempt>"`` to the file named by ``$FLOWFORGE_KILL_LOG`` (the LOG argument)
before doing anything else, with one ``os.write`` on an ``O_APPEND`` file, so
that the file is an exact record of which handler bodies ran.

The kill points, counted from 1 in the process that runs the job:

``before-delivery:N``
    At the start of the N-th handler call, before its side effect. The
    runtime has popped the delivery and merged its data in memory; nothing
    of it has reached the store, and nothing of it is repeated after recovery.
``inside-handler:N``
    In the N-th handler call, right after its side effect was written: that
    one side effect is repeated after recovery.
``before-commit:N``
    At the N-th checkpoint, after the delivery was handled and before the
    store's transaction: the delivery's side effect (if its handler ran; a
    join arrival that only buffers has none) is repeated after recovery.
``after-commit:N``
    At the N-th checkpoint, right after the store's transaction committed:
    nothing is repeated after recovery.

Handler calls and checkpoints differ: a join arrival that waits for the
others is checkpointed without a handler call. Every delivery and every
retry of one is checkpointed once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from flowforge.testing import StoreWrapper
from flowforge import ErrorHandler, ErrorStrategy, Flow, JobState, Routine
from flowforge import current_delivery
from flowforge.store import Change, JsonDirectoryStore, SqliteStore, Store

FLOW_ID: Final = "kill_flow"
JOB_ID: Final = "kill-job"
ENTRY: Final = "start"
ENTRY_PARAMS: Final = {"value": 1}
LOG_ENV: Final = "FLOWFORGE_KILL_LOG"
LOOPS: Final = 4
"""The loop routine feeds back into itself this many times."""
BRANCHES: Final = ("a", "b", "c", "d")
CHAIN: Final = 5
TAIL: Final = 6
POINTS: Final = ("before-delivery", "inside-handler", "before-commit", "after-commit")
FOLD_POINT: Final = "inside-fold"
"""A kill point of ``--store json`` only, counted in folds of the change log."""
JSON_FOLDER: Final = "json-jobs"
HANDLER_POINTS: Final = ("before-delivery", "inside-handler")
"""Points counted in handler calls; the others are counted in checkpoints."""
HANDLER_CALLS: Final = 65
"""Handler calls in an uninterrupted run (the test checks this)."""
CHECKPOINTS: Final = 68
"""Checkpoints in an uninterrupted run: 65 handler calls and 3 join waits."""


class Flaky(Exception):
    """Raised by a routine's first attempt at some deliveries."""


@dataclass(slots=True)
class KillSwitch:
    """Where to SIGKILL this process, and how far it has got.

    ``point`` is one of :data:`POINTS`, or ``None`` to never kill.
    """

    point: str | None = None
    n: int = 0
    handler_calls: int = 0
    checkpoints: int = 0
    folds: int = 0

    @classmethod
    def parse(cls, text: str) -> KillSwitch:
        """Read ``POINT:N``."""
        point, _, number = text.partition(":")
        if (
            point not in (*POINTS, FOLD_POINT)
            or not number.isdigit()
            or int(number) < 1
        ):
            raise ValueError(f"--kill-at wants POINT:N with POINT in {POINTS}")
        return cls(point, int(number))

    def kill_if(self, point: str, count: int) -> None:
        """Die by SIGKILL if this is the chosen point and count."""
        if point == self.point and count == self.n:
            os.kill(os.getpid(), signal.SIGKILL)


def side_effect(switch: KillSwitch) -> int:
    """Count a handler call and log its side effect between two kill points.

    Returns the delivery's attempt.
    """
    delivery = current_delivery()
    switch.handler_calls += 1
    switch.kill_if("before-delivery", switch.handler_calls)
    line = f"{delivery.routine_id} {delivery.seq} {delivery.attempt}\n"
    fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    switch.kill_if("inside-handler", switch.handler_calls)
    return delivery.attempt


class Logged(Routine):
    """A routine whose handlers log their side effect and obey the kill switch."""

    def __init__(self) -> None:
        """Declare the ``input`` slot and the ``out`` event."""
        super().__init__()
        self.switch = KillSwitch()
        self.define_event("out")

    def enter(self) -> int:
        """Run the kill points around the side effect; return the attempt."""
        return side_effect(self.switch)


class Step(Logged):
    """Adds its ``add`` config to ``value``; ``flaky`` fails first attempts.

    ``flaky="always"`` fails the first attempt of every delivery, ``"odd"``
    of those whose loop index ``i`` is odd; ``"odd-for-good"`` fails every
    attempt of those.
    """

    def __init__(self) -> None:
        """Declare the ``input`` slot."""
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, value: int, i: int = 0) -> None:
        """Log, maybe fail, then emit ``value + add``."""
        attempt = self.enter()
        flaky = self.get_config("flaky")
        if attempt == 0 and (flaky == "always" or (flaky == "odd" and i % 2)):
            raise Flaky(f"first attempt fails (i={i})")
        if flaky == "odd-for-good" and i % 2:
            raise Flaky(f"every attempt fails (i={i})")
        add = self.get_config("add", 0)
        assert isinstance(add, int)  # noqa: S101  set by build_flow
        self.emit("out", value=value + add, i=i)


class Join(Logged):
    """Waits for every branch, then emits their sum."""

    def __init__(self) -> None:
        """Declare the joining ``input`` slot."""
        super().__init__()
        self.define_slot("input", self.handle, join=True)

    def handle(self, a: int, b: int, c: int, d: int) -> None:
        """Log, then emit the sum of the branches."""
        self.enter()
        self.emit("out", value=a + b + c + d)


class Loop(Logged):
    """Emits ``out`` for each round and ``again`` into itself LOOPS times."""

    def __init__(self) -> None:
        """Declare the ``input`` slot and the ``again`` event."""
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("again")

    def handle(self, value: int, i: int = 0) -> None:
        """Log, emit this round, then go round again until LOOPS."""
        self.enter()
        self.emit("out", value=value * 10 + i, i=i)
        if i < LOOPS:
            self.emit("again", value=value, i=i + 1)


class Sink(Logged):
    """Collects every value it receives into its stats."""

    def __init__(self) -> None:
        """Declare the ``input`` slot."""
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, value: int, i: int) -> None:
        """Log, then count, sum and list the values."""
        self.enter()
        self.increment_stat("count")
        self.increment_stat("total", value)
        values = self.get_stat("values", [])
        assert isinstance(values, list)  # noqa: S101  only this handler sets it
        self.set_stat("values", [*values, [i, value]])


class Rescue(Logged):
    """Takes a routed failure and emits what the failed step would have."""

    def __init__(self) -> None:
        """Declare the ``failed`` slot."""
        super().__init__()
        self.define_slot("failed", self.handle)

    def handle(self, error: dict[str, object], payload: dict[str, int]) -> None:
        """Log, then emit the failed payload's value plus 1000."""
        self.enter()
        assert error["routine_id"] == "t4"  # noqa: S101  the only route
        self.emit("out", value=payload["value"] + 1000, i=payload["i"])


class AsyncRescue(Rescue):
    """A ``Rescue`` whose handler is awaited."""

    async def handle(  # type: ignore[override]  # async, as above
        self, error: dict[str, object], payload: dict[str, int]
    ) -> None:
        """Yield to the loop once, then do what ``Rescue`` does."""
        await asyncio.sleep(0)
        Rescue.handle(self, error, payload)


class AsyncStep(Step):
    """A ``Step`` whose handler is awaited."""

    # The override returns a coroutine: that is the point of the class.
    async def handle(self, value: int, i: int = 0) -> None:  # type: ignore[override]
        """Yield to the loop once, then do what ``Step`` does."""
        await asyncio.sleep(0)
        Step.handle(self, value, i)


class AsyncJoin(Join):
    """A ``Join`` whose handler is awaited."""

    async def handle(  # type: ignore[override]  # async, as above
        self, a: int, b: int, c: int, d: int
    ) -> None:
        """Yield to the loop once, then do what ``Join`` does."""
        await asyncio.sleep(0)
        Join.handle(self, a, b, c, d)


class AsyncLoop(Loop):
    """A ``Loop`` whose handler is awaited."""

    async def handle(self, value: int, i: int = 0) -> None:  # type: ignore[override]
        """Yield to the loop once, then do what ``Loop`` does."""
        await asyncio.sleep(0)
        Loop.handle(self, value, i)


class AsyncSink(Sink):
    """A ``Sink`` whose handler is awaited."""

    async def handle(self, value: int, i: int) -> None:  # type: ignore[override]
        """Yield to the loop once, then do what ``Sink`` does."""
        await asyncio.sleep(0)
        Sink.handle(self, value, i)


SYNC_CLASSES: Final = (Step, Join, Loop, Sink)
ASYNC_CLASSES: Final = (AsyncStep, AsyncJoin, AsyncLoop, AsyncSink)


def build_flow(
    switch: KillSwitch | None = None, *, is_async: bool = False, fallback: bool = False
) -> Flow:
    """Return the 30-routine flow: fan-out, four chains, a join, a loop, a tail.

    ``start`` fans out to the chains ``a0..a4``, ``b0..b4``, ``c0..c4`` and
    ``d0..d4`` (``b2`` fails the first attempt of its delivery); their ends
    meet in the join slot of ``join``; ``loop`` feeds back into itself
    :data:`LOOPS` times and sends each round down ``t0..t5`` (``t2`` fails
    the first attempt of odd rounds) to ``sink``. With ``is_async``, each
    routine is its class's ``Async`` variant. With ``fallback``, ``t4``
    fails odd rounds for good and routes them to ``rescue`` (see the module).
    """
    step, join, loop, sink = ASYNC_CLASSES if is_async else SYNC_CLASSES
    flow = Flow(FLOW_ID, history_limit=100_000)
    retry = ErrorHandler(ErrorStrategy.RETRY, max_retries=2, retry_delay=0)
    routines: list[Logged] = []

    def add(routine: Logged, routine_id: str, **config: object) -> str:
        routine.set_config(**config)
        routines.append(routine)
        return flow.add_routine(routine, routine_id)

    add(step(), ENTRY)
    add(join(), "join")
    for branch, number in zip(BRANCHES, range(1, 5), strict=True):
        previous = ENTRY
        for k in range(CHAIN):
            routine_id = add(step(), f"{branch}{k}", add=number * 10**k)
            flow.connect(previous, "out", routine_id, "input")
            previous = routine_id
        flow.connect(previous, "out", "join", "input", {"value": branch})
    flow.routines["b2"].set_error_handler(retry)
    flow.routines["b2"].set_config(flaky="always")
    add(loop(), "loop")
    flow.connect("join", "out", "loop", "input")
    flow.connect("loop", "again", "loop", "input")
    previous = "loop"
    for k in range(TAIL):
        routine_id = add(step(), f"t{k}", add=k + 1)
        flow.connect(previous, "out", routine_id, "input")
        previous = routine_id
    flow.routines["t2"].set_error_handler(retry)
    flow.routines["t2"].set_config(flaky="odd")
    add(sink(), "sink")
    flow.connect(previous, "out", "sink", "input")
    if fallback:
        add(AsyncRescue() if is_async else Rescue(), "rescue")
        flow.routines["t4"].set_error_handler(retry)
        flow.routines["t4"].set_config(flaky="odd-for-good")
        flow.connect_failures("t4", "rescue", "failed")
        flow.connect("rescue", "out", "t5", "input")
    for routine in routines:
        routine.switch = switch or KillSwitch()
    return flow


class KillingStore(StoreWrapper):
    """A store whose checkpoints obey a kill switch."""

    def __init__(self, store: Store, switch: KillSwitch) -> None:
        """Wrap ``store``."""
        super().__init__(store)
        self.switch = switch

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        """Count the checkpoint; die before or after it if told to."""
        switch = self.switch
        switch.checkpoints += 1
        switch.kill_if("before-commit", switch.checkpoints)
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)
        switch.kill_if("after-commit", switch.checkpoints)


def open_store(db: Path, kind: str, switch: KillSwitch, commit_every: int) -> Store:
    """Return the store of ``kind`` (``sqlite`` or ``json``) that keeps the job."""
    if kind == "sqlite":
        # Group commit by count only (the interval is out of reach), so that
        # where a kill falls in a group is deterministic.
        return SqliteStore(db, commit_every=commit_every, commit_interval=3600)
    store = JsonDirectoryStore(db.parent / JSON_FOLDER)
    drop_log = store._drop_log

    def folding(job_id: str) -> None:
        switch.folds += 1
        switch.kill_if(FOLD_POINT, switch.folds)
        drop_log(job_id)

    # The one place to stand between a fold's rename and the log's removal.
    store._drop_log = folding  # type: ignore[method-assign]  # a kill point
    return store


def summary(job: JobState, switch: KillSwitch | None = None) -> dict[str, object]:
    """Return what a run must reproduce, as JSON types.

    ``results`` is the sink's stats snapshot, ``deliveries`` each routine's
    delivery count, ``runs`` each routine's recorded (successes, failures,
    retries), ``events`` each emitted event's count, ``history`` every
    handled delivery as ``[seq, routine_id, slot, outcome, attempt]``.
    """
    tracker = job.tracker
    runs = {}
    for routine_id in sorted(tracker.routine_ids):
        figures = tracker.get_routine_performance(routine_id)
        runs[routine_id] = [figures.successes, figures.failures, figures.retries]
    return {
        "status": job.status.value,
        "results": (
            job.routine_states["sink"].stats if "sink" in job.routine_states else {}
        ),
        "deliveries": {r: s.deliveries for r, s in sorted(job.routine_states.items())},
        "delivery_count": job.delivery_count,
        "runs": runs,
        "events": sorted([r, e, n] for (r, e), n in tracker.get_event_counts().items()),
        "history": [
            [h.seq, h.routine_id, h.slot, h.outcome, h.attempt]
            for h in job.get_execution_history()
        ],
        "errors": [f"{e.routine_id} {e.seq}: {e.message}" for e in job.errors],
        "handler_calls": None if switch is None else switch.handler_calls,
        "checkpoints": None if switch is None else switch.checkpoints,
    }


def main(argv: list[str]) -> int:
    """Run the command in ``argv``; see the module's docstring."""
    parser = argparse.ArgumentParser(prog="_kill_flow.py")
    parser.add_argument("command", choices=("full", "run", "recover"))
    parser.add_argument("db", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--kill-at", type=KillSwitch.parse, default=KillSwitch())
    parser.add_argument("--async", dest="is_async", action="store_true")
    parser.add_argument("--commit-every", type=int, default=1)
    parser.add_argument("--fallback", action="store_true")
    parser.add_argument("--store", choices=("sqlite", "json"), default="sqlite")
    args = parser.parse_args(argv)
    os.environ[LOG_ENV] = str(args.log)
    switch: KillSwitch = args.kill_at
    flow = build_flow(switch, is_async=args.is_async, fallback=args.fallback)
    store = open_store(args.db, args.store, switch, args.commit_every)
    if args.command == "recover":
        jobs = flow.recover(store)
        if [job.job_id for job in jobs] != [JOB_ID]:
            print(f"recovered {jobs!r}, expected job {JOB_ID!r}", file=sys.stderr)
            return 1
        job = jobs[0]
    else:
        killing = KillingStore(store, switch)
        if args.is_async:
            job = asyncio.run(
                flow.execute_async(ENTRY, ENTRY_PARAMS, job_id=JOB_ID, store=killing)
            )
        else:
            job = flow.execute(ENTRY, ENTRY_PARAMS, job_id=JOB_ID, store=killing)
    print(json.dumps(summary(job, switch)))
    return 0


if __name__ == "__main__":
    # Run the module's own classes (registered as "_kill_flow:Step", ...), not
    # copies defined in __main__, so that the flow's fingerprint is the same
    # here and in a test process that imports this module.
    from _kill_flow import main as module_main

    sys.exit(module_main(sys.argv[1:]))
