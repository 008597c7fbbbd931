"""Bad arguments to the stores: every backend refuses alike, and changes nothing.

Each one raises a FlowForgeError (a wrong type: an ArgumentTypeError, which is
also a TypeError) whose message names the argument. The table runs against
every backend here and ``test_bad_arguments_postgres.py`` runs it against
PostgreSQL; a case's id names the ``Store`` method, which every backend has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from _bad_args import a_job, assert_refused, wrong
from flowforge.store import (
    Change,
    JsonDirectoryStore,
    MemoryStore,
    SqliteStore,
    Store,
)
from flowforge.testing import StoreWrapper

NAN = float("nan")
BACKENDS = ["memory", "json_directory", "sqlite", "wrapper"]


def open_store(backend: str, folder: Path) -> Store:
    if backend == "memory":
        return MemoryStore()
    if backend == "json_directory":
        return JsonDirectoryStore(folder / "jobs")
    if backend == "wrapper":
        return StoreWrapper(SqliteStore(folder / "wrapped.db"))
    return SqliteStore(folder / "jobs.db")


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(request.param, tmp_path)
    yield opened
    opened.close()


NO_CHANGE = Change(
    pending_from=0, routine_id=None, buffer_key=None, history_from=0, errors_from=0
)

StoreCase = tuple[str, Callable[[Store], object], str]

STORE_CASES: list[StoreCase] = [
    (
        "Store.load-job_id-int",
        lambda s: s.load(wrong(123)),
        "job_id must be a str, got int 123",
    ),
    (
        "Store.load-job_id-None",
        lambda s: s.load(wrong(None)),
        "job_id must be a str, got NoneType",
    ),
    (
        "Store.load-job_id-list",
        lambda s: s.load(wrong(["a"])),
        "job_id must be a str, got list",
    ),
    ("Store.get-job_id-list", lambda s: s.get(wrong(["a"])), "job_id must be a str"),
    (
        "Store.delete-job_id-dict",
        lambda s: s.delete(wrong({})),
        "job_id must be a str, got dict",
    ),
    (
        "Store.acquire-job_id-list",
        lambda s: s.acquire(wrong(["a"]), owner="A", lease_until=2e9, now=1e9),
        "job_id must be a str, got list",
    ),
    (
        "Store.acquire-owner-int",
        lambda s: s.acquire("job", owner=wrong(5), lease_until=2e9, now=1e9),
        "owner must be a str, got int 5",
    ),
    (
        "Store.acquire-lease_until-str",
        lambda s: s.acquire("job", owner="A", lease_until=wrong("x"), now=1e9),
        "lease_until must be seconds since the epoch (a float), got str 'x'",
    ),
    (
        "Store.acquire-now-nan",
        lambda s: s.acquire("job", owner="A", lease_until=2e9, now=NAN),
        "now must be a number of seconds, got nan",
    ),
    (
        "Store.acquire-replacing-int",
        lambda s: s.acquire(
            "job", owner="A", lease_until=2e9, now=1e9, replacing=wrong(5)
        ),
        "replacing must be an owner id (a str) or None, got int 5",
    ),
    (
        "Store.renew-job_id-list",
        lambda s: s.renew(wrong(["a"]), owner="A", lease_until=2e9),
        "job_id must be a str, got list",
    ),
    (
        "Store.renew-owner-None",
        lambda s: s.renew("job", owner=wrong(None), lease_until=2e9),
        "owner must be a str, got NoneType None",
    ),
    (
        "Store.renew-lease_until-bool",
        lambda s: s.renew("job", owner="A", lease_until=True),
        "lease_until must be seconds since the epoch (a float), got bool True",
    ),
    (
        "Store.save-job_state-str",
        lambda s: s.save(wrong("job")),
        "job_state must be a JobState",
    ),
    (
        "Store.save-owner-int",
        lambda s: s.save(a_job(), owner=wrong(5)),
        "owner must be a str, got int 5",
    ),
    (
        "Store.save-lease_until-str",
        lambda s: s.save(a_job(), owner="A", lease_until=wrong("x")),
        "lease_until must be seconds since the epoch (a float), got str 'x'",
    ),
    (
        "Store.create-job_state-dict",
        lambda s: s.create(wrong({}), owner="A", lease_until=2e9),
        "job_state must be a JobState, got dict",
    ),
    (
        "Store.create-owner-list",
        lambda s: s.create(a_job(), owner=wrong([]), lease_until=2e9),
        "owner must be a str, got list []",
    ),
    (
        "Store.create-lease_until-None",
        lambda s: s.create(a_job(), owner="A", lease_until=wrong(None)),
        "lease_until must be seconds since the epoch (a float), got NoneType None",
    ),
    (
        "Store.checkpoint-job_state-None",
        lambda s: s.checkpoint(wrong(None), NO_CHANGE, owner="A", lease_until=2e9),
        "job_state must be a JobState, got NoneType",
    ),
    (
        "Store.checkpoint-change-None",
        lambda s: s.checkpoint(a_job(), wrong(None), owner="A", lease_until=2e9),
        "change must be a flowforge.store.Change, got NoneType None",
    ),
    (
        "Store.checkpoint-change-dict",
        lambda s: s.checkpoint(a_job(), wrong({}), owner="A", lease_until=2e9),
        "change must be a flowforge.store.Change, got dict {}",
    ),
    (
        "Store.checkpoint-owner-int",
        lambda s: s.checkpoint(a_job(), NO_CHANGE, owner=wrong(5), lease_until=2e9),
        "owner must be a str, got int 5",
    ),
    (
        "Store.checkpoint-lease_until-nan",
        lambda s: s.checkpoint(a_job(), NO_CHANGE, owner="A", lease_until=NAN),
        "lease_until must be a number of seconds, got nan",
    ),
    (
        "Store.checkpoint-lease_until-past-64-bits",
        lambda s: s.checkpoint(a_job(), NO_CHANGE, owner="A", lease_until=2**63),
        "lease_until must be seconds since the epoch below 2**63",
    ),
    (
        "Store.renew-lease_until-past-64-bits",
        lambda s: s.renew("job", owner="A", lease_until=-(2**63) - 1),
        "lease_until must be seconds since the epoch below 2**63",
    ),
    (
        "Store.acquire-now-past-64-bits",
        lambda s: s.acquire("job", owner="A", lease_until=2e9, now=10**30),
        "now must be seconds since the epoch below 2**63",
    ),
    (
        "Store.list_jobs-flow_id-int",
        lambda s: s.list_jobs(flow_id=wrong(5)),
        "flow_id must be a str or None, got int",
    ),
    (
        "Store.list_jobs-status-list",
        lambda s: s.list_jobs(status=wrong(["done"])),
        "unknown job status ['done']",
    ),
    (
        "Store.prune-older_than-int",
        lambda s: s.prune(older_than=wrong(5)),
        "older_than must be a datetime.timedelta or None, got int 5",
    ),
    (
        "Store.prune-older_than-negative",
        lambda s: s.prune(older_than=timedelta(days=-1)),
        "older_than must not be negative",
    ),
    (
        "Store.prune-keep-str",
        lambda s: s.prune(keep=wrong("3")),
        "keep must be an int or None, got str '3'",
    ),
    (
        "Store.prune-keep-bool",
        lambda s: s.prune(keep=wrong(True)),
        "keep must be an int or None, got bool",
    ),
    ("Store.prune-keep-negative", lambda s: s.prune(keep=-1), "keep must be zero"),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in STORE_CASES],
    ids=[name for name, _, _ in STORE_CASES],
)
def test_bad_argument_to_a_store_raises_a_flowforge_error_naming_it(
    store: Store, call: Callable[[Store], object], message: str
) -> None:
    assert_refused_leaving_the_job(store, call, message)


def assert_refused_leaving_the_job(
    store: Store, call: Callable[[Store], object], message: str
) -> None:
    """Check that ``call`` is refused and leaves a saved job as it was."""
    store.save(a_job())

    assert_refused(lambda: call(store), message)

    assert store.load("job") == a_job()
    assert [record.owner for record in store.list_jobs()] == [None]


OpenCase = tuple[str, Callable[[Path], object], str]

OPEN_CASES: list[OpenCase] = [
    (
        "SqliteStore-timeout-str",
        lambda p: SqliteStore(p / "a.db", timeout=wrong("x")),
        "timeout must be a number of seconds, got str 'x'",
    ),
    (
        "SqliteStore-timeout-nan",
        lambda p: SqliteStore(p / "a.db", timeout=NAN),
        "timeout must be from 0 to 2e+06 seconds, got nan",
    ),
    (
        "SqliteStore-timeout-negative",
        lambda p: SqliteStore(p / "a.db", timeout=-1),
        "timeout must be from 0 to 2e+06 seconds, got -1",
    ),
    (
        "SqliteStore-timeout-huge",
        lambda p: SqliteStore(p / "a.db", timeout=1e12),
        "timeout must be from 0 to 2e+06 seconds, got 1000000000000.0",
    ),
    (
        "SqliteStore-synchronous-int",
        lambda p: SqliteStore(p / "a.db", synchronous=wrong(1)),
        "synchronous must be a str, got int",
    ),
    (
        "SqliteStore-synchronous-unknown",
        lambda p: SqliteStore(p / "a.db", synchronous="sometimes"),
        "unknown synchronous setting 'sometimes'",
    ),
    (
        "SqliteStore-commit_every-str",
        lambda p: SqliteStore(p / "a.db", commit_every=wrong("5")),
        "commit_every must be an int (deliveries per transaction), got str '5'",
    ),
    (
        "SqliteStore-commit_interval-nan",
        lambda p: SqliteStore(p / "a.db", commit_interval=NAN),
        "commit_interval must be more than 0 and at most 3600 seconds, got nan",
    ),
    (
        "SqliteStore-path-int",
        lambda p: SqliteStore(wrong(5)),
        "path must be a str or a path, got int",
    ),
    (
        "JsonDirectoryStore-folder-None",
        lambda p: JsonDirectoryStore(wrong(None)),
        "folder must be a str or a path, got NoneType",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in OPEN_CASES],
    ids=[name for name, _, _ in OPEN_CASES],
)
def test_bad_argument_opening_a_store_raises_a_flowforge_error_naming_it(
    tmp_path: Path, call: Callable[[Path], object], message: str
) -> None:
    assert_refused(lambda: call(tmp_path), message)

    assert list(tmp_path.iterdir()) == []


POSTGRES_OPEN_CASES: list[tuple[str, dict[str, object], str]] = [
    (
        "PostgresStore-database-int",
        {"database": 5},
        "database must be a connection string or a ConnectionPool",
    ),
    ("PostgresStore-schema-int", {"database": "", "schema": 5}, "schema must be a str"),
    (
        "PostgresStore-schema-not-identifier",
        {"database": "", "schema": "a b"},
        "schema must be a plain identifier",
    ),
]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(arguments, message) for _, arguments, message in POSTGRES_OPEN_CASES],
    ids=[name for name, _, _ in POSTGRES_OPEN_CASES],
)
def test_bad_argument_opening_a_postgres_store_raises_a_flowforge_error_naming_it(
    arguments: dict[str, object], message: str
) -> None:
    postgres = pytest.importorskip("flowforge.store.postgres")

    assert_refused(lambda: postgres.PostgresStore(**arguments), message)
