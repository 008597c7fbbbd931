"""PostgresStore: the contract suite of ``test_store.py``, then a shared server's cases.

The server comes from ``$FLOWFORGE_TEST_POSTGRES_DSN``; without it, the
session starts a throwaway one with ``scripts/pg_test_server.sh`` (installing
PostgreSQL with apt-get if needed) and stops it at the end. If that is
impossible the tests are skipped, except when ``$CI`` is set: then they fail.
Every test gets a store in a new PostgreSQL schema of its own.

The store contract (every ``test_*`` function of ``test_store.py`` that takes
the ``store`` fixture) and the kill-and-recover promises of ``test_recovery.py``
run here with the same assertions, against PostgresStore.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import pytest

try:
    import psycopg
    from psycopg_pool import ConnectionPool

    from flowforge.store.postgres import SCHEMA_VERSION, PostgresStore
except ImportError as missing:
    if os.environ.get("CI"):
        raise
    pytest.skip(
        f'PostgresStore needs pip install "flowforge[postgres]": {missing}',
        allow_module_level=True,
    )

import test_recovery
import test_store
from _kill_flow import (
    ENTRY,
    ENTRY_PARAMS,
    JOB_ID,
    LOG_ENV,
    POINTS,
    build_flow,
    summary,
)
from test_recovery import (
    assert_each_delivery_finished_once,
    Key,
    Outcome,
    Reference,
    finished,
    named_cases,
    read_log,
)
from test_store import NOW, paused_job, plain_job

from flowforge import (
    FlowForgeError,
    FlowForgeWarning,
    JobNotFoundError,
    JobState,
    JobStateError,
    JobStatus,
    SerializationError,
    StoreError,
)

ROOT: Final = Path(__file__).resolve().parent.parent
SERVER_SCRIPT: Final = ROOT / "scripts" / "pg_test_server.sh"
WORKER: Final = Path(__file__).with_name("_pg_worker.py")
DSN_VARIABLE: Final = "FLOWFORGE_TEST_POSTGRES_DSN"
WAIT: Final = 60.0

# -- the store contract of test_store.py -----------------------------------------

CONTRACT: Final = {
    name: test
    for name, test in vars(test_store).items()
    if name.startswith("test_")
    and callable(test)
    and "store" in inspect.signature(test).parameters
}
"""``test_store.py``'s backend-independent tests: those taking a ``store``."""
globals().update(CONTRACT)


# -- the server -----------------------------------------------------------------


