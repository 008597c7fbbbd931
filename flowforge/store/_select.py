"""Store helpers that are the same for every backend: status filters, pruning."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar

from flowforge.exceptions import FlowForgeWarning, StoreError
from flowforge.job_state import JobStatus
from flowforge._names import shown
from flowforge.store.base import JobRecord, Store

__all__ = [
    "ENDED",
    "prune_one_by_one",
    "readable_records",
    "select_listed",
    "select_prunable",
    "to_status",
]

T = TypeVar("T")

ENDED: Final = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
"""Statuses of jobs that no process runs and that prune may delete."""


def to_status(status: JobStatus | str | None) -> JobStatus | None:
    """Return ``status`` as a :class:`JobStatus`.

    Raises:
        StoreError: If it names no status.
    """
    if status is None:
        return None
    try:
        if not isinstance(status, str):  # hashing another object calls its code
            raise ValueError(status)
        return JobStatus(status)
    except ValueError:
        choices = ", ".join(s.value for s in JobStatus)
        raise StoreError(
            f"unknown job status {shown(status)}; use one of {choices}"
        ) from None


def select_listed(
    records: Iterable[JobRecord],
    *,
    flow_id: str | None,
    status: JobStatus | str | None,
) -> list[JobRecord]:
    """Return the records of one flow and status (``None``: any), oldest first.

    Raises:
        StoreError: If ``status`` names no status.
    """
    wanted = to_status(status)
    return sorted(
        (
            r
            for r in records
            if (flow_id is None or r.flow_id == flow_id)
            and (wanted is None or r.status is wanted)
        ),
        key=lambda r: (r.updated_at, r.job_id),
    )


def readable_records(
    rows: Iterable[T], to_record: Callable[[T], JobRecord]
) -> list[JobRecord]:
    """Return the records of ``rows`` that ``to_record`` can read, in order.

    A row it refuses with a :class:`StoreError` (a damaged or foreign job) is
    left out with a :class:`~flowforge.FlowForgeWarning` saying why, so that
    one bad job does not hide every other one from ``list_jobs`` (and so
    from recovery).
    """
    records = []
    for row in rows:
        try:
            records.append(to_record(row))
        except StoreError as error:
            # Level 3: the caller of the store's list_jobs.
            warnings.warn(f"{error}; it is not listed", FlowForgeWarning, stacklevel=3)
    return records


def select_prunable(
    records: Sequence[JobRecord],
    *,
    older_than: timedelta | None,
    keep: int | None,
    now: datetime | None = None,
) -> list[str]:
    """Return the ids of ended jobs to delete: too old, or beyond the newest ``keep``.

    Raises:
        StoreError: If ``keep`` is negative or ``older_than`` is negative.
    """
    if keep is not None and keep < 0:
        raise StoreError(f"keep must be zero or more, got {shown(keep)}")
    if older_than is not None and older_than < timedelta(0):
        raise StoreError(f"older_than must not be negative, got {older_than!r}")
    ended = sorted(
        (r for r in records if r.status in ENDED), key=lambda r: r.updated_at
    )
    doomed: list[str] = []
    if older_than is not None:
        try:
            cutoff = (now or datetime.now(UTC)) - older_than
        except OverflowError:  # before year 1: no job is that old
            cutoff = datetime.min.replace(tzinfo=UTC)
        doomed += [r.job_id for r in ended if r.updated_at < cutoff]
    if keep is not None:
        extra = ended[: max(0, len(ended) - keep)]
        doomed += [r.job_id for r in extra if r.job_id not in doomed]
    return doomed


def prune_one_by_one(
    store: Store, *, older_than: timedelta | None, keep: int | None
) -> list[str]:
    """Prune ``store`` by listing its jobs and deleting the chosen ones in turn.

    Raises:
        StoreError: If ``keep`` or ``older_than`` is negative, or the store fails.
    """
    doomed = select_prunable(store.list_jobs(), older_than=older_than, keep=keep)
    for job_id in doomed:
        store.delete(job_id)
    return doomed
