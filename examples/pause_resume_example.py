"""Pause a job from a handler, save its state, then resume or cancel it.

Review pauses the job at an order over 100 so that a person can look first. The
paused JobState is saved as JSON, loaded back and resumed on a newly built flow,
as a new process would do; a second run is cancelled while paused. Prints:

    paused: 'B-2 is over 100', 2 pending
    resumed: completed, ship {'shipped': 3, 'total': 190}
    cancelled: 2 dropped, ship {'shipped': 1, 'total': 40}
"""

from __future__ import annotations

import json

from flowforge import Flow, JobState, Routine

ORDERS = [("A-1", 40), ("B-2", 120), ("C-3", 30)]


class Orders(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("order", ["order_id", "amount"])

    def __call__(self, orders: list[tuple[str, int]]) -> None:
        for order_id, amount in orders:
            self.emit("order", order_id=order_id, amount=amount)


class Review(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.flow: Flow | None = None  # pausing from a handler needs the flow
        self.define_slot("input", handler=self.review)
        self.define_event("approved", ["order_id", "amount"])

    def review(self, order_id: str, amount: int) -> None:
        if amount > 100 and self.flow is not None:
            self.flow.pause(reason=f"{order_id} is over 100", checkpoint=order_id)
        self.emit("approved", order_id=order_id, amount=amount)


class Ship(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.ship)

    def ship(self, amount: int) -> None:
        self.increment_stat("shipped")
        self.increment_stat("total", amount)


def build_flow() -> Flow:
    flow, review = Flow(flow_id="orders"), Review()
    review.flow = flow
    for routine in (Orders(), review, Ship()):
        flow.add_routine(routine)  # ids from class names: "orders", "review", ...
    flow.connect("orders", "order", "review", "input")
    flow.connect("review", "approved", "ship", "input")
    return flow


def main() -> None:
    job = build_flow().execute("orders", {"orders": ORDERS})
    print(f"paused: {job.pause_points[-1].reason!r}, {len(job.pending)} pending")
    saved = json.dumps(job.serialize())  # what a file or a store would keep
    flow = build_flow()  # another process would rebuild the flow like this
    job = flow.resume(JobState.deserialize(json.loads(saved)))
    print(f"resumed: {job.status}, ship {flow.routines['ship'].stats()}")
    flow = build_flow()
    job = flow.execute("orders", {"orders": ORDERS})
    flow.cancel(job)
    dropped = sum(r.outcome == "cancelled" for r in job.get_execution_history())
    print(f"{job.status}: {dropped} dropped, ship {flow.routines['ship'].stats()}")


if __name__ == "__main__":
    main()
