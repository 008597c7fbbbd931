"""Type aliases and protocols shared across FlowForge's modules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeAlias

__all__ = ["Clock", "Handler", "MergeFunction", "MergeStrategy", "Payload"]

Payload: TypeAlias = dict[str, object]
"""The data of one delivery or emission: keyword names to values."""

# Handlers are user callables of any signature; binding adapts to it, so the
# parameter list cannot be expressed more precisely than ``...``.
Handler: TypeAlias = Callable[..., object]

MergeFunction: TypeAlias = Callable[[Payload, Payload], Payload]
"""A custom merge: ``merge(old_buffer, new_data) -> new_buffer``."""

MergeStrategy: TypeAlias = str | MergeFunction


class Clock(Protocol):
    """The scheduler's only source of time; tests pass a fake one."""

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin that never goes back."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
