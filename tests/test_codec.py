"""Payload codec: exact round trips, readable output, and clear errors."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import os
import re
import subprocess
import sys
import uuid
import zoneinfo
from collections import OrderedDict, namedtuple
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowforge._codec import MARKER, MAX_DEPTH, decode, encode
from flowforge.exceptions import SerializationError

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def same(a: object, b: object) -> bool:
    """Tell whether ``a`` and ``b`` are equal with the same types throughout."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        pairs = zip(a.items(), b.items())
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in pairs
        )
    if isinstance(a, (set, frozenset)) and isinstance(b, (set, frozenset)):
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    if isinstance(a, (dt.datetime, dt.time)) and isinstance(b, (dt.datetime, dt.time)):
        return a == b and a.isoformat() == b.isoformat() and a.tzinfo == b.tzinfo
    return a == b


def describe(value: object) -> str:
    text = hex(value) if isinstance(value, int) else repr(value)
    return f"{type(value).__name__}:{text[:40]}"


def round_trip(value: object) -> object:
    return decode(json.loads(json.dumps(encode(value), allow_nan=False)))


def nested_lists(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


# Hypothesis strategies

OFFSETS = st.timedeltas(
    min_value=dt.timedelta(hours=-23, minutes=-59),
    max_value=dt.timedelta(hours=23, minutes=59),
)
FIXED_ZONES = st.just(dt.timezone.utc) | st.builds(dt.timezone, OFFSETS)
INTEGERS = (
    st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1])
)
HASHABLE_SCALARS = (
    st.none()
    | st.booleans()
    | INTEGERS
    | st.floats()
    | st.text()
    | st.binary()
    | st.datetimes(timezones=st.none() | FIXED_ZONES | st.timezones())
    | st.dates()
    | st.times(timezones=st.none() | FIXED_ZONES)
    | st.timedeltas()
    | st.decimals(allow_nan=False)
    | st.uuids()
)
HASHABLES = st.recursive(
    HASHABLE_SCALARS,
    lambda inner: st.lists(inner, max_size=3).map(tuple)
    | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
KEYS = st.text() | st.sampled_from([MARKER, "v"]) | HASHABLES
VALUES = st.recursive(
    HASHABLE_SCALARS | st.binary().map(bytearray),
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text(), inner, max_size=4)
    | st.dictionaries(KEYS, inner, max_size=4)
    | st.sets(HASHABLES, max_size=4)
    | st.frozensets(HASHABLES, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_round_trip_keeps_value_and_types(value: object) -> None:
    restored = round_trip(value)

    assert same(restored, value)


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_encode_gives_json_that_dumps_strictly(value: object) -> None:
    data = encode(value)

    assert json.loads(json.dumps(data, allow_nan=False)) == data


@settings(max_examples=100, deadline=None)
@given(st.sets(HASHABLES, max_size=6))
def test_set_encoding_ignores_insertion_order(value: set[object]) -> None:
    reordered = set(reversed(list(value)))

    assert json.dumps(encode(reordered)) == json.dumps(encode(value))


# Examples per type


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**63),
        2**63,
        -(10**5000),
        1.5,
        -0.0,
        math.inf,
        -math.inf,
        "",
        "é\x00",
        [],
        (),
        (1, [2, (3,)]),
        {},
        {1: "a", (1, 2): "b", None: "c", "d": 4},
        set(),
        {1, "1", 1.5, (1,)},
        frozenset({frozenset({1})}),
        b"\x00\xff",
        bytearray(b"abc"),
        dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
        dt.datetime(2024, 5, 6, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
        dt.datetime(2024, 5, 6, tzinfo=PARIS),
        dt.date(1, 1, 1),
        dt.time(23, 59, 59, 999999),
        dt.time(12, tzinfo=dt.timezone(dt.timedelta(minutes=90, microseconds=1))),
        dt.datetime(2024, 5, 6, tzinfo=dt.timezone(-dt.timedelta(microseconds=1))),
        dt.time(tzinfo=dt.timezone(dt.timedelta(microseconds=999999))),
        dt.timedelta(days=-1, seconds=5, microseconds=7),
        dt.timedelta.max,
        Decimal("1.10"),
        Decimal("-0"),
        Decimal("1E+3"),
        Decimal("-Infinity"),
        uuid.UUID(int=42),
    ],
    ids=describe,
)
def test_round_trip_example(value: object) -> None:
    restored = round_trip(value)

    assert same(restored, value)


