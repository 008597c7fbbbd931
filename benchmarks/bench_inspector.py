"""Time the web inspector's jobs page over a SQLite store of 100,000 jobs.

The store is filled with copies of one small finished job (one in ten
failed), saved one by one as a process would. Then the jobs page (first
page, newest first), a status-filtered page, an id search and a job's page
are each requested ``--repeats`` times in-process through Starlette's test
client; the median is reported beside the machine's load average
(``os.getloadavg()``), since the machine may be shared. Target: the jobs
page under 300 ms.

Run ``python benchmarks/bench_inspector.py [--jobs N] [--repeats N] [--db PATH]``
(``--db`` keeps the filled store between runs). Needs the ``ui`` extra.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

from starlette.testclient import TestClient

from flowforge import Flow, JobState, JobStatus, Routine
from flowforge.store import SqliteStore
from flowforge.ui import create_app

TARGET: Final = 0.300


class Source(Routine):
    """Emit the job's one value."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("out", ["value"])

    def __call__(self, value: int) -> None:
        self.emit("out", value=value)


class Sink(Routine):
    """Take a value."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.take)

    def take(self, value: int) -> None:
        del value


def template() -> JobState:
    flow = Flow(flow_id="bench")
    flow.add_routine(Source(), "source")
    flow.add_routine(Sink(), "sink")
    flow.connect("source", "out", "sink", "input")
    return flow.execute("source", {"value": 1})


def fill(store: SqliteStore, jobs: int) -> float:
    job = template()
    started = time.perf_counter()
    for n in range(jobs):
        job.job_id = f"job-{n:06d}"
        job.status = JobStatus.FAILED if n % 10 == 9 else JobStatus.COMPLETED
        store.save(job)
    return time.perf_counter() - started


def median_time(client: TestClient, url: str, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--db", type=Path, default=None)
    options = parser.parse_args()
    path = options.db or Path(tempfile.mkdtemp()) / "jobs.db"
    store = SqliteStore(path)
    held = len(store.list_jobs())
    if held != options.jobs:
        print(f"filling {path} with {options.jobs:,} jobs ...", flush=True)
        print(f"  filled in {fill(store, options.jobs - held):.1f} s")
    client = TestClient(create_app(store))
    pages = {
        "jobs page": "/",
        "failed jobs": "/?status=failed",
        "id search": "/?q=job-0999",
        "page 500": "/?page=500",
        "one job": "/jobs/job-000009",
    }
    load = os.getloadavg()
    print(f"{options.jobs:,} jobs; load average {load[0]:.2f} {load[1]:.2f}")
    for name, url in pages.items():
        took = median_time(client, url, options.repeats)
        print(f"  {name:12} {took * 1000:7.1f} ms (median of {options.repeats})")
    took = median_time(client, "/", options.repeats)
    verdict = "meets" if took < TARGET else "MISSES"
    print(
        f"jobs page {took * 1000:.1f} ms: {verdict} the {TARGET * 1000:.0f} ms target"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    store.close()


if __name__ == "__main__":
    main()
