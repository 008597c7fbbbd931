"""DaskRunner on a real LocalCluster: two worker processes with one thread each.

The cluster is started once for the module. Its workers import
``_dask_routines`` through the runner's ``preload``; jobs there are compared
with the same jobs run in this process, on a fresh copy of the flow each, as a
worker runs them. One test kills a worker's process in the middle of a
handler: the nanny starts a new one, and the tests after it wait for two
workers again.

The tests of durable jobs and of the errors raised on workers also run on a
second cluster, of one worker with two threads in this process, where
coverage sees the code that runs on workers.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from distributed import Client, Event, LocalCluster, Queue

import _dask_routines
from _dask_routines import Abort, build_async_flow, build_flow
from flowforge import (
    DefinitionError,
    Flow,
    JobState,
    JobStatus,
    Routine,
    SerializationError,
    StoreError,
    UnknownPortError,
    UnknownRoutineTypeError,
)
from flowforge.dask import DaskRunner
from flowforge.serialization import ROUTINE_TYPES
from flowforge.store import MemoryStore, SqliteStore

WORKERS = 2
TIMEOUT = 60
CLUSTERS = ["processes", "threads"]
PRELOAD = [_dask_routines.__name__]
ROOT = Path(__file__).resolve().parent.parent

History = list[tuple[int, str, "str | None", str, int]]


def start_client(workers: int, threads: int, processes: bool) -> Iterator[Client]:
    # distributed leaves LocalCluster, Client, Queue, Event and wait unannotated.
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers,
        threads_per_worker=threads,
        processes=processes,
        dashboard_address=":0",
    )
    with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        yield client


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    yield from start_client(WORKERS, 1, processes=True)


@pytest.fixture(scope="module")
def threads_client() -> Iterator[Client]:
    yield from start_client(1, WORKERS, processes=False)


@pytest.fixture
def runner(client: Client) -> DaskRunner:
    client.wait_for_workers(WORKERS, timeout=TIMEOUT)
    return DaskRunner(client, preload=PRELOAD)


@pytest.fixture(params=CLUSTERS)
def any_client(request: pytest.FixtureRequest) -> Client:
    """The process cluster, then the cluster of threads in this process."""
    client: Client = request.getfixturevalue(
        "client" if request.param == "processes" else "threads_client"
    )
    client.wait_for_workers(WORKERS if request.param == "processes" else 1)
    return client


@pytest.fixture
def any_runner(any_client: Client) -> DaskRunner:
    return DaskRunner(any_client, preload=PRELOAD)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "jobs.db")
    yield store
    store.close()


def summary(job: JobState) -> dict[str, object]:
    """Return what a job's state says about its run, without times."""
    tracker = job.tracker
    return {
        "job_id": job.job_id,
        "status": job.status.value,
        "entry_params": job.entry_params,
        "delivery_count": job.delivery_count,
        "routines": {
            routine_id: (
                state.status.value,
                state.deliveries,
                state.stats,
                [(e.seq, e.error_type, e.message) for e in state.errors],
            )
            for routine_id, state in sorted(job.routine_states.items())
        },
        "slot_buffers": job.slot_buffers,
        "pending": job.pending,
        "errors": [(e.routine_id, e.seq, e.attempt, e.message) for e in job.errors],
        "runs": {
            routine_id: (figures.successes, figures.failures, figures.retries)
            for routine_id in sorted(tracker.routine_ids)
            for figures in [tracker.get_routine_performance(routine_id)]
        },
        "events": tracker.get_event_counts(),
        "history": history(job),
    }


def history(job: JobState) -> History:
    return [
        (h.seq, h.routine_id, h.slot, h.outcome, h.attempt)
        for h in job.get_execution_history()
    ]


def run_locally(job_id: str, params: Mapping[str, object]) -> JobState:
    """Run a job as a worker does: on a fresh copy of the flow, in this process."""
    flow = Flow.deserialize(build_flow().serialize())
    return flow.execute("numbers", params, job_id=job_id)


def read_log(path: Path) -> list[tuple[str, str, int, int, int]]:
    rows = []
    for line in path.read_text().splitlines():
        job_id, routine_id, seq, attempt, pid = line.split()
        rows.append((job_id, routine_id, int(seq), int(attempt), int(pid)))
    return rows


def runs_per_delivery(path: Path) -> Counter[tuple[str, str, int]]:
    return Counter((job, routine, seq) for job, routine, seq, _, _ in read_log(path))


def params_for(count: int) -> list[dict[str, object]]:
    return [{"count": 1 + i % 9, "start": i} for i in range(count)]


