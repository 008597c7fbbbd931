"""The payload-type registry: the user classes whose values jobs may save.

:func:`register_payload_type` puts a dataclass, an ``Enum``, a ``NamedTuple``
or (when pydantic is installed) a pydantic model class here under a name, by
default ``module:QualName``. The codec (:mod:`flowforge._codec`) saves a value
of a registered class as its name and its fields, and rebuilds it from them;
loading finds the class by that name here and never imports a module named in
data, so only registered classes load.

A registered class's value is saved as a dict of field names to values, each
value saved by the codec in turn (registered classes nest):

=============  ====================================================================
Kind           Saved fields, and how the value is rebuilt
=============  ====================================================================
dataclass      every field (``dataclasses.fields``); the class is called with
               its ``init`` fields (so ``__post_init__`` runs again), then
               every field is set as saved (a ``__post_init__`` that changes
               a field does not change it twice)
``Enum``       ``{"value": member.value}``; rebuilt as ``cls(value)``
``NamedTuple`` every field; rebuilt as ``cls(**fields)``
pydantic       every model field, and the extra fields a model allows; rebuilt
               by ``model_construct`` (the saved values were valid already),
               after checking the fields as for the other kinds
=============  ====================================================================

A field that the class has gained since the value was saved takes its
default; a saved field the class no longer has is an error, as is a value
that cannot be rebuilt. Thread safety: register classes at import time; the
registry is read from any thread.
"""

from __future__ import annotations

import reprlib
import dataclasses
import enum
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, final, overload

from flowforge.exceptions import ArgumentTypeError, DuplicateNameError

__all__ = [
    "BY_NAME",
    "BY_TYPE",
    "KINDS",
    "PayloadType",
    "is_registrable",
    "register_payload_type",
]

KINDS: Final = "a dataclass, an Enum, a NamedTuple or a pydantic model"

T = TypeVar("T", bound=type)


@final
@dataclasses.dataclass(frozen=True, slots=True)
class PayloadType:
    """A registered class: its name in data, its fields, how to rebuild it."""

    name: str
    cls: type
    fields: Callable[[Any], dict[str, object]]  # Any: a value of ``cls``
    build: Callable[[dict[str, object]], object]


BY_TYPE: dict[type, PayloadType] = {}
"""Every registered class, by the class itself (exact type, not subclasses)."""
BY_NAME: dict[str, PayloadType] = {}
"""Every registered class, by its name in data."""


@overload
def register_payload_type(cls: T, /, *, name: str | None = None) -> T: ...


@overload
def register_payload_type(
    cls: None = None, /, *, name: str | None = None
) -> Callable[[T], T]: ...


def register_payload_type(
    cls: T | None = None, /, *, name: str | None = None
) -> T | Callable[[T], T]:
    """Let jobs save and load values of ``cls`` (a payload, a buffer, a stat).

    Use it as a call, ``register_payload_type(Order)``, or as a decorator,
    ``@register_payload_type`` or ``@register_payload_type(name="shop:Order")``.
    Registering a class again under the same name does nothing; a class
    defined anew under the same ``module:QualName`` (a reloaded module)
    replaces the old one.

    Args:
        cls: A dataclass, ``Enum``, ``NamedTuple`` or pydantic model class.
        name: Its name in saved data; ``module:QualName`` when omitted. Pass
            the old name when a class is renamed or moved, so that data saved
            before still loads.

    Returns:
        ``cls`` itself (or, without ``cls``, a decorator that registers it).

    Raises:
        ArgumentTypeError: If ``cls`` is none of those kinds, or cannot be
            rebuilt from its fields (an ``InitVar`` without a default), or
            ``name`` is not a non-empty str.
        DuplicateNameError: If another class is registered under ``name``,
            or ``cls`` is registered under another name.

    Example:
        >>> import dataclasses
        >>> from flowforge import register_payload_type
        >>> @register_payload_type
        ... @dataclasses.dataclass
        ... class Point:
        ...     x: int
        ...     y: int
    """
    if cls is None:
        return lambda later: register_payload_type(later, name=name)
    _add(_entry(cls, name))
    return cls


def is_registrable(cls: type) -> bool:
    """Return whether ``cls`` is a kind of class :func:`register_payload_type` takes."""
    return _kind(cls) is not None


