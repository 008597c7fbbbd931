"""The durable path's fast ways, held to what the general ones do.

A durable job's deliveries are checkpointed by the sequential loop's inlined
path (``engine/checkpointed.py``), which describes each delivery's change
itself, and the store builds each change document with its own fast code
(``store/_rows.py``, ``store/_change_log.py``). These tests hold both to the
general path: the same :class:`~flowforge.store.Change`, the same stored data,
the same errors.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest
from test_store import paused_job

from flowforge import ErrorHandler, ErrorStrategy, Flow, JobState, Routine
from flowforge._codec import MARKER, encode
from flowforge.exceptions import SerializationError
from flowforge.record import Delivery, delivery_to_data, routine_state_to_data
from flowforge.store import Change, MemoryStore
from flowforge.store._rows import buffer_data, pending_data, routine_data
from flowforge.testing import StoreWrapper


class Numbers(Routine):
    """Emit ``0 .. count - 1``."""

    def __init__(self) -> None:
        super().__init__()
        self.define_event("output")

    def __call__(self, count: int) -> None:
        for value in range(count):
            self.emit("output", value=value)


class EvenFails(Routine):
    """Fail on even values."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", handler=self.handle)

    def handle(self, value: int) -> None:
        if value % 2 == 0:
            raise ValueError(f"even: {value}")


class Changes(StoreWrapper):
    """Keep each checkpoint's change with the job's error count then."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.seen: list[tuple[Change, int]] = []

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        self.seen.append((change, job_state.error_count))
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)


def failing_flow(history_limit: int) -> Flow:
    flow = Flow("failing", history_limit=history_limit)
    flow.add_routine(Numbers(), "numbers")
    routine = EvenFails()
    routine.set_error_handler(ErrorHandler(strategy=ErrorStrategy.CONTINUE))
    flow.add_routine(routine, "checker")
    flow.connect("numbers", "output", "checker", "input")
    return flow


def test_each_change_numbers_errors_from_the_count_before_its_delivery() -> None:
    store = Changes()

    job = failing_flow(history_limit=5).execute("numbers", {"count": 400}, store=store)

    assert job.error_count == 200 and len(job.errors) < 200  # some were dropped
    new_errors = [count - change.errors_from for change, count in store.seen]
    assert new_errors == [0] + [1, 0] * 200


class Quiet:
    """An observer: with one, every delivery takes the general path."""

    def on_job_end(self, job: JobState) -> None:
        pass


def changes_of(flow: Flow, observed: bool) -> list[tuple[Change, int]]:
    store = Changes()
    remove = flow.add_observer(Quiet()) if observed else None
    flow.execute("numbers", {"count": 30}, store=store, job_id="same")
    if remove is not None:
        remove()
    return store.seen


def test_the_inlined_path_describes_each_change_as_the_general_path_does() -> None:
    flow = failing_flow(history_limit=5)

    inlined = changes_of(flow, observed=False)
    general = changes_of(flow, observed=True)

    assert inlined == general
    assert all(type(change) is Change for change, _ in inlined)
    # Every field is set, so a field added to Change fails here.
    fields = [name for name in Change.__slots__ if not name.startswith("__")]
    assert all(hasattr(change, name) for change, _ in inlined for name in fields)


PAYLOADS = [
    {"x": 1.5, "y": -0.0, "s": "text", "b": True, "n": None, "i": 2**63 - 1},
    {"x": math.nan},
    {"x": math.inf, "y": -math.inf},
    {"x": 2**63},
    {"x": -(2**63) - 1},
    {"x": (1, 2)},
    {"x": {3, 4}},
    {"x": [1.5, math.inf, {"y": 2**64}]},
    {"x": dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc), "d": Decimal("1.10")},
    {1: "int key"},
    {MARKER: "looks like a tag", "v": 1},
    {},
]


def ids(payload: dict[object, object]) -> str:
    return repr(payload)[:40]


@pytest.mark.parametrize("payload", PAYLOADS, ids=ids)
def test_a_pending_row_is_the_general_row_for_any_payload(
    payload: dict[str, object],
) -> None:
    delivery = Delivery(3, "sink", "input", payload, 1, 2)

    row = pending_data(delivery)

    assert row == delivery_to_data(delivery)
    assert repr(row) == repr(delivery_to_data(delivery))  # NaN, -0.0 and types


@pytest.mark.parametrize("payload", PAYLOADS, ids=ids)
def test_a_buffer_and_stats_are_encoded_as_the_codec_does(
    payload: dict[str, object],
) -> None:
    job = paused_job()
    rid = next(iter(job.routine_states))
    job.slot_buffers[(rid, "input")] = payload
    job.routine_states[rid].stats = payload

    buffer, _ = buffer_data(job, (rid, "input"))
    row = routine_data(job, rid)

    assert repr(buffer) == repr(encode(payload))
    general = routine_state_to_data(job.routine_states[rid])
    assert repr(row["stats"]) == repr(general["stats"])


class Unsaveable:
    """A value no store can save."""


@pytest.mark.parametrize(
    "value",
    [Unsaveable(), [1, Unsaveable()], {"deep": {Unsaveable()}}],
    ids=["alone", "in-list", "in-set"],
)
def test_an_unsaveable_value_is_refused_naming_where_it_is(value: object) -> None:
    job = paused_job()
    rid = next(iter(job.routine_states))
    job.slot_buffers[(rid, "input")] = {"v": value}
    delivery = Delivery(9, rid, "input", {"v": value}, 0, 0)
    with pytest.raises(SerializationError) as general:
        delivery_to_data(delivery)

    with pytest.raises(SerializationError, match=r"^pending\[9\]\.data\['v'\]") as ours:
        pending_data(delivery)
    with pytest.raises(
        SerializationError, match=rf"^slot_buffers\[\('{rid}', 'input'\)\]\['v'\]"
    ):
        buffer_data(job, (rid, "input"))

    assert str(ours.value) == str(general.value)
