"""Fan records out to two sinks and join them back by record id: a correlated join.

``split`` sends each record to a warehouse sink and a lake sink; both report
where they stored it to ``merge``, a join with ``correlate="record_id"``, which
fires once per record with that record's two reports only. The lake fails
record 2 under CONTINUE, so record 2's group never completes: the job still
ends, and reports the group as waiting instead of mixing it into another.
The same groups come out of every strategy. Prints:

    sequential: completed, merged 1: wh/1.csv + lake/1.json, 3: wh/3.csv + lake/3.json
    concurrent: completed, merged 1: wh/1.csv + lake/1.json, 3: wh/3.csv + lake/3.json
    errors: ['lake: lake is full for record 2']
    waiting: record 2 has heard from ['warehouse'], not from ['lake']
"""

from __future__ import annotations

from flowforge import ErrorHandler, ErrorStrategy, Flow, Routine


class Split(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("records", self.split)
        self.define_event("record", ["record_id"])

    def split(self, records: list[int]) -> None:
        for record_id in records:
            self.emit("record", record_id=record_id)


class Sink(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("record", self.store)
        self.define_event("stored", ["record_id", "path"])

    def store(self, record_id: int) -> None:
        if record_id == self.get_config("refuse"):
            raise OSError(f"{self.get_config('name')} is full for record {record_id}")
        path = str(self.get_config("pattern")).format(record_id)
        self.emit("stored", record_id=record_id, path=path)


class Merge(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.merged: list[tuple[int, str, str]] = []
        self.define_slot("stored", self.merge, join=True, correlate="record_id")

    def merge(self, record_id: int, warehouse: str, lake: str) -> None:
        self.merged.append((record_id, warehouse, lake))


def build_flow() -> Flow:
    flow = Flow("etl")
    flow.add_routine(Split(), "split")
    flow.add_routine(Merge(), "merge")
    settings = {"warehouse": "wh/{}.csv", "lake": "lake/{}.json"}
    for name, pattern in settings.items():
        sink = Sink()
        sink.set_config(name=name, pattern=pattern, refuse=2 if name == "lake" else 0)
        sink.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
        flow.add_routine(sink, name)
        flow.connect("split", "record", name, "record")
        # Each sink's path arrives under the sink's name; record_id is the key.
        flow.connect(name, "stored", "merge", "stored", param_mapping={"path": name})
    return flow


def main() -> None:
    for strategy in ("sequential", "concurrent"):
        flow = build_flow()
        merge = flow.get_routine("merge")
        assert isinstance(merge, Merge)
        job = flow.execute("split", {"records": [1, 2, 3]}, execution_strategy=strategy)
        groups = [f"{r}: {w} + {lake}" for r, w, lake in sorted(merge.merged)]
        print(f"{strategy}: {job.status.value}, merged {', '.join(groups)}")
    print(f"errors: {[f'{e.routine_id}: {e.message}' for e in job.errors]}")
    # Which sink each of the join's connections (by index) comes from.
    sinks = {
        i: c.source_id for i, c in enumerate(flow.connections) if c.target_id == "merge"
    }
    for key, heard in job.waiting_groups[("merge", "stored")].items():
        heard_from = [sinks[i] for i in sorted(heard)]
        missing = [sink for i, sink in sinks.items() if i not in heard]
        print(f"waiting: record {key} has heard from {heard_from}, not from {missing}")


if __name__ == "__main__":
    main()
