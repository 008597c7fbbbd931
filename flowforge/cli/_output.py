"""Terminal output for the commands: rich consoles, times, ages and durations."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import click
from rich.console import Console
from rich.text import Text

from flowforge.cli._problem import FAILED, USAGE, CommandError
from flowforge.job_state import JobState, JobStatus

__all__ = [
    "console",
    "parse_age",
    "parse_since",
    "printable",
    "report_end",
    "seconds_text",
]

_AGE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


_CONTROL: Final = {
    code: "\ufffd"
    for code in (*range(0x20), *range(0x7F, 0xA0))
    if chr(code) not in "\n\t"
}
"""Control characters, each shown as one replacement character: ids, messages and
payloads are user data, and an escape sequence must not reach the terminal."""


def printable(value: object) -> str:
    """Return ``str(value)`` with control characters (but newline and tab) replaced."""
    return str(value).translate(_CONTROL)


class _Console(Console):
    """A console that never prints a control character of user data."""

    def print(self, *objects: object, **options: Any) -> None:  # noqa: D102
        super().print(*(_printable(o) for o in objects), **options)


def _printable(item: object) -> object:
    if isinstance(item, str):
        return printable(item)
    if isinstance(item, Text):  # same length: the styles' spans stay put
        item = item.copy()
        item.plain = printable(item.plain)
    return item


def console(*, err: bool = False) -> Console:
    """Return a console writing to stdout (or stderr): no markup, long lines kept."""
    return _Console(
        stderr=err, highlight=False, markup=False, emoji=False, soft_wrap=True
    )


def parse_age(text: str) -> timedelta:
    """Return ``"7d"``, ``"12h"``, ``"30m"``, ``"90s"`` or ``"2w"`` as a timedelta.

    Raises:
        CommandError: If the text is not such an age (exit code 2).
    """
    match = _AGE.fullmatch(text.strip())
    try:
        if match is not None:
            return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    except OverflowError:  # a number of days past the calendar
        pass
    raise CommandError(
        f"bad age {text!r}: use a number and a unit, such as 30m, 12h, 7d or 2w",
        exit_code=USAGE,
    )


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """Return the time ``--since`` names: an age ago (``2h``) or an ISO 8601 time.

    A time without a zone is taken as UTC.

    Raises:
        CommandError: If the text is neither (exit code 2).
    """
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return (now or datetime.now(UTC)) - parse_age(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def seconds_text(seconds: object) -> str:
    """Return a handler time in seconds as ``"1.23 ms"`` (``"-"`` if unknown)."""
    if not isinstance(seconds, int | float):
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.2f} ms"


def report_end(job: JobState) -> None:
    """Print the job's final status and error, if any; exit 1 if it failed."""
    line = Text(f"job {job.job_id} {job.status.value}")
    error = job.error
    if error is not None:
        line.append(f": {error.routine_id}: {error.error_type}: {error.message}")
    console().print(line)
    if job.status is JobStatus.FAILED:
        raise click.exceptions.Exit(FAILED)
