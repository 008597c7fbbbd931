"""SVG diagrams of flows: well-formed, escaped, deterministic, laid out in layers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from flowforge import Connection, Flow, Routine
from flowforge._diagram import _edge_label, _node_lines
from flowforge._svg import STATUSES, to_svg
from flowforge.testing import Recorder, Relay

SVG = "{http://www.w3.org/2000/svg}"
NASTY_IDS = [
    "<script>alert(1)</script>",
    "a & b",
    "say \"hi\" and 'bye'",
    "données ✓ 数据",
    "]]> <!-- -->",
    "ctrl\x01char",
]


class Join(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("both", join=True)
        self.define_slot("single")


def chain_flow(length: int) -> Flow:
    flow = Flow(flow_id=f"chain_{length}")
    for index in range(length):
        flow.add_routine(Relay(), f"r{index}")
    for index in range(1, length):
        flow.connect(f"r{index - 1}", "output", f"r{index}", "input")
    return flow


def draw(flow: Flow, status: dict[str, str] | None = None) -> str:
    return to_svg(flow.flow_id, flow.routines, flow.connections, status=status)


def parse(text: str) -> ET.Element:
    return ET.fromstring(text)


def routine_groups(root: ET.Element) -> dict[str, ET.Element]:
    return {
        g.attrib["data-routine-id"]: g
        for g in root.iter(f"{SVG}g")
        if "ff-routine" in g.attrib["class"].split()
    }


def edge_groups(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if "ff-edge" in g.attrib["class"].split()]


def box(group: ET.Element) -> tuple[float, float, float, float]:
    rect = group.find(f"{SVG}rect")
    assert rect is not None
    x, y = float(rect.attrib["x"]), float(rect.attrib["y"])
    return x, y, x + float(rect.attrib["width"]), y + float(rect.attrib["height"])


def texts(group: ET.Element) -> list[str]:
    return [t.text or "" for t in group.iter(f"{SVG}text")]


@pytest.fixture
def fan_in() -> Flow:
    flow = Flow(flow_id="fan_in")
    flow.add_routine(Relay(), "left")
    flow.add_routine(Relay(), "right")
    flow.add_routine(Join(), "gather")
    flow.connect("left", "output", "gather", "both")
    flow.connect("right", "output", "gather", "both", {"value": "number"})
    flow.connect("left", "output", "gather", "single")
    return flow


def test_svg_is_one_well_formed_svg_element_titled_with_the_flow_id(
    fan_in: Flow,
) -> None:
    text = draw(fan_in)

    root = parse(text)
    assert root.tag == f"{SVG}svg"
    assert text.startswith("<svg ") and text.endswith("</svg>\n")
    assert root.findtext(f"{SVG}title") == "fan_in"
    assert "fan_in" in texts(root)


def test_svg_draws_each_routine_with_the_diagram_lines(fan_in: Flow) -> None:
    root = parse(draw(fan_in))

    groups = routine_groups(root)
    assert list(groups) == ["left", "right", "gather"]
    for routine_id, routine in fan_in.routines.items():
        assert texts(groups[routine_id]) == _node_lines(routine_id, routine)


def test_svg_draws_each_connection_with_its_label(fan_in: Flow) -> None:
    root = parse(draw(fan_in))

    labels = [texts(group) for group in edge_groups(root)]
    expected = [
        [_edge_label(c, fan_in.routines[c.target_id].slots[c.slot])]
        for c in fan_in.connections
    ]
    assert labels == expected


def test_svg_draws_only_edges_into_join_slots_bold(fan_in: Flow) -> None:
    root = parse(draw(fan_in))

    joins = ["ff-join" in group.attrib["class"] for group in edge_groups(root)]
    assert joins == [True, True, False]


@pytest.mark.parametrize("name", NASTY_IDS, ids=range(len(NASTY_IDS)))
def test_svg_escapes_every_text_and_attribute(name: str) -> None:
    # Flow ids are free text; routine ids are identifiers in a Flow, but the
    # inspector may hand any mapping, so the SVG must not trust them either.
    routines = {name: Recorder(), "other": Recorder()}
    connections = [Connection(name, "output", "other", "input")]

    text = to_svg(name, routines, connections, status={name: "failed"})

    root = parse(text)
    shown = name.replace("\x01", "\ufffd")
    assert root.findtext(f"{SVG}title") == shown
    assert list(routine_groups(root)) == [shown, "other"]
    assert texts(routine_groups(root)[shown])[0] == f"{shown}: Recorder"
    assert f"{shown}: failed" in [t.text for t in root.iter(f"{SVG}title")]
    assert "<script" not in text and root.find(f".//{SVG}script") is None


def test_svg_links_nothing_outside_the_document(fan_in: Flow) -> None:
    text = draw(fan_in, {"left": "completed"})

    assert "href" not in text and "url(" not in text and "@import" not in text
    assert text.count("http") == 1  # the SVG namespace only


def test_svg_is_the_same_text_for_the_same_flow(fan_in: Flow) -> None:
    first = draw(fan_in, {"gather": "waiting", "left": "completed"})

    second = draw(fan_in, {"left": "completed", "gather": "waiting"})

    assert first == second


def test_svg_of_an_empty_flow_shows_only_its_title() -> None:
    root = parse(draw(Flow(flow_id="empty")))

    assert routine_groups(root) == {} and edge_groups(root) == []
    assert texts(root) == ["empty"]


def test_svg_lays_routines_out_by_longest_path_from_a_root() -> None:
    flow = Flow(flow_id="shortcut")
    for routine_id in ("a", "b", "c"):
        flow.add_routine(Relay(), routine_id)
    flow.connect("a", "output", "c", "input")
    flow.connect("a", "output", "b", "input")
    flow.connect("b", "output", "c", "input")

    groups = routine_groups(parse(draw(flow)))

    left = [box(groups[routine_id])[0] for routine_id in ("a", "b", "c")]
    right = [box(groups[routine_id])[2] for routine_id in ("a", "b", "c")]
    assert right[0] < left[1] and right[1] < left[2]


def test_svg_orders_a_layer_by_the_rows_of_its_predecessors() -> None:
    flow = Flow(flow_id="crossing")
    for routine_id in ("a", "b", "from_b", "from_a"):
        flow.add_routine(Relay(), routine_id)
    flow.connect("b", "output", "from_b", "input")
    flow.connect("a", "output", "from_a", "input")

    groups = routine_groups(parse(draw(flow)))

    assert box(groups["from_a"])[3] < box(groups["from_b"])[1]


def test_svg_draws_cycles_and_self_loops() -> None:
    flow = Flow(flow_id="loop")
    flow.add_routine(Relay(), "a")
    flow.add_routine(Relay(), "b")
    flow.connect("a", "output", "b", "input")
    flow.connect("b", "output", "a", "input")
    flow.connect("b", "output", "b", "input")

    root = parse(draw(flow))

    groups = routine_groups(root)
    assert box(groups["a"])[2] < box(groups["b"])[0]
    assert len(edge_groups(root)) == 3
    lowest = max(box(group)[3] for group in groups.values())
    assert float(root.attrib["height"]) > lowest + 36


def test_svg_keeps_boxes_of_a_layer_apart(fan_in: Flow) -> None:
    groups = routine_groups(parse(draw(fan_in)))

    left, right = box(groups["left"]), box(groups["right"])
    assert left[3] < right[1] and left[0] == right[0]


@pytest.mark.parametrize("status", STATUSES)
def test_svg_marks_a_routine_with_its_status(status: str) -> None:
    flow = chain_flow(2)

    root = parse(draw(flow, {"r1": status, "elsewhere": status}))

    groups = routine_groups(root)
    assert groups["r1"].attrib["class"] == f"ff-routine ff-status-{status}"
    assert groups["r1"].findtext(f"{SVG}title") == f"r1: {status}"
    assert groups["r0"].attrib["class"] == "ff-routine"
    assert groups["r0"].find(f"{SVG}title") is None


def test_svg_rejects_an_unknown_status() -> None:
    with pytest.raises(ValueError, match=r"unknown status 'done'; use one of"):
        draw(chain_flow(1), {"r0": "done"})


def test_svg_draws_a_chain_of_200_routines_left_to_right() -> None:
    flow = chain_flow(200)

    root = parse(draw(flow))

    groups = routine_groups(root)
    lefts = [box(groups[f"r{index}"])[0] for index in range(200)]
    assert len(edge_groups(root)) == 199
    assert lefts == sorted(set(lefts))
    assert float(root.attrib["width"]) > lefts[-1]


def test_svg_routes_a_longer_edge_below_the_boxes_it_passes() -> None:
    flow = Flow(flow_id="shortcut")
    for routine_id in ("a", "b", "c"):
        flow.add_routine(Relay(), routine_id)
    flow.connect("a", "output", "b", "input")
    flow.connect("b", "output", "c", "input")
    flow.connect("a", "output", "c", "input")

    root = parse(draw(flow))

    path = edge_groups(root)[2].find(f"{SVG}path")
    assert path is not None
    lane = max(float(v) for v in re.findall(r"V([\d.]+)", path.attrib["d"]))
    assert lane > max(box(g)[3] for g in routine_groups(root).values())
