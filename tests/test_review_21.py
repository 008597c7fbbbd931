"""Regression tests for the holes an adversarial review of issue 21 found.

Each test reproduces one defect through the public API: correlated joins,
function routines, the routine harness, typed payloads and flow editing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal

import pydantic
import pytest

from flowforge import (
    ArgumentTypeError,
    DefinitionError,
    ErrorHandler,
    ErrorStrategy,
    Flow,
    JobState,
    JobStatus,
    Routine,
    SerializationError,
    register_payload_type,
    step,
)
from flowforge.testing import Recorder


class Pairs(Routine):
    """Emit each ``(left, right)`` key of ``keys`` on ``left`` and on ``right``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("keys", self.send)
        self.define_event("left")
        self.define_event("right")

    def send(self, keys: list[tuple[object, object]]) -> None:
        for left, right in keys:
            self.emit("left", key=left, side="left")
            self.emit("right", key=right, side="right")


class Matched(Routine):
    """A join correlated on ``key`` that records each group it fires with."""

    def __init__(self) -> None:
        super().__init__()
        self.fired: list[list[object]] = []
        self.define_slot("both", self.both, "append", join=True, correlate="key")

    def both(self, key: list[object], side: list[str]) -> None:
        self.fired.append(key)


def matching_flow() -> tuple[Flow, Matched]:
    flow = Flow("matching")
    flow.add_routine(Pairs(), "pairs")
    matched = Matched()
    matched.set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(matched, "matched")
    flow.connect("pairs", "left", "matched", "both")
    flow.connect("pairs", "right", "matched", "both")
    return flow, matched


@pytest.mark.parametrize(
    "key",
    [math.nan, (1, math.nan), Decimal("NaN")],
    ids=["float-nan", "tuple-with-nan", "decimal-nan"],
)
def test_a_key_that_never_equals_itself_is_that_deliverys_failure(
    key: object,
) -> None:
    flow, matched = matching_flow()

    job = flow.execute("pairs", {"keys": [(key, key)]})

    assert job.status is JobStatus.COMPLETED
    assert [error.error_type for error in job.errors] == ["ExecutionError"] * 2
    assert all("never equals itself" in error.message for error in job.errors)
    assert job.waiting_groups == {}
    assert matched.fired == []


@register_payload_type
@dataclasses.dataclass
class Audited:
    """A dataclass whose ``__post_init__`` changes a field: it is not idempotent."""

    steps: list[str]

    def __post_init__(self) -> None:
        self.steps = [*self.steps, "audited"]


def test_dataclass_whose_post_init_changes_a_field_round_trips_exactly() -> None:
    flow = Flow("audit")
    flow.add_routine(Recorder(), "record")
    job = flow.execute("record", {"value": Audited(["read"])})

    loaded = JobState.deserialize(json.loads(json.dumps(job.serialize())))

    assert job.entry_params["value"] == Audited(["read"])
    assert loaded.entry_params == job.entry_params


@register_payload_type(name="review21:Invoice")
class Invoice(pydantic.BaseModel):
    """A pydantic model with a required field and one with a default."""

    amount: int
    currency: str = "EUR"


def saved_invoice(replace: str, by: str) -> dict[str, object]:
    flow = Flow("invoices")
    flow.add_routine(Recorder(), "record")
    job = flow.execute("record", {"value": Invoice(amount=5)})
    text = json.dumps(job.serialize())
    assert replace in text
    data: dict[str, object] = json.loads(text.replace(replace, by))
    return data


def test_a_pydantic_field_the_model_lost_is_refused() -> None:
    data = saved_invoice('"currency"', '"vat"')

    with pytest.raises(
        SerializationError,
        match=r"cannot rebuild a 'review21:Invoice' from its saved fields: saved "
        r"fields \['vat'\] are no fields of Invoice",
    ):
        JobState.deserialize(data)


