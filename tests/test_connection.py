"""Connection: one edge event -> slot, and how param_mapping renames keys."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from flowforge import Connection, DefinitionError, Flow, Routine
from flowforge.testing import Recorder


def wrong(value: object) -> Any:  # Any: lets a call pass what its types forbid
    """Return ``value`` typed so that mypy lets a test pass it anywhere."""
    return value


class Source(Routine):
    """A source that emits its entry params on ``output`` (no declared keys)."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self, **params: object) -> None:
        self.emit("output", **params)


class DeclaredSource(Routine):
    """A source whose ``output`` declares ``value`` and ``other``; ``done`` none."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output", ["value", "other"])
        self.define_event("done", [])

    def __call__(self, **params: object) -> None:
        self.emit("output", **params)


# -- unit level -----------------------------------------------------------------------


def test_connection_keeps_its_ends() -> None:
    connection = Connection("source", "output", "sink", "input")

    assert (
        connection.source_id,
        connection.event,
        connection.target_id,
        connection.slot,
    ) == ("source", "output", "sink", "input")


def test_connection_without_mapping_passes_data_unchanged() -> None:
    connection = Connection("source", "output", "sink", "input")

    moved = connection.apply({"a": 1, "b": 2})

    assert moved == {"a": 1, "b": 2}


def test_mapping_renames_a_key_without_keeping_its_old_name() -> None:
    connection = Connection("source", "output", "sink", "input", {"a": "x"})

    moved = connection.apply({"a": 1})

    assert moved == {"x": 1}


def test_mapping_passes_unmapped_keys_through() -> None:
    connection = Connection("source", "output", "sink", "input", {"a": "x"})

    moved = connection.apply({"a": 1, "b": 2})

    assert moved == {"x": 1, "b": 2}


@pytest.mark.parametrize(
    "data",
    [{"a": 1, "b": 2}, {"b": 2, "a": 1}],
    ids=["mapped_key_first", "mapped_key_last"],
)
def test_mapping_collision_is_resolved_in_favour_of_the_mapped_key(
    data: dict[str, object],
) -> None:
    connection = Connection("source", "output", "sink", "input", {"a": "b"})

    moved = connection.apply(data)

    assert moved == {"b": 1}


def test_mapping_of_an_absent_key_adds_nothing() -> None:
    connection = Connection("source", "output", "sink", "input", {"a": "x"})

    moved = connection.apply({"b": 2})

    assert moved == {"b": 2}


def test_apply_leaves_the_emitted_data_unchanged() -> None:
    connection = Connection("source", "output", "sink", "input", {"a": "x"})
    data: dict[str, object] = {"a": 1}

    connection.apply(data)

    assert data == {"a": 1}


def test_connection_copies_its_mapping() -> None:
    mapping = {"a": "x"}
    connection = Connection("source", "output", "sink", "input", mapping)

    mapping["b"] = "y"

    assert connection.param_mapping == {"a": "x"}


@pytest.mark.parametrize(
    "mapping",
    [{"a b": "x"}, {"a": "1x"}],
    ids=["bad_event_key", "bad_slot_key"],
)
def test_connection_rejects_mapping_names_that_are_not_identifiers(
    mapping: dict[str, str],
) -> None:
    with pytest.raises(DefinitionError, match="param_mapping (key|value) name"):
        Connection("source", "output", "sink", "input", mapping)


def test_connection_is_immutable() -> None:
    connection = Connection("source", "output", "sink", "input")

    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign"):
        connection.slot = "other"  # type: ignore[misc]  # frozen on purpose


def test_connection_repr_shows_both_ends_and_mapping() -> None:
    connection = Connection("source", "output", "sink", "input", {"a": "x"})

    text = repr(connection)

    assert "'source'" in text
    assert "'output'" in text
    assert "'sink'" in text
    assert "'input'" in text
    assert "{'a': 'x'}" in text


# -- inside a job ---------------------------------------------------------------------


def test_flow_delivers_renamed_and_passed_through_keys(flow: Flow) -> None:
    flow.add_routine(Source(), "source")
    sink = Recorder()
    flow.add_routine(sink, "sink")
    flow.connect("source", "output", "sink", "input", {"value": "x"})

    flow.execute("source", {"value": 1, "other": 2})

    assert sink.received == [{"x": 1, "other": 2}]


def test_flow_delivers_the_mapped_value_on_collision(flow: Flow) -> None:
    flow.add_routine(Source(), "source")
    sink = Recorder()
    flow.add_routine(sink, "sink")
    flow.connect("source", "output", "sink", "input", {"value": "other"})

    flow.execute("source", {"value": 1, "other": 2})

    assert sink.received == [{"other": 1}]


def test_each_connection_applies_its_own_mapping(flow: Flow) -> None:
    flow.add_routine(Source(), "source")
    renamed, plain = Recorder(), Recorder()
    flow.add_routine(renamed, "renamed")
    flow.add_routine(plain, "plain")
    flow.connect("source", "output", "renamed", "input", {"value": "x"})
    flow.connect("source", "output", "plain", "input")

    flow.execute("source", {"value": 1})

    assert (renamed.received, plain.received) == ([{"x": 1}], [{"value": 1}])


def test_connect_rejects_a_mapping_key_the_event_does_not_declare(flow: Flow) -> None:
    flow.add_routine(DeclaredSource(), "source")
    flow.add_routine(Recorder(), "sink")

    with pytest.raises(DefinitionError, match=r"param_mapping keys \['missing'\]"):
        flow.connect("source", "output", "sink", "input", {"missing": "x"})


def test_connect_rejects_a_mapping_key_on_an_event_declaring_no_keys(
    flow: Flow,
) -> None:
    flow.add_routine(DeclaredSource(), "source")
    flow.add_routine(Recorder(), "sink")

    with pytest.raises(DefinitionError, match=r"param_mapping keys \['value'\]"):
        flow.connect("source", "done", "sink", "input", {"value": "x"})


def test_connect_accepts_any_mapping_key_when_the_event_declares_none(
    flow: Flow,
) -> None:
    flow.add_routine(Source(), "source")
    flow.add_routine(Recorder(), "sink")

    connection = flow.connect("source", "output", "sink", "input", {"any": "x"})

    assert connection.param_mapping == {"any": "x"}


@pytest.mark.parametrize(
    ("mapping", "shown"),
    [("xy", "str 'xy'"), ([("a", "b")], "list [('a', 'b')]"), (5, "int 5")],
    ids=["str", "pairs", "int"],
)
def test_connect_rejects_a_mapping_that_is_not_a_mapping(
    flow: Flow, mapping: object, shown: str
) -> None:
    flow.add_routine(Source(), "source")
    flow.add_routine(Recorder(), "sink")

    with pytest.raises(
        DefinitionError,
        match=re.escape(
            f"param_mapping must be a mapping {{event_key: slot_key}}, got {shown}"
        ),
    ):
        flow.connect("source", "output", "sink", "input", wrong(mapping))

    assert flow.connections == ()
