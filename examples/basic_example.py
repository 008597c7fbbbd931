"""Run the smallest useful flow: a source routine feeding a counting processor.

Prints ``completed`` and ``{'processed_count': 3}`` after a job of three records.
"""

from __future__ import annotations

from flowforge import Flow, Routine


class Numbers(Routine):
    """Emit each number of the job's input as one record."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("number", ["value"])

    def __call__(self, values: list[int] | None = None) -> None:
        for value in values or []:
            self.emit("number", value=value)


class Counter(Routine):
    """Count the records it receives and keep their sum."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.count)

    def count(self, value: int) -> None:
        self.increment_stat("processed_count")
        self.increment_stat("total", value)


def build_flow() -> Flow:
    flow = Flow(flow_id="basic")
    flow.add_routine(Numbers(), "numbers")
    flow.add_routine(Counter(), "counter")
    flow.connect("numbers", "number", "counter", "input")
    return flow


def main() -> None:
    flow = build_flow()
    job = flow.execute("numbers", {"values": [1, 2, 3]})

    print(job.status)
    print({"processed_count": flow.routines["counter"].get_stat("processed_count")})


if __name__ == "__main__":
    main()
