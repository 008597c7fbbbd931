"""Measure the async engine: its cost per hop, and I/O fan-out on one event loop.

Workloads:

- chain: one message through a chain of 100 routines whose ``async def``
  handlers only emit, run with ``await flow.execute_async`` (sequential); per
  hop. Timed in turn beside (a) the same chain of plain handlers run by the
  synchronous engine (``flow.execute``), and (b) a hand-written chain of 100
  objects, each awaiting the next one's ``async def`` method.
- fan_out: a source emits one message to N routines whose ``async def``
  handlers each ``await asyncio.sleep(0.05)`` and emit; a join slot collects
  the N results. ``execute_async`` with the ``concurrent`` strategy and
  ``max_workers=N``; wall time per job, for N = 1,000 and N = 10,000 (1,000
  only with ``--quick``). The ideal is 0.05 s.
- threads: the same 1,000-way fan-out with plain handlers that
  ``time.sleep(0.05)``, run by ``flow.execute`` with the thread strategy
  (``concurrent``) on 8 workers (the default) and on 64; reported, not
  checked (64 workers only with ``--quick``).
- gather: the floor without FlowForge, N coroutines that each
  ``await asyncio.sleep(0.05)``, run by ``asyncio.gather``; reported.

Targets: async hop at most 2x the synchronous hop and at most 3x the await
chain's; fan-out job at most 250 ms (1,000) and 1,500 ms (10,000).

Run ``python benchmarks/bench_async.py [--quick] [--repeats N] [--check]``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from itertools import pairwise
from typing import Final

from _harness import (
    SHORT_REPEATS,
    Comparison,
    Options,
    Stats,
    Target,
    compare,
    format_table,
    parse_options,
    publish,
)
from bench_dispatch import MESSAGE, Relay

from flowforge import Flow, JobState, JobStatus, Routine

CHAIN_LENGTH: Final = 100
CHAIN_JOBS: Final = 200
IO_SECONDS: Final = 0.05
HOP_VS_SYNC_TARGET: Final = 2.0
HOP_VS_AWAIT_TARGET: Final = 3.0
FAN_OUT_TARGET_MS: Final = {1_000: 250.0, 10_000: 1_500.0}
THREAD_WIDTH: Final = 1_000
ASYNC_ROW: Final = "async, execute_async"


class AsyncRelay(Routine):
    """Pass each message on, from an ``async def`` handler that awaits nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.relay)
        self.define_event("output")

    async def relay(self, message: dict[str, object]) -> None:
        self.emit("output", message=message)


class PlainAsyncRelay:
    """Baseline for :class:`AsyncRelay`: await the next object's method."""

    def __init__(self, successor: PlainAsyncRelay | None) -> None:
        self.successor = successor

    async def relay(self, message: dict[str, object]) -> None:
        if self.successor is not None:
            await self.successor.relay(message)


class Start(Routine):
    """A source routine: emit one message on ``output``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self) -> None:
        self.emit("output", message=MESSAGE)


class AsyncWait(Routine):
    """Await ``IO_SECONDS`` as an async network call would, then report."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.wait)
        self.define_event("done")

    async def wait(self, message: dict[str, object]) -> None:
        await asyncio.sleep(IO_SECONDS)
        self.emit("done", waited=1)


class ThreadWait(Routine):
    """Block ``IO_SECONDS`` in ``time.sleep`` (which frees the GIL), then report."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.wait)
        self.define_event("done")

    def wait(self, message: dict[str, object]) -> None:
        time.sleep(IO_SECONDS)
        self.emit("done", waited=1)


class Join(Routine):
    """Count the results once every waiting routine has delivered one."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("results", self.count, merge_strategy="append", join=True)

    def count(self, waited: list[int]) -> None:
        self.set_stat("joined", len(waited))


