"""Group commit for SqliteStore: one transaction for several checkpoints.

With ``commit_every=N``, a store keeps the rows of its checkpoints in memory
and writes them in one short transaction after N of them, or once the first
has waited ``commit_interval`` seconds, whichever comes first. A flusher
thread commits rows that have waited the interval while a slow handler runs,
so a commit is never later than the interval. A checkpoint with more to write
than its row (a fold, a status, a lease renewal: the rules of
:func:`~flowforge.store._sqlite_log.due`) writes the rows kept before it and
itself in one transaction, committed at once. Any other write or read through
the store commits the rows kept first. So the store's view is always a prefix
of the job's checkpoints (after a crash, at most N deliveries run again), and
no write transaction stays open between two calls into the store.

If a commit fails, it is rolled back and its jobs are marked *lost*: their
next checkpoint raises, since it would add a change to a log that misses the
ones before it, until a full save rewrites the job. A job whose rows are
refused at the commit because its writer lost the lease is marked lost with
that refusal; the other jobs' rows are committed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Final, final

from flowforge.exceptions import ArgumentTypeError, StoreError
from flowforge._names import shown
from flowforge.store._sqlite_log import ChangeRow, LogState, write_changes

__all__ = ["Group", "check_group"]

_log = logging.getLogger(__name__)
MAX_COMMIT_EVERY: Final = 1_000_000
MAX_INTERVAL: Final = 3600.0
LOST: Final = (
    "job {!r} lost its last grouped checkpoints to a failed commit; it stops "
    "here, resume it from the store"
)
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
            f"{type(commit_every).__name__} {shown(commit_every)}"
        )
    if not 1 <= commit_every <= MAX_COMMIT_EVERY:
        raise StoreError(
            f"commit_every must be from 1 (a commit per delivery) to "
            f"{MAX_COMMIT_EVERY:,}, got {shown(commit_every)}"
        )
    if isinstance(commit_interval, bool) or not isinstance(
        commit_interval, int | float
    ):
        raise ArgumentTypeError(
            f"commit_interval must be a number of seconds, got "
            f"{type(commit_interval).__name__} {shown(commit_interval)}"
        )
    if not 0 < commit_interval <= MAX_INTERVAL:  # also refuses NaN
        raise StoreError(
            f"commit_interval must be more than 0 and at most {MAX_INTERVAL:g} "
            f"seconds, got {shown(commit_interval)}"
        )
    return commit_every, float(commit_interval)


@final
class Group:
    """The checkpoint rows waiting for their commit, and the flusher thread.

    ``lock`` guards them: hold it around every use of the store's connections
    while grouping (:meth:`SqliteStore._transaction` does). ``lost`` says why
    each lost job stops, by job id.

    Args:
        every: Commit after this many checkpoints.
        interval: Commit once the first row kept is this many seconds old.
        guard: Runs a step, turning SQLite's errors into ``StoreError``.
        forget: Called with the ids of the jobs whose rows were not
            committed, so that the store reads their logs back.
    """

    def __init__(
        self,
        every: int,
        interval: float,
        guard: Guard,
        forget: Callable[[set[str]], None],
    ) -> None:
        """Create a group with no rows kept and no flusher yet."""
        self.every = every
        self.interval = interval
        # A plain lock: nothing re-enters it, and it is taken per checkpoint.
        self.lock = threading.Condition(threading.Lock())
        self.lost: dict[str, str] = {}
        self._guard = guard
        self._forget = forget
        self._rows: list[ChangeRow] = []
        self._writer: sqlite3.Connection | None = None
        self._opened = 0.0
        self._jobs: set[str] = set()
        self._owners: set[tuple[str, str]] = set()
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._idle = False

    @property
    def db(self) -> sqlite3.Connection | None:
        """The connection that will commit the rows kept, if any."""
        return self._writer if self._rows else None

    def check(self, job_id: str) -> None:
        """Raise why the job is lost, if it is.

        Raises:
            StoreError: If the job lost grouped checkpoints, saying why.
        """
        if job_id in self.lost:
            raise StoreError(self.lost[job_id])

    def add(self, db: sqlite3.Connection, row: ChangeRow, owner: str) -> None:
        """Keep a checkpoint's row; commit the rows if due (call with ``lock`` held).

        Raises:
            StoreError: If the commit failed; the rows are dropped.
        """
        rows = self._rows
        if not rows:
            self._opened = time.monotonic()
            self._wake()
        # The row comes last: an interrupt landing in between leaves no row
        # without its writer or lease check.
        self._writer = db
        self._jobs.add(row[0])
        self._owners.add((row[0], owner))
        rows.append(row)
        if len(rows) >= self.every or time.monotonic() - self._opened >= self.interval:
            self.commit()

    def write(
        self,
        db: sqlite3.Connection,
        job_id: str,
        work: Callable[[sqlite3.Connection], LogState | None],
    ) -> LogState | None:
        """Run ``work`` after the rows kept, in one transaction, and commit it.

        Call with ``lock`` held. ``None`` if the job's rows kept were refused
        (``work`` is not run: it would leave a gap in the job's log).

        Raises:
            StoreError: If a step failed; the transaction is rolled back.
        """
        self._jobs.add(job_id)
        self._writer = db
        return self._commit(db, job_id, work)

    def commit(self) -> None:
        """Commit the rows kept, if any (call with ``lock`` held).

        Raises:
            StoreError: If the commit failed; the rows are dropped.
        """
        if not self._rows:
            return
        db = self._writer
        assert db is not None  # noqa: S101  set with the first row
        self._commit(db, "", None)

    def _commit(
        self,
        db: sqlite3.Connection,
        job_id: str,
        work: Callable[[sqlite3.Connection], LogState | None] | None,
    ) -> LogState | None:
        """Write the rows kept, then ``work`` (unless ``job_id``'s were refused).

        Rolls back and aborts the group if any step fails.
        """
        result: list[LogState | None] = [None]

        def transaction() -> None:
            _begin(db)
            refused = write_changes(db, self._rows, self._owners) if self._rows else {}
            if work is not None and job_id not in refused:
                result[0] = work(db)
            db.execute("COMMIT")
            self._committed(refused)

        try:
            self._guard("write to", transaction)
        except BaseException:
            self.abort()
            raise
        return result[0]

    def _committed(self, refused: dict[str, str]) -> None:
        """Start afresh after a commit; mark the jobs whose rows were refused lost."""
        self._rows, self._jobs, self._owners = [], set(), set()
        if refused:
            self.lost.update(refused)
            self._forget(set(refused))

    def abort(self) -> None:
        """Roll back what is open; drop the rows kept; mark their jobs lost.

        Call with ``lock`` held.
        """
        db, jobs = self._writer, self._jobs
        # Jobs are marked lost before their rows go: an interrupt landing in
        # between then leaves rows kept for lost jobs (a prefix of their logs,
        # written at the next commit), never a job whose next change follows
        # rows that were dropped.
        for job_id in jobs:
            self.lost[job_id] = LOST.format(job_id)
        self._forget(jobs)
        self._rows, self._jobs, self._owners = [], set(), set()
        if db is not None and db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:  # already rolled back by SQLite itself
                pass

    def close(self) -> None:
        """Commit the rows kept and stop the flusher (even if the commit fails)."""
        flusher: threading.Thread | None = None
        try:
            with self.lock:
                self._closed = True
                flusher = self._flusher
                try:
                    self.commit()
                finally:
                    self.lock.notify()
        finally:  # a store used again starts a flusher with its first row
            if flusher is not None and flusher is not threading.current_thread():
                flusher.join()
            with self.lock:
                self._flusher, self._closed = None, False

    def _wake(self) -> None:
        """Make sure a flusher will commit the first row kept on time."""
        if self._flusher is None:  # none yet, or it ended while idle
            flusher = threading.Thread(
                target=self._flush, name="flowforge-group-commit", daemon=True
            )
            flusher.start()  # kept once started: close() joins it
            self._flusher = flusher
        elif self._idle:  # waiting for rows: it has some now
            self.lock.notify()

    def _flush(self) -> None:
        # Woken only by the clock while rows come and go (a wake-up per
        # group would cost the checkpoints more than it saves). Idle for an
        # interval, it ends (the next row starts another), so that it never
        # keeps an unused store, its connections and itself alive.
        with self.lock:
            while not self._closed:
                if not self._rows:
                    self._idle = True
                    woken = self.lock.wait(self.interval)
                    self._idle = False
                    if not woken and not self._rows:
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