def test_nan_float_round_trips() -> None:
    restored = round_trip([math.nan])

    assert isinstance(restored, list) and math.isnan(restored[0])


@pytest.mark.parametrize("text", ["NaN", "-sNaN123"], ids=str)
def test_nan_decimal_keeps_its_digits(text: str) -> None:
    restored = round_trip([Decimal(text)])

    assert isinstance(restored, list) and str(restored[0]) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**63 - 1, 2**63 - 1),
        (2**63, {MARKER: "int", "v": "0x8000000000000000"}),
        (-math.inf, {MARKER: "float", "v": "-inf"}),
        ((1, "a"), {MARKER: "tuple", "v": [1, "a"]}),
        ({"b", "a", "c"}, {MARKER: "set", "v": ["a", "b", "c"]}),
        (frozenset({2, "1"}), {MARKER: "frozenset", "v": ["1", 2]}),
        ({1: 2}, {MARKER: "dict", "v": [[1, 2]]}),
        (b"ab", {MARKER: "bytes", "v": "YWI="}),
        (bytearray(b"ab"), {MARKER: "bytearray", "v": "YWI="}),
        (dt.date(2024, 1, 2), {MARKER: "date", "v": "2024-01-02"}),
        (dt.time(1, 2), {MARKER: "time", "v": "01:02:00"}),
        (dt.timedelta(1, 2, 3), {MARKER: "timedelta", "v": [1, 2, 3]}),
        (Decimal("1.10"), {MARKER: "decimal", "v": "1.10"}),
        (
            uuid.UUID(int=1),
            {MARKER: "uuid", "v": "00000000-0000-0000-0000-000000000001"},
        ),
        (
            dt.datetime(2024, 7, 1, 9, tzinfo=PARIS),
            {MARKER: "datetime", "v": "2024-07-01T09:00:00+02:00[Europe/Paris]"},
        ),
    ],
    ids=repr,
)
def test_encode_uses_documented_format(value: object, expected: object) -> None:
    data = encode(value)

    assert data == expected


EDGE_NUMBERS = [
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    1.5,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    True,
]


@pytest.mark.parametrize("number", EDGE_NUMBERS, ids=describe)
def test_a_number_in_a_dict_or_list_is_encoded_as_it_is_alone(number: object) -> None:
    alone = encode(number)

    in_containers = encode({"k": [number], "n": number})

    assert same(in_containers, {"k": [alone], "n": alone})


def test_frozenset_elements_are_sorted_by_json_text() -> None:
    data = encode(frozenset({2, "1", (0,)}))

    assert data == {MARKER: "frozenset", "v": ["1", 2, {MARKER: "tuple", "v": [0]}]}


def test_plain_json_stays_plain() -> None:
    value = {"rows": [{"id": 1, "name": "a", "score": 0.5, "ok": True, "x": None}]}

    assert encode(value) == value


def test_dict_order_is_kept() -> None:
    value = {"b": 1, "a": 2, 3: "c"}

    restored = round_trip(value)

    assert isinstance(restored, dict) and list(restored) == ["b", "a", 3]


@pytest.mark.parametrize(
    "value",
    [
        {MARKER: "tuple", "v": [1, 2]},
        {MARKER: 1},
        {"v": 1, MARKER: "bytes"},
        {"outer": {MARKER: "set", "v": []}},
        [{MARKER: {MARKER: "int", "v": "0x1"}}],
    ],
    ids=repr,
)
def test_user_dict_that_looks_like_a_tag_stays_a_dict(value: object) -> None:
    restored = round_trip(value)

    assert same(restored, value)


