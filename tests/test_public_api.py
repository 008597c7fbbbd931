"""The public API: a small, sorted ``__all__`` and one root for every error."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import flowforge
import flowforge.exceptions
import flowforge.testing

EXCEPTION_CLASSES = [
    value
    for value in vars(flowforge.exceptions).values()
    if inspect.isclass(value)
    and issubclass(value, BaseException)
    and value.__module__ == "flowforge.exceptions"
]
ERROR_CLASSES = [
    cls for cls in EXCEPTION_CLASSES if cls is not flowforge.FlowForgeWarning
]


def test_all_is_sorted() -> None:
    assert flowforge.__all__ == sorted(flowforge.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(flowforge.__all__) == len(set(flowforge.__all__))


@pytest.mark.parametrize("name", flowforge.__all__, ids=flowforge.__all__)
def test_every_name_in_all_is_importable(name: str) -> None:
    assert getattr(flowforge, name, None) is not None


@pytest.mark.parametrize(
    "name", flowforge.testing.__all__, ids=flowforge.testing.__all__
)
def test_every_name_of_flowforge_testing_is_importable(name: str) -> None:
    assert getattr(flowforge.testing, name).__name__ == name


def test_exceptions_module_lists_every_exception_it_defines() -> None:
    assert sorted(flowforge.exceptions.__all__) == sorted(
        cls.__name__ for cls in EXCEPTION_CLASSES
    )


@pytest.mark.parametrize(
    "name", flowforge.exceptions.__all__, ids=flowforge.exceptions.__all__
)
def test_every_exception_is_exported_from_the_top_level(name: str) -> None:
    assert name in flowforge.__all__


@pytest.mark.parametrize(
    "cls", ERROR_CLASSES, ids=[cls.__name__ for cls in ERROR_CLASSES]
)
def test_every_error_derives_from_flowforge_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, flowforge.FlowForgeError)


def test_flowforge_warning_is_a_user_warning_outside_the_error_tree() -> None:
    assert issubclass(flowforge.FlowForgeWarning, UserWarning)
    assert not issubclass(flowforge.FlowForgeWarning, flowforge.FlowForgeError)


def test_package_ships_py_typed() -> None:
    assert (Path(flowforge.__file__).parent / "py.typed").is_file()


def test_version_is_a_string() -> None:
    assert isinstance(flowforge.__version__, str)
