"""Exceptions: the tree, builtin bases, messages, and pickling with attributes."""

from __future__ import annotations

import pickle

import pytest

from flowforge import (
    ArgumentTypeError,
    DefinitionError,
    DuplicateNameError,
    ExecutionError,
    FlowForgeError,
    InvalidFlowError,
    JobNotFoundError,
    JobStateError,
    RoutineError,
    SerializationError,
    StoreError,
    UnknownPortError,
    UnknownRoutineTypeError,
)

TREE = [
    pytest.param(ArgumentTypeError, (FlowForgeError, TypeError), id="argument_type"),
    pytest.param(DefinitionError, (FlowForgeError, ValueError), id="definition"),
    pytest.param(DuplicateNameError, (DefinitionError,), id="duplicate_name"),
    pytest.param(UnknownPortError, (DefinitionError, LookupError), id="unknown_port"),
    pytest.param(InvalidFlowError, (DefinitionError,), id="invalid_flow"),
    pytest.param(ExecutionError, (FlowForgeError,), id="execution"),
    pytest.param(RoutineError, (ExecutionError,), id="routine"),
    pytest.param(JobStateError, (ExecutionError,), id="job_state"),
    pytest.param(SerializationError, (FlowForgeError,), id="serialization"),
    pytest.param(UnknownRoutineTypeError, (SerializationError,), id="routine_type"),
    pytest.param(StoreError, (FlowForgeError,), id="store"),
    pytest.param(JobNotFoundError, (StoreError, LookupError), id="job_not_found"),
]


@pytest.mark.parametrize(("cls", "bases"), TREE)
def test_exception_sits_where_the_tree_says(
    cls: type[Exception], bases: tuple[type[Exception], ...]
) -> None:
    assert all(issubclass(cls, base) for base in bases)


def test_flowforge_error_is_an_exception() -> None:
    assert issubclass(FlowForgeError, Exception)


def test_routine_error_message_names_routine_slot_and_job() -> None:
    error = RoutineError(routine_id="parse", slot="input", job_id="job_1")

    assert str(error) == "routine 'parse' failed on slot 'input' in job 'job_1'"
    assert (error.routine_id, error.slot, error.job_id) == ("parse", "input", "job_1")


def test_job_state_error_message_names_job_and_status() -> None:
    error = JobStateError("cannot resume it", job_id="job_1", status="completed")

    assert str(error) == "job 'job_1' is completed: cannot resume it"
    assert (error.job_id, error.status) == ("job_1", "completed")


def test_unknown_routine_type_error_says_how_to_register() -> None:
    error = UnknownRoutineTypeError(type_name="app.steps:Parse")

    assert "'app.steps:Parse' is not registered" in str(error)
    assert "import the module" in str(error)
    assert error.type_name == "app.steps:Parse"


def test_job_not_found_error_names_the_job() -> None:
    error = JobNotFoundError(job_id="job_1")

    assert str(error) == "no stored job with id 'job_1'"
    assert error.job_id == "job_1"


def test_context_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError, match="positional argument"):
        RoutineError("parse", "input", "job_1")  # type: ignore[call-arg]  # on purpose


PICKLED = [
    pytest.param(
        RoutineError(routine_id="parse", slot="input", job_id="job_1"), id="routine"
    ),
    pytest.param(
        RoutineError(routine_id="source", slot=None, job_id="job_1"),
        id="routine_no_slot",
    ),
    pytest.param(
        JobStateError("cannot resume it", job_id="job_1", status="completed"),
        id="job_state",
    ),
    pytest.param(JobNotFoundError(job_id="job_1"), id="job_not_found"),
    pytest.param(UnknownRoutineTypeError(type_name="app:Parse"), id="routine_type"),
    pytest.param(DefinitionError("plain message"), id="definition"),
]


@pytest.mark.parametrize("error", PICKLED)
def test_pickle_round_trip_keeps_type_message_and_attributes(
    error: FlowForgeError,
) -> None:
    restored = pickle.loads(pickle.dumps(error))

    assert type(restored) is type(error)
    assert str(restored) == str(error)
    assert restored.__dict__ == error.__dict__


def test_unpickled_error_can_still_be_raised_and_caught() -> None:
    restored = pickle.loads(pickle.dumps(JobNotFoundError(job_id="job_1")))

    with pytest.raises(LookupError, match="no stored job with id 'job_1'"):
        raise restored
