"""Event: a named output port and the keys its emissions may carry."""

from __future__ import annotations

import pytest

from flowforge import DefinitionError, Event


def test_event_without_output_params_allows_any_key() -> None:
    event = Event("output")

    event.check({"anything": 1, "else": 2}, "source")

    assert event.output_params is None


def test_event_keeps_declared_output_params_in_order() -> None:
    event = Event("output", ["b", "a"])

    assert event.output_params == ("b", "a")


def test_event_accepts_output_params_from_any_iterable() -> None:
    event = Event("output", (name for name in ["a", "b"]))

    assert event.output_params == ("a", "b")


def test_event_copies_output_params_so_later_changes_do_not_leak_in() -> None:
    params = ["a"]
    event = Event("output", params)

    params.append("b")

    assert event.output_params == ("a",)


def test_event_rejects_a_string_as_output_params() -> None:
    with pytest.raises(TypeError, match="must be a list of names, not a str"):
        Event("output", "data")


@pytest.mark.parametrize(
    "name",
    ["has space", "1abc", "class", ""],
    ids=["space", "leading_digit", "keyword", "empty"],
)
def test_event_rejects_a_name_that_is_not_an_identifier(name: str) -> None:
    with pytest.raises(DefinitionError, match="event name .* is not valid"):
        Event(name)


def test_event_rejects_an_output_param_that_is_not_an_identifier() -> None:
    with pytest.raises(DefinitionError, match="output parameter name 'a b'"):
        Event("output", ["ok", "a b"])


def test_event_check_accepts_declared_keys() -> None:
    event = Event("output", ["a", "b"])

    event.check({"a": 1}, "source")

    assert event.output_params == ("a", "b")


def test_event_check_names_routine_event_and_undeclared_key() -> None:
    event = Event("output", ["a"])

    with pytest.raises(DefinitionError, match=r"'source' emitted 'output'.*\['z'\]"):
        event.check({"a": 1, "z": 2}, "source")


def test_event_with_no_declared_params_refuses_every_key() -> None:
    event = Event("done", [])

    with pytest.raises(DefinitionError, match=r"undeclared keys \['a'\]"):
        event.check({"a": 1}, "source")


def test_event_repr_shows_name_and_declared_keys() -> None:
    event = Event("output", ["a"])

    assert repr(event) == "Event('output', output_params=('a',))"