def start_server() -> tuple[str, str]:
    """Start a throwaway server; return its DSN and directory.

    Raises:
        RuntimeError: If it cannot be started, saying why.
    """
    if shutil.which("bash") is None:
        raise RuntimeError("bash is needed to run scripts/pg_test_server.sh")
    started = subprocess.run(
        ["bash", str(SERVER_SCRIPT), "start"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    exported = dict(
        re.findall(r"^export (\w+)='?([^'\n]*)'?$", started.stdout, re.MULTILINE)
    )
    if started.returncode != 0 or DSN_VARIABLE not in exported:
        raise RuntimeError(
            f"scripts/pg_test_server.sh start failed ({started.returncode}): "
            f"{started.stderr.strip()[-2000:]}"
        )
    return exported[DSN_VARIABLE], exported["FLOWFORGE_TEST_POSTGRES_DIR"]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of a PostgreSQL server: ``$FLOWFORGE_TEST_POSTGRES_DSN`` or our own."""
    given = os.environ.get(DSN_VARIABLE)
    if given:
        yield given
        return
    try:
        dsn, directory = start_server()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        reason = f"no PostgreSQL server: set {DSN_VARIABLE} ({error})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield dsn
    finally:
        subprocess.run(
            ["bash", str(SERVER_SCRIPT), "stop", directory], timeout=120, check=False
        )


def new_schema() -> str:
    """Return a schema name no other test uses."""
    return f"test_{uuid.uuid4().hex[:16]}"


def sql(dsn: str, statement: str, *parameters: object) -> list[tuple[object, ...]]:
    """Run one statement behind the store's back; return its rows, if any."""
    with psycopg.connect(dsn, autocommit=True) as db:
        cursor = db.execute(statement, parameters or None)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    """A schema name for one test, dropped afterwards."""
    name = new_schema()
    yield name
    sql(postgres_dsn, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def store(postgres_dsn: str, schema: str) -> Iterator[PostgresStore]:
    """A fresh, empty PostgresStore in a schema of its own."""
    opened = PostgresStore(postgres_dsn, schema=schema)
    yield opened
    opened.close()


# -- the optional extra ---------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
        cwd=ROOT,
    )


def test_the_core_never_imports_psycopg() -> None:
    checked = run_python(
        "import sys, flowforge, flowforge.store, flowforge.testing\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported'"
    )

    assert checked.returncode == 0, checked.stderr


def test_importing_the_store_without_psycopg_names_the_extra() -> None:
    checked = run_python(
        "import sys\nsys.modules['psycopg'] = None\nimport flowforge.store.postgres"
    )

    assert checked.returncode != 0
    assert "ImportError: PostgresStore needs psycopg 3" in checked.stderr
    assert 'pip install "flowforge[postgres]"' in checked.stderr


# -- connecting ---------------------------------------------------------------------


def test_constructing_a_store_does_not_connect() -> None:
    store = PostgresStore("host=/nonexistent/socket/dir dbname=x")

    assert "host='/nonexistent/socket/dir'" in repr(store)


def test_repr_and_errors_never_show_the_password() -> None:
    store = PostgresStore(
        "postgresql://alice:s3cret-pw@/nowhere?host=/nonexistent/dir&connect_timeout=2"
    )

    with pytest.raises(
        StoreError, match="cannot create the schema of PostgreSQL"
    ) as caught:
        store.list_jobs()

    assert "s3cret-pw" not in repr(store)
    assert "s3cret-pw" not in str(caught.value)
    assert "user='alice'" in repr(store)


def test_a_malformed_connection_string_is_refused_without_echoing_it() -> None:
    with pytest.raises(StoreError, match="not a valid PostgreSQL connection") as caught:
        PostgresStore("host=db password hunter2")

    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    "schema", ["", "1abc", "a-b", 'x"; DROP TABLE jobs; --', "a" * 64], ids=str
)
def test_a_schema_that_is_not_a_plain_identifier_is_refused(schema: str) -> None:
    with pytest.raises(StoreError, match="schema must be a plain identifier"):
        PostgresStore("dbname=x", schema=schema)


def test_store_on_a_connection_pool_borrows_and_leaves_it_open(
    postgres_dsn: str, schema: str
) -> None:
    with ConnectionPool(postgres_dsn, min_size=1, max_size=2, open=True) as pool:
        store = PostgresStore(pool, schema=schema)
        job = paused_job()

        store.save(job)
        store.close()

        assert store.load(job.job_id) == job
        assert not pool.closed
        assert "pool" in repr(store)


def test_store_pickles_as_its_connection_string_and_schema(
    store: PostgresStore,
) -> None:
    job = paused_job()
    store.save(job)

    copy = pickle.loads(pickle.dumps(store))

    try:
        assert copy.load(job.job_id) == job
        assert repr(copy) == repr(store)
    finally:
        copy.close()


def test_store_on_a_pool_refuses_to_pickle(postgres_dsn: str, schema: str) -> None:
    with ConnectionPool(postgres_dsn, min_size=1, open=True) as pool:
        store = PostgresStore(pool, schema=schema)

        with pytest.raises(TypeError, match="cannot be pickled.*connection string"):
            pickle.dumps(store)


def test_threads_share_a_pooled_store(postgres_dsn: str, schema: str) -> None:
    with ConnectionPool(postgres_dsn, min_size=1, max_size=3, open=True) as pool:
        store = PostgresStore(pool, schema=schema)
        flow = test_store.diamond_flow()
        failures: list[Exception] = []

        def run(n: int) -> None:
            try:
                flow.execute("start", {"value": n}, job_id=f"job-{n}", store=store)
            except Exception as error:  # reported by the main thread
                failures.append(error)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)

        assert failures == []
        assert len(store.list_jobs(status="completed")) == 6


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_async_jobs_write_their_checkpoints_off_the_loop(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    threads: list[threading.Thread] = []
    real = PostgresStore.checkpoint

    def watched(self: PostgresStore, *args: object, **kwargs: object) -> None:
        threads.append(threading.current_thread())
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PostgresStore, "checkpoint", watched)
    flow = test_store.diamond_flow()

    async def main() -> tuple[JobStatus, threading.Thread]:
        job = await flow.execute_async(
            "start", {"value": 3}, store=store, execution_strategy=strategy
        )
        return job.status, threading.current_thread()

    status, loop_thread = asyncio.run(main())

    assert status is JobStatus.COMPLETED
    assert threads and all(thread is not loop_thread for thread in threads)
    assert len(store.list_jobs(status="completed")) == 1


