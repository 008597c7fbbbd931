"""The Store protocol: where job states are saved, listed, leased and pruned.

A store only keeps data. The rules that use it (who may run a job, when a job
may be taken over) live in the runtime; a store offers the few atomic
operations they need: create a job only if its id is new, write only while
holding the job's lease, and take a lease only if it is free or expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, final, runtime_checkable

if TYPE_CHECKING:
    from flowforge.job_state import JobState, JobStatus

__all__ = ["Change", "JobRecord", "Store"]


@final
@dataclass(frozen=True, slots=True)
class JobRecord:
    """What a store knows about a job without loading it.

    ``owner`` and ``lease_until`` (seconds since the epoch) say which process
    runs the job and until when its claim holds; both are ``None`` when no
    process runs it.
    """

    job_id: str
    flow_id: str
    status: JobStatus
    owner: str | None
    lease_until: float | None
    updated_at: datetime


@final
@dataclass(frozen=True, slots=True)
class Change:
    """What one delivery changed in a job, for an incremental checkpoint.

    Attributes:
        pending_from: ``job.pending[pending_from:]`` is new; saved pending
            deliveries at or after that position are replaced by it.
        routine_id: The routine whose state (and stats snapshot) changed.
        buffer_key: The slot buffer (with its join arrivals) that changed, or
            ``None``; a key missing from the job's buffers is deleted.
        history_from: ``job.history_total`` before the delivery.
        errors_from: ``job.error_count`` before the delivery: error records
            are numbered in the order they were made, kept or not.
    """

    pending_from: int
    routine_id: str | None
    buffer_key: tuple[str, str] | None
    history_from: int
    errors_from: int


@runtime_checkable
class Store(Protocol):
    """Saves job states; implement it to keep jobs somewhere new.

    Every method may raise :class:`~flowforge.StoreError` when the backend
    fails. Methods taking ``owner`` write only while ``owner`` holds the job's
    lease and raise ``StoreError`` otherwise, so a process that lost a job to
    another can never overwrite it.

    The backends FlowForge ships refuse a ``job_id`` that is not a ``str`` and
    a ``job_state`` that is not a :class:`~flowforge.JobState` with
    :class:`~flowforge.ArgumentTypeError`; ``load`` of a damaged record
    raises a :class:`~flowforge.FlowForgeError` (never another exception),
    and ``list_jobs`` leaves out a job it cannot read with a
    :class:`~flowforge.FlowForgeWarning` naming it, so that one damaged job
    never hides the others from recovery.
    """

    def create(self, job_state: JobState, *, owner: str, lease_until: float) -> bool:
        """Save a new job leased to ``owner``; return False if the id exists."""

    def save(
        self,
        job_state: JobState,
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> None:
        """Save the whole job state, leased to ``owner`` until ``lease_until``.

        With ``owner``, the write happens only while ``owner`` holds the
        lease (or nobody does); with ``lease_until=None`` the job is left
        unleased, free for any process to take.
        """

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        """Save what one delivery changed in one transaction, while ``owner`` leases it.

        The store may renew the lease until ``lease_until`` with the write, at
        every checkpoint or less often; the journal's heartbeat keeps it alive.
        """

    def acquire(
        self,
        job_id: str,
        *,
        owner: str,
        lease_until: float,
        now: float,
        replacing: str | None = None,
    ) -> bool:
        """Lease a job to ``owner`` if it is free or its lease has expired.

        Also succeeds when ``owner`` already holds it (a renewal) or when
        ``replacing`` holds it (taking over from an owner known to be dead).
        ``now`` and ``lease_until`` are seconds since the epoch.
        """

    def renew(self, job_id: str, *, owner: str, lease_until: float) -> bool:
        """Extend ``owner``'s lease to ``lease_until`` if ``owner`` still holds the job.

        Unlike :meth:`acquire`, never takes a job: False when the job was
        released, taken over by another owner, or deleted. A lease that has
        expired but that nobody took is still ``owner``'s, and is renewed.
        """

    def load(self, job_id: str) -> JobState:
        """Return the saved job state; :class:`~flowforge.JobNotFoundError` if none."""

    def get(self, job_id: str) -> JobRecord:
        """Return what the store knows about a job without loading it."""

    def list_jobs(
        self, *, flow_id: str | None = None, status: JobStatus | str | None = None
    ) -> list[JobRecord]:
        """Return the saved jobs, oldest update first, optionally filtered."""

    def delete(self, job_id: str) -> None:
        """Remove a job; :class:`~flowforge.JobNotFoundError` if there is none."""

    def prune(
        self, *, older_than: timedelta | None = None, keep: int | None = None
    ) -> list[str]:
        """Delete ended jobs by age or count; return the deleted ids.

        Ended jobs (completed, failed, cancelled) updated more than
        ``older_than`` ago go, and so do all but the ``keep`` most recently
        updated ones. Running and paused jobs are never pruned.
        """

    def close(self) -> None:
        """Release the store's connections and files."""
