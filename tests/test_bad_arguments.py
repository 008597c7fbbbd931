"""Bad arguments to the public methods of the model and the stores.

Each one raises a FlowForgeError (a wrong type: an ArgumentTypeError, which is
also a TypeError) whose message names the argument. The engine's methods
(``Flow.execute``, ``pause``, ``resume``...) have their own tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from flowforge import (
    ArgumentTypeError,
    Event,
    FlowForgeError,
    Routine,
    Slot,
)


def wrong(value: object) -> Any:  # Any: lets a call pass what its types forbid
    """Return ``value`` typed so that mypy lets a test pass it anywhere."""
    return value


class Plain(Routine):
    """A routine with one slot and one event."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, value: object) -> None:
        self.emit("output", value=value)


def plain_with_text_stat() -> Plain:
    routine = Plain()
    routine.set_stat("count", "many")
    return routine


MODEL_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("Slot-name-int", lambda: Slot(wrong(5)), "slot name must be a str, got int"),
    ("Slot-handler-int", lambda: Slot("input", wrong(5)), "handler must be callable"),
    ("Event-name-None", lambda: Event(wrong(None)), "event name must be a str"),
    ("Event-output_params-str", lambda: Event("out", "ab"), "output_params"),
    (
        "Routine.define_slot-name-int",
        lambda: Plain().define_slot(wrong(5)),
        "slot name must be a str",
    ),
    (
        "Routine.define_event-name-bytes",
        lambda: Plain().define_event(wrong(b"out")),
        "event name must be a str",
    ),
    (
        "Routine.set_error_handler-str",
        lambda: Plain().set_error_handler(wrong("stop")),
        "handler: expected an ErrorHandler or None",
    ),
    (
        "Routine.increment_stat-text-stat",
        lambda: plain_with_text_stat().increment_stat("count"),
        "stat 'count' holds 'many', not a number",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in MODEL_CASES],
    ids=[name for name, _, _ in MODEL_CASES],
)
def test_bad_argument_to_the_model_raises_a_flowforge_error_naming_it(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(FlowForgeError, match=re.escape(message)) as caught:
        call()

    assert not isinstance(caught.value, TypeError) or isinstance(
        caught.value, ArgumentTypeError
    )