def test_a_dropped_connection_fails_one_call_then_reconnects(
    postgres_dsn: str, schema: str
) -> None:
    name = f"flowforge-{schema}"
    dsn = psycopg.conninfo.make_conninfo(postgres_dsn, application_name=name)
    store = PostgresStore(dsn, schema=schema)
    store.save(plain_job("job"))
    sql(
        postgres_dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = %s",
        name,
    )

    with pytest.raises(StoreError, match="cannot read PostgreSQL store"):
        store.load("job")

    assert store.load("job") == plain_job("job")
    store.close()


def test_a_forked_child_connects_on_its_own_and_leaves_the_parents_alone(
    store: PostgresStore,
) -> None:
    store.save(plain_job("parent"))

    pid = os.fork()
    if pid == 0:  # the child: leave by os._exit, never through pytest
        code = 1
        try:
            store.save(plain_job("child"))
            code = 0 if store.get("child").job_id == "child" else 2
            store.close()
        finally:
            os._exit(code)

    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.load("parent") == plain_job("parent")
    assert store.get("child").status is JobStatus.COMPLETED


def test_store_after_close_opens_a_new_connection(store: PostgresStore) -> None:
    store.save(plain_job("job"))

    store.close()

    assert store.get("job").job_id == "job"


# -- schema ------------------------------------------------------------------------


def tables(dsn: str, schema: str) -> list[str]:
    rows = sql(
        dsn,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "ORDER BY table_name",
        schema,
    )
    return [str(name) for (name,) in rows]


EXPECTED_TABLES: Final = [
    "buffers",
    "errors",
    "history",
    "jobs",
    "meta",
    "pending",
    "routines",
    "shapes",
]


def test_first_use_creates_the_schema_and_records_its_version(
    postgres_dsn: str, schema: str
) -> None:
    store = PostgresStore(postgres_dsn, schema=schema)
    assert tables(postgres_dsn, schema) == []

    store.list_jobs()

    assert tables(postgres_dsn, schema) == EXPECTED_TABLES
    version = sql(postgres_dsn, f'SELECT value FROM "{schema}".meta')
    assert version == [(str(SCHEMA_VERSION),)]
    store.close()


def test_create_schema_is_explicit_and_idempotent(
    postgres_dsn: str, schema: str
) -> None:
    store = PostgresStore(postgres_dsn, schema=schema)

    store.create_schema()
    store.create_schema()
    with closing(PostgresStore(postgres_dsn, schema=schema)) as again:
        again.create_schema()

    assert tables(postgres_dsn, schema) == EXPECTED_TABLES
    store.close()


def test_processes_creating_one_schema_at_once_all_succeed(
    postgres_dsn: str, schema: str
) -> None:
    code = (
        "import sys\nfrom flowforge.store.postgres import PostgresStore\n"
        "sys.stdin.readline()\n"
        f"store = PostgresStore({postgres_dsn!r}, schema={schema!r})\n"
        "store.create_schema()\nstore.close()\n"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(4)
    ]
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()

    errors = [worker.communicate(timeout=WAIT)[1] for worker in workers]

    assert [worker.returncode for worker in workers] == [0] * 4, errors
    assert tables(postgres_dsn, schema) == EXPECTED_TABLES


def test_stores_in_two_schemas_are_independent(
    postgres_dsn: str, store: PostgresStore
) -> None:
    other_schema = new_schema()
    other = PostgresStore(postgres_dsn, schema=other_schema)
    try:
        store.save(plain_job("job", flow_id="here"))
        other.save(plain_job("job", flow_id="there"))

        assert store.load("job").flow_id == "here"
        assert other.load("job").flow_id == "there"
    finally:
        other.close()
        sql(postgres_dsn, f'DROP SCHEMA "{other_schema}" CASCADE')


