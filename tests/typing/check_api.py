"""User-style code that mypy checks (and pytest does not collect).

It proves the public types are pleasant to use: no casts, no ignores.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

from flowforge import (
    Connection,
    DeliveryInfo,
    DeliveryResult,
    ErrorHandler,
    ErrorStrategy,
    Finding,
    Flow,
    FlowPerformance,
    JobState,
    JobStatus,
    Observer,
    Routine,
    RoutinePerformance,
    current_delivery,
    register_payload_type,
    step,
)
from flowforge.store import JobRecord, MemoryStore, SqliteStore, Store
from flowforge.function_routine import FunctionRoutine
from flowforge.testing import Outcome, deliver


class Orders(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("order", ["order_id", "amount"])

    def __call__(self, count: int = 3) -> None:
        for order_id in range(count):
            self.emit("order", order_id=order_id, amount=order_id * 2.5)


class Ledger(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.book)
        self.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, max_retries=2))

    def book(self, order_id: int, amount: float) -> None:
        key: tuple[str, str, int] = current_delivery().delivery_key
        self.set_stat(f"order_{order_id}", key)
        self.increment_stat("total", amount)


class Pairs(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("by_key", self.pair, join=True, correlate="order_id")
        self.define_slot("by_function", join=True, correlate=self.parity)

    def pair(self, order_id: int) -> None:
        self.increment_stat("pairs")

    def parity(self, data: dict[str, object]) -> object:
        return data.get("order_id", 0) == 0


def waiting(job: JobState) -> int:
    groups: dict[tuple[str, str], dict[object, set[int]]] = job.waiting_groups
    return sum(len(keys) for keys in groups.values())


class SlowDeliveries:
    """An observer with only the callbacks it needs."""

    def __init__(self) -> None:
        self.slow: list[DeliveryInfo] = []

    def on_delivery_end(self, delivery: DeliveryInfo, result: DeliveryResult) -> None:
        if result.outcome == "completed" and result.duration > 1.0:
            self.slow.append(delivery)


class Printer:
    """An observer with every callback satisfies the Observer protocol."""

    def on_job_start(self, job: JobState) -> None:
        print(job.job_id)

    def on_job_end(self, job: JobState) -> None:
        print(job.status)

    def on_delivery_start(self, delivery: DeliveryInfo) -> None:
        print(delivery.routine_id, delivery.attempt)

    def on_delivery_end(self, delivery: DeliveryInfo, result: DeliveryResult) -> None:
        print(result.outcome, result.duration, result.error)

    def on_retry(self, delivery: DeliveryInfo, error: BaseException) -> None:
        print(delivery.seq, error)

    def on_error(self, delivery: DeliveryInfo, error: BaseException) -> None:
        print(delivery.slot, error)


def build() -> Flow:
    flow = Flow(flow_id="orders", execution_strategy="concurrent", max_workers=4)
    flow.add_routine(Orders(), "orders")
    flow.add_routine(Ledger(), "ledger")
    flow.connect("orders", "order", "ledger", "input")
    printer: Observer = Printer()
    flow.add_observer(printer)
    remove = flow.add_observer(SlowDeliveries())
    remove()
    return flow


def run(folder: Path) -> float:
    store: Store = SqliteStore(folder / "jobs.db")
    with build() as flow:
        job: JobState = flow.execute("orders", {"count": 5}, job_id="j1", store=store)
        assert job.status is JobStatus.COMPLETED
        figures: RoutinePerformance = job.tracker.get_routine_performance("ledger")
        totals: FlowPerformance = job.tracker.get_flow_performance()
        records: list[JobRecord] = store.list_jobs(flow_id="orders")
        store.prune(older_than=timedelta(days=7), keep=100)
        resumed: list[JobState] = flow.recover(MemoryStore())
        return figures.avg_time + totals.throughput + len(records) + len(resumed)


@register_payload_type
@dataclasses.dataclass(frozen=True)
class Receipt:
    order_id: int


@register_payload_type(name="orders:Refund")
@dataclasses.dataclass(frozen=True)
class Refund:
    receipt: Receipt


def edit(flow: Flow) -> int:
    refund: Refund = Refund(Receipt(1))  # the decorators keep the class's type
    removed: Connection = flow.disconnect("orders", "order", "ledger", "input")
    flow.connect(removed.source_id, removed.event, removed.target_id, removed.slot)
    gone: tuple[Connection, ...] = flow.remove_routine("ledger")
    findings: list[Finding] = flow.validate()
    errors = [f.message for f in findings if f.severity == "error"]
    return len(gone) + len(errors) + refund.receipt.order_id


@step(emits="amount")
def parse_amount(text: str) -> float:
    return float(text)


@step
async def double(amount: float) -> float:
    return amount * 2


def chained() -> list[str]:
    flow = Flow(flow_id="steps")
    ids: list[str] = flow.chain(parse_amount(), double(), Ledger())
    outcome: Outcome = deliver(double(), {"amount": 2.0})
    emitted: list[tuple[str, dict[str, object]]] = outcome.emissions
    error: Exception | None = outcome.error
    assert error is None and emitted == [("output", {"output": 4.0})]
    return ids


def call_directly() -> object:
    routine: FunctionRoutine = parse_amount()
    return parse_amount.function("1.5"), routine.function("2")
