"""Checks of the arguments every store takes, so that all backends refuse alike."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Final

from flowforge._names import check_type, shown
from flowforge.exceptions import ArgumentTypeError, StoreError
from flowforge.job_state import JobState
from flowforge.store.base import Change

__all__ = [
    "check_flow_id",
    "check_lease",
    "check_job_id",
    "check_job_state",
    "check_path",
    "check_prune",
    "seconds",
]


NO_CHANGE_GIVEN: Final = object()
"""``check_lease``'s ``change`` when the caller is not ``checkpoint``."""
_INT_LIMIT: Final = 2**63


def check_job_id(job_id: object) -> str:
    """Return ``job_id`` if it is a str.

    Raises:
        ArgumentTypeError: If it is not (a number, ``None``, a list...).
    """
    if not isinstance(job_id, str):
        raise ArgumentTypeError(
            f"job_id must be a str, got {type(job_id).__name__} {shown(job_id)}"
        )
    return job_id


def check_job_state(job_state: object) -> JobState:
    """Return ``job_state`` if it is a :class:`~flowforge.JobState`.

    Raises:
        ArgumentTypeError: If it is not.
    """
    if not isinstance(job_state, JobState):
        raise ArgumentTypeError(
            f"job_state must be a JobState, got {type(job_state).__name__} "
            f"{shown(job_state)}"
        )
    return job_state


def check_flow_id(flow_id: object) -> str | None:
    """Return ``flow_id`` if it is a str or ``None`` (a filter of ``list_jobs``).

    Raises:
        ArgumentTypeError: If it is neither.
    """
    if flow_id is not None and not isinstance(flow_id, str):
        raise ArgumentTypeError(
            f"flow_id must be a str or None, got {type(flow_id).__name__} "
            f"{shown(flow_id)}"
        )
    return flow_id


def check_prune(older_than: object, keep: object) -> None:
    """Check the types of ``prune``'s limits; their values are checked later.

    Raises:
        ArgumentTypeError: If ``older_than`` is not a timedelta or ``None``,
            or ``keep`` is not an int or ``None``.
    """
    if older_than is not None and not isinstance(older_than, timedelta):
        raise ArgumentTypeError(
            f"older_than must be a datetime.timedelta or None, got "
            f"{type(older_than).__name__} {shown(older_than)}"
        )
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int)):
        raise ArgumentTypeError(
            f"keep must be an int or None, got {type(keep).__name__} {shown(keep)}"
        )


def check_path(path: object, name: str) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ArgumentTypeError: If it is not a str or a path-like object.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"{name} must be a str or a path, got {type(path).__name__} "
            f"{shown(path)}"
        )
    return Path(path)


def seconds(value: object, name: str, maximum: float) -> float:
    """Return ``value`` as a number of seconds from 0 to ``maximum``.

    Raises:
        ArgumentTypeError: If it is not a number.
        StoreError: If it is negative, NaN or more than ``maximum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(
            f"{name} must be a number of seconds, got {type(value).__name__} "
            f"{shown(value)}"
        )
    if not 0 <= value <= maximum:  # also refuses NaN
        raise StoreError(
            f"{name} must be from 0 to {maximum:g} seconds, got {shown(value)}"
        )
    return float(value)


def check_lease(
    owner: object,
    lease_until: object,
    now: object = 0.0,
    *,
    unleased_ok: bool = False,
    replacing: object = None,
    change: object = NO_CHANGE_GIVEN,
) -> None:
    """Refuse lease arguments of the wrong type, before anything is written.

    ``owner`` is an owner id (a str); ``lease_until`` and ``now`` are seconds
    since the epoch (an int or float, not a bool, not NaN). With
    ``unleased_ok`` (``save``), ``owner`` and ``lease_until`` may be ``None``.
    ``acquire`` passes its ``replacing`` (a str or ``None``) and
    ``checkpoint`` its ``change`` (a :class:`~flowforge.store.Change`).

    Raises:
        ArgumentTypeError: Naming the argument and what it got.
        StoreError: If a time is NaN, which no lease would ever pass.
    """
    if not (owner is None and unleased_ok) and not isinstance(owner, str):
        raise ArgumentTypeError(
            f"owner must be a str, got {type(owner).__name__} {shown(owner)}"
        )
    for name, value in (("lease_until", lease_until), ("now", now)):
        if value is None and unleased_ok:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ArgumentTypeError(
                f"{name} must be seconds since the epoch (a float), got "
                f"{type(value).__name__} {shown(value)}"
            )
        if value != value:  # NaN: never expires, never compares
            raise StoreError(f"{name} must be a number of seconds, got nan")
        if not isinstance(value, float) and not -_INT_LIMIT <= value < _INT_LIMIT:
            raise StoreError(  # what SQLite and PostgreSQL store in 64 bits
                f"{name} must be seconds since the epoch below 2**63 (or a "
                f"float), got {shown(value)}"
            )
    if replacing is not None:
        check_type(replacing, str, "replacing", "an owner id (a str) or None")
    if change is not NO_CHANGE_GIVEN:
        check_type(change, Change, "change", "a flowforge.store.Change")
