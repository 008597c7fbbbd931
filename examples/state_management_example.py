"""Inspect what jobs did: routine stats, JobState and the ExecutionTracker.

Two jobs run one flow, numbers -> square -> total. The routine's ``stats()``
add up across jobs, and each JobState keeps a snapshot of them; the routine
states, the history (in depth-first order) and the tracker cover one job.
Prints, with varying timings:

    stats now: {'count': 5, 'sum': 55}; job 1 saw {'count': 3, 'sum': 14}
    numbers: completed, 1 deliveries, 0 errors
    square: completed, 2 deliveries, 0 errors
    total: completed, 2 deliveries, 0 errors
    history: #0 numbers, #1 square, #3 total, #2 square, #4 total
    square: 2 runs, success rate 100%, avg 0.004 ms
    flow: 5 deliveries, 4 events, 0.120 ms
"""

from __future__ import annotations

from flowforge import Flow, Routine


class Numbers(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("number", ["value"])

    def __call__(self, values: list[int] | None = None) -> None:
        for value in values or []:
            self.emit("number", value=value)


class Square(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.square)
        self.define_event("squared", ["value"])

    def square(self, value: int) -> None:
        self.emit("squared", value=value * value)


class Total(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.add)

    def add(self, value: int) -> None:
        self.increment_stat("count")
        self.increment_stat("sum", value)


def build_flow() -> Flow:
    flow = Flow(flow_id="state")
    for routine in (Numbers(), Square(), Total()):
        flow.add_routine(routine)
    flow.connect("numbers", "number", "square", "input")
    flow.connect("square", "squared", "total", "input")
    return flow


def main() -> None:
    flow = build_flow()
    first = flow.execute("numbers", {"values": [1, 2, 3]})
    job = flow.execute("numbers", {"values": [4, 5]})

    now, then = flow.routines["total"].stats(), first.routine_states["total"].stats
    print(f"stats now: {now}; job 1 saw {then}")
    for rid, state in job.routine_states.items():
        errors = len(state.errors)
        print(f"{rid}: {state.status}, {state.deliveries} deliveries, {errors} errors")
    steps = [f"#{r.seq} {r.routine_id}" for r in job.get_execution_history()]
    print(f"history: {', '.join(steps)}")

    assert job.tracker is not None  # a job that has run always has one
    perf = job.tracker.get_routine_performance("square")
    rate, avg = f"{perf.success_rate:.0%}", f"{perf.avg_time * 1e3:.3f}"
    print(f"square: {perf.deliveries} runs, success rate {rate}, avg {avg} ms")
    total = job.tracker.get_flow_performance()
    counts = f"{total.deliveries} deliveries, {total.events_emitted} events"
    print(f"flow: {counts}, {total.wall_time * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