def wait_at_gate(client: Client, gate: str) -> int:
    """Return the pid of the worker whose handler waits at ``gate``."""
    queue = Queue(gate, client=client)  # type: ignore[no-untyped-call]
    pid: int = queue.get(timeout=TIMEOUT)  # type: ignore[no-untyped-call]
    return pid


def open_gate(client: Client, gate: str) -> None:
    Event(gate, client=client).set()  # type: ignore[no-untyped-call]


# -- many jobs ----------------------------------------------------------------------


def test_two_hundred_jobs_equal_the_same_jobs_run_locally(runner: DaskRunner) -> None:
    params = params_for(200)
    job_ids = [f"many-{i}" for i in range(200)]
    flow = build_flow()

    states = runner.run_many(flow, "numbers", params, job_ids=job_ids)

    local = [run_locally(j, p) for j, p in zip(job_ids, params, strict=True)]
    assert [summary(s) for s in states] == [summary(s) for s in local]
    assert Counter(s.status for s in states) == {JobStatus.COMPLETED: 200}
    assert sum(len(s.errors) for s in states) > 0


def test_remote_stats_come_back_in_job_states_not_in_the_callers_routines(
    any_runner: DaskRunner,
) -> None:
    flow = build_flow()
    flow.routines["sink"].set_stat("total", 1000)

    first, second = any_runner.run_many(flow, "numbers", [{"count": 2}, {"count": 3}])

    assert first.routine_states["sink"].stats == {"count": 2, "total": 1001}
    assert second.routine_states["sink"].stats == {"count": 3, "total": 1005}
    assert flow.routines["sink"].stats() == {"total": 1000}
    assert flow.routines["square"].stats() == {}


def test_submit_returns_a_future_of_the_jobs_state(runner: DaskRunner) -> None:
    future = runner.submit(build_flow(), "numbers", {"count": 4}, job_id="single")

    state = future.result(timeout=TIMEOUT)

    assert summary(state) == summary(run_locally("single", {"count": 4}))


def test_map_gives_random_job_ids_and_keys_so_equal_jobs_never_merge(
    runner: DaskRunner,
) -> None:
    futures = runner.map(build_flow(), "numbers", [{"count": 1}] * 3)

    states = [f.result(timeout=TIMEOUT) for f in futures]

    assert len({f.key for f in futures}) == 3
    assert len({s.job_id for s in states}) == 3


def test_the_flows_execution_strategy_travels_with_it(runner: DaskRunner) -> None:
    flow = build_flow()
    flow.set_execution_strategy("concurrent", max_workers=2)

    [state] = runner.run_many(flow, "numbers", [{"count": 5}], job_ids=["conc"])

    assert (
        summary(state)["routines"]
        == summary(run_locally("conc", {"count": 5}))["routines"]
    )


def test_a_flow_with_async_handlers_runs_on_the_workers(runner: DaskRunner) -> None:
    [state] = runner.run_many(build_async_flow(), "numbers", [{"count": 4}])

    assert state.status is JobStatus.COMPLETED
    assert state.routine_states["sink"].stats == {"count": 4, "total": 14}


# -- routine classes the workers cannot find --------------------------------------


class OnlyInTests(Routine):
    """Defined in the test module, which no worker imports."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, **data: object) -> None:
        pass


def test_routine_class_missing_on_workers_fails_with_a_clear_error(
    runner: DaskRunner,
) -> None:
    flow = Flow("unknown")
    flow.add_routine(OnlyInTests(), "only")
    name = f"{OnlyInTests.__module__}:{OnlyInTests.__qualname__}"
    module = OnlyInTests.__module__

    future = runner.submit(flow, "only", {"x": 1})

    with pytest.raises(UnknownRoutineTypeError) as caught:
        future.result(timeout=TIMEOUT)
    error = caught.value
    assert (error.type_name, error.routine_id) == (name, "only")
    message = str(error)
    assert f"routine 'only': routine type {name!r} is not registered" in message
    assert f"DaskRunner(client, preload=[{module!r}])" in message
    assert f"dask worker --preload {module}" in message
    assert "on Dask worker 'tcp://" in message


class Unregistered(Routine):
    """Taken out of the registry by the tests below: no worker knows it."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)

    def handle(self, **data: object) -> None:
        pass


class InMain(Unregistered):
    """As if defined in the script being run, whose classes no worker can import."""

    __module__ = "__main__"


