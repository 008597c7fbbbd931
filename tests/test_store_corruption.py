"""Hypothesis: a job whose stored record was damaged loads, or raises a FlowForgeError.

A job is saved, then its record is changed behind the store's back: a SQLite
column set to random text, numbers, blobs or JSON, or one value deep inside a
row's JSON replaced (the flow shape's row too); a JSON directory file (a
job's, its flow shape's, its change log or its lease file) overwritten with
random bytes or JSON, or one value deep inside it (or inside one line of the
log) replaced. ``load``, ``get`` and
``list_jobs`` must then succeed or raise a FlowForgeError, never another
exception (``list_jobs`` leaves out what it cannot read, with a warning).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import warnings
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_store import no_change, paused_job

from flowforge import FlowForgeError, FlowForgeWarning, JobState
from flowforge.store import JsonDirectoryStore, SqliteStore, Store

JOB: Final = paused_job()
JOB_ID: Final = JOB.job_id
RUNNING: Final = JobState.deserialize({**JOB.serialize(), "status": "running"})
"""The job as a running one, whose checkpoints a JSON directory store logs."""

SCALARS: Final = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # what a SQLite INTEGER holds
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["running", "paused", "", "null", "{", "[]", "1e999"])
)
JSON_VALUES: Final = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
COLUMN_VALUES: Final = SCALARS | st.binary(max_size=12) | JSON_VALUES.map(json.dumps)

SQLITE_COLUMNS: Final = {
    "jobs": (
        "header",
        "status",
        "flow_id",
        "owner",
        "lease_until",
        "updated_at",
        "delivery_count",
        "next_seq",
        "history_total",
        "folded",
    ),
    "pending": ("row", "pos"),
    "buffers": ("buffer", "arrivals", "routine_id", "slot"),
    "routines": ("row", "routine_id"),
    "errors": ("row", "n"),
    "history": ("row", "n"),
    "shapes": ("shape", "shape_id"),
}
KEYS: Final = {
    "jobs": ("job_id",),
    "pending": ("job_id", "pos"),
    "buffers": ("job_id", "routine_id", "slot"),
    "routines": ("job_id", "routine_id"),
    "errors": ("job_id", "n"),
    "history": ("job_id", "n"),
    "shapes": ("shape_id",),
}
"""Each table's primary key."""
JSON_COLUMNS: Final = [
    (table, column)
    for table, columns in SQLITE_COLUMNS.items()
    for column in columns
    if column in ("header", "row", "buffer", "arrivals", "shape")
]
EXAMPLES: Final = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def paths(
    value: object, prefix: tuple[str | int, ...] = ()
) -> list[tuple[str | int, ...]]:
    """Return the path of every value inside ``value``, itself included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def replace_deep(data: st.DataObject, document: Any) -> object:  # Any: JSON data
    """Return ``document`` with one value somewhere inside it replaced or removed."""
    path = data.draw(st.sampled_from(paths(document)), label="path")
    new = data.draw(JSON_VALUES | st.just(Ellipsis), label="new value")
    if not path:
        return None if new is Ellipsis else new
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if new is Ellipsis:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return document


def read_back(store: Store) -> None:
    """Load, get and list the job: each may only succeed or raise a FlowForgeError."""
    calls: list[Callable[[], object]] = [
        lambda: store.load(JOB_ID),
        lambda: store.get(JOB_ID),
        store.list_jobs,
    ]
    for call in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FlowForgeWarning)
            try:
                result = call()
            except FlowForgeError:
                continue
        if isinstance(result, JobState):
            result.serialize()  # what loaded is a whole job state


def sqlite_store(folder: str) -> tuple[SqliteStore, Path]:
    path = Path(folder) / "jobs.db"
    store = SqliteStore(path)
    store.save(JOB)
    return store, path


def update(path: Path, table: str, column: str, value: object) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"UPDATE OR IGNORE {table} SET {column} = ?", (value,))


@EXAMPLES
@given(
    column=st.sampled_from(
        [(table, column) for table, names in SQLITE_COLUMNS.items() for column in names]
    ),
    value=COLUMN_VALUES,
)
def test_sqlite_column_set_to_anything_loads_or_raises_a_flowforge_error(
    column: tuple[str, str], value: object
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store, path = sqlite_store(folder)
        update(path, *column, value)

        read_back(store)
        store.close()


@EXAMPLES
@given(column=st.sampled_from(JSON_COLUMNS), data=st.data())
def test_sqlite_row_with_one_json_value_replaced_loads_or_raises_a_flowforge_error(
    column: tuple[str, str], data: st.DataObject
) -> None:
    table, name = column
    with tempfile.TemporaryDirectory() as folder:
        store, path = sqlite_store(folder)
        key = ", ".join(KEYS[table])
        where = " AND ".join(f"{column} = ?" for column in KEYS[table])
        with closing(sqlite3.connect(path)) as db, db:
            rows = db.execute(f"SELECT {name}, {key} FROM {table}").fetchall()
            rows = [row for row in rows if row[0] is not None]
            if rows:
                text, *ids = data.draw(st.sampled_from(rows), label="row")
                changed = replace_deep(data, json.loads(text))
                db.execute(
                    f"UPDATE {table} SET {name} = ? WHERE {where}",
                    (json.dumps(changed), *ids),
                )

        read_back(store)
        store.close()


def json_store(folder: str, pattern: str = "*.json") -> tuple[JsonDirectoryStore, Path]:
    store = JsonDirectoryStore(folder)
    store.save(RUNNING, owner="A", lease_until=2e9)
    for _ in range(3):  # a change log of three lines
        store.checkpoint(RUNNING, no_change(RUNNING), owner="A", lease_until=2e9)
    (path,) = Path(folder).glob(pattern)
    return store, path


@EXAMPLES
@given(
    content=st.binary(max_size=64) | JSON_VALUES.map(lambda v: json.dumps(v)),
    pattern=st.sampled_from(["*.json", "*.shape", "*.log", "*.held"]),
)
def test_json_file_overwritten_with_anything_loads_or_raises_a_flowforge_error(
    content: bytes | str, pattern: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store, path = json_store(folder, pattern)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)

        read_back(store)


@EXAMPLES
@given(data=st.data(), pattern=st.sampled_from(["*.json", "*.shape", "*.held"]))
def test_json_file_with_one_value_replaced_loads_or_raises_a_flowforge_error(
    data: st.DataObject, pattern: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store, path = json_store(folder, pattern)
        document = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps(replace_deep(data, document)), encoding="utf-8")

        read_back(store)


@EXAMPLES
@given(data=st.data(), line=st.integers(0, 2))
def test_json_log_line_with_one_value_replaced_loads_or_raises_a_flowforge_error(
    data: st.DataObject, line: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store, path = json_store(folder, "*.log")
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        number, _, text = lines[line].partition(" ")
        document = [int(number), json.loads(text)]
        changed = replace_deep(data, document)
        if isinstance(changed, list) and len(changed) == 2:
            lines[line] = f"{json.dumps(changed[0])} {json.dumps(changed[1])}\n"
        else:
            lines[line] = json.dumps(changed) + "\n"
        path.write_text("".join(lines), encoding="utf-8")

        read_back(store)
