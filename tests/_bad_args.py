"""Helpers of the bad-argument tables: the routine and flow they call, the check.

A case is ``(id, call, message)``. Its id reads ``Owner.method-param-what``
(``Owner-param-what`` for a constructor, ``function-param-what`` for a
function), so that ``test_bad_arguments_coverage.py`` can tell from the ids
alone which parameters of the public API have a case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

import pytest

from flowforge import ArgumentTypeError, Flow, FlowForgeError, JobState, Routine

Case = tuple[str, Callable[[], object], str]


def wrong(value: object) -> Any:  # Any: lets a call pass what its types forbid
    """Return ``value`` typed so that mypy lets a test pass it anywhere."""
    return value


class Hostile:
    """An argument whose every hook raises: errors must not come from it."""

    def _refuse(self, *args: object) -> NoReturn:
        raise RuntimeError("the hostile object was asked about itself")

    __repr__ = __str__ = __format__ = __hash__ = __bool__ = __eq__ = __ne__ = _refuse


class Plain(Routine):
    """A routine with one slot and one event."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, value: object = None) -> None:
        self.emit("output", value=value)


def wired() -> Flow:
    """Return a flow of two unconnected routines, ``plain`` and ``other``."""
    flow = Flow("bad")
    flow.add_routine(Plain(), "plain")
    flow.add_routine(Plain(), "other")
    return flow


def a_job() -> JobState:
    """Return a new job state, as a store holds it."""
    return JobState(
        job_id="job",
        flow_id="flow",
        entry_routine_id="start",
        entry_params={},
        entry_slot=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def finished_job() -> JobState:
    """Return the state of a job that ran to its end on :func:`wired`."""
    return wired().execute("plain", {"value": 1})


def assert_refused(call: Callable[[], object], message: str) -> FlowForgeError:
    """Check that ``call`` raises a FlowForgeError saying ``message``.

    A wrong type is an ArgumentTypeError (a FlowForgeError that is also a
    TypeError), never a bare TypeError from deeper down.
    """
    with pytest.raises(FlowForgeError, match=re.escape(message)) as caught:
        call()

    assert not isinstance(caught.value, TypeError) or isinstance(
        caught.value, ArgumentTypeError
    )
    return caught.value


def ids(cases: list[Case]) -> list[str]:
    """Return the ids of ``cases``, in order."""
    return [name for name, _, _ in cases]


def calls(cases: list[Case]) -> list[tuple[Callable[[], object], str]]:
    """Return the ``(call, message)`` pairs of ``cases``, in order."""
    return [(call, message) for _, call, message in cases]
