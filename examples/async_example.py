"""Overlap the waits of async handlers: a job run with ``await flow.execute_async``.

A start routine fans out to eight fetch routines whose ``async def`` handlers
each "download" one page: ``await asyncio.sleep(0.1)`` stands in for an HTTP
call made with an async client. A collector joins the eight pages. The job runs
on the program's own event loop with ``execution_strategy="concurrent"``, which
runs independent deliveries as asyncio tasks, so the eight waits overlap: the
job takes about 0.1 s, not 0.8 s. One routine never runs two handlers at once,
so the fetches are eight routines, not one. Prints (the time varies):

    downloads: completed, 8 pages, 208 bytes
    8 waits of 0.1 s overlapped: the job took 0.10 s
"""

from __future__ import annotations

import asyncio
import time

from flowforge import Flow, Routine

PAGES = [f"https://example.org/page/{n}" for n in range(8)]


class Start(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("go")

    def __call__(self) -> None:
        self.emit("go")


class Fetch(Routine):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.define_slot("input", handler=self.fetch)
        self.define_event("page", ["url", "size"])

    async def fetch(self) -> None:
        await asyncio.sleep(0.1)  # the loop runs the other fetches meanwhile
        self.emit("page", url=self.url, size=len(self.url))


class Collect(Routine):
    def __init__(self) -> None:
        super().__init__()
        # A join: it runs once every connection into it has delivered.
        self.define_slot("pages", self.collect, merge_strategy="append", join=True)

    def collect(self, url: list[str], size: list[int]) -> None:
        self.set_stat("pages", len(url))
        self.set_stat("bytes", sum(size))


def build_flow() -> Flow:
    flow = Flow(flow_id="downloads", execution_strategy="concurrent", max_workers=8)
    flow.add_routine(Start(), "start")
    flow.add_routine(Collect(), "collect")
    for n, url in enumerate(PAGES):
        fetch_id = flow.add_routine(Fetch(url), f"fetch_{n}")
        flow.connect("start", "go", fetch_id, "input")
        flow.connect(fetch_id, "page", "collect", "pages")
    return flow


async def main() -> None:
    flow = build_flow()
    started = time.perf_counter()
    job = await flow.execute_async("start")
    seconds = time.perf_counter() - started
    stats = job.routine_states["collect"].stats
    print(f"downloads: {job.status}, {stats['pages']} pages, {stats['bytes']} bytes")
    print(f"8 waits of 0.1 s overlapped: the job took {seconds:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
