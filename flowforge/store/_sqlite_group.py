"""Group commit for SqliteStore: one transaction for several checkpoints.

With ``commit_every=N``, a store's checkpoints share one open write
transaction, committed after N of them, or once ``commit_interval`` seconds
have passed since it began, whichever comes first. A flusher thread commits a
transaction that has waited the interval while a slow handler runs, so a
commit is never later than the interval. Any other write or read through the
store commits the open transaction first, so the store's view is always a
prefix of the job's checkpoints: after a crash, at most N deliveries run again.

If a grouped checkpoint or the commit fails, the whole transaction is rolled
back and its jobs are marked *lost*: their next checkpoint raises, since it
would add a change to a log that misses the ones before it, until a full save
rewrites the job. A checkpoint refused because its writer lost the job's
lease writes nothing, so the transaction goes on.
"""

from __future__ import annotations

import reprlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Final, final

from flowforge.exceptions import ArgumentTypeError, StoreError

__all__ = ["Group", "check_group"]

_log = logging.getLogger(__name__)
MAX_COMMIT_EVERY: Final = 1_000_000
MAX_INTERVAL: Final = 3600.0
Guard = Callable[[str, Callable[[], object]], object]
"""Runs a step, turning SQLite's errors into ``StoreError``."""


def check_group(commit_every: object, commit_interval: object) -> tuple[int, float]:
    """Return the checked group commit settings.

    Raises:
        ArgumentTypeError: If ``commit_every`` is not an int, or
            ``commit_interval`` not a number.
        StoreError: If either is out of range.
    """
    if isinstance(commit_every, bool) or not isinstance(commit_every, int):
        raise ArgumentTypeError(
            f"commit_every must be an int (deliveries per transaction), got "
            f"{type(commit_every).__name__} {reprlib.repr(commit_every)}"
        )
    if not 1 <= commit_every <= MAX_COMMIT_EVERY:
        raise StoreError(
            f"commit_every must be from 1 (a commit per delivery) to "
            f"{MAX_COMMIT_EVERY:,}, got {commit_every!r}"
        )
    if isinstance(commit_interval, bool) or not isinstance(
        commit_interval, int | float
    ):
        raise ArgumentTypeError(
            f"commit_interval must be a number of seconds, got "
            f"{type(commit_interval).__name__} {reprlib.repr(commit_interval)}"
        )
    if not 0 < commit_interval <= MAX_INTERVAL:  # also refuses NaN
        raise StoreError(
            f"commit_interval must be more than 0 and at most {MAX_INTERVAL:g} "
            f"seconds, got {commit_interval!r}"
        )
    return commit_every, float(commit_interval)


@final
class Group:
    """The open transaction grouped checkpoints share, and its flusher thread.

    ``lock`` guards the transaction: hold it around every use of the store's
    connections while grouping (:meth:`SqliteStore._transaction` does).

    Args:
        every: Commit after this many checkpoints.
        interval: Commit once the transaction is this many seconds old.
        guard: Runs a step, turning SQLite's errors into ``StoreError``.
        forget: Called with the ids of the jobs a rolled-back transaction
            held, so that the store reads their logs back.
    """

    def __init__(
        self,
        every: int,
        interval: float,
        guard: Guard,
        forget: Callable[[set[str]], None],
    ) -> None:
        """Create a group with no transaction open and no flusher yet."""
        self.every = every
        self.interval = interval
        # A plain lock: nothing re-enters it, and it is taken per checkpoint.
        self.lock = threading.Condition(threading.Lock())
        self.lost: set[str] = set()
        self._guard = guard
        self._forget = forget
        self._db: sqlite3.Connection | None = None
        self._opened = 0.0
        self._count = 0
        self._jobs: set[str] = set()
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._idle = False

    @property
    def db(self) -> sqlite3.Connection | None:
        """The connection holding the open transaction, if any."""
        return self._db

    def begin(self, db: sqlite3.Connection) -> None:
        """Make sure ``db`` holds the open transaction (call with ``lock`` held)."""
        if self._db is db:
            return
        self.commit()  # another connection's, if any: SQLite has one writer
        self._guard("write to", lambda: _begin(db))
        self._db, self._opened, self._count = db, time.monotonic(), 0
        if self._flusher is None:  # none yet, or it ended while idle
            self._flusher = threading.Thread(
                target=self._flush, name="flowforge-group-commit", daemon=True
            )
            self._flusher.start()
        elif self._idle:  # waiting for a transaction: it has one now
            self.lock.notify()

    def added(self, job_id: str) -> None:
        """Count a checkpoint written in the transaction; commit it if due."""
        self._jobs.add(job_id)
        self._count += 1
        if (
            self._count >= self.every
            or time.monotonic() - self._opened >= self.interval
        ):
            self.commit()

    def commit(self) -> None:
        """Commit the open transaction, if any (call with ``lock`` held).

        Raises:
            StoreError: If the commit failed; the transaction is rolled back.
        """
        db = self._db
        if db is None:
            return
        try:
            self._guard("write to", lambda: db.execute("COMMIT"))
        except BaseException:
            self.abort()
            raise
        self._db, self._jobs = None, set()

    def abort(self, job_id: str | None = None) -> None:
        """Roll back the open transaction; mark its jobs (and ``job_id``) lost.

        Call with ``lock`` held.
        """
        db, jobs = self._db, self._jobs
        if job_id is not None:
            jobs.add(job_id)
        self._db, self._jobs = None, set()
        if db is None:
            return
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:  # already rolled back by SQLite itself
            pass
        self.lost |= jobs
        self._forget(jobs)

    def close(self) -> None:
        """Commit what is open and stop the flusher."""
        with self.lock:
            self._closed = True
            flusher = self._flusher
            try:
                self.commit()
            finally:
                self.lock.notify()
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()
        with self.lock:
            self._flusher, self._closed = None, False

    def _flush(self) -> None:
        # Woken only by the clock while transactions come and go (a wake-up
        # per transaction would cost the checkpoints more than it saves).
        # Idle for an interval, it ends (the next transaction starts another),
        # so that it never keeps an unused store, its connections and itself
        # alive.
        with self.lock:
            while not self._closed:
                if self._db is None:
                    self._idle = True
                    woken = self.lock.wait(self.interval)
                    self._idle = False
                    if not woken and self._db is None:
                        self._flusher = None
                        return
                    continue
                left = self._opened + self.interval - time.monotonic()
                if left > 0:
                    self.lock.wait(left)
                    continue
                try:
                    self.commit()
                except StoreError as error:  # the jobs' next checkpoints raise
                    _log.error("group commit failed: %s", error)


def _begin(db: sqlite3.Connection) -> None:
    """Begin a write transaction on ``db``, rolling back one left open.

    A ``KeyboardInterrupt`` landing right after a ``BEGIN`` leaves its
    transaction open unrecorded: nothing of it was committed.
    """
    if db.in_transaction:
        db.execute("ROLLBACK")
    db.execute("BEGIN IMMEDIATE")
