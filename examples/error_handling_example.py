"""Handle a failing routine with each error strategy: STOP, CONTINUE, SKIP, RETRY.

A source sends 1, 2 and 3 to a worker that passes them on to a sink, but fails
on 2 in its first two attempts. STOP fails the job; CONTINUE records the error
and goes on; SKIP also drops the worker's later deliveries; RETRY delivers 2
again until it succeeds. Prints:

    stop: failed, sink [1], retries 0, errors ['worker: ValueError: bad 2']
    continue: completed, sink [1, 3], retries 0, errors ['worker: ValueError: bad 2']
    skip: completed, sink [1], retries 0, errors ['worker: ValueError: bad 2']
    retry: completed, sink [1, 2, 3], retries 2, errors []
"""

from __future__ import annotations

from flowforge import ErrorHandler, ErrorStrategy, Flow, Routine, current_delivery


class Numbers(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("number", ["value"])

    def __call__(self, values: list[int] | None = None) -> None:
        for value in values or []:
            self.emit("number", value=value)


class Worker(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.work)
        self.define_event("output", ["value"])

    def work(self, value: int) -> None:
        if value == 2 and current_delivery().attempt < 2:
            raise ValueError(f"bad {value}")
        self.emit("output", value=value)


class Sink(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[int] = []
        self.define_slot("input", handler=self.take)

    def take(self, value: int) -> None:
        self.got.append(value)


def build_flow(name: str = "stop", handler: ErrorHandler | None = None) -> Flow:
    worker = Worker()
    worker.set_error_handler(handler or ErrorHandler(ErrorStrategy.STOP))
    flow = Flow(flow_id=f"errors_{name}")
    flow.add_routine(Numbers(), "numbers")
    flow.add_routine(worker, "worker")
    flow.add_routine(Sink(), "sink")
    flow.connect("numbers", "number", "worker", "input")
    flow.connect("worker", "output", "sink", "input")
    return flow


def run(name: str, handler: ErrorHandler) -> None:
    flow = build_flow(name, handler)
    sink = flow.routines["sink"]
    assert isinstance(sink, Sink)

    job = flow.execute("numbers", {"values": [1, 2, 3]})

    assert job.tracker is not None  # every job that ran has a tracker
    retries = job.tracker.get_routine_performance("worker").retries
    errors = [f"{e.routine_id}: {e.error_type}: {e.message}" for e in job.errors]
    print(f"{name}: {job.status}, sink {sink.got}, retries {retries}, errors {errors}")


def main() -> None:
    run("stop", ErrorHandler(ErrorStrategy.STOP))
    run("continue", ErrorHandler(ErrorStrategy.CONTINUE))
    run("skip", ErrorHandler(ErrorStrategy.SKIP))
    run("retry", ErrorHandler(ErrorStrategy.RETRY, max_retries=3, retry_delay=0.01))


if __name__ == "__main__":
    main()