@pytest.mark.parametrize(
    ("value", "message"),
    [("99", "schema version 99, newer than"), ("one", "unreadable schema version")],
    ids=["newer", "garbled"],
)
def test_a_stored_schema_version_it_cannot_use_is_refused(
    postgres_dsn: str, schema: str, value: str, message: str
) -> None:
    with closing(PostgresStore(postgres_dsn, schema=schema)) as store:
        store.create_schema()
    sql(postgres_dsn, f'UPDATE "{schema}".meta SET value = %s', value)

    with closing(PostgresStore(postgres_dsn, schema=schema)) as store:
        with pytest.raises(StoreError, match=message):
            store.list_jobs()


def test_a_version_1_schema_is_upgraded_and_its_jobs_load_as_they_were(
    postgres_dsn: str, schema: str
) -> None:
    job = paused_job()
    with closing(PostgresStore(postgres_dsn, schema=schema)) as store:
        store.save(job)
    # What version 1 wrote: the shape inside the job's header, no shapes table.
    rows = sql(postgres_dsn, f'SELECT header FROM "{schema}".jobs')
    header = json.loads(str(rows[0][0]))
    del header["flow_shape_id"]
    header["flow_shape"] = job.flow_shape
    sql(postgres_dsn, f'UPDATE "{schema}".jobs SET header = %s', json.dumps(header))
    sql(postgres_dsn, f'DROP TABLE "{schema}".shapes')
    sql(postgres_dsn, f"UPDATE \"{schema}\".meta SET value = '1'")

    with closing(PostgresStore(postgres_dsn, schema=schema)) as upgraded:
        assert upgraded.load(job.job_id) == job
        assert tables(postgres_dsn, schema) == EXPECTED_TABLES
        version = sql(postgres_dsn, f'SELECT value FROM "{schema}".meta')
        assert version == [(str(SCHEMA_VERSION),)]
        upgraded.save(job)  # saved again: its shape moves out of its header
        assert upgraded.load(job.job_id) == job
    stored = sql(postgres_dsn, f'SELECT count(*) FROM "{schema}".shapes')
    assert stored == [(1,)]


# -- corrupted data ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column", "value", "message"),
    [
        ("jobs", "header", "garbage", "corrupted"),
        ("pending", "row", "{not json", "corrupted"),
        ("buffers", "arrivals", "[1,", "corrupted"),
        ("history", "row", "{not json", "corrupted"),
        ("pending", "row", "{}", "pending"),
        ("jobs", "status", "bogus", "bogus"),
        ("shapes", "shape", "{not json", "corrupted"),
        ("shapes", "shape", "{}", "does not match its id"),
    ],
    ids=[
        "header-not-json",
        "pending-not-json",
        "arrivals-not-json",
        "history-not-json",
        "pending-wrong-shape",
        "unknown-status",
        "shape-not-json",
        "shape-replaced",
    ],
)
def test_load_of_corrupted_data_says_what_is_wrong(
    store: PostgresStore,
    postgres_dsn: str,
    schema: str,
    table: str,
    column: str,
    value: str,
    message: str,
) -> None:
    job = paused_job()
    store.save(job)
    sql(postgres_dsn, f'UPDATE "{schema}".{table} SET {column} = %s', value)

    with pytest.raises(FlowForgeError, match=message) as caught:
        store.load(job.job_id)

    assert isinstance(caught.value, (SerializationError, StoreError))


def test_record_with_a_corrupted_status_raises_store_error(
    store: PostgresStore, postgres_dsn: str, schema: str
) -> None:
    store.save(paused_job())
    sql(postgres_dsn, f"UPDATE \"{schema}\".jobs SET status = 'bogus'")

    with pytest.raises(StoreError, match="bogus"):
        store.get("rich-job")


def test_list_jobs_leaves_out_a_job_with_a_corrupted_status_with_a_warning(
    store: PostgresStore, postgres_dsn: str, schema: str
) -> None:
    store.save(paused_job())
    store.save(plain_job("good"))
    sql(
        postgres_dsn,
        f"UPDATE \"{schema}\".jobs SET status = 'bogus' WHERE job_id = 'rich-job'",
    )

    with pytest.warns(FlowForgeWarning, match="'rich-job' has an unknown status"):
        listed = store.list_jobs()

    assert [record.job_id for record in listed] == ["good"]


# -- what only this backend does ---------------------------------------------------


