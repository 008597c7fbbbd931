"""Journal: checkpoints a durable job into its store while this process owns it.

A process owns a job through a lease in the store: an owner id
(``host:pid:nonce``) and a time until which the claim holds. A heartbeat
thread renews the lease every third of it while the job runs, and checkpoints
may renew it too (each store says when); a checkpoint is written only while
this owner holds the lease. A job
whose lease has expired, or whose owner is a dead process on this machine, may
be taken over by :meth:`Flow.recover <flowforge.Flow.recover>`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Final, final

from flowforge.exceptions import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable

    from flowforge.job_state import JobState
    from flowforge.store.base import Change, Store

__all__ = ["DEFAULT_LEASE_SECONDS", "Journal", "is_dead_owner", "new_owner_id"]

DEFAULT_LEASE_SECONDS: Final = 30.0


def new_owner_id() -> str:
    """Return an owner id naming this host and process, unique per call."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


_ACTIVE_OWNERS: set[str] = set()
"""Owner ids of this process's journals that are running a job right now."""


def is_dead_owner(owner: str | None) -> bool:
    """Return whether ``owner`` no longer runs its job.

    True for a process on this host that no longer exists, and for an owner in
    this very process whose run has ended (a store failure stopped it).
    """
    if owner is None:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if int(pid_text) == os.getpid():
        return owner not in _ACTIVE_OWNERS
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, but another user's
        return False
    return False


@final
class Journal:
    """Write one job's progress to a store, holding its lease.

    Args:
        store: Where the job is saved.
        lease_seconds: How long a claim holds without renewal.

    Thread safety: used by the job's scheduler; its heartbeat runs in a
    thread of its own.
    """

    __slots__ = (
        "store",
        "owner",
        "lease_seconds",
        "_stop",
        "_heartbeat",
        "_lost",
        "_began",
    )

    def __init__(
        self, store: Store, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> None:
        """Create a journal with a fresh owner id."""
        if not lease_seconds > 0:
            raise StoreError(f"lease_seconds must be positive, got {lease_seconds!r}")
        self.store = store
        self.owner = new_owner_id()
        self.lease_seconds = lease_seconds
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._lost = False
        self._began = False

    @property
    def began(self) -> bool:
        """Whether :meth:`begin` saved the job: from then on :meth:`end` releases it."""
        return self._began

    def lease_until(self) -> float:
        """Return when a lease taken now ends, in seconds since the epoch."""
        return time.time() + self.lease_seconds

    def create(self, job: JobState) -> bool:
        """Save a new job owned by this journal; False if its id is taken."""
        return self._claim(
            job.job_id,
            lambda: self.store.create(
                job, owner=self.owner, lease_until=self.lease_until()
            ),
        )

    def acquire(self, job_id: str, *, replacing: str | None = None) -> bool:
        """Take the job's lease if it is free, expired, or held by ``replacing``."""
        return self._claim(
            job_id,
            lambda: self.store.acquire(
                job_id,
                owner=self.owner,
                lease_until=self.lease_until(),
                now=time.time(),
                replacing=replacing,
            ),
        )

    def _claim(self, job_id: str, take: Callable[[], bool]) -> bool:
        # This owner counts as live before the store names it, so that no
        # other thread of this process takes the job for a dead owner's
        # between the claim and the run; until end(), or at once if the claim
        # failed.
        _ACTIVE_OWNERS.add(self.owner)
        try:
            taken = take()
        except BaseException:
            # The write may have landed before the failure (a connection lost
            # after its commit): free the lease it may hold.
            self.abandon(job_id)
            raise
        if not taken:
            _ACTIVE_OWNERS.discard(self.owner)
        return taken

    def begin(self, job: JobState) -> None:
        """Save the job as running under this owner and start the heartbeat."""
        _ACTIVE_OWNERS.add(self.owner)
        try:
            self.store.save(job, owner=self.owner, lease_until=self.lease_until())
        except BaseException:
            _ACTIVE_OWNERS.discard(self.owner)  # its run never began: resumable
            raise
        self._began = True
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._beat, args=(job.job_id,), name="flowforge-lease", daemon=True
        )
        self._heartbeat.start()

    def commit(self, job: JobState, change: Change) -> None:
        """Save what one delivery changed, while this journal holds the lease."""
        self.store.checkpoint(
            job, change, owner=self.owner, lease_until=self.lease_until()
        )

    def committer(self) -> Callable[[JobState, Change], None]:
        """Return :meth:`commit` as one function, for the scheduler's hot path.

        It writes to the store and for the lease this journal has now.
        """
        checkpoint, owner, seconds, now = (
            self.store.checkpoint,
            self.owner,
            self.lease_seconds,
            time.time,
        )

        def commit(job: JobState, change: Change) -> None:
            checkpoint(job, change, owner=owner, lease_until=now() + seconds)

        return commit

    def end(self, job: JobState, *, write: bool = True) -> None:
        """Stop the heartbeat; save the job's final state and release its lease.

        The owner counts as live until the lease is released, so no other
        thread of this process takes the job over while its end is written.
        """
        try:  # an interrupt landing anywhere still lets the owner go
            self._stop.set()
            if self._heartbeat is not None:
                self._heartbeat.join()
                self._heartbeat = None
            if self._lost:
                return
            if write:
                try:
                    self.store.save(job, owner=self.owner, lease_until=None)
                    return
                except BaseException:  # the job as of its last checkpoint stays
                    self._let_lease_lapse(job.job_id)
                    raise
            self._let_lease_lapse(job.job_id)
        finally:
            _ACTIVE_OWNERS.discard(self.owner)

    def abandon(self, job_id: str) -> None:
        """Give up a claim whose run never began, so the job can be resumed at once.

        Called when loading or preparing the job failed after the lease was
        taken; after :meth:`begin`, :meth:`end` releases the lease instead and
        this does nothing.
        """
        if self._began:
            return
        try:
            self._let_lease_lapse(job_id)
        finally:
            _ACTIVE_OWNERS.discard(self.owner)

    def _let_lease_lapse(self, job_id: str) -> None:
        """After a store failure, free the job (best effort) for a resume.

        Only a lease this owner still holds is let go: a renewal to an expired
        time. A job another process took over (and maybe finished) since this
        one stalled is not this owner's to touch, so nothing is written then.
        """
        try:
            self.store.renew(job_id, owner=self.owner, lease_until=0.0)
        except StoreError:  # still failing: the lease expires on its own
            return

    def _beat(self, job_id: str) -> None:
        # Renew, never acquire: a job released or taken over while this
        # process stalled is no longer its to run (its next checkpoint fails).
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                if not self.store.renew(
                    job_id, owner=self.owner, lease_until=self.lease_until()
                ):
                    self._lost = True
                    return
            except StoreError:  # the next checkpoint reports the failure
                continue