def _add(entry: PayloadType) -> None:
    known = BY_NAME.get(entry.name)
    if known is not None and _qualified(known.cls) != _qualified(entry.cls):
        raise DuplicateNameError(
            f"payload type name {entry.name!r} is taken by {_qualified(known.cls)}; "
            f"register {entry.cls.__qualname__} under another name=..."
        )
    old = BY_TYPE.get(entry.cls)
    if old is not None and old.name != entry.name:
        raise DuplicateNameError(
            f"{entry.cls.__qualname__} is registered as {old.name!r} already; a "
            "class has one name in data"
        )
    if known is not None:
        BY_TYPE.pop(known.cls, None)  # a class defined anew: the new one counts
    BY_TYPE[entry.cls] = BY_NAME[entry.name] = entry


def _entry(cls: object, name: str | None) -> PayloadType:
    if not isinstance(cls, type) or _kind(cls) is None:
        raise ArgumentTypeError(
            f"register_payload_type expects {KINDS} class, got {reprlib.repr(cls)}"
        )
    if name is None:
        name = _qualified(cls)
    elif not isinstance(name, str) or not name:
        raise ArgumentTypeError(f"name must be a non-empty str, got {name!r}")
    fields, build = _KINDS[_kind(cls) or ""](cls)
    return PayloadType(name, cls, fields, build)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _kind(cls: type) -> str | None:
    if dataclasses.is_dataclass(cls):
        return "dataclass"
    if issubclass(cls, enum.Enum):
        return "enum"
    if issubclass(cls, tuple) and hasattr(cls, "_fields") and hasattr(cls, "_make"):
        return "namedtuple"
    pydantic = sys.modules.get("pydantic")  # a model's class imported it already
    if pydantic is not None and issubclass(cls, pydantic.BaseModel):
        return "pydantic"
    return None


Codec = tuple[Callable[[Any], dict[str, object]], Callable[[dict[str, object]], object]]


def _dataclass(cls: type) -> Codec:
    fields = dataclasses.fields(cls)
    names = tuple(field.name for field in fields)
    init = frozenset(field.name for field in fields if field.init)
    for parameter in inspect.signature(cls).parameters.values():
        required = parameter.default is inspect.Parameter.empty
        if parameter.name not in init and required:
            raise ArgumentTypeError(
                f"cannot register {cls.__qualname__}: its __init__ needs "
                f"{parameter.name!r}, which is no field, so a saved value could "
                "not be rebuilt; give it a default"
            )

    def build(data: dict[str, object]) -> object:
        _check_known(cls, data, names)
        value = cls(**{key: item for key, item in data.items() if key in init})
        for key, item in data.items():  # as saved, whatever __post_init__ did
            object.__setattr__(value, key, item)  # frozen classes too
        return value

    return (lambda value: {name: getattr(value, name) for name in names}), build


def _enum(cls: type) -> Codec:
    return (lambda member: {"value": member.value}), lambda data: cls(data["value"])


def _namedtuple(cls: type) -> Codec:
    names: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]  # checked

    def build(data: dict[str, object]) -> object:
        _check_known(cls, data, names)
        return cls(**data)

    return (lambda value: dict(zip(names, value, strict=True))), build


def _pydantic(cls: type) -> Codec:
    def fields(model: Any) -> dict[str, object]:  # Any: a pydantic model
        data = {name: getattr(model, name) for name in type(model).model_fields}
        data.update(model.model_extra or {})
        return data

    # Any: model_construct is pydantic's, which the core does not import.
    construct: Callable[..., object] = cls.model_construct  # type: ignore[attr-defined]
    model_fields: dict[str, Any] = cls.model_fields  # type: ignore[attr-defined]
    names = tuple(model_fields)
    extra = cls.model_config.get("extra") == "allow"  # type: ignore[attr-defined]

    def build(data: dict[str, object]) -> object:
        # model_construct validates nothing: it would drop a field the model
        # lost and leave a required one it gained unset, so check as for others.
        if not extra:
            _check_known(cls, data, names)
        missing = [
            n for n, f in model_fields.items() if f.is_required() and n not in data
        ]
        if missing:
            raise ValueError(
                f"the saved value has no required field {missing} of "
                f"{cls.__qualname__}; give the field a default"
            )
        return construct(**data)

    return fields, build


def _check_known(cls: type, data: Mapping[str, object], names: tuple[str, ...]) -> None:
    unknown = [key for key in data if key not in names]
    if unknown:
        raise ValueError(
            f"saved fields {unknown} are no fields of {cls.__qualname__} (fields: "
            f"{list(names)}); register a class that has them"
        )


_KINDS: Final[dict[str, Callable[[type], Codec]]] = {
    "dataclass": _dataclass,
    "enum": _enum,
    "namedtuple": _namedtuple,
    "pydantic": _pydantic,
}
