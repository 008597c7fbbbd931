"""Bad arguments to the model: slots, events, connections, error handlers, routines.

Each one raises a FlowForgeError (a wrong type: an ArgumentTypeError, which is
also a TypeError) whose message names the argument. Flows, jobs and the testing
helpers are in ``test_bad_arguments_flow.py``, stores in
``test_bad_arguments_store.py``; ``test_bad_arguments_coverage.py`` checks that
together they cover every parameter of the public API.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import pytest

from _bad_args import Case, Plain, assert_refused, calls, ids, wrong
from flowforge import (
    Connection,
    ErrorHandler,
    Event,
    Routine,
    Slot,
    register_payload_type,
    step,
)

NAN = float("nan")


def plain_with_text_stat() -> Plain:
    routine = Plain()
    routine.set_stat("count", "many")
    return routine


def function(value: int) -> dict[str, int]:
    return {"value": value}


@dataclasses.dataclass
class Point:
    x: int


SLOT_DATA = Slot("input", merge_strategy="append").serialize()
HANDLER_DATA = Plain().get_slot("input").serialize()

SLOT_CASES: list[Case] = [
    ("Slot-name-int", lambda: Slot(wrong(5)), "slot name must be a str, got int"),
    ("Slot-name-not-identifier", lambda: Slot("in put"), "slot name 'in put' is not"),
    ("Slot-handler-int", lambda: Slot("input", wrong(5)), "handler must be callable"),
    (
        "Slot-handler-str",
        lambda: Slot("input", wrong("handle")),
        "slot 'input': handler must be callable or None, got 'handle'",
    ),
    (
        "Slot-join-str",
        lambda: Slot("input", join=wrong("yes")),
        "slot 'input': join must be a bool, got str 'yes'",
    ),
    (
        "Slot-merge_strategy-unknown",
        lambda: Slot("input", merge_strategy=wrong("sum")),
        "slot 'input': unknown merge_strategy 'sum'",
    ),
    (
        "Slot-merge_strategy-list",
        lambda: Slot("input", merge_strategy=wrong([])),
        "slot 'input': unknown merge_strategy []",
    ),
    (
        "Slot-timeout-str",
        lambda: Slot("input", timeout=wrong("5")),
        "slot 'input': timeout must be a positive number of seconds or None, got '5'",
    ),
    (
        "Slot-timeout-nan",
        lambda: Slot("input", timeout=NAN),
        "timeout must be a positive number of seconds or None, got nan",
    ),
    (
        "Slot-timeout-negative",
        lambda: Slot("input", timeout=-1),
        "timeout must be a positive number of seconds or None, got -1",
    ),
    (
        "Slot-correlate-int",
        lambda: Slot("input", join=True, correlate=wrong(5)),
        "slot 'input': correlate must be a payload key (str) or a function",
    ),
    (
        "Slot-correlate-without-join",
        lambda: Slot("input", correlate="key"),
        "slot 'input': correlate groups a join's inputs by key, so it needs join=True",
    ),
    (
        "Slot.deserialize-data-int",
        lambda: Slot.deserialize(5),
        "slot data must be a dict, got int",
    ),
    (
        "Slot.deserialize-owner-int",
        lambda: Slot.deserialize(HANDLER_DATA, 5),
        "cannot restore method 'handle' of int",
    ),
    (
        "Slot.invoke-buffer-int",
        lambda: Slot("input", function).invoke(wrong(5), "r"),
        "buffer must be a mapping of the slot's keys, got int 5",
    ),
    (
        "Slot.invoke-routine_id-int",
        lambda: Slot("input", function).invoke({"value": 1}, wrong(5)),
        "routine_id must be a str, got int 5",
    ),
    (
        "Slot.merge-buffer-int",
        lambda: Slot("input").merge(wrong(5), {"a": 1}),
        "buffer must be a dict or None, got int 5",
    ),
    (
        "Slot.merge-data-int",
        lambda: Slot("input").merge({}, wrong(5)),
        "data must be a mapping of the arriving keys, got int 5",
    ),
    (
        "Slot.merge-data-pairs",
        lambda: Slot("input").merge({}, wrong([("a", 1)])),
        "data must be a mapping of the arriving keys, got list [('a', 1)]",
    ),
]

EVENT_CASES: list[Case] = [
    ("Event-name-None", lambda: Event(wrong(None)), "event name must be a str"),
    (
        "Event-output_params-str",
        lambda: Event("out", "ab"),
        "event 'out': output_params must be a list of names, not a str",
    ),
    (
        "Event-output_params-int",
        lambda: Event("out", wrong(5)),
        "event 'out': output_params must be a list of names, not a int",
    ),
    (
        "Event-output_params-item-int",
        lambda: Event("out", wrong([1])),
        "output parameter name must be a str, got int",
    ),
    (
        "Event.check-data-int",
        lambda: Event("out").check(wrong(5), "r"),
        "data must be a mapping of the emitted keys, got int 5",
    ),
    (
        "Event.check-routine_id-int",
        lambda: Event("out").check({}, wrong(5)),
        "routine_id must be a str, got int 5",
    ),
    (
        "Event.deserialize-data-str",
        lambda: Event.deserialize("output"),
        "event data must be a dict, got str",
    ),
]

CONNECTION_CASES: list[Case] = [
    (
        "Connection-param_mapping-str",
        lambda: Connection("a", "output", "b", "input", wrong("xy")),
        "param_mapping must be a mapping {event_key: slot_key}, got str 'xy'",
    ),
    (
        "Connection-param_mapping-key-int",
        lambda: Connection("a", "output", "b", "input", wrong({1: "x"})),
        "param_mapping key name must be a str, got int",
    ),
    (
        "Connection-param_mapping-value-int",
        lambda: Connection("a", "output", "b", "input", wrong({"x": 1})),
        "param_mapping value name must be a str, got int",
    ),
    (
        "Connection-source_id-int",
        lambda: Connection(wrong(1), "output", "b", "input"),
        "source_id must be a str, got int 1",
    ),
    (
        "Connection-target_id-None",
        lambda: Connection("a", "output", wrong(None), "input"),
        "target_id must be a str, got NoneType None",
    ),
    (
        "Connection-event-list",
        lambda: Connection("a", wrong(["output"]), "b", "input"),
        "event name must be a str, got list",
    ),
    (
        "Connection-slot-not-identifier",
        lambda: Connection("a", "output", "b", "in put"),
        "slot name 'in put' is not valid",
    ),
    (
        "Connection.apply-data-int",
        lambda: Connection("a", "output", "b", "input", {"x": "y"}).apply(wrong(5)),
        "data must be a mapping of the event's keys, got int 5",
    ),
    (
        "Connection.apply-data-list",
        lambda: Connection("a", "output", "b", "input").apply(wrong([1])),
        "data must be a mapping of the event's keys, got list [1]",
    ),
    (
        "Connection.deserialize-data-None",
        lambda: Connection.deserialize(None),
        "connection data must be a dict, got NoneType",
    ),
]

HANDLER_CASES: list[Case] = [
    (
        "ErrorHandler-strategy-unknown",
        lambda: ErrorHandler("bogus"),
        "unknown error strategy 'bogus'",
    ),
    (
        "ErrorHandler-strategy-list",
        lambda: ErrorHandler(wrong([])),
        "unknown error strategy []",
    ),
    (
        "ErrorHandler-max_retries-str",
        lambda: ErrorHandler(max_retries=wrong("3")),
        "max_retries must be a non-negative int, got '3'",
    ),
    (
        "ErrorHandler-max_retries-bool",
        lambda: ErrorHandler(max_retries=True),
        "max_retries must be a non-negative int, got True",
    ),
    (
        "ErrorHandler-retry_delay-str",
        lambda: ErrorHandler(retry_delay=wrong("1")),
        "retry_delay must be a finite, non-negative number, got '1'",
    ),
    (
        "ErrorHandler-retry_delay-huge",
        lambda: ErrorHandler(retry_delay=1e12),
        "retry_delay must be at most 604800 seconds",
    ),
    (
        "ErrorHandler-retry_delay-inf",
        lambda: ErrorHandler(retry_delay=float("inf")),
        "retry_delay must be a finite, non-negative number, got inf",
    ),
    (
        "ErrorHandler-retry_backoff-below-1",
        lambda: ErrorHandler(retry_backoff=0.5),
        "retry_backoff must be at least 1",
    ),
    (
        "ErrorHandler-retry_backoff-nan",
        lambda: ErrorHandler(retry_backoff=NAN),
        "retry_backoff must be a finite, non-negative number, got nan",
    ),
    (
        "ErrorHandler-max_retry_delay-negative",
        lambda: ErrorHandler(max_retry_delay=-1),
        "max_retry_delay must be a finite, non-negative number, got -1",
    ),
    (
        "ErrorHandler-max_retry_delay-str",
        lambda: ErrorHandler(max_retry_delay=wrong("5")),
        "max_retry_delay must be a finite, non-negative number, got '5'",
    ),
    (
        "ErrorHandler-retry_jitter-above-1",
        lambda: ErrorHandler(retry_jitter=2),
        "retry_jitter must be in [0, 1]",
    ),
    (
        "ErrorHandler-retry_jitter-nan",
        lambda: ErrorHandler(retry_jitter=NAN),
        "retry_jitter must be a finite, non-negative number, got nan",
    ),
    (
        "ErrorHandler-retryable_exceptions-int",
        lambda: ErrorHandler(retryable_exceptions=wrong(5)),
        "retryable_exceptions must be an exception class or an iterable",
    ),
    (
        "ErrorHandler-retryable_exceptions-item-str",
        lambda: ErrorHandler(retryable_exceptions=wrong(["ValueError"])),
        "retryable_exceptions must hold exception classes, got 'ValueError'",
    ),
    (
        "ErrorHandler-is_critical-str",
        lambda: ErrorHandler(is_critical=wrong("yes")),
        "is_critical must be a bool",
    ),
    (
        "ErrorHandler-is_optional-int",
        lambda: ErrorHandler(is_optional=wrong(1)),
        "is_optional must be a bool, got 1",
    ),
    (
        "ErrorHandler.retry_delay_for-attempt-str",
        lambda: ErrorHandler("retry").retry_delay_for(wrong("1")),
        "attempt must be an int, got '1'",
    ),
    (
        "ErrorHandler.retry_delay_for-attempt-negative",
        lambda: ErrorHandler("retry").retry_delay_for(-1),
        "attempt must be 0 or more (0 is the first), got -1",
    ),
    (
        "ErrorHandler.retry_delay_for-rng-int",
        lambda: ErrorHandler("retry", retry_jitter=0.5).retry_delay_for(1, wrong(5)),
        "rng must be a random.Random or None, got int 5",
    ),
    (
        "ErrorHandler.retry_delay_for-rng-module",
        lambda: ErrorHandler("retry").retry_delay_for(1, wrong(random)),
        "rng must be a random.Random or None, got module",
    ),
    (
        "ErrorHandler.should_retry-attempt-None",
        lambda: ErrorHandler("retry").should_retry(ValueError(), wrong(None)),
        "attempt must be an int, got None",
    ),
    (
        "ErrorHandler.should_retry-error-str",
        lambda: ErrorHandler("retry").should_retry(wrong("boom"), 0),
        "error must be an exception, got str 'boom'",
    ),
    (
        "ErrorHandler.deserialize-data-list",
        lambda: ErrorHandler.deserialize([]),
        "error handler data must be a dict, got list",
    ),
    (
        "ErrorHandler.deserialize-registry-int",
        lambda: ErrorHandler.deserialize(ErrorHandler().serialize(), wrong(5)),
        "registry must be a mapping of type names to classes, got int",
    ),
]

ROUTINE_CASES: list[Case] = [
    (
        "Routine.define_slot-join-int",
        lambda: Plain().define_slot("other", join=wrong(1)),
        "slot 'other': join must be a bool, got int 1",
    ),
    (
        "Routine.define_slot-name-int",
        lambda: Plain().define_slot(wrong(5)),
        "slot name must be a str",
    ),
    (
        "Routine.define_slot-name-list",
        lambda: Plain().define_slot(wrong(["input"])),
        "slot name must be a str, got list",
    ),
    (
        "Routine.define_slot-handler-int",
        lambda: Plain().define_slot("other", wrong(5)),
        "slot 'other': handler must be callable or None, got 5",
    ),
    (
        "Routine.define_slot-merge_strategy-int",
        lambda: Plain().define_slot("other", merge_strategy=wrong(5)),
        "slot 'other': unknown merge_strategy 5",
    ),
    (
        "Routine.define_slot-timeout-str",
        lambda: Plain().define_slot("other", timeout=wrong("1")),
        "slot 'other': timeout must be a positive number of seconds or None",
    ),
    (
        "Routine.define_slot-correlate-int",
        lambda: Plain().define_slot("other", join=True, correlate=wrong(5)),
        "slot 'other': correlate must be a payload key (str) or a function",
    ),
    (
        "Routine.define_event-name-bytes",
        lambda: Plain().define_event(wrong(b"out")),
        "event name must be a str",
    ),
    (
        "Routine.define_event-output_params-int",
        lambda: Plain().define_event("more", wrong(5)),
        "event 'more': output_params must be a list of names, not a int",
    ),
    (
        "Routine.set_error_handler-handler-str",
        lambda: Plain().set_error_handler(wrong("stop")),
        "handler: expected an ErrorHandler or None",
    ),
    (
        "Routine.set_as_optional-strategy-unknown",
        lambda: Plain().set_as_optional("later"),
        "unknown error strategy 'later'",
    ),
    (
        "Routine.set_as_critical-max_retries-negative",
        lambda: Plain().set_as_critical(max_retries=-1),
        "max_retries must be a non-negative int",
    ),
    (
        "Routine.set_as_critical-retry_delay-str",
        lambda: Plain().set_as_critical(retry_delay=wrong("1")),
        "retry_delay must be a finite, non-negative number, got '1'",
    ),
    (
        "Routine.set_as_critical-retry_backoff-nan",
        lambda: Plain().set_as_critical(retry_backoff=NAN),
        "retry_backoff must be a finite, non-negative number, got nan",
    ),
    (
        "Routine.get_slot-name-list",
        lambda: Plain().get_slot(wrong(["input"])),
        "has no such slot: slot names are str, got list",
    ),
    (
        "Routine.get_event-name-int",
        lambda: Plain().get_event(wrong(5)),
        "has no such event: event names are str, got int",
    ),
    (
        "Routine.set_stat-key-list",
        lambda: Plain().set_stat(wrong(["n"]), 1),
        "stat key must be a str, got list",
    ),
    (
        "Routine.set_stat-key-int",
        lambda: Plain().set_stat(wrong(5), 1),
        "stat key must be a str, got int 5",
    ),
    (
        "Routine.get_stat-key-dict",
        lambda: Plain().get_stat(wrong({})),
        "stat key must be a str, got dict",
    ),
    (
        "Routine.increment_stat-amount-str",
        lambda: Plain().increment_stat("n", wrong("1")),
        "amount must be a number, got '1'",
    ),
    (
        "Routine.increment_stat-amount-bool",
        lambda: Plain().increment_stat("n", True),
        "amount must be a number, got True",
    ),
    (
        "Routine.increment_stat-key-list",
        lambda: Plain().increment_stat(wrong([])),
        "stat key must be a str, got list",
    ),
    (
        "Routine.increment_stat-key-holds-text",
        lambda: plain_with_text_stat().increment_stat("count"),
        "stat 'count' holds 'many', not a number",
    ),
    (
        "Routine.get_config-key-list",
        lambda: Plain().get_config(wrong([])),
        "config key must be a str, got list",
    ),
    (
        "Routine.emit-event_name-outside-a-handler",
        lambda: Plain().emit("output", value=1),
        "emit('output') called outside one of its handlers",
    ),
    (
        "Routine.deserialize-data-list",
        lambda: Routine.deserialize(wrong([1])),
        "routine data must be a dict, got list",
    ),
    (
        "Routine.deserialize-registry-list",
        lambda: Routine.deserialize(Plain().serialize(), wrong([])),
        "registry must be a mapping of type names to classes, got list",
    ),
]

FUNCTION_CASES: list[Case] = [
    (
        "step-function-int",
        lambda: step(wrong(5)),
        "@step decorates a function made with def or async def, got 5",
    ),
    (
        "step-function-lambda",
        lambda: step(lambda value: value),
        "@step decorates a function made with def or async def, got <function",
    ),
    (
        "step-emits-int",
        lambda: step(emits=wrong(5))(function),
        "event name must be a str, got int",
    ),
    (
        "step-slot-int",
        lambda: step(slot=wrong(5))(function),
        "slot name must be a str, got int",
    ),
    (
        "step-merge_strategy-int",
        lambda: step(merge_strategy=wrong(5))(function),
        "slot 'input': unknown merge_strategy 5",
    ),
    (
        "step-join-str",
        lambda: step(join=wrong("yes"))(function),
        "slot 'input': join must be a bool, got str 'yes'",
    ),
    (
        "step-timeout-str",
        lambda: step(timeout=wrong("1"))(function),
        "slot 'input': timeout must be a positive number of seconds or None",
    ),
    (
        "step-correlate-int",
        lambda: step(join=True, correlate=wrong(5))(function),
        "slot 'input': correlate must be a payload key (str) or a function",
    ),
    (
        "register_payload_type-cls-int",
        lambda: register_payload_type(wrong(5)),
        "register_payload_type expects a dataclass, an Enum, a NamedTuple or a "
        "pydantic model class, got 5",
    ),
    (
        "register_payload_type-name-int",
        lambda: register_payload_type(name=wrong(5))(Point),
        "name must be a non-empty str, got 5",
    ),
]

MODEL_CASES: list[Case] = (
    SLOT_CASES
    + EVENT_CASES
    + CONNECTION_CASES
    + HANDLER_CASES
    + ROUTINE_CASES
    + FUNCTION_CASES
)


@pytest.mark.parametrize(("call", "message"), calls(MODEL_CASES), ids=ids(MODEL_CASES))
def test_bad_argument_to_the_model_raises_a_flowforge_error_naming_it(
    call: Callable[[], object], message: str
) -> None:
    assert_refused(call, message)
