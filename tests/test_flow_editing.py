"""Editing a flow: disconnect, remove_routine, and validate's findings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flowforge import (
    ArgumentTypeError,
    DefinitionError,
    Finding,
    Flow,
    JobStateError,
    JobStatus,
    Routine,
    UnknownPortError,
)
from flowforge.testing import Recorder, Relay


class Join(Routine):
    """One join slot, ``input``, that emits what it merged on ``output``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle, join=True)
        self.define_event("output")

    def handle(self, **data: object) -> None:
        self.emit("output", **data)


class Editor(Routine):
    """Calls ``edit`` (set in its config) from inside its handler."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, **data: object) -> None:
        edit = self.get_config("edit")
        assert callable(edit)
        edit()
        self.emit("output", **data)


def chain(*ids: str) -> Flow:
    """Relays wired in a line, ``ids[0] -> ids[1] -> ...``, a Recorder last."""
    flow = Flow("chain")
    for routine_id in ids[:-1]:
        flow.add_routine(Relay(), routine_id)
    flow.add_routine(Recorder(), ids[-1])
    for source, target in zip(ids, ids[1:]):
        flow.connect(source, "output", target, "input")
    return flow


def received(flow: Flow, routine_id: str) -> list[dict[str, object]]:
    routine = flow.routines[routine_id]
    assert isinstance(routine, Recorder)
    return [dict(data) for data in routine.received]


# -- disconnect --------------------------------------------------------------------


def test_disconnect_stops_the_deliveries_of_that_connection() -> None:
    flow = chain("a", "b")
    flow.add_routine(Recorder(), "c")
    flow.connect("a", "output", "c", "input")

    removed = flow.disconnect("a", "output", "b", "input")
    job = flow.execute("a", {"n": 1})

    assert (removed.source_id, removed.target_id) == ("a", "b")
    assert job.status is JobStatus.COMPLETED
    assert received(flow, "b") == []
    assert received(flow, "c") == [{"n": 1}]
    assert [c.target_id for c in flow.connections] == ["c"]


def test_disconnect_takes_the_connection_itself() -> None:
    flow = chain("a", "b")
    [connection] = flow.connections

    assert flow.disconnect(connection) == connection
    assert flow.connections == ()


def test_a_disconnected_pair_can_be_connected_again() -> None:
    flow = chain("a", "b")
    flow.disconnect("a", "output", "b", "input")

    flow.connect("a", "output", "b", "input")
    flow.execute("a", {"n": 2})

    assert received(flow, "b") == [{"n": 2}]


@pytest.mark.parametrize(
    ("ends", "error", "message"),
    [
        (("x", "output", "b", "input"), UnknownPortError, "has no routine 'x'"),
        (("a", "nope", "b", "input"), UnknownPortError, "has no event 'nope'"),
        (("a", "output", "b", "nope"), UnknownPortError, "has no slot 'nope'"),
        (("b", "output", "a", "input"), DefinitionError, "is not connected to"),
    ],
    ids=["routine", "event", "slot", "not-connected"],
)
def test_disconnect_validates_like_connect(
    ends: tuple[str, str, str, str], error: type[Exception], message: str
) -> None:
    flow = chain("a", "b")

    with pytest.raises(error, match=message):
        flow.disconnect(*ends)

    assert len(flow.connections) == 1


def test_disconnect_with_missing_names_is_refused() -> None:
    flow = chain("a", "b")

    with pytest.raises(ArgumentTypeError, match="disconnect expects a Connection"):
        flow.disconnect("a", "output")


# -- remove_routine ----------------------------------------------------------------


def test_remove_routine_removes_it_and_every_connection_to_or_from_it() -> None:
    flow = chain("a", "b", "c")
    flow.add_routine(Recorder(), "d")
    flow.connect("a", "output", "d", "input")

    removed = flow.remove_routine("b")
    job = flow.execute("a", {"n": 3})

    assert [(c.source_id, c.target_id) for c in removed] == [("a", "b"), ("b", "c")]
    assert list(flow.routines) == ["a", "c", "d"]
    assert [(c.source_id, c.target_id) for c in flow.connections] == [("a", "d")]
    assert job.status is JobStatus.COMPLETED
    assert received(flow, "d") == [{"n": 3}]
    assert received(flow, "c") == []


def test_a_removed_routine_can_be_added_again() -> None:
    flow = chain("a", "b")
    routine = flow.routines["b"]
    flow.remove_routine("b")

    assert flow.add_routine(routine, "b") == "b"
    flow.connect("a", "output", "b", "input")
    flow.execute("a", {"n": 4})

    assert received(flow, "b") == [{"n": 4}]


def test_remove_routine_of_an_unknown_id_is_refused() -> None:
    flow = chain("a", "b")

    with pytest.raises(UnknownPortError, match="has no routine 'x'"):
        flow.remove_routine("x")


@pytest.mark.parametrize(
    ("edit", "action"),
    [
        (lambda flow: flow.remove_routine("sink"), "remove a routine"),
        (
            lambda flow: flow.disconnect("editor", "output", "sink", "input"),
            "disconnect",
        ),
    ],
    ids=["remove_routine", "disconnect"],
)
def test_editing_a_flow_while_its_job_runs_is_refused(
    edit: Callable[[Flow], object], action: str
) -> None:
    flow = Flow("editing")
    editor = Editor()
    flow.add_routine(editor, "editor")
    flow.add_routine(Recorder(), "sink")
    flow.connect("editor", "output", "sink", "input")
    editor.set_config(edit=lambda: edit(flow))

    job = flow.execute("editor", {"n": 1}, job_id="busy")

    [error] = job.errors
    assert error.error_type == "JobStateError"
    assert error.message == (
        f"job 'busy' is running: cannot {action} while it runs in flow 'editing' "
        "(1 job(s) running); edit a flow only between jobs"
    )
    assert list(flow.routines) == ["editor", "sink"]
    assert len(flow.connections) == 1
    editor.set_config(edit=lambda: None)
    edit(flow)  # once the job ended, the same edit works


def test_the_refusal_is_a_job_state_error() -> None:
    flow = chain("a", "b")
    editor = Editor()
    flow.add_routine(editor, "editor")
    errors: list[JobStateError] = []

    def remove() -> None:
        try:
            flow.remove_routine("b")
        except JobStateError as error:
            errors.append(error)

    editor.set_config(edit=remove)
    flow.execute("editor", {}, job_id="j")

    [error] = errors
    assert (error.job_id, error.status) == ("j", "running")


# -- validate --------------------------------------------------------------------


def test_a_well_wired_flow_has_no_findings() -> None:
    flow = chain("a", "b", "c")
    flow.connect("c", "output", "a", "input")  # a loop: every event is heard

    assert flow.validate() == []


def test_validate_reports_every_problem_at_once_errors_first() -> None:
    flow = Flow("messy")
    flow.add_routine(Relay(), "left")
    flow.add_routine(Relay(), "right")
    flow.add_routine(Join(), "join")
    flow.add_routine(Editor(), "two_slots")
    flow.routines["two_slots"].define_slot("spare")
    flow.connect("left", "output", "join", "input")
    flow.connect("right", "output", "join", "input")
    flow.connect("join", "output", "two_slots", "input")

    findings = flow.validate()

    assert [(f.severity, f.code, f.routine_id, f.port) for f in findings] == [
        ("error", "join-never-completes", "join", "input"),
        ("warning", "slot-never-delivered", "two_slots", "spare"),
        ("warning", "event-never-heard", "two_slots", "output"),
    ]
    assert findings[0].message == (
        "join 'join'.'input' waits for ['left', 'right'], but no entry reaches "
        "them all in one job: it can never fire. Feed every input from one "
        "entry, or make the slot no join"
    )
    assert all(isinstance(f, Finding) for f in findings)


def test_a_join_fed_from_one_entry_can_complete() -> None:
    flow = chain("start", "left", "sink")
    flow.add_routine(Relay(), "right")
    flow.add_routine(Join(), "join")
    flow.connect("start", "output", "right", "input")
    flow.connect("left", "output", "join", "input")
    flow.connect("right", "output", "join", "input")
    flow.connect("join", "output", "sink", "input")

    assert [f.severity for f in flow.validate()] == ["warning"]  # sink's output
    assert flow.execute("start", {"n": 1}).status is JobStatus.COMPLETED


def test_a_join_that_waits_for_its_own_output_can_never_complete() -> None:
    flow = Flow("loop")
    flow.add_routine(Relay(), "start")
    flow.add_routine(Relay(), "echo")
    flow.add_routine(Join(), "join")
    flow.connect("start", "output", "join", "input")
    flow.connect("join", "output", "echo", "input")
    flow.connect("echo", "output", "join", "input")

    [finding] = [f for f in flow.validate() if f.severity == "error"]

    assert finding.routine_id == "join"
    assert (
        "['echo', 'start'], but no entry reaches them all in one job ('join' "
        "itself runs only once the join fired)" in finding.message
    )


def test_remove_routine_drops_the_failure_routes_from_and_to_it() -> None:
    flow = chain("a", "b", "c", "sink")
    flow.add_routine(Recorder(), "fallback")
    flow.connect_failures("a", "fallback", "input")
    flow.connect_failures("b", "c", "input")

    flow.remove_routine("fallback")
    flow.remove_routine("b")

    assert flow.failure_routes == {}
    assert Flow.deserialize(flow.serialize()).failure_routes == {}
    flow.execute("a", {"x": 1})  # the plan holds no route to a missing routine
    assert received(flow, "sink") == []  # b is gone: a's output reaches nothing