def test_checkpoints_keep_at_most_history_limit_rows(
    store: PostgresStore, postgres_dsn: str, schema: str
) -> None:
    flow = test_store.countdown_flow(history_limit=3)
    loop = flow.routines["loop"]
    assert isinstance(loop, test_store.Countdown)
    rows: list[int] = []

    def count_history_rows(n: int) -> None:
        (count,) = sql(postgres_dsn, f'SELECT COUNT(*) FROM "{schema}".history')[0]
        assert isinstance(count, int)
        rows.append(count)

    loop.probe = count_history_rows

    flow.execute("loop", {"n": 12}, job_id="job", store=store)

    assert len(rows) == 12
    assert max(rows) == 3


def test_prune_keeps_an_ended_job_that_was_leased_again(store: PostgresStore) -> None:
    store.save(plain_job("resumed", JobStatus.FAILED))
    store.save(plain_job("done", JobStatus.COMPLETED))
    assert store.acquire("resumed", owner="A", lease_until=NOW, now=NOW - 1)

    deleted = store.prune(older_than=timedelta(0))

    assert deleted == ["done"]
    assert [r.job_id for r in store.list_jobs()] == ["resumed"]


def test_job_ids_are_ordered_by_bytes_like_sqlite(store: PostgresStore) -> None:
    ids = ["b", "B", "a", "_", "é", "Z"]
    for job_id in ids:
        store.save(plain_job(job_id))
    store.save(plain_job("same-time"))

    listed = sorted(store.list_jobs(), key=lambda r: r.job_id)

    assert [r.job_id for r in listed] == sorted(ids + ["same-time"])


def test_delete_of_an_unknown_job_changes_nothing(store: PostgresStore) -> None:
    job = paused_job()
    store.save(job)

    with pytest.raises(JobNotFoundError, match="'missing'"):
        store.delete("missing")

    assert store.load(job.job_id) == job


# -- processes ---------------------------------------------------------------------


def spawn(*arguments: str) -> subprocess.Popen[str]:
    """Start ``_pg_worker.py`` with ``arguments``, with text pipes."""
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def run_workers(argument_lists: list[list[str]]) -> list[str]:
    """Start one worker per argument list, release them together, return stdouts."""
    workers = [spawn(*arguments) for arguments in argument_lists]
    try:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = []
        for worker in workers:
            out, err = worker.communicate(timeout=WAIT * 2)
            assert worker.returncode == 0, err
            outputs.append(out)
        return outputs
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def test_processes_writing_to_one_store_lose_and_tear_nothing(
    store: PostgresStore, postgres_dsn: str, schema: str
) -> None:
    processes, jobs_each = 4, 10

    outputs = run_workers(
        [
            ["run", postgres_dsn, schema, f"p{n}", str(jobs_each)]
            for n in range(processes)
        ]
    )

    returned = {
        job_id: JobState.deserialize(data)
        for out in outputs
        for job_id, data in json.loads(out).items()
    }
    assert len(returned) == processes * jobs_each
    assert all(job.status is JobStatus.COMPLETED for job in returned.values())
    assert {job_id: store.load(job_id) for job_id in returned} == returned
    assert len(store.list_jobs()) == processes * jobs_each
    # Every process created jobs of one flow at once: its shape is stored once.
    assert sql(postgres_dsn, f'SELECT count(*) FROM "{schema}".shapes') == [(1,)]


def test_processes_racing_to_create_one_job_id_have_exactly_one_winner(
    store: PostgresStore, postgres_dsn: str, schema: str
) -> None:
    contested = 30

    outputs = run_workers(
        [["create", postgres_dsn, schema, "race", str(contested)] for _ in range(3)]
    )

    results = [json.loads(out) for out in outputs]
    won = [job_id for result in results for job_id in result["won"]]
    winners = {job_id: r["owner"] for r in results for job_id in r["won"]}
    assert sorted(won) == sorted(f"race-{n}" for n in range(contested))
    assert {r.job_id: r.owner for r in store.list_jobs()} == winners


def interrupt_jobs(dsn: str, schema: str, count: int, log: Path) -> None:
    """Leave ``count`` chain jobs running, owned by a process killed mid-job."""
    holder = spawn("hold", dsn, schema, "stuck", str(count), str(log))
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line == "holding\n", holder.communicate(timeout=WAIT)[1]
    finally:
        holder.kill()
        holder.communicate(timeout=WAIT)
    assert holder.returncode == -signal.SIGKILL


