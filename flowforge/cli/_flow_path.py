"""Import the flow a ``package.module:attribute`` path names, and nothing else."""

from __future__ import annotations

import importlib
import os
import sys

from flowforge.cli._problem import USAGE, CommandError
from flowforge.flow import Flow

__all__ = ["import_modules", "load_flow"]


def load_flow(target: str) -> Flow:
    """Return the flow at ``target``: a :class:`Flow`, or a function returning one.

    The working folder is searched first, as ``python -m`` does, so
    ``flowforge draw jobs:build_flow`` finds ``./jobs.py``.

    Raises:
        CommandError: If ``target`` is malformed (exit code 2), or the module
            cannot be imported, the attribute is missing, or it is not a flow
            (exit code 1).
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise CommandError(
            f"bad flow path {target!r}: use package.module:attribute, "
            "such as myapp.flows:build_flow",
            exit_code=USAGE,
        )
    value: object = _import(module_name, f"--flow {target!r}")
    for name in attribute.split("."):
        if not hasattr(value, name):
            raise CommandError(f"{module_name!r} has no attribute {attribute!r}")
        value = getattr(value, name)
    return _as_flow(value, target)


def import_modules(names: tuple[str, ...]) -> None:
    """Import the modules ``--import`` names, for what they register.

    A job that holds payload types registered with
    :func:`~flowforge.register_payload_type` can be read only once the
    module that registers them has run.

    Raises:
        CommandError: If a module cannot be imported (exit code 1).
    """
    for name in names:
        _import(name, f"--import {name!r}")


def _import(module_name: str, given: str) -> object:
    """Import ``module_name``, the working folder searched first."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except Exception as error:  # any error of the user's module is reported
        raise CommandError(
            f"cannot import {module_name!r} (from {given}): {_error_text(error)}"
        ) from error


def _as_flow(value: object, target: str) -> Flow:
    if isinstance(value, Flow):
        return value
    if not callable(value):
        raise CommandError(
            f"{target!r} is a {type(value).__name__}, not a Flow or a function "
            "returning one"
        )
    try:
        built = value()
    except Exception as error:  # the user's builder failed: report it
        raise CommandError(
            f"calling {target!r} failed: {_error_text(error)}"
        ) from error
    if not isinstance(built, Flow):
        raise CommandError(f"{target!r} returned a {type(built).__name__}, not a Flow")
    return built


def _error_text(error: BaseException) -> str:
    """Return ``Type: message``; the user's error may fail to give its text."""
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:  # noqa: BLE001  a hostile __str__ must not hide the report
        return f"{type(error).__name__} (its message could not be read)"
