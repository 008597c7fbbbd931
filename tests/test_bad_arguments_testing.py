"""Bad arguments to flowforge.testing and to the integrations (Dask, OpenTelemetry).

Each one raises a FlowForgeError (a wrong type: an ArgumentTypeError, which is
also a TypeError) whose message names the argument. The integrations' cases
run when their extra is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from _bad_args import Case, Plain, assert_refused, calls, ids, wired, wrong
from flowforge.testing import FakeClock, StoreWrapper, deliver, deliver_async
from test_bad_arguments_flow import run

if TYPE_CHECKING:
    from distributed import Client

NAN = float("nan")

TESTING_CASES: list[Case] = [
    ("deliver-routine-int", lambda: deliver(wrong(5)), "deliver expects a Routine"),
    (
        "deliver-data-int",
        lambda: deliver(Plain(), wrong(5)),
        "deliver: data must be a mapping with str keys, got 5",
    ),
    (
        "deliver-slot-int",
        lambda: deliver(Plain(), {}, slot=wrong(5)),
        "has no such slot: slot names are str, got int",
    ),
    (
        "deliver-buffer-int",
        lambda: deliver(Plain(), {}, buffer=wrong(5)),
        "deliver: buffer must be a mapping with str keys, got 5",
    ),
    (
        "deliver_async-routine-class",
        lambda: run(deliver_async(wrong(Plain))),
        "deliver expects a Routine, got <class",
    ),
    (
        "deliver_async-data-list",
        lambda: run(deliver_async(Plain(), wrong([1]))),
        "deliver: data must be a mapping with str keys, got [1]",
    ),
    (
        "deliver_async-slot-unknown",
        lambda: run(deliver_async(Plain(), {}, slot="nope")),
        "has no slot 'nope'",
    ),
    (
        "deliver_async-buffer-int",
        lambda: run(deliver_async(Plain(), {}, buffer=wrong(5))),
        "deliver: buffer must be a mapping with str keys, got 5",
    ),
    (
        "FakeClock-start-int",
        lambda: FakeClock(wrong(5)),
        "start must be an aware datetime (with a tzinfo",
    ),
    (
        "FakeClock-start-naive",
        lambda: FakeClock(datetime(2026, 1, 1)),
        "start must be an aware datetime (with a tzinfo",
    ),
    (
        "FakeClock.advance-seconds-str",
        lambda: FakeClock().advance(wrong("1")),
        "seconds must be a finite number of 0 or more, got '1'",
    ),
    (
        "FakeClock.advance-seconds-negative",
        lambda: FakeClock().advance(-1),
        "seconds must be a finite number of 0 or more, got -1",
    ),
    (
        "FakeClock.sleep-seconds-nan",
        lambda: FakeClock().sleep(NAN),
        "seconds must be a finite number of 0 or more, got nan",
    ),
    (
        "FakeClock.sleep_async-seconds-inf",
        lambda: run(FakeClock().sleep_async(float("inf"))),
        "seconds must be a finite number of 0 or more, got inf",
    ),
    (
        "Outcome.payloads-event-int",
        lambda: deliver(Plain(), {"value": 1}).payloads(wrong(5)),
        "event must be an event name (a str), got int 5",
    ),
    (
        "StoreWrapper-inner-None",
        lambda: StoreWrapper(wrong(None)),
        "store must be a Store (such as SqliteStore(path) or MemoryStore()), got",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"), calls(TESTING_CASES), ids=ids(TESTING_CASES)
)
def test_bad_argument_to_a_testing_helper_raises_a_flowforge_error_naming_it(
    call: Callable[[], object], message: str
) -> None:
    assert_refused(call, message)


# -- the integrations -------------------------------------------------------------

ClientCase = tuple[str, Callable[["Client"], object], str]


def runner(client: Client, **options: Any) -> Any:  # Any: DaskRunner, if installed
    from flowforge.dask import DaskRunner

    return DaskRunner(client, **options)


DASK_CASES: list[ClientCase] = [
    (
        "DaskRunner-client-int",
        lambda c: runner(wrong(5)),
        "client must be a distributed.Client, got int 5",
    ),
    (
        "DaskRunner-preload-str",
        lambda c: runner(c, preload="flows"),
        "preload must be a list of module names, got 'flows'",
    ),
    (
        "DaskRunner-preload-item-int",
        lambda c: runner(c, preload=[5]),
        "preload item must be a module name (a str), got int 5",
    ),
    (
        "DaskRunner-lease_seconds-str",
        lambda c: runner(c, lease_seconds="x"),
        "lease_seconds must be a number of seconds, got 'x'",
    ),
    (
        "DaskRunner-lease_seconds-nan",
        lambda c: runner(c, lease_seconds=NAN),
        "lease_seconds must be positive, got nan",
    ),
    (
        "DaskRunner-retries-negative",
        lambda c: runner(c, retries=-1),
        "retries must be an int >= 0, got -1",
    ),
]


def run_on(method: str, *args: object, **options: object) -> Callable[[Client], object]:
    """Return a call of the runner's ``method`` with these arguments."""
    return lambda client: getattr(runner(client), method)(*args, **options)


