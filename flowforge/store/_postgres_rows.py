"""PostgresStore's rows as statement parameters, and its rows read back as records."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

from flowforge.exceptions import StoreError
from flowforge.job_state import JobStatus
from flowforge.store.base import JobRecord

if TYPE_CHECKING:
    from flowforge.job_state import JobState
    from flowforge.store._rows import JobRows

__all__ = ["job_values", "read_version", "to_record"]


def job_values(
    job: JobState, rows: JobRows, owner: str | None, lease_until: float | None
) -> tuple[object, ...]:
    """Return the ``jobs`` row of ``job``, in the insert statement's order."""
    counters = rows.counters
    return (
        job.job_id,
        job.flow_id,
        counters["status"],
        None if lease_until is None else owner,
        lease_until,
        counters["delivery_count"],
        counters["next_seq"],
        counters["history_total"],
        rows.header,
    )


def to_record(row: tuple[Any, ...]) -> JobRecord:
    """Read a ``jobs`` row as a record.

    Raises:
        StoreError: If its status is not one FlowForge writes.
    """
    job_id, flow_id, status, owner, lease_until, updated_at = row
    try:
        job_status = JobStatus(status)
    except ValueError:
        raise StoreError(
            f"stored job {job_id!r} has an unknown status {status!r}: the database "
            "is corrupted or was written by another program"
        ) from None
    return JobRecord(
        job_id, flow_id, job_status, owner, lease_until, updated_at.astimezone(UTC)
    )


def read_version(row: tuple[Any, ...] | None, where: str, schema: str) -> int:
    """Return the schema version the meta table holds.

    Raises:
        StoreError: If it is not a number.
    """
    text = None if row is None else row[0]
    if text is None or not str(text).isdigit():
        raise StoreError(
            f"PostgreSQL store {where}, schema {schema!r} has an unreadable schema "
            f"version {text!r} in its meta table"
        )
    return int(text)
