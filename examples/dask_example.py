"""Run a batch of jobs on a local Dask cluster of two worker processes.

``DaskRunner.run_many`` sends each job to a worker, which rebuilds the flow
from its definition, runs the job and sends back its JobState. The workers find
the routine classes by importing this module, named in ``preload``. Each job's
stats come back in its JobState; the routines in this process stay as they
were. Prints:

    8 jobs: completed
    sums of squares: [0, 1, 5, 14, 30, 55, 91, 140]
    stats here: {}

It needs the optional extra ``dask``; without it, it says so in one line and
exits with status 1.
"""

from __future__ import annotations

import importlib.util

from flowforge import Flow, Routine

NEEDS_EXTRA = 'dask_example.py needs the "dask" extra: pip install "flowforge[dask]"'


class Numbers(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("number", ["value"])

    def __call__(self, count: int) -> None:
        for value in range(count):
            self.emit("number", value=value)


class SumOfSquares(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.add)

    def add(self, value: int) -> None:
        self.increment_stat("sum", value * value)


def build_flow() -> Flow:
    flow = Flow(flow_id="squares")
    flow.add_routine(Numbers(), "numbers")
    flow.add_routine(SumOfSquares(), "sum")
    flow.connect("numbers", "number", "sum", "input")
    return flow


def main() -> None:
    if importlib.util.find_spec("distributed") is None:
        raise SystemExit(NEEDS_EXTRA)  # a message and status 1, no traceback
    from distributed import Client, LocalCluster

    from flowforge.dask import DaskRunner

    flow = build_flow()
    params = [{"count": n} for n in range(1, 9)]
    # processes=True: each worker is a process of its own, as on a real cluster.
    cluster = LocalCluster(  # type: ignore[no-untyped-call]  # distributed
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        runner = DaskRunner(client, preload=["dask_example"])
        jobs = runner.run_many(flow, "numbers", params)
    statuses = sorted({job.status.value for job in jobs})
    print(f"{len(jobs)} jobs: {', '.join(statuses)}")
    print("sums of squares:", [job.routine_states["sum"].stats["sum"] for job in jobs])
    print("stats here:", flow.routines["sum"].stats())


if __name__ == "__main__":
    # Run the classes of the module "dask_example", the name the workers import,
    # not copies defined in "__main__", a name no worker can import.
    from dask_example import main as module_main

    module_main()