def test_user_dict_with_marker_is_escaped() -> None:
    data = encode({MARKER: "tuple", "v": []})

    assert data == {MARKER: "dict", "v": [[MARKER, "tuple"], ["v", []]]}


@pytest.mark.parametrize("fold", [0, 1], ids=["first", "second"])
def test_ambiguous_zoned_time_keeps_fold(fold: int) -> None:
    value = dt.datetime(2024, 10, 27, 2, 30, tzinfo=PARIS, fold=fold)

    restored = round_trip(value)

    assert isinstance(restored, dt.datetime)
    assert restored.fold == fold
    assert restored.utcoffset() == value.utcoffset()


def test_skipped_zoned_time_keeps_fold() -> None:
    value = dt.datetime(2024, 3, 31, 2, 30, tzinfo=PARIS, fold=1)

    restored = round_trip(value)

    assert isinstance(restored, dt.datetime) and restored.fold == 1


def test_zoned_datetime_with_stale_offset_keeps_wall_time() -> None:
    data = {MARKER: "datetime", "v": "2024-07-01T09:00:00+05:00[Europe/Paris]"}

    restored = decode(data)

    assert restored == dt.datetime(2024, 7, 1, 9, tzinfo=PARIS)


def test_set_encoding_is_the_same_in_every_process() -> None:
    code = (
        "import json; from flowforge._codec import encode; "
        "print(json.dumps(encode({'pear', 'apple', 'fig', b'x', ('a', 1)})))"
    )

    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
        for seed in ("1", "2", "3")
    }

    assert len(outputs) == 1


# Nesting depth


def test_nesting_up_to_max_depth_round_trips_through_json() -> None:
    value: object = "leaf"
    for _ in range(MAX_DEPTH):
        value = {MARKER: value}

    restored = round_trip(value)

    assert same(restored, value)


def test_encode_refuses_nesting_deeper_than_max_depth() -> None:
    value = nested_lists(MAX_DEPTH + 1)

    with pytest.raises(SerializationError, match=r"^params\[0\]\[0\].*deep"):
        encode(value, "params")


def nested_dicts(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_plain_dicts_nest_up_to_max_depth() -> None:
    value = nested_dicts(MAX_DEPTH)

    assert encode(value) == value


def test_encode_refuses_plain_dicts_nested_deeper_than_max_depth() -> None:
    value = nested_dicts(MAX_DEPTH + 1)

    with pytest.raises(
        SerializationError, match=r"^params(\['a'\]){100}: data nests more than 100"
    ):
        encode(value, "params")


def test_encode_refuses_very_deep_nesting_without_recursion_error() -> None:
    value = nested_lists(5000)

    with pytest.raises(SerializationError, match="more than 100 containers deep"):
        encode(value)


def test_decode_refuses_very_deep_nesting_without_recursion_error() -> None:
    data = nested_lists(5000)

    with pytest.raises(SerializationError, match="more than 100 containers deep"):
        decode(data)


# Encoding errors


class Foo:
    pass


class Color(enum.StrEnum):
    RED = "red"


Point = namedtuple("Point", "x y")


def numbers() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"rows": [0, 1, 2, {"when": Foo()}]},
            "entry_params['rows'][3]['when']: cannot save a value of type 'Foo'; "
            "use JSON types",
        ),
        ([lambda: 1], "entry_params[0]: cannot save a value of type 'function'"),
        ((numbers(),), "entry_params[0]: cannot save a value of type 'generator'"),
        ({"cls": Foo}, "entry_params['cls']: cannot save a value of type 'type'"),
        ({"tags": {1, Foo()}}, "entry_params['tags']{...}: cannot save"),
        ({"s": frozenset([Foo()])}, "entry_params['s']{...}: cannot save"),
        ({Foo(): 1}, "entry_params[<key>]: cannot save a value of type 'Foo'"),
        ({(1, Foo()): 1}, "entry_params[<key>][1]: cannot save"),
        ({(1, 2): [Foo()]}, "entry_params[(1, 2)][0]: cannot save"),
        ({"a": 1, 2: {"x": Foo()}}, "entry_params[2]['x']: cannot save"),
        ({MARKER: Foo()}, "entry_params['__ff__']: cannot save"),
        (
            Color.RED,
            "entry_params: cannot save a value of type 'Color'; convert it " "to 'str'",
        ),
        (Point(1, 2), "convert it to 'tuple'"),
        (OrderedDict(a=1), "convert it to 'dict'"),
        (dt.time(1, tzinfo=PARIS), "cannot save a time with tzinfo of type 'ZoneInfo'"),
    ],
    ids=[
        "nested",
        "lambda",
        "generator",
        "class",
        "set",
        "frozenset",
        "key",
        "inside-key",
        "value-of-tuple-key",
        "value-of-int-key",
        "value-of-marker-key",
        "enum",
        "namedtuple",
        "ordered-dict",
        "zoned-time",
    ],
)
def test_encode_error_names_path_and_type(value: object, message: str) -> None:
    with pytest.raises(SerializationError, match=re.escape(message)):
        encode(value, "entry_params")


