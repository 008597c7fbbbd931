"""The settings of a flow: each checked when set, documented, and read by the engine.

:class:`~flowforge.Flow` takes them from :func:`flow_settings` as class
attributes; a change reaches the flow's next job (see
:class:`~flowforge._setting.Setting`).
"""

from __future__ import annotations

from functools import partial
from typing import Final

from flowforge._names import check_id, check_positive
from flowforge._setting import Setting, optional
from flowforge.engine.clock import check_clock
from flowforge.engine.run import check_strategy
from flowforge.error_handler import ErrorHandler
from flowforge.job_state import MAX_HISTORY_LIMIT
from flowforge.types import Clock

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_MAX_DELIVERIES",
    "DEFAULT_MAX_WORKERS",
    "MAX_WORKERS",
    "SAVED_SETTINGS",
    "flow_settings",
]

DEFAULT_MAX_DELIVERIES: Final = 10_000_000
DEFAULT_HISTORY_LIMIT: Final = 1000
DEFAULT_MAX_WORKERS: Final = 8
MAX_WORKERS: Final = 1_000_000
SAVED_SETTINGS: Final = (
    "max_deliveries",
    "max_pending",
    "history_limit",
    "execution_strategy",
    "max_workers",
    "error_handler",
)
"""The settings a flow's data keeps, in its order; a clock or executor is code."""

Settings = tuple[
    Setting[str],
    Setting[ErrorHandler | None],
    Setting[int],
    Setting[int],
    Setting[int],
    Setting[Clock | None],
    Setting[str],
    Setting[int],
]


def flow_settings() -> Settings:
    """Return a flow's settings, in the order of :data:`Settings`."""
    return (
        Setting[str](
            partial(check_id, what="flow_id"),
            "The flow's id, recorded in every job it runs.",
        ),
        Setting[ErrorHandler | None](
            optional(ErrorHandler, "error_handler"),
            "Used for routines without their own; ``None`` means STOP.",
        ),
        Setting[int](
            partial(check_positive, name="max_deliveries"),
            "How many deliveries a job may make before it fails, a positive int.",
        ),
        Setting[int](
            partial(check_positive, name="max_pending"),
            "How many deliveries a job may hold waiting before it fails.",
        ),
        Setting[int](
            partial(check_positive, name="history_limit", most=MAX_HISTORY_LIMIT),
            "How many handled deliveries each job's history keeps, a positive int.",
        ),
        Setting[Clock | None](
            check_clock,
            "The time seam given to the flow; ``None`` means the system clock.",
        ),
        Setting[str](
            check_strategy,
            'How jobs run by default, ``"sequential"`` or ``"concurrent"``.',
        ),
        Setting[int](
            partial(check_positive, name="max_workers", most=MAX_WORKERS),
            "How many handlers of one concurrent job may run at once.",
        ),
    )