@pytest.mark.parametrize(
    ("cls", "fix"),
    [
        (Unregistered, "pass DaskRunner(client, preload=[{module!r}])"),
        (InMain, "defined in the script you run, and no worker can import"),
    ],
    ids=["module", "main"],
)
def test_unregistered_class_on_a_worker_thread_gets_the_same_clear_error(
    threads_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    cls: type[Routine],
    fix: str,
) -> None:
    name = f"{cls.__module__}:{cls.__qualname__}"
    flow = Flow("unregistered")
    flow.add_routine(cls(), "ghost")
    monkeypatch.delitem(ROUTINE_TYPES, name)

    future = DaskRunner(threads_client).submit(flow, "ghost")

    with pytest.raises(UnknownRoutineTypeError, match=re.escape(name)) as caught:
        future.result(timeout=TIMEOUT)
    assert fix.format(module=cls.__module__) in str(caught.value)


def test_preload_module_missing_on_workers_is_refused_at_once(
    any_client: Client,
) -> None:
    name = f"flowforge_missing_{uuid.uuid4().hex[:8]}"

    with pytest.raises(DefinitionError, match=f"preload module {name!r} cannot be"):
        DaskRunner(any_client, preload=[name])

    assert not any(name in plugin for plugin in worker_plugins(any_client))


def worker_plugins(client: Client) -> list[str]:
    def names(dask_worker: object) -> list[str]:
        return list(getattr(dask_worker, "plugins", {}))

    found: dict[str, list[str]] = client.run(names)
    return [name for plugins in found.values() for name in plugins]


# -- arguments checked before anything is sent -------------------------------------


def test_a_store_that_cannot_travel_is_refused(runner: DaskRunner) -> None:
    with pytest.raises(StoreError, match="cannot be sent to Dask workers"):
        runner.submit(build_flow(), "numbers", {"count": 1}, store=MemoryStore())


def test_an_unknown_entry_routine_is_refused(runner: DaskRunner) -> None:
    with pytest.raises(UnknownPortError, match="no routine 'nowhere'"):
        runner.submit(build_flow(), "nowhere")