def chain_flow(relay: type[Routine]) -> Flow:
    """``CHAIN_LENGTH`` routines of class ``relay``, each connected to the next."""
    flow = Flow(flow_id="chain")
    ids = [flow.add_routine(relay(), f"relay_{i}") for i in range(CHAIN_LENGTH)]
    for source_id, target_id in pairwise(ids):
        flow.connect(source_id, "output", target_id, "input")
    return flow


def fan_out_flow(wait: type[Routine], width: int, workers: int) -> Flow:
    """A source to ``width`` routines of class ``wait``, joined by one routine."""
    flow = Flow(
        flow_id=f"fan_out_{width}",
        execution_strategy="concurrent",
        max_workers=workers,
        max_deliveries=2 * width + 2,
    )
    flow.add_routine(Start(), "start")
    flow.add_routine(Join(), "join")
    for index in range(width):
        wait_id = flow.add_routine(wait(), f"wait_{index}")
        flow.connect("start", "output", wait_id, "input")
        flow.connect(wait_id, "done", "join", "results")
    return flow


def _check(job: JobState, flow: Flow, joined: int | None = None) -> None:
    if job.status is not JobStatus.COMPLETED or job.errors:
        raise RuntimeError(f"benchmark job went wrong: {job!r}")
    if joined is not None and flow.routines["join"].get_stat("joined") != joined:
        raise RuntimeError(f"the join saw {flow.routines['join'].stats()}")


def on_loop(
    loop: asyncio.AbstractEventLoop, work: Callable[[], Coroutine[None, None, None]]
) -> Callable[[], None]:
    """Return a callable that runs ``work()`` to its end on ``loop``."""
    return lambda: loop.run_until_complete(work())


def measure_chain(
    loop: asyncio.AbstractEventLoop, jobs: int, repeats: int
) -> tuple[Comparison, Comparison]:
    """Time the async chain beside the synchronous one and the await chain."""
    async_flow, sync_flow = chain_flow(AsyncRelay), chain_flow(Relay)
    head = PlainAsyncRelay(None)
    for _ in range(CHAIN_LENGTH - 1):
        head = PlainAsyncRelay(head)

    async def through_async_engine() -> None:
        for _ in range(jobs):
            _check(
                await async_flow.execute_async("relay_0", {"message": MESSAGE}),
                async_flow,
            )

    def through_sync_engine() -> None:
        for _ in range(jobs):
            _check(sync_flow.execute("relay_0", {"message": MESSAGE}), sync_flow)

    async def through_awaits() -> None:
        for _ in range(jobs):
            await head.relay(MESSAGE)

    hops = jobs * CHAIN_LENGTH
    engine = on_loop(loop, through_async_engine)
    versus_sync = compare(
        "async chain / sync chain", "hop", hops, engine, through_sync_engine, repeats
    )
    versus_await = compare(
        "async chain / await chain",
        "hop",
        hops,
        engine,
        on_loop(loop, through_awaits),
        repeats,
    )
    return versus_sync, versus_await


def time_jobs(run: Callable[[], None], repeats: int, *, warm_up: bool) -> Stats:
    """Return the wall seconds of ``repeats`` calls of ``run`` (one job each)."""
    if warm_up:
        run()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return Stats.of(samples)


def measure_fan_out(loop: asyncio.AbstractEventLoop, width: int, repeats: int) -> Stats:
    """Time one async fan-out job of ``width`` waits, ``repeats`` times."""
    flow = fan_out_flow(AsyncWait, width, workers=width)

    async def job() -> None:
        _check(await flow.execute_async("start"), flow, joined=width)

    return time_jobs(on_loop(loop, job), repeats, warm_up=True)


def measure_gather(loop: asyncio.AbstractEventLoop, width: int, repeats: int) -> Stats:
    """Time the floor without FlowForge: ``width`` sleeps in ``asyncio.gather``."""

    async def wait() -> int:
        await asyncio.sleep(IO_SECONDS)
        return 1

    async def job() -> None:
        if sum(await asyncio.gather(*(wait() for _ in range(width)))) != width:
            raise RuntimeError("a wait went missing")

    return time_jobs(on_loop(loop, job), repeats, warm_up=True)


