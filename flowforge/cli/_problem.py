"""CommandError: why a command stopped, as one line, with its exit code."""

from __future__ import annotations

from typing import Final, final

from flowforge.exceptions import FlowForgeError

__all__ = ["FAILED", "USAGE", "CommandError"]

FAILED: Final = 1
"""Exit code of a command (or of the job it ran) that failed."""
USAGE: Final = 2
"""Exit code of a command given a bad argument, such as a store URL."""


@final
class CommandError(FlowForgeError):
    """A command cannot go on; ``exit_code`` is 1 (failed) or 2 (usage)."""

    def __init__(self, message: str, *, exit_code: int = FAILED) -> None:
        """Keep the one-line message and the exit code."""
        super().__init__(message)
        self.exit_code = exit_code
