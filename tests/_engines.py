"""The four ways to run a job (two strategies, sync and async), for test tables."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from flowforge import Flow, JobState

Run = Callable[[Flow, str, dict[str, object]], JobState]


def run_sync(strategy: str) -> Run:
    """Return a runner that calls ``flow.execute`` with ``strategy``."""

    def run(flow: Flow, entry: str, params: dict[str, object]) -> JobState:
        return flow.execute(entry, params, execution_strategy=strategy)

    return run


def run_async(strategy: str) -> Run:
    """Return a runner that awaits ``flow.execute_async`` with ``strategy``."""

    def run(flow: Flow, entry: str, params: dict[str, object]) -> JobState:
        return asyncio.run(
            flow.execute_async(entry, params, execution_strategy=strategy)
        )

    return run


ENGINES: dict[str, Run] = {
    "sequential": run_sync("sequential"),
    "concurrent": run_sync("concurrent"),
    "async-sequential": run_async("sequential"),
    "async-concurrent": run_async("concurrent"),
}
