"""Write ``store_v2.sql`` and ``store_v2.json``: a schema version 2 SQLite store.

Run with FlowForge 0.x before shapes were stored apart (schema version 2),
from the repository root of that version::

    PYTHONPATH=.:tests python /path/to/tests/data/make_store_v2.py OUT_FOLDER

The SQL is the store's ``iterdump``; the JSON holds what that FlowForge's
``load`` returned for each job, serialized, to compare with what loads now.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path

from test_store import (
    NOW,
    PAYLOAD,
    countdown_flow,
    no_change,
    paused_job,
    rich_flow,
    with_extra_delivery,
)

from flowforge.store import SqliteStore
from flowforge.store.sqlite import SCHEMA_VERSION


def main(out: Path) -> None:
    """Write the two files into ``out``."""
    version: int = SCHEMA_VERSION  # the version of the FlowForge that runs this
    assert version == 2, "run this with a FlowForge of schema version 2"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "jobs.db"
        store = SqliteStore(path)
        store.save(paused_job("rich-1"))
        store.save(paused_job("rich-2"))
        rich_flow().execute("start", PAYLOAD, job_id="rich-durable", store=store)
        countdown_flow().execute("loop", {"n": 70}, job_id="countdown", store=store)
        logged = paused_job("rich-logged")  # a change log not folded yet
        store.create(logged, owner="worker", lease_until=NOW)
        changed = with_extra_delivery(logged)
        store.checkpoint(changed, no_change(changed), owner="worker", lease_until=NOW)
        jobs = {r.job_id: store.load(r.job_id).serialize() for r in store.list_jobs()}
        store.close()
        with closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            dump = "\n".join(db.iterdump())
    (out / "store_v2.sql").write_text(dump + "\n", encoding="utf-8")
    text = json.dumps(jobs, indent=1, sort_keys=True)
    (out / "store_v2.json").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
