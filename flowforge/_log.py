"""The package logger's ``NullHandler``; the ``extra`` fields FlowForge's records carry.

Every FlowForge module logs to ``logging.getLogger(__name__)``, a child of the
``flowforge`` logger. As a library, FlowForge installs only a ``NullHandler``
on that package logger (the application chooses handlers and levels); it is
added here, by the modules that log, rather than in ``flowforge/__init__.py``,
which holds imports and ``__all__`` only.
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["PACKAGE_LOGGER", "fields"]

PACKAGE_LOGGER: Final = logging.getLogger("flowforge")
if not any(isinstance(h, logging.NullHandler) for h in PACKAGE_LOGGER.handlers):
    PACKAGE_LOGGER.addHandler(logging.NullHandler())


def fields(
    job_id: str, routine_id: str | None = None, slot: str | None = None
) -> dict[str, object]:
    """Return the ``extra`` of a record about a job (and one of its deliveries).

    Every FlowForge record carries all three keys (``None`` when not about a
    delivery), so a format string may name them; none is a ``LogRecord``
    attribute, so ``logging`` accepts them.
    """
    return {"job_id": job_id, "routine_id": routine_id, "slot": slot}
