"""Run a pipeline parse -> validate -> enrich -> aggregate that ends in a join.

The aggregator's ``append`` join slot fires once, after ``done`` arrives. Prints:

    status: completed
    validate: {'rejected': 1}
    aggregate: {'lines': 3, 'premium': 1, 'total': 31.5}
"""

from __future__ import annotations

from flowforge import Flow, Routine


class Parse(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("record", ["name", "quantity", "price"])
        self.define_event("done", ["count"])

    def __call__(self, csv: str = "") -> None:
        lines = csv.splitlines()
        for line in lines:
            name, quantity, price = line.split(",")
            self.emit("record", name=name, quantity=quantity, price=price)
        self.emit("done", count=len(lines))


class Validate(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.check)
        self.define_event("valid", ["name", "quantity", "price"])

    def check(self, name: str, quantity: str, price: str) -> None:
        if quantity.isdigit():
            self.emit("valid", name=name, quantity=int(quantity), price=float(price))
        else:
            self.increment_stat("rejected")


class Enrich(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.enrich)
        self.define_event("enriched", ["tier", "total"])

    def enrich(self, quantity: int, price: float) -> None:
        tier = "premium" if price >= 10 else "standard"
        self.emit("enriched", tier=tier, total=quantity * price)


class Aggregate(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("rows", self.finish, merge_strategy="append", join=True)

    def finish(self, tier: list[str], total: list[float], lines: list[int]) -> None:
        self.set_stat("lines", lines[0])
        self.set_stat("premium", tier.count("premium"))
        self.set_stat("total", sum(total))


def build_flow() -> Flow:
    flow = Flow(flow_id="data_processing")
    for routine in (Parse(), Validate(), Enrich(), Aggregate()):
        flow.add_routine(routine)  # ids from class names: "parse", "validate", ...
    flow.connect("parse", "record", "validate", "input")
    flow.connect("validate", "valid", "enrich", "input")
    flow.connect("enrich", "enriched", "aggregate", "rows")
    flow.connect("parse", "done", "aggregate", "rows", {"count": "lines"})
    return flow


def main() -> None:
    flow = build_flow()
    job = flow.execute("parse", {"csv": "bolt,3,2.50\nhammer,2,12.00\nwidget,x,2.50"})
    print(f"status: {job.status}")
    print(f"validate: {flow.routines['validate'].stats()}")
    print(f"aggregate: {flow.routines['aggregate'].stats()}")


if __name__ == "__main__":
    main()