for method in ("submit", "map", "run_many"):
    params = "entry_params" if method == "submit" else "params_list"
    ok: object = {} if method == "submit" else [{}]
    DASK_CASES += [
        (
            f"DaskRunner.{method}-flow-str",
            run_on(method, "flow", "plain", ok),
            "flow must be a Flow, got str 'flow'",
        ),
        (
            f"DaskRunner.{method}-entry_routine_id-int",
            run_on(method, wired(), 5, ok),
            "routine_id must be a str, got int 5",
        ),
        (
            f"DaskRunner.{method}-{params}-int",
            run_on(method, wired(), "plain", 5),
            "must be a" if method == "submit" else "params_list must be an iterable",
        ),
        (
            f"DaskRunner.{method}-entry_slot-int",
            run_on(method, wired(), "plain", ok, entry_slot=5),
            "entry_slot must be a slot name (a str) or None, got int 5",
        ),
        (
            f"DaskRunner.{method}-store-str",
            run_on(method, wired(), "plain", ok, store="jobs.db"),
            "store must be a Store (such as SqliteStore(path) or MemoryStore())",
        ),
    ]
DASK_CASES += [
    (
        "DaskRunner.submit-job_id-int",
        run_on("submit", wired(), "plain", {}, job_id=5),
        "job_id must be a non-empty str, got 5",
    ),
    (
        "DaskRunner.map-job_ids-str",
        run_on("map", wired(), "plain", [{}], job_ids="job"),
        "job_ids must be a list of job ids or None, got 'job'",
    ),
    (
        "DaskRunner.run_many-job_ids-int",
        run_on("run_many", wired(), "plain", [{}], job_ids=5),
        "job_ids must be a list of job ids or None, got 5",
    ),
]


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Client]:
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("flowforge.dask")
    with distributed.Client(
        processes=False, n_workers=0, dashboard_address=None
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in DASK_CASES],
    ids=[name for name, _, _ in DASK_CASES],
)
def test_bad_argument_to_the_dask_runner_raises_a_flowforge_error_naming_it(
    dask_client: Client, call: Callable[[Client], object], message: str
) -> None:
    assert_refused(lambda: call(dask_client), message)


def test_bad_tracer_provider_raises_a_flowforge_error_naming_it() -> None:
    otel = pytest.importorskip("flowforge.otel")

    assert_refused(
        lambda: otel.TracingObserver(wrong(5)),
        "tracer_provider must be a TracerProvider, got int 5",
    )


OTEL_IDS = ["TracingObserver-tracer_provider-int"]
"""The id of the OpenTelemetry case above, for the coverage check."""