def measure_threads(workers: int, repeats: int) -> Stats:
    """Time one thread-strategy fan-out job of ``THREAD_WIDTH`` blocking waits."""
    with fan_out_flow(ThreadWait, THREAD_WIDTH, workers=workers) as flow:

        def job() -> None:
            _check(flow.execute("start"), flow, joined=THREAD_WIDTH)

        return time_jobs(job, repeats, warm_up=False)


def fan_out_table(rows: list[tuple[str, int, int, Stats]]) -> str:
    """Return the fan-out jobs' wall times as an aligned table (milliseconds)."""
    header = ("fan-out job", "width", "workers", "median ms", "min ms", "max ms")
    lines = [header]
    for name, width, workers, stats in rows:
        lines.append(
            (
                name,
                f"{width:,}",
                f"{workers:,}",
                f"{stats.median * 1e3:.1f}",
                f"{stats.minimum * 1e3:.1f}",
                f"{stats.maximum * 1e3:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def _loads(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


def main(options: Options) -> int:
    """Run the workloads, report them and return the exit status."""
    load_before = os.getloadavg()
    loop = asyncio.new_event_loop()
    try:
        jobs = 20 if options.quick else CHAIN_JOBS
        chains = measure_chain(loop, jobs, options.repeats)
        widths = [1_000] if options.quick else [1_000, 10_000]
        fan_repeats = min(options.repeats, 5)
        rows = [
            (
                ASYNC_ROW,
                width,
                width,
                measure_fan_out(loop, width, fan_repeats),
            )
            for width in widths
        ]
        rows += [
            (
                "asyncio.gather, no FlowForge",
                width,
                width,
                measure_gather(loop, width, fan_repeats),
            )
            for width in widths
        ]
    finally:
        loop.close()
    workers = [64] if options.quick else [8, 64]
    for count in workers:
        repeats = 1 if count == 8 else min(options.repeats, 3)
        rows.append(
            ("threads, execute", THREAD_WIDTH, count, measure_threads(count, repeats))
        )
    load_after = os.getloadavg()
    versus_sync, versus_await = chains
    hop_added = versus_sync.flowforge.median - versus_sync.baseline.median
    table = "\n".join(
        (
            format_table(chains),
            f"async hop adds {hop_added * 1e6:.2f} µs to the synchronous hop",
            "",
            fan_out_table(rows),
            f"ideal fan-out job: {IO_SECONDS * 1e3:.0f} ms",
            "",
            f"load average {_loads(load_before)} at start, "
            f"{_loads(load_after)} at end",
        )
    )
    targets = [
        Target("async hop / sync hop", versus_sync.ratio, HOP_VS_SYNC_TARGET),
        Target("async hop / await-chain hop", versus_await.ratio, HOP_VS_AWAIT_TARGET),
    ]
    targets += [
        Target(
            f"fan-out {width:,} job ms", stats.median * 1e3, FAN_OUT_TARGET_MS[width]
        )
        for name, width, _, stats in rows
        if name == ASYNC_ROW
    ]
    settings: dict[str, object] = {
        "chain_length": CHAIN_LENGTH,
        "chain_jobs_per_repeat": jobs,
        "io_seconds": IO_SECONDS,
        "fan_out_repeats": fan_repeats,
    }
    workloads = [
        {
            "name": item.name,
            "operation": item.operation,
            "flowforge": asdict(item.flowforge),
            "baseline": asdict(item.baseline),
            "ratio": item.ratio,
        }
        for item in chains
    ]
    workloads += [
        {"name": name, "width": width, "workers": count, "seconds": asdict(stats)}
        for name, width, count, stats in rows
    ]
    extra = {"load_average": {"start": load_before, "end": load_after}}
    return publish(options, settings, table, workloads, targets, extra)


if __name__ == "__main__":
    raise SystemExit(main(parse_options(__doc__ or "", repeats=SHORT_REPEATS)))
