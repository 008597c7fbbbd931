"""Versioned dict formats: the shared readers, the version check, and type lookup.

Every ``serialize()`` in FlowForge returns a dict of JSON types with a
top-level ``"version"``; every ``deserialize(data)`` checks it with
:func:`check_version` and reads fields with :func:`read`, so a malformed dict
raises a :class:`~flowforge.SerializationError` that says where and what,
never a bare ``KeyError`` or ``TypeError``.

Classes named in data are never imported: routine classes come from the
registry every ``Routine`` subclass joins when it is defined, exception classes
from the exceptions already defined in this process, and either may come from
a ``registry`` mapping the caller passes in.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Final, TypeVar

from flowforge.exceptions import ArgumentTypeError, SerializationError

__all__ = [
    "FORMAT_VERSION",
    "ROUTINE_TYPES",
    "check_registry",
    "check_version",
    "exception_name",
    "read",
    "read_optional",
    "resolve_exception",
    "type_name",
]

FORMAT_VERSION: Final = 1
"""The version every ``serialize()`` writes and every ``deserialize`` accepts."""

ROUTINE_TYPES: dict[str, type] = {}
"""Every ``Routine`` subclass by ``module:QualName``, filled as classes are defined."""

T = TypeVar("T")


def type_name(cls: type) -> str:
    """Return the registry key of a class: ``module:QualName``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def check_version(data: object, kind: str) -> Mapping[str, object]:
    """Return ``data`` as a mapping after checking its ``"version"``.

    Raises:
        SerializationError: If ``data`` is not a dict or has another version.
    """
    if not isinstance(data, Mapping):
        raise SerializationError(
            f"{kind} data must be a dict, got {type(data).__name__}"
        )
    if "version" not in data:
        keys = ", ".join(repr(key) for key in list(data)[:8]) or "none"
        raise SerializationError(
            f"{kind} data has no 'version' key (its keys: {keys}); FlowForge reads "
            f"the dicts that serialize() returns, which start with 'version': "
            f"{FORMAT_VERSION}"
        )
    version = data["version"]
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and not isinstance(version, bool)
        fix = (
            "Upgrade FlowForge to read newer data"
            if newer and version > FORMAT_VERSION
            else "it was not written by serialize() of this FlowForge"
        )
        raise SerializationError(
            f"{kind} data has version {version!r}; this FlowForge reads version "
            f"{FORMAT_VERSION}. {fix}"
        )
    return data


def read(data: Mapping[str, object], key: str, kind: type[T], where: str) -> T:
    """Return ``data[key]`` checked to be a ``kind``.

    Raises:
        SerializationError: If the key is missing or holds another type.
    """
    if key not in data:
        raise SerializationError(f"{where}: field {key!r} is missing")
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SerializationError(
            f"{where}: field {key!r} must be {kind.__name__}, "
            f"got {type(value).__name__}"
        )
    return value


def read_optional(
    data: Mapping[str, object], key: str, kind: type[T], where: str
) -> T | None:
    """Return ``data[key]`` checked to be a ``kind``, or ``None`` when null."""
    if data.get(key) is None:
        return None
    return read(data, key, kind, where)


def check_registry(registry: object) -> None:
    """Refuse a ``registry`` argument that is neither ``None`` nor a mapping.

    Raises:
        ArgumentTypeError: Naming ``registry`` and the type it got.
    """
    if registry is not None and not isinstance(registry, Mapping):
        raise ArgumentTypeError(
            "registry must be a mapping of type names to classes, got "
            f"{type(registry).__name__}"
        )


def exception_name(cls: type[BaseException]) -> str:
    """Return how an exception class is named in data: ``module:QualName``."""
    return type_name(cls)


def resolve_exception(
    name: str, registry: Mapping[str, type] | None = None
) -> type[BaseException]:
    """Return the exception class named ``name`` without importing anything.

    Looks in ``registry``, then among the exception classes defined in this
    process (builtins and every imported module's).

    Raises:
        SerializationError: If no such exception class is defined.
    """
    found = (registry or {}).get(name)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    module, _, qualname = name.partition(":")
    if module == "builtins":
        candidate = getattr(builtins, qualname, None)
        if isinstance(candidate, type) and issubclass(candidate, BaseException):
            return candidate
    for cls in _exception_classes():
        if type_name(cls) == name:
            return cls
    raise SerializationError(
        f"exception class {name!r} is not defined in this process; import its "
        "module before deserializing, or pass registry={name: cls}"
    )


def _exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    stack: list[type[BaseException]] = [BaseException]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found