@pytest.mark.parametrize(
    ("job_ids", "message"),
    [(["a"], "1 job_ids for 2 params"), (["a", "a"], r"job_ids repeat \['a'\]")],
    ids=["length", "repeated"],
)
def test_map_refuses_job_ids_that_do_not_name_each_job_once(
    runner: DaskRunner, job_ids: Sequence[str], message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        runner.map(build_flow(), "numbers", [{}, {}], job_ids=job_ids)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda c: DaskRunner(c, lease_seconds=0), "lease_seconds must be positive"),
        (lambda c: DaskRunner(c, retries=-1), "retries must be an int >= 0"),
    ],
    ids=["lease", "retries"],
)
def test_runner_refuses_options_out_of_range(
    client: Client, make: Callable[[Client], DaskRunner], message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        make(client)


def test_submit_refuses_an_empty_job_id(runner: DaskRunner) -> None:
    with pytest.raises(DefinitionError, match="job_id must be a non-empty str"):
        runner.submit(build_flow(), "numbers", job_id="")


def test_runner_repr_names_the_scheduler_and_the_options(runner: DaskRunner) -> None:
    text = repr(runner)

    assert text.startswith("DaskRunner(scheduler='tcp://127.0.0.1:")
    assert text.endswith(", preload=['_dask_routines'], lease_seconds=30.0)")


def test_runner_refuses_one_string_as_preload(client: Client) -> None:
    with pytest.raises(TypeError, match="list of module names"):
        DaskRunner(client, preload="_dask_routines")


def test_sqlite_store_pickles_as_its_absolute_path(store: SqliteStore) -> None:
    job = build_flow().execute("numbers", {"count": 1}, job_id="kept", store=store)

    copy = pickle.loads(pickle.dumps(store))

    assert copy.path == store.path.absolute()
    assert copy.load("kept") == job
    copy.close()


# -- durable jobs -------------------------------------------------------------------


def test_a_finished_job_submitted_again_is_returned_not_run_again(
    any_runner: DaskRunner, store: SqliteStore, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    flow = build_flow(log=str(log))
    ids = ["again-0", "again-1"]
    params = params_for(2)
    first = any_runner.run_many(flow, "numbers", params, job_ids=ids, store=store)
    runs = log.read_text()

    second = any_runner.run_many(flow, "numbers", params, job_ids=ids, store=store)

    assert [summary(s) for s in second] == [summary(s) for s in first]
    assert log.read_text() == runs


def test_run_many_raises_the_first_task_error_once_every_job_has_ended(
    any_runner: DaskRunner, store: SqliteStore
) -> None:
    unsaveable: dict[str, object] = {"count": 1, "start": 1j}
    params: list[dict[str, object]] = [{"count": 1}, unsaveable, {"count": 200}]
    job_ids = ["fine", "unsaveable", "longer"]

    with pytest.raises(SerializationError, match=r"entry_params\[.start.\]"):
        any_runner.run_many(
            build_flow(), "numbers", params, job_ids=job_ids, store=store
        )

    assert store.get("fine").status is JobStatus.COMPLETED
    assert store.get("longer").status is JobStatus.COMPLETED


def test_a_job_left_running_elsewhere_is_resumed_once_its_lease_expires(
    any_runner: DaskRunner, store: SqliteStore, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    params = {"count": 6, "start": 10}
    with pytest.raises(Abort):
        build_flow(log=str(log), abort_at=13).execute(
            "numbers", params, job_id="left", store=store
        )
    now = time.time()
    store.acquire("left", owner="elsewhere:1:abc", lease_until=now - 1, now=now)

    state = any_runner.submit(
        build_flow(log=str(log)), "numbers", params, job_id="left", store=store
    ).result(timeout=TIMEOUT)

    assert summary(state) == summary(run_locally("left", params))
    twice = [key for key, n in runs_per_delivery(log).items() if n != 1]
    assert [key[:2] for key in twice] == [("left", "square")]


def test_a_second_submission_of_a_running_job_waits_and_does_not_run_it_again(
    any_runner: DaskRunner, store: SqliteStore, tmp_path: Path
) -> None:
    client, runner = any_runner.client, any_runner
    log = tmp_path / "runs.log"
    gate = f"gate-{uuid.uuid4().hex}"
    flow = build_flow(log=str(log), gate=gate, gate_job="twice", gate_value=2)
    params = {"count": 5}
    first = runner.submit(flow, "numbers", params, job_id="twice", store=store)
    wait_at_gate(client, gate)

    second = runner.submit(flow, "numbers", params, job_id="twice", store=store)
    with pytest.raises(TimeoutError):
        second.result(timeout=1)
    open_gate(client, gate)

    results = [first.result(timeout=TIMEOUT), second.result(timeout=TIMEOUT)]
    assert [summary(s) for s in results] == [summary(run_locally("twice", params))] * 2
    assert set(runs_per_delivery(log).values()) == {1}


def test_jobs_of_a_killed_worker_complete_exactly_once_from_their_checkpoints(
    client: Client, runner: DaskRunner, store: SqliteStore, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    gate = f"gate-{uuid.uuid4().hex}"
    victim = "kill-3"
    flow = build_flow(log=str(log), gate=gate, gate_job=victim, gate_value=5)
    job_ids = [f"kill-{i}" for i in range(12)]
    params: list[dict[str, object]] = [{"count": 8, "start": i} for i in range(12)]
    futures = runner.map(flow, "numbers", params, job_ids=job_ids, store=store)
    pid = wait_at_gate(client, gate)
    assert pid in client.run(os.getpid).values()

    os.kill(pid, signal.SIGKILL)

    states = [future.result(timeout=TIMEOUT) for future in futures]
    open_gate(client, gate)  # ends the scheduler's wait for the dead handler
    local = [run_locally(j, p) for j, p in zip(job_ids, params, strict=True)]
    assert [summary(s) for s in states] == [summary(s) for s in local]
    for job_id, expected in zip(job_ids, local, strict=True):
        seqs = [seq for seq, *_ in history(store.load(job_id))]
        assert history(store.load(job_id)) == history(expected)
        assert len(seqs) == len(set(seqs))
    twice = [key for key, n in runs_per_delivery(log).items() if n != 1]
    assert [key[:2] for key in twice] == [(victim, "square")]
    pids = [row[4] for row in read_log(log) if row[:3] == twice[0]]
    assert pids[0] == pid != pids[1]


# -- the optional extra ------------------------------------------------------------

BLOCK_DASK = """
import sys

class NoDask:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("dask", "distributed"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoDask())
try:
    import flowforge.dask
except ImportError as error:
    print(error)
"""


def run_python(code: str) -> str:
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=True,
    )
    return result.stdout


def test_importing_flowforge_dask_without_dask_names_the_extra() -> None:
    printed = run_python(BLOCK_DASK)

    assert printed == (
        "flowforge.dask needs Dask distributed, an optional extra: "
        'pip install "flowforge[dask]"\n'
    )


def test_the_core_never_imports_dask() -> None:
    printed = run_python(
        "import sys, flowforge, flowforge.store, flowforge.testing\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in "
        "('dask', 'distributed')))"
    )

    assert printed == "[]\n"
