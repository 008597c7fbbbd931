"""MemoryStore: job states kept in this process, for tests and short-lived jobs.

Each flow shape is kept once, as JSON text, for as long as a job names it.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, final

from flowforge.exceptions import JobNotFoundError, StoreError
from flowforge.job_state import JobStatus
from flowforge.store._change_log import (
    FOLD_EVERY,
    Logged,
    apply,
    fold,
    logged,
    change_document,
)
from flowforge.store._checks import (
    check_flow_id,
    check_job_id,
    check_lease,
    check_job_state,
    check_prune,
)
from flowforge.store._rows import JobRows, assemble_rows, job_rows
from flowforge.store._select import select_listed, select_prunable
from flowforge.store.base import Change, JobRecord

if TYPE_CHECKING:
    from flowforge.job_state import JobState

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Entry:
    flow_id: str
    owner: str | None
    lease_until: float | None
    updated_at: datetime
    rows: JobRows
    shape_id: str
    history: dict[int, str] = field(default_factory=dict)
    log: list[Logged] = field(default_factory=list)


@final
class MemoryStore:
    """Keep job states in a dict, as JSON data, so a saved job never changes later.

    Like :class:`~flowforge.store.SqliteStore`, each checkpoint logs what the
    delivery changed, and the log is folded into the job's rows (JSON text)
    every so often. Nothing survives the process.

    Thread safety: safe to share between threads.
    """

    def __init__(self) -> None:
        """Create an empty store."""
        self._jobs: dict[str, _Entry] = {}
        self._shapes: dict[str, str] = {}
        self._named: Counter[str] = Counter()
        self._lock = threading.Lock()

    def create(self, job_state: JobState, *, owner: str, lease_until: float) -> bool:
        """Save a new job leased to ``owner``; return False if the id exists."""
        check_lease(owner, lease_until)
        check_job_state(job_state)
        with self._lock:
            if job_state.job_id in self._jobs:
                return False
            self._put(job_state, owner, lease_until)
            return True

    def save(
        self,
        job_state: JobState,
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> None:
        """Save the whole job state; with ``owner``, only while it holds the lease."""
        check_lease(owner, lease_until, unleased_ok=True)
        check_job_state(job_state)
        with self._lock:
            entry = self._jobs.get(job_state.job_id)
            if owner is not None and entry is not None:
                _check_owner(entry, job_state.job_id, owner, unleased_ok=True)
            self._put(job_state, owner, lease_until)

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        """Log what one delivery changed, renewing ``owner``'s lease."""
        check_lease(owner, lease_until, change=change)
        check_job_state(job_state)
        document = logged(change_document(job_state, change))
        with self._lock:
            entry = self._entry(job_state.job_id)
            _check_owner(entry, job_state.job_id, owner)
            entry.log.append(document)
            entry.rows.counters["status"] = document.document.status
            if len(entry.log) >= FOLD_EVERY:
                where = f"change log of job {job_state.job_id!r}"
                apply(fold(entry.log, where), entry.rows, entry.history)
                entry.log = []
            entry.lease_until = lease_until
            entry.updated_at = datetime.now(UTC)

    def acquire(
        self,
        job_id: str,
        *,
        owner: str,
        lease_until: float,
        now: float,
        replacing: str | None = None,
    ) -> bool:
        """Lease a job to ``owner``: see :meth:`flowforge.store.Store.acquire`."""
        check_lease(owner, lease_until, now, replacing=replacing)
        with self._lock:
            entry = self._entry(job_id)
            free = entry.owner is None or entry.lease_until is None
            held = entry.owner in (owner, replacing)
            if free or held or (entry.lease_until or 0) < now:
                entry.owner, entry.lease_until = owner, lease_until
                return True
            return False

    def renew(self, job_id: str, *, owner: str, lease_until: float) -> bool:
        """Extend ``owner``'s lease: see :meth:`flowforge.store.Store.renew`."""
        check_lease(owner, lease_until)
        with self._lock:
            entry = self._jobs.get(check_job_id(job_id))
            if entry is None or entry.owner != owner:
                return False
            entry.lease_until = lease_until
            return True

    def load(self, job_id: str) -> JobState:
        """Return the saved job state."""
        with self._lock:
            entry = self._entry(job_id)
            saved = entry.rows
            rows = JobRows(
                saved.header,
                dict(saved.counters),
                list(saved.pending),
                dict(saved.buffers),
                dict(saved.routines),
                list(saved.errors),
                [],
            )
            history = dict(entry.history)
            shapes = {entry.shape_id: self._shapes.get(entry.shape_id)}
            if entry.log:
                apply(fold(entry.log, f"change log of job {job_id!r}"), rows, history)
        return assemble_rows(rows, history, shapes.get)

    def get(self, job_id: str) -> JobRecord:
        """Return what the store knows about a job without loading it."""
        with self._lock:
            return self._record(job_id, self._entry(job_id))

    def list_jobs(
        self, *, flow_id: str | None = None, status: JobStatus | str | None = None
    ) -> list[JobRecord]:
        """Return the saved jobs, oldest update first, optionally filtered."""
        check_flow_id(flow_id)
        with self._lock:
            records = [self._record(job_id, e) for job_id, e in self._jobs.items()]
        return select_listed(records, flow_id=flow_id, status=status)

    def delete(self, job_id: str) -> None:
        """Remove a job."""
        with self._lock:
            self._entry(job_id)
            self._drop(job_id)

    def prune(
        self, *, older_than: timedelta | None = None, keep: int | None = None
    ) -> list[str]:
        """Delete finished jobs by age and count; return the deleted ids."""
        check_prune(older_than, keep)
        doomed = select_prunable(self.list_jobs(), older_than=older_than, keep=keep)
        with self._lock:
            for job_id in doomed:
                if job_id in self._jobs:
                    self._drop(job_id)
        return doomed

    def close(self) -> None:
        """Do nothing: a memory store holds no resources."""

    def _put(self, job: JobState, owner: str | None, lease_until: float | None) -> None:
        rows = job_rows(job, self._shapes)
        history = dict(rows.history)
        shape = rows.shape
        assert shape is not None  # noqa: S101  job_rows names the shape
        if shape.text is not None:
            self._shapes[shape.shape_id] = shape.text
        self._named[shape.shape_id] += 1
        rows.shape = None  # its text is kept above, once
        if lease_until is None:
            owner = None
        entry = _Entry(
            job.flow_id,
            owner,
            lease_until,
            datetime.now(UTC),
            rows,
            shape.shape_id,
            history,
        )
        # One step, so that an interrupt never leaves the job missing.
        old, self._jobs[job.job_id] = self._jobs.get(job.job_id), entry
        if old is not None:
            self._forget_shape(old.shape_id)

    def _drop(self, job_id: str) -> None:
        """Forget a job, and its flow's shape once no job names it."""
        self._forget_shape(self._jobs.pop(job_id).shape_id)

    def _forget_shape(self, shape_id: str) -> None:
        """Count one job fewer naming a shape; drop its text once none does."""
        self._named[shape_id] -= 1
        if self._named[shape_id] <= 0:
            del self._named[shape_id]
            self._shapes.pop(shape_id, None)

    def _entry(self, job_id: str) -> _Entry:
        entry = self._jobs.get(check_job_id(job_id))
        if entry is None:
            raise JobNotFoundError(job_id=job_id)
        return entry

    @staticmethod
    def _record(job_id: str, entry: _Entry) -> JobRecord:
        status = JobStatus(str(entry.rows.counters["status"]))
        return JobRecord(
            job_id,
            entry.flow_id,
            status,
            entry.owner,
            entry.lease_until,
            entry.updated_at,
        )

    def __repr__(self) -> str:
        """Return how many jobs the store holds."""
        return f"MemoryStore(jobs={len(self._jobs)})"


def _check_owner(
    entry: _Entry, job_id: str, owner: str, *, unleased_ok: bool = False
) -> None:
    if entry.owner != owner and not (unleased_ok and entry.owner is None):
        raise StoreError(
            f"job {job_id!r} is leased to {entry.owner!r}, not {owner!r}: another "
            "process took it over, so this one must stop running it"
        )
