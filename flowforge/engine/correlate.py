"""Correlated joins: group a join's arrivals by key and fire once per complete key.

A correlated join keeps its waiting groups in the job's slot buffer of the
join, ``job.slot_buffers[(routine_id, slot)]``, as ``{"groups": {key:
{connection: [data, ...]}}}``: for each key still waiting, what each connection
delivered for it, in arrival order. Being the slot's buffer, it is saved,
loaded and checkpointed (one row per join) like any other buffer.

The delivery that completes a key is not stored: the group's inputs and its
own are merged with the slot's merge strategy in connection order (then
arrival order within a connection), so the handler gets the same buffer
whatever order the inputs arrived in. The group is removed when the handler
succeeds, and left as it was when the handler fails, so that a retry or a
resume completes it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from flowforge._codec import decode, encode
from flowforge.exceptions import ExecutionError

if TYPE_CHECKING:
    from flowforge.engine.plan import Target
    from flowforge.job_state import JobState
    from flowforge.record import Delivery
    from flowforge.slot import Slot
    from flowforge.types import Payload

__all__ = ["GROUPS", "close_group", "gather", "groups_misfit", "groups_of", "key_of"]

GROUPS: Final = "groups"
"""The key of a correlated join's buffer that holds its waiting groups."""
KEY: Final = "key"
"""What :func:`gather` hands on for :func:`close_group`: the key that fired."""

Groups = dict[object, dict[int, list["Payload"]]]


def key_of(slot: Slot, data: Mapping[str, object], routine_id: str) -> object:
    """Return the correlation key of ``data`` for ``slot``, a correlated join.

    Raises:
        ExecutionError: If ``data`` has no such key, or the key is not hashable
            or does not equal itself after a save and load (a NaN).
        SerializationError: If the key cannot be saved.
    """
    correlate = slot.correlate
    where = f"routine {routine_id!r}, slot {slot.name!r}"
    if isinstance(correlate, str):
        if correlate not in data:
            raise ExecutionError(
                f"{where}: the delivery has no correlation key {correlate!r} "
                f"(keys: {sorted(data)}); emit it on every event connected to "
                "this join, or rename it with param_mapping"
            )
        key = data[correlate]
    else:
        assert correlate is not None  # noqa: S101  only correlated joins get here
        key = correlate(dict(data))  # a copy: the key function may not change it
    try:
        hash(key)
    except TypeError as error:
        raise ExecutionError(
            f"{where}: correlation key {key!r:.60} is a {type(key).__name__}, "
            "which is not hashable; use a str, int, tuple or other hashable value"
        ) from error
    if decode(encode(key, f"correlation key of {where}")) != key:
        raise ExecutionError(
            f"{where}: correlation key {key!r:.60} never equals itself once saved "
            "(a NaN, or a value compared by identity), so its group could never "
            "complete after a resume; use a key compared by value, such as a str "
            "or an int"
        )
    return key


def groups_of(job: JobState, target: Target) -> Groups | None:
    """Return the waiting groups of a correlated join in ``job``, if any."""
    container = job.slot_buffers.get(target.key)
    if container is None:
        return None
    groups: Groups = container[GROUPS]  # type: ignore[assignment]  # see module doc
    return groups


def gather(
    job: JobState, target: Target, delivery: Delivery
) -> tuple[Payload | None, Payload] | None:
    """Add ``delivery`` to its group; return what to call when the group is complete.

    Returns ``None`` when the group still waits (the delivery is stored in
    it), else ``(marker, buffer)``: ``buffer`` is the group's merged inputs,
    and ``marker`` names the key for :func:`close_group` (``None`` for a
    delivery from no connection, which fires at once on its own).

    Raises:
        Exception: What the key or the slot's merge function raised.
    """
    slot, data, connection = target.slot, delivery.data, delivery.connection
    if connection < 0:  # the job's entry: no group, as for a join without key
        return None, slot.merge(None, data)
    key = key_of(slot, data, target.routine_id)
    groups = groups_of(job, target)
    group = {} if groups is None else groups.get(key, {})
    sources = target.group_sources or ()
    if any(c not in group and c != connection for c in sources):
        if groups is None:
            groups = {}
            job.slot_buffers[target.key] = {GROUPS: groups}
        groups[key] = group
        group.setdefault(connection, []).append(data)
        return None
    buffer: Payload | None = None
    for source in sources:
        arrived = group.get(source, [])
        for item in (*arrived, data) if source == connection else arrived:
            buffer = slot.merge(buffer, item)
    assert buffer is not None  # noqa: S101  ``sources`` holds ``connection``
    return {KEY: key}, buffer


def close_group(job: JobState, target: Target, marker: Payload | None) -> None:
    """Remove the group that fired (named by ``marker``) once its handler succeeded."""
    groups = groups_of(job, target)
    if marker is None or groups is None:
        return
    groups.pop(marker[KEY], None)
    if not groups:
        del job.slot_buffers[target.key]


def groups_misfit(target: Target, buffer: Payload) -> str | None:
    """Say what is wrong with a correlated join's saved buffer, if anything.

    A buffer read from a store or a file must hold ``{"groups": {key:
    {connection: [data, ...]}}}`` with connections that feed this join.
    """
    groups = buffer.get(GROUPS)
    if len(buffer) != 1 or not isinstance(groups, dict):
        return "holds no correlated groups (was the join correlated then?)"
    sources = set(target.group_sources or ())
    for key, group in groups.items():
        if not isinstance(group, dict) or not all(
            type(c) is int and c in sources and isinstance(items, list)
            for c, items in group.items()
        ):
            return f"group {key!r:.60} fits no connection of this join"
        if not all(
            isinstance(item, dict) for items in group.values() for item in items
        ):
            return f"group {key!r:.60} holds data that is no dict"
    return None
