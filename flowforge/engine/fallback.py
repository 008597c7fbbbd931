"""A failed delivery as an error record, its payload kept; routing it to a fallback.

When a routine's error strategy gives up on a delivery for good, the runtime
records the error with a copy of the delivery's data (:func:`kept_payload`)
and, if the flow routes that routine's failures somewhere, puts a delivery
for the fallback on the job's pending stack (:func:`route_failure`). That
delivery is made in the same step as the failure, so a durable job
checkpoints both together.
"""

from __future__ import annotations

import traceback
from dataclasses import replace
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from flowforge._codec import decode, encode
from flowforge._failure_route import FAILURE_KEYS
from flowforge.exceptions import SerializationError
from flowforge.record import ErrorRecord, RoutineStatus, error_to_data, new_delivery
from flowforge.types import Payload

if TYPE_CHECKING:
    from flowforge.engine.plan import Plan
    from flowforge.job_state import JobState
    from flowforge.record import Delivery, RoutineState
    from flowforge.types import Clock

__all__ = [
    "REPR_LIMIT",
    "TEXT_LIMIT",
    "cut_text",
    "error_record",
    "kept_payload",
    "route_failure",
]

REPR_LIMIT: Final = 2000
"""How many characters of an unsaveable payload's ``repr`` an error record keeps."""
TEXT_LIMIT: Final = 10_000
"""How many characters of an error's message, and of its traceback, a record keeps."""


def kept_payload(data: Payload) -> tuple[Payload | str, bool]:
    """Return what an error record keeps of a delivery's ``data``, and if it is saved.

    A payload that can be saved is kept as a copy (the handler may change
    the original later), else as its ``repr`` text; a ``repr`` that raises
    gives a note instead, so the failure is recorded all the same.
    """
    try:
        copy = decode(encode(data, "payload"))
    except SerializationError:
        return _guarded_repr(data), False
    assert isinstance(copy, dict)  # noqa: S101  encode keeps a dict a dict
    return copy, True


def route_failure(
    job: JobState,
    plan: Plan,
    delivery: Delivery,
    record: ErrorRecord,
    state: RoutineState,
) -> bool:
    """Send a delivery's final failure to its routine's failure route, if any.

    The fallback's delivery has the data ``{"error": ..., "payload": ...}``:
    the error record as plain data, and the failed delivery's data (its
    ``repr`` text when it cannot be saved); when the failed delivery was
    itself a routed failure, the payload it carried. It goes on top of the job's
    pending stack, so the sequential strategy runs it next. The failed
    routine's ``state`` is then as after a handled delivery: completed,
    unless it was skipped or failed before.

    Returns:
        Whether the failure was routed, and so is handled.
    """
    edge = plan.failures.get(delivery.routine_id)
    if edge is None:
        return False
    if state.status is RoutineStatus.RUNNING:
        state.status = RoutineStatus.COMPLETED
    error_key, payload_key = FAILURE_KEYS
    payload: object = delivery.data if record.payload_saved else record.payload
    if _is_routed(plan, delivery):  # a fallback failed: pass on its payload
        payload = delivery.data[payload_key]
    data: Payload = {error_key: failure_data(record), payload_key: payload}
    seq = job.next_seq
    job.next_seq = seq + 1
    job.pending.append(
        new_delivery(seq, edge.target_id, edge.slot_name, data, edge.index)
    )
    return True


def _is_routed(plan: Plan, delivery: Delivery) -> bool:
    """Say whether ``delivery`` is a routed failure, made by :func:`route_failure`.

    Its payload is passed on as it is rather than nested in the next routed
    failure's: a chain or loop of failing fallbacks would otherwise nest one
    level per hop, and copy and save ever larger payloads.
    """
    data = delivery.data
    return (
        isinstance(data, dict)
        and data.keys() == set(FAILURE_KEYS)
        and any(
            edge.target_id == delivery.routine_id and edge.slot_name == delivery.slot
            for edge in plan.failures.values()
        )
    )


def failure_data(record: ErrorRecord) -> dict[str, object]:
    """Return an error record, without its payload, as plain data."""
    data = error_to_data(replace(record, payload=None, payload_saved=False))
    del data["payload"]
    data["payload_saved"] = record.payload_saved
    return data


def cut_text(text: str) -> str:
    """Return ``text``, or its first and last ``TEXT_LIMIT / 2`` characters if longer.

    A job keeps up to ``history_limit`` error records; an exception that
    carries a whole response body must not make each of them that large.
    """
    if len(text) <= TEXT_LIMIT:
        return text
    half = TEXT_LIMIT // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n... <{cut:,} characters cut> ...\n{text[-half:]}"


def _guarded_repr(data: object) -> str:
    """Return ``repr(data)``, cut to :data:`REPR_LIMIT` characters, or a note.

    User code is not trusted: a ``repr`` that raises gives a note instead, and
    a long one is cut, since the job keeps up to ``history_limit`` records.
    """
    try:
        text = repr(data)
    except Exception as failure:  # noqa: BLE001  user code on the failure path
        return f"<payload: its repr raised {type(failure).__qualname__}>"
    text = str.__str__(text)  # a plain str, whatever a subclass overrides
    if len(text) <= REPR_LIMIT:
        return text
    return f"{text[:REPR_LIMIT]}... <payload repr cut: {len(text):,} characters>"


def error_record(delivery: Delivery, error: BaseException, clock: Clock) -> ErrorRecord:
    """Return a failed delivery as an error record, its payload kept (or its repr)."""
    payload, saved = kept_payload(delivery.data)
    return ErrorRecord(
        routine_id=delivery.routine_id,
        slot=delivery.slot,
        seq=delivery.seq,
        attempt=delivery.attempt,
        error_type=type(error).__qualname__,
        message=_text(str, error),
        traceback=_text(lambda e: "".join(traceback.format_exception(e)), error),
        at=clock.now(),
        payload=payload,
        payload_saved=saved,
    )


def _text(render: Callable[[BaseException], str], error: BaseException) -> str:
    """Return ``render(error)``, or a note saying it failed: user code is not trusted.

    An exception's ``__str__`` (or what formatting its traceback calls) may
    raise or return something else than a str; the failed delivery must be
    recorded and kept all the same.
    """
    try:
        text = render(error)
    except Exception as failure:  # noqa: BLE001  user code on the failure path
        name = type(error).__qualname__
        return f"<{name}: rendering it raised {type(failure).__qualname__}>"
    if not isinstance(text, str):
        return f"<{type(error).__qualname__}: rendering it gave no str>"
    return cut_text(str.__str__(text))  # a plain str, bounded