class Offset(dt.tzinfo):
    def utcoffset(self, moment: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(hours=1)

    def dst(self, moment: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, moment: dt.datetime | None) -> str:
        return "+01"


def test_encode_refuses_custom_tzinfo() -> None:
    value = dt.datetime(2024, 1, 1, tzinfo=Offset())

    with pytest.raises(SerializationError, match="tzinfo of type 'Offset'"):
        encode(value)


def test_encode_refuses_zoneinfo_without_key() -> None:
    path = next(Path(p, "UTC") for p in zoneinfo.TZPATH if Path(p, "UTC").exists())
    with path.open("rb") as file:
        zone = zoneinfo.ZoneInfo.from_file(file)
    value = dt.datetime(2024, 1, 1, tzinfo=zone)

    with pytest.raises(SerializationError, match="tzinfo of type 'ZoneInfo'"):
        encode(value)


# Decoding errors


def tagged(name: object, payload: object) -> dict[str, object]:
    return {MARKER: name, "v": payload}


UNKNOWN = tagged("pickle", "x")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((1, 2), "value: not JSON data: found a value of type 'tuple'"),
        ({"a": [b"x"]}, "value['a'][0]: not JSON data: found a value of type 'bytes'"),
        ({1: "a"}, "value[1]: object key must be a str, not 'int'"),
        (tagged(1, []), "value: a tagged value must be {'__ff__': <tag name>"),
        ({MARKER: "tuple"}, "got keys ['__ff__'] and tag 'tuple'"),
        ({**tagged("tuple", []), "x": 1}, "got keys ['__ff__', 'v', 'x']"),
        (UNKNOWN, "value: unknown tag 'pickle'; known tags: int, float, tuple"),
        (tagged("tuple", "ab"), "value: 'tuple' payload must be a list, not str"),
        (tagged("dict", {}), "value: 'dict' payload must be a list, not dict"),
        (tagged("bytes", 5), "value: 'bytes' payload must be a str, not int"),
        (tagged("timedelta", "1d"), "'timedelta' payload must be a list, not str"),
        (tagged("bytes", "no base64!"), "value: bad 'bytes' payload 'no base64!'"),
        (tagged("bytearray", "é"), "value: bad 'bytearray' payload 'é'"),
        (tagged("int", "0xZZ"), "value: bad 'int' payload '0xZZ'"),
        (tagged("float", "one"), "value: bad 'float' payload 'one'"),
        (tagged("datetime", "soon"), "value: bad 'datetime' payload 'soon'"),
        (tagged("datetime", "2024-01-01T00:00+00:00[UTC"), "must end with ']'"),
        (tagged("datetime", "2024-01-01T00:00+00:00[Mars/Base]"), "Mars/Base"),
        (tagged("datetime", "2024-01-01T00:00+00:00[../x]"), "bad 'datetime'"),
        (tagged("date", "2024-13-01"), "value: bad 'date' payload '2024-13-01'"),
        (tagged("time", "25:00"), "value: bad 'time' payload '25:00'"),
        (tagged("timedelta", [1, 2]), "bad 'timedelta' payload [1, 2]: expected"),
        (tagged("timedelta", [1, 2, "3"]), "three ints"),
        (tagged("timedelta", [1, 2, True]), "three ints"),
        (tagged("timedelta", [10**10, 0, 0]), "bad 'timedelta' payload"),
        (tagged("decimal", "1.2.3"), "value: bad 'decimal' payload '1.2.3'"),
        (tagged("uuid", "xyz"), "value: bad 'uuid' payload 'xyz'"),
        (tagged("set", [[1]]), "value: a set element is not hashable"),
        (tagged("frozenset", [{}]), "value: a set element is not hashable"),
        (tagged("dict", [[1]]), "value: 'dict' entry 0 must be a [key, value] list"),
        (tagged("dict", [[1, 2], 5]), "value: 'dict' entry 1 must be a [key, value]"),
        (tagged("dict", [[[1], 2]]), "value: 'dict' key [1] is not hashable"),
        (tagged("tuple", [1, (2,)]), "value[1]: not JSON data"),
        (tagged("set", [UNKNOWN]), "value{...}: unknown tag 'pickle'"),
        (tagged("dict", [[UNKNOWN, 1]]), "value[<key>]: unknown tag 'pickle'"),
        (tagged("dict", [[(1,), 1]]), "value[<key>]: not JSON data"),
        (tagged("dict", [["k", UNKNOWN]]), "value['k']: unknown tag 'pickle'"),
        (
            {"rows": [0, {"when": tagged("bytes", "!")}]},
            "value['rows'][1]['when']: bad 'bytes' payload '!'",
        ),
    ],
    ids=[
        "tuple",
        "bytes-in-list",
        "int-key",
        "tag-not-str",
        "tag-without-payload",
        "tag-with-extra-key",
        "unknown-tag",
        "tuple-payload-str",
        "dict-payload-dict",
        "bytes-payload-int",
        "timedelta-payload-str",
        "bad-base64",
        "non-ascii-base64",
        "bad-int",
        "bad-float",
        "bad-datetime",
        "zone-without-bracket",
        "unknown-zone",
        "bad-zone-key",
        "bad-date",
        "bad-time",
        "timedelta-short",
        "timedelta-str",
        "timedelta-bool",
        "timedelta-overflow",
        "bad-decimal",
        "bad-uuid",
        "set-of-list",
        "frozenset-of-dict",
        "dict-entry-short",
        "dict-entry-not-list",
        "dict-key-unhashable",
        "tuple-element",
        "set-element",
        "dict-key",
        "dict-key-not-json",
        "dict-value",
        "nested",
    ],
)
def test_decode_error_names_path_and_problem(data: object, message: str) -> None:
    with pytest.raises(SerializationError, match=re.escape(message)):
        decode(data)


def test_decode_error_uses_callers_path() -> None:
    with pytest.raises(SerializationError, match=re.escape("pending[0].data[2]: ")):
        decode([0, 1, UNKNOWN], "pending[0].data")


def test_decode_error_chains_the_underlying_error() -> None:
    with pytest.raises(SerializationError, match="bad 'bytes'") as caught:
        decode(tagged("bytes", "!"))

    assert isinstance(caught.value.__cause__, ValueError)


def test_decode_error_shortens_long_payloads() -> None:
    with pytest.raises(SerializationError, match="bad 'uuid'") as caught:
        decode(tagged("uuid", "x" * 10_000))

    assert len(str(caught.value)) < 300