def middle_runs(log: Path) -> list[tuple[str, int]]:
    """Return the middle handler's runs: ``(job_id, pid)`` in order."""
    return [
        (job_id, int(pid))
        for job_id, pid in (line.split() for line in log.read_text().splitlines())
    ]


RACED_JOBS: Final = 12


@dataclass(frozen=True)
class Raced:
    """Two processes that recovered the same interrupted jobs at once."""

    job_ids: list[str]
    runs: list[tuple[str, int]]
    """The middle handler's runs during recovery, as ``(job_id, pid)``."""
    resumed: dict[int, list[str]]
    """Each process's pid -> the jobs its ``Flow.recover`` returned."""


@pytest.fixture
def raced(
    store: PostgresStore, postgres_dsn: str, schema: str, tmp_path: Path
) -> Raced:
    """Interrupt jobs, then let two processes recover them at the same time."""
    job_ids = sorted(f"stuck-{n}" for n in range(RACED_JOBS))
    killed_log, recovery_log = tmp_path / "killed.log", tmp_path / "recovered.log"
    interrupt_jobs(postgres_dsn, schema, RACED_JOBS, killed_log)
    assert sorted(job_id for job_id, _ in middle_runs(killed_log)) == job_ids
    assert [r.status for r in store.list_jobs()] == [JobStatus.RUNNING] * RACED_JOBS

    outputs = run_workers(
        [["recover-all", postgres_dsn, schema, str(recovery_log)] for _ in range(2)]
    )

    reports = [json.loads(out) for out in outputs]
    resumed = {int(r["pid"]): [str(job_id) for job_id in r["resumed"]] for r in reports}
    return Raced(job_ids, middle_runs(recovery_log), resumed)


def test_processes_recovering_at_once_rerun_each_interrupted_delivery_once(
    store: PostgresStore, raced: Raced
) -> None:
    rerun = Counter(job_id for job_id, _ in raced.runs)

    assert rerun == {job_id: 1 for job_id in raced.job_ids}
    assert {pid for _, pid in raced.runs} <= set(raced.resumed)
    for job_id in raced.job_ids:
        job = store.load(job_id)
        history = job.get_execution_history()
        completed = Counter(h.seq for h in history if h.outcome == "completed")
        assert job.status is JobStatus.COMPLETED
        assert completed == {0: 1, 1: 1, 2: 1}
        assert store.get(job_id).owner is None


def test_processes_recovering_at_once_return_only_the_jobs_they_resumed(
    raced: Raced,
) -> None:
    returned = [
        (job_id, pid) for pid, job_ids in raced.resumed.items() for job_id in job_ids
    ]

    assert sorted(returned) == sorted(raced.runs)
    assert sorted(job_id for job_id, _ in returned) == raced.job_ids


# -- a Dask worker killed mid-job: test_dask.py's test, on PostgreSQL --------------

if importlib.util.find_spec("distributed") is not None:  # flowforge[dask]
    import test_dask

    client = test_dask.client
    runner = test_dask.runner
    # The test's name is too long to write `test_dask.name` on one line.
    test_jobs_of_a_killed_worker_complete_exactly_once_from_their_checkpoints = vars(
        test_dask
    )["test_jobs_of_a_killed_worker_complete_exactly_once_from_their_checkpoints"]


# -- kill anywhere, recover in a new process: test_recovery.py's promises ---------


@dataclass(frozen=True)
class PgRecovery:
    """A kill-and-recover case on PostgreSQL (``test_recovery.Recovery``'s fields)."""

    point: str
    n: int
    schema: str
    log_path: Path
    returncode: int
    stderr: str
    killed_log: list[Key]
    outcome: Outcome
    log: list[Key]


