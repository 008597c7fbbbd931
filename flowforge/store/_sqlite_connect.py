"""SqliteStore's connections: WAL mode, closing ended threads', fresh after fork().

A store opens a connection per thread; once the thread has ended, nothing can
reach it but the store's list, so the next opening closes it: a process
whose threads come and go (one per request, one per durable async job's
writer) keeps no more connections open than it has threads using the store.

SQLite forbids using in a child process a connection opened before
``fork()``, even to close it: the child's copy believes it holds the locks
(and, with group commit, the open write transaction) that only the parent
holds, and writing through it can corrupt the file. A store whose process
forks (``multiprocessing``'s default start method on Linux, a pre-forking
server) therefore leaves, in the child, its inherited connections and group
to the parent: they are kept referenced here, never used or closed, and the
child's store opens connections of its own.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final, TypeVar

__all__ = ["close_orphans", "enter_wal", "inherit", "is_current", "reset_after_fork"]

T = TypeVar("T")
# Any: each owner is reset by its own function (a TypeVar per entry).
_RESETS: Final[weakref.WeakKeyDictionary[Any, Callable[[Any], None]]] = (
    weakref.WeakKeyDictionary()
)
_INHERITED: Final[list[sqlite3.Connection]] = []
"""The parent's connections, in a child: never closed there (SQLite's rule)."""


def reset_after_fork(owner: T, reset: Callable[[T], None]) -> None:
    """Call ``reset(owner)`` in the child of every ``fork()`` while ``owner`` lives."""
    _register()
    _RESETS[owner] = reset


def close_orphans(
    connections: dict[sqlite3.Connection, threading.Thread],
    busy: sqlite3.Connection | None,
) -> None:
    """Close and forget the connections of ended threads.

    ``busy`` (a group's) and any in a transaction are left open: the group's
    commit thread still ends it. Call with the store's lock held.
    """
    for connection, thread in list(connections.items()):
        if not (thread.is_alive() or connection is busy or connection.in_transaction):
            connection.close()
            del connections[connection]


def inherit(connections: list[sqlite3.Connection]) -> None:
    """Keep the parent's ``connections`` alive, unused, in this child process."""
    _INHERITED.extend(connections)


@functools.cache
def _register() -> None:
    os.register_at_fork(after_in_child=_reset_all)


def _reset_all() -> None:
    for owner, reset in list(_RESETS.items()):
        reset(owner)


def is_current(db: sqlite3.Connection, version: int) -> bool:
    """Say whether the file's schema is ``version`` already.

    A read, so that opening a store never waits for another process's write
    transaction (with group commit, one may stay open for a while).
    """
    try:
        row = db.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
    except sqlite3.OperationalError:  # no meta table: a new file
        return False
    return row is not None and row[0] == str(version)


def enter_wal(connection: sqlite3.Connection, timeout: float) -> None:
    """Switch ``connection``'s file to WAL mode, waiting up to ``timeout`` seconds.

    Two processes opening a new file at once both try the switch; SQLite
    then answers "database is locked" at once, without calling the busy
    handler (waiting could deadlock), so the loser retries here.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
