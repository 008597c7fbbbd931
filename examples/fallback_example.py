"""Retry a flaky call, then route the failures that remain to a fallback routine.

``api`` fetches each item; ``c`` fails once and succeeds on its retry, while
``b`` and ``d`` are down for good. When ``api``'s retries run out, the flow's
failure route hands the error and the original payload to ``fallback``, which
answers from a cache: the job completes, the errors stay on record with their
payloads, and the tracker counts the routed runs apart. Prints:

    a: api
    b: fallback (ConnectionError after 3 attempts: b is down)
    c: api
    d: fallback (ConnectionError after 3 attempts: d is down)
    e: api
    job: completed, errors kept for [{'item': 'b'}, {'item': 'd'}]
    api: 3 succeeded, 5 retried, 2 routed, 0 failed
"""

from __future__ import annotations

from flowforge import ErrorHandler, ErrorStrategy, Flow, Routine, current_delivery

DOWN = {"b", "d"}


class Items(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("item")

    def __call__(self, items: list[str]) -> None:
        for item in items:
            self.emit("item", item=item)


class Api(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.fetch)
        self.define_event("answer")

    def fetch(self, item: str) -> None:
        if item in DOWN or (item == "c" and current_delivery().attempt == 0):
            raise ConnectionError(f"{item} is down")
        self.emit("answer", item=item, source="api")


class Fallback(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("failed", handler=self.answer)
        self.define_event("answer")

    def answer(self, error: dict[str, object], payload: dict[str, str]) -> None:
        attempts = int(str(error["attempt"])) + 1
        why = f"{error['error_type']} after {attempts} attempts: {error['message']}"
        self.emit("answer", item=payload["item"], source=f"fallback ({why})")


class Report(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.show)

    def show(self, item: str, source: str) -> None:
        print(f"{item}: {source}")


def build_flow() -> Flow:
    flow = Flow("fallback_example")
    api = Api()
    api.set_error_handler(
        ErrorHandler(ErrorStrategy.RETRY, max_retries=2, retry_delay=0.001)
    )
    flow.add_routine(Items(), "items")
    flow.add_routine(api, "api")
    flow.add_routine(Fallback(), "fallback")
    flow.add_routine(Report(), "report")
    flow.connect("items", "item", "api", "input")
    flow.connect("api", "answer", "report", "input")
    flow.connect("fallback", "answer", "report", "input")
    flow.connect_failures("api", "fallback", "failed")
    return flow


def main() -> None:
    job = build_flow().execute("items", {"items": ["a", "b", "c", "d", "e"]})
    print(f"job: {job.status}, errors kept for {[e.payload for e in job.errors]}")
    api = job.tracker.get_routine_performance("api")
    print(
        f"api: {api.successes} succeeded, {api.retries} retried, "
        f"{api.routed} routed, {api.failures} failed"
    )


if __name__ == "__main__":
    main()
