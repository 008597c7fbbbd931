"""The stores' JSON step: orjson when installed, the standard library otherwise.

Both run in this one test run: ``_json.use`` picks the pair, so every test here
writes with one and reads with the other too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from flowforge import Flow, JobState, JobStatus, Routine, StoreError
from flowforge.store import Change, SqliteStore, Store
from flowforge.store import _json
from flowforge.store._json import STANDARD, Codec
from flowforge.testing import StoreWrapper

orjson = pytest.importorskip("orjson")
FAST: Final = _json._fast(orjson)
PAIRS: Final = {"fast": FAST, "standard": STANDARD}

VALUES: Final[list[object]] = [
    {"a": 1, "b": [1.5, -0.0, 1e16, 1e-7, 0.1 + 0.2, 2.5e-308], "c": None},
    ["héllo ☃ 日本", '\x00\x1f"\\', "", True, False],
    [2**63 - 1, -(2**63), 2**64, 2**70, -(2**100)],
    {"deep": [[[[{"x": [1, 2, 3]}]]]], "": {}},
    "\ud800 lone surrogate",
    [1.7976931348623157e308, 5e-324, 123456789.123456789],
]


@pytest.fixture(params=list(PAIRS), ids=list(PAIRS))
def writer(request: pytest.FixtureRequest) -> Codec:
    return PAIRS[request.param]


@pytest.fixture(params=list(PAIRS), ids=list(PAIRS))
def reader(request: pytest.FixtureRequest) -> Codec:
    return PAIRS[request.param]


# Any: JSON values of any shape, compared by their runtime types.
def same(left: Any, right: Any) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0, -0.0 not 0.0)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return math.copysign(1, left) == math.copysign(1, right) and left == right
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict):
        return list(left) == list(right) and all(
            same(v, right[k]) for k, v in left.items()
        )
    return bool(left == right)


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_values_read_back_the_same_whichever_pair_wrote_and_reads(
    writer: Codec, reader: Codec, value: object
) -> None:
    text = writer[0](value)

    assert same(reader[1](text), value)
    assert same(json.loads(text), value)


def test_the_fast_pair_falls_back_where_orjson_refuses() -> None:
    dumps, loads = FAST

    assert dumps([2**70]) == "[1180591620717411303424]"
    assert dumps(["\ud800"]) == '["\\ud800"]'
    assert same(loads("[1180591620717411303424]"), [2**70])


@pytest.mark.parametrize("value", [object(), b"bytes", {1, 2}], ids=repr)
def test_both_pairs_refuse_what_is_not_json_data(value: object) -> None:
    for dumps, _ in PAIRS.values():
        with pytest.raises(TypeError, match="is not JSON"):
            dumps([value])


def test_both_pairs_write_an_int_key_as_a_string() -> None:
    assert {dumps({1: "a"}) for dumps, _ in PAIRS.values()} == {'{"1":"a"}'}


def test_the_fast_pair_is_in_use_when_orjson_is_installed() -> None:
    assert _json._best() is not STANDARD
    assert _json.codec()[0]({"a": [1]}) == '{"a":[1]}'


@pytest.fixture
def using() -> Iterator[None]:
    previous = _json.codec()
    yield
    _json.use(previous)


class Countdown(Routine):
    """Emit ``n - 1`` with the same ``value`` until ``n`` is 0."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.count)
        self.define_event("output")

    def count(self, n: int, value: object) -> None:
        if n > 0:
            self.emit("output", n=n - 1, value=value)


class StopsAt(StoreWrapper):
    """A store whose checkpoint ``n`` fails: the job's log stays unfolded."""

    def __init__(self, store: Store, n: int) -> None:
        super().__init__(store)
        self.left = n

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        self.left -= 1
        if self.left == 0:
            raise StoreError("stopping here")
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)


def test_a_job_saved_with_one_pair_loads_the_same_with_the_other(
    tmp_path: Path, writer: Codec, reader: Codec, using: None
) -> None:
    flow = Flow(flow_id="json_pairs")
    flow.add_routine(Countdown(), "count")
    flow.connect("count", "output", "count", "input")
    store = SqliteStore(tmp_path / "jobs.db")
    _json.use(writer)
    done = flow.execute("count", {"n": 100, "value": VALUES}, store=store)
    with pytest.raises(StoreError, match="stopping here"):
        flow.execute("count", {"n": 100, "value": VALUES}, store=StopsAt(store, 90))
    (stopped,) = store.list_jobs(status="running")
    written = [
        store.load(job_id).serialize() for job_id in (done.job_id, stopped.job_id)
    ]
    _json.use(reader)

    read = [store.load(job_id) for job_id in (done.job_id, stopped.job_id)]
    store.close()

    assert [job.serialize() for job in read] == written
    assert read[0].status is JobStatus.COMPLETED
    assert read[1].delivery_count == 89
    assert same(read[1].pending[0].data["value"], VALUES)
