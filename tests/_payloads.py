"""Payload classes of every kind that ``register_payload_type`` takes, registered.

``TYPED_PAYLOAD`` holds a value of each, nested in one another; the store
contract (``test_store.py``) runs durable jobs with it on every backend.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Final, NamedTuple

from flowforge import register_payload_type

try:
    import pydantic
except ImportError:  # the pydantic cases are left out
    pydantic = None  # type: ignore[assignment]


@register_payload_type
class Status(enum.Enum):
    """A plain enum, saved by value."""

    NEW = "new"
    SHIPPED = "shipped"


@register_payload_type
class Priority(enum.IntEnum):
    """An int enum: an int subclass, which loads as itself, not as an int."""

    LOW = 1
    HIGH = 2


@register_payload_type
class Access(enum.Flag):
    """A flag enum: a combination of members is saved by value too."""

    READ = 1
    WRITE = 2


@register_payload_type
class Point(NamedTuple):
    """A named tuple: loads as itself, not as a tuple."""

    x: int
    y: int = 0


@register_payload_type
@dataclasses.dataclass(frozen=True)
class Item:
    """A frozen dataclass."""

    sku: str
    quantity: int


@register_payload_type(name="tests:Order")
@dataclasses.dataclass
class Order:
    """A dataclass under an explicit name, holding other registered values."""

    order_id: int
    items: list[Item]
    status: Status
    where: Point
    tags: frozenset[str] = frozenset()
    total: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        self.total = sum(item.quantity for item in self.items)


ORDER: Final = Order(7, [Item("apple", 2), Item("pear", 1)], Status.NEW, Point(3, 4))

TYPED_PAYLOAD: dict[str, object] = {
    "order": ORDER,
    "status": Status.SHIPPED,
    "priority": Priority.HIGH,
    "access": Access.READ | Access.WRITE,
    "point": Point(1, 2),
    "items": {Item("fig", 3)},
    "by_status": {Status.NEW: [ORDER]},
}

if pydantic is not None:

    @register_payload_type
    class Customer(pydantic.BaseModel):
        """A pydantic model holding registered values and a nested model."""

        name: str
        orders: list[Order]
        priority: Priority = Priority.LOW
        referrer: Customer | None = None

    TYPED_PAYLOAD["customer"] = Customer(
        name="Ada",
        orders=[ORDER],
        referrer=Customer(name="Bob", orders=[], priority=Priority.HIGH),
    )