def run_kill_flow(
    dsn: str, command: str, schema: str, log: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    worker = spawn("kill-flow", command, dsn, schema, str(log), *options)
    out, err = worker.communicate(timeout=WAIT * 2)
    assert worker.returncode is not None
    return subprocess.CompletedProcess(worker.args, worker.returncode, out, err)


def kill_and_recover(dsn: str, directory: Path, point: str, n: int) -> PgRecovery:
    schema, log = new_schema(), directory / "side_effects.log"
    killed = run_kill_flow(dsn, "run", schema, log, "--kill-at", f"{point}:{n}")
    killed_log = read_log(log)
    recovered = finished(
        run_kill_flow(dsn, "recover", schema, log),
        f"killed run exited with {killed.returncode}, stderr: {killed.stderr}\n",
    )
    return PgRecovery(
        point,
        n,
        schema,
        log,
        killed.returncode,
        killed.stderr,
        killed_log,
        recovered,
        read_log(log),
    )


KILL_CASES: Final = named_cases()

# test_recovery.py's tests that need only the `recovery` and `reference`
# fixtures: collected here too, they run on this module's PostgreSQL cases.
test_killed_run_dies_by_sigkill = test_recovery.test_killed_run_dies_by_sigkill
test_recovered_job_has_the_uninterrupted_results = (
    test_recovery.test_recovered_job_has_the_uninterrupted_results
)
test_no_handler_runs_more_than_twice_for_one_delivery = (
    test_recovery.test_no_handler_runs_more_than_twice_for_one_delivery
)
test_recovery_repeats_only_the_delivery_in_flight = (
    test_recovery.test_recovery_repeats_only_the_delivery_in_flight
)


@pytest.fixture(scope="module")
def reference(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reference]:
    """The uninterrupted run on PostgreSQL, in a child process."""
    log = tmp_path_factory.mktemp("reference") / "side_effects.log"
    schema = new_schema()
    outcome = finished(run_kill_flow(postgres_dsn, "full", schema, log))
    yield Reference(outcome, read_log(log))
    sql(postgres_dsn, f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def recoveries(
    request: pytest.FixtureRequest,
    postgres_dsn: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[tuple[str, int], Future[PgRecovery]]]:
    """Every selected case's kill and recovery, run a few at a time."""
    cases: dict[tuple[str, int], None] = {}
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (
            getattr(item, "module", None) is sys.modules[__name__]
            and "recovery" in params
        ):
            cases[params["recovery"]] = None
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) * 2) as pool:
        futures = {
            (point, n): pool.submit(
                kill_and_recover,
                postgres_dsn,
                tmp_path_factory.mktemp(f"{point}-{n}"),
                point,
                n,
            )
            for point, n in cases
        }
        yield futures
    for future in futures.values():
        if future.exception() is None:
            schema = future.result().schema
            sql(postgres_dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(
    scope="module",
    params=[case[:2] for case in KILL_CASES],
    ids=[case[2] for case in KILL_CASES],
)
def recovery(
    request: pytest.FixtureRequest,
    recoveries: dict[tuple[str, int], Future[PgRecovery]],
) -> PgRecovery:
    """A job SIGKILLed at ``POINT:N`` in one process and recovered in another."""
    return recoveries[request.param].result(timeout=600)


def test_recovered_job_records_each_delivery_completed_once(
    recovery: PgRecovery, reference: Reference, postgres_dsn: str
) -> None:
    store = PostgresStore(postgres_dsn, schema=recovery.schema)
    try:
        job = store.load(JOB_ID)
    finally:
        store.close()

    assert_each_delivery_finished_once(job, reference)


def test_executing_the_recovered_job_id_again_runs_nothing(
    recovery: PgRecovery, monkeypatch: pytest.MonkeyPatch, postgres_dsn: str
) -> None:
    monkeypatch.setenv(LOG_ENV, str(recovery.log_path))
    store = PostgresStore(postgres_dsn, schema=recovery.schema)

    try:
        job = build_flow().execute(ENTRY, ENTRY_PARAMS, job_id=JOB_ID, store=store)
    finally:
        store.close()

    assert job.status is JobStatus.COMPLETED
    assert summary(job)["results"] == recovery.outcome.results
    assert read_log(recovery.log_path) == recovery.log


def test_resuming_the_recovered_job_is_refused(
    recovery: PgRecovery, postgres_dsn: str
) -> None:
    store = PostgresStore(postgres_dsn, schema=recovery.schema)

    try:
        with pytest.raises(JobStateError, match="only a paused, failed or interr"):
            build_flow().resume(JOB_ID, store=store)
    finally:
        store.close()


def test_recovered_job_counts_each_run_and_emission_once(
    recovery: PgRecovery, reference: Reference
) -> None:
    outcome, expected = recovery.outcome, reference.outcome

    assert outcome.runs == expected.runs
    assert outcome.events == expected.events


def test_kill_cases_cover_every_point() -> None:
    assert {point for point, _, _ in KILL_CASES} == set(POINTS)