def test_a_required_pydantic_field_the_model_gained_is_refused() -> None:
    data = saved_invoice('"amount": 5, ', "")

    with pytest.raises(
        SerializationError,
        match=r"cannot rebuild a 'review21:Invoice' from its saved fields: the "
        r"saved value has no required field \['amount'\] of Invoice",
    ):
        JobState.deserialize(data)


def test_a_pydantic_field_the_model_gained_with_a_default_takes_it() -> None:
    data = saved_invoice(', "currency": "EUR"', "")

    loaded = JobState.deserialize(data)

    assert loaded.entry_params["value"] == Invoice(amount=5)


@step(emits="text")
def strip(text: str) -> str:
    return text.strip()


def test_chain_refuses_to_link_a_routine_to_itself_and_changes_nothing() -> None:
    routine = strip()
    flow = Flow()

    with pytest.raises(DefinitionError, match=r"item 1 is item 0 again"):
        flow.chain(routine, routine)

    assert flow.routines == {}
    assert flow.connections == ()


def test_step_refuses_a_method_when_it_decorates_it() -> None:
    with pytest.raises(
        ArgumentTypeError, match=r"Cleaner.clean' is a method \(its first parameter"
    ):

        class Cleaner:
            @step
            def clean(self, text: str) -> str:
                return text.strip()


class Stored(Routine):
    """Emit ``place`` only: an event that declares its keys, without the key."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("item", self.store)
        self.define_event("stored", ["place"])

    def store(self, record_id: int) -> None:
        self.emit("stored", place=f"p-{record_id}")


def correlated_flow(param_mapping: dict[str, str] | None) -> Flow:
    flow = Flow("keyless")
    flow.add_routine(Pairs(), "pairs")
    flow.add_routine(Stored(), "stored")
    flow.add_routine(Matched(), "matched")
    flow.connect("pairs", "left", "stored", "item", {"key": "record_id"})
    flow.connect("pairs", "left", "matched", "both")
    flow.connect("stored", "stored", "matched", "both", param_mapping)
    return flow


def test_validate_reports_a_correlated_join_no_input_can_carry_the_key_to() -> None:
    flow = correlated_flow(None)

    findings = [f for f in flow.validate() if f.severity == "error"]

    assert [(f.code, f.routine_id, f.port) for f in findings] == [
        ("join-never-completes", "matched", "both")
    ]
    assert "'stored'.'stored' declares the keys ['place']" in findings[0].message
    assert "never carries its correlation key 'key'" in findings[0].message


def test_validate_accepts_a_key_renamed_into_place_by_param_mapping() -> None:
    flow = correlated_flow({"place": "key"})

    assert [f for f in flow.validate() if f.severity == "error"] == []


@pytest.mark.parametrize(
    "damaged", [5, None, "x", [0, 1]], ids=["int", "none", "str", "list"]
)
def test_waiting_groups_of_a_damaged_job_skip_what_is_no_group(
    damaged: object,
) -> None:
    flow, _ = matching_flow()
    job = flow.execute("pairs", {"keys": [("a", "b"), ("c", "c")]})
    data = json.loads(json.dumps(job.serialize()))
    (buffer,) = [b for b in data["slot_buffers"] if b[0] == "matched"]
    buffer[2]["groups"]["b"] = damaged

    loaded = JobState.deserialize(data)

    assert loaded.waiting_groups == {("matched", "both"): {"a": {0}}}


@register_payload_type(name="review21:Token")
@dataclasses.dataclass(frozen=True, eq=False)
class Token:
    """A hashable dataclass compared by identity: no two loaded ones are equal."""

    name: str


def test_a_key_compared_by_identity_is_that_deliverys_failure() -> None:
    flow, matched = matching_flow()
    token = Token("t")

    job = flow.execute("pairs", {"keys": [(token, token)]})

    assert "a value compared by identity" in job.errors[0].message
    assert matched.fired == []
