"""Mermaid and DOT diagrams of flows: nodes, edges, labels, escaping, determinism."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from flowforge import Flow, Routine
from flowforge.testing import Recorder, Relay
from flowforge.types import Payload


def to_mermaid(flow: Flow) -> str:
    return flow.to_mermaid()


def to_dot(flow: Flow) -> str:
    return flow.to_dot()


ROOT = Path(__file__).resolve().parent.parent
ODD_IDS = ["end", "graph", "subgraph", "node", "edge", "données", "style", "o", "x"]

MERMAID_NODE = re.compile(r'    (r\d+)\["([^"]*)"\]')
MERMAID_EDGE = re.compile(r'    (r\d+) (-->|==>|-\.->)\|"([^"]*)"\| (r\d+)')
MERMAID_STYLE = re.compile(  # the style of a failure route's edge
    r"    linkStyle \d+ stroke:#c62828,color:#c62828,stroke-dasharray:5 4"
)
DOT_STRING = r'"((?:[^"\\]|\\.)*)"'
DOT_NODE = re.compile(rf"    {DOT_STRING} \[label={DOT_STRING}\];")
DOT_EDGE = re.compile(
    rf"    {DOT_STRING} -> {DOT_STRING} \[label={DOT_STRING}"
    rf'(, style="bold"|, style="dashed", color="#c62828", fontcolor="#c62828")?\];'
)
DOT_HEADER = ['    labelloc="t";', '    rankdir="LR";', '    node [shape="box"];']


@dataclass
class Diagram:
    """A parsed diagram: its title, nodes by name, and edges in order."""

    title: str
    nodes: dict[str, str] = field(default_factory=dict)
    edges: list[tuple[str, str, str, bool]] = field(default_factory=list)


def parse_mermaid(text: str) -> Diagram:
    """Parse ``to_mermaid`` output, failing on any line outside its grammar."""
    lines = text.splitlines()
    assert text.endswith("\n")
    assert lines[0] == "---" and lines[2] == "---" and lines[3] == "flowchart LR"
    diagram = Diagram(title=json.loads(lines[1].removeprefix("title: ")))
    for line in lines[4:]:
        if node := MERMAID_NODE.fullmatch(line):
            diagram.nodes[node[1]] = node[2]
        elif edge := MERMAID_EDGE.fullmatch(line):
            diagram.edges.append((edge[1], edge[4], edge[3], edge[2] == "==>"))
        elif not MERMAID_STYLE.fullmatch(line):
            pytest.fail(f"not a Mermaid node or edge: {line!r}")
    return diagram


def unescape_dot(text: str) -> str:
    return re.sub(r'\\(["\\])', r"\1", text)


def parse_dot(text: str) -> Diagram:
    """Parse ``to_dot`` output, failing on any line outside its grammar."""
    lines = text.splitlines()
    assert text.endswith("\n")
    head = re.fullmatch(rf"digraph {DOT_STRING} {{", lines[0])
    assert head is not None
    assert lines[1] == f'    label="{head[1]}";'
    assert lines[2:5] == DOT_HEADER and lines[-1] == "}"
    diagram = Diagram(title=unescape_dot(head[1]))
    for line in lines[5:-1]:
        if node := DOT_NODE.fullmatch(line):
            diagram.nodes[unescape_dot(node[1])] = unescape_dot(node[2])
        elif edge := DOT_EDGE.fullmatch(line):
            ends = unescape_dot(edge[1]), unescape_dot(edge[2])
            bold = edge[4] == ', style="bold"'
            diagram.edges.append((*ends, unescape_dot(edge[3]), bold))
        else:
            pytest.fail(f"not a DOT node or edge: {line!r}")
    return diagram


def merge_dicts(old: Payload, new: Payload) -> Payload:
    return {**old, **new}


class Source(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_event("output", ["value", "note"])

    def __call__(self, value: int = 0) -> None:
        self.emit("output", value=value)


class Gather(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("single")
        self.define_slot("both", merge_strategy="append", join=True)
        self.define_slot("custom", merge_strategy=merge_dicts)
        self.define_event("done")


@pytest.fixture
def chain() -> Flow:
    flow = Flow(flow_id="chain")
    flow.add_routine(Source(), "source")
    flow.add_routine(Relay(), "relay")
    flow.connect("source", "output", "relay", "input", {"value": "number"})
    return flow


@pytest.fixture
def fan_in() -> Flow:
    flow = Flow(flow_id="fan_in")
    flow.add_routine(Source(), "left")
    flow.add_routine(Source(), "right")
    flow.add_routine(Gather(), "gather")
    flow.connect("left", "output", "gather", "both")
    flow.connect("right", "output", "gather", "both")
    flow.connect("right", "output", "gather", "single")
    return flow


@pytest.fixture
def odd_ids() -> Flow:
    flow = Flow(flow_id="odd")
    for routine_id in ODD_IDS:
        flow.add_routine(Recorder(), routine_id)
    for source, target in zip(ODD_IDS, ODD_IDS[1:]):
        flow.connect(source, "output", target, "input")
    return flow


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pipeline() -> Flow:
    """The flow of examples/data_processing.py."""
    flow = load_example("data_processing").build_flow()
    assert isinstance(flow, Flow)
    return flow


EXAMPLES_WITH_FLOWS = sorted(
    path.stem
    for path in (ROOT / "examples").glob("*.py")
    if "\ndef build_flow(" in path.read_text(encoding="utf-8")
)


@pytest.mark.parametrize("name", EXAMPLES_WITH_FLOWS)
def test_mermaid_draws_every_routine_and_connection_of_each_example(
    name: str,
) -> None:
    flow = load_example(name).build_flow()
    assert isinstance(flow, Flow)

    diagram = parse_mermaid(to_mermaid(flow))

    labels = sorted(label.split(":")[0] for label in diagram.nodes.values())
    assert labels == sorted(flow.routines)
    assert len(diagram.edges) == len(flow.connections) + len(flow.failure_routes)


def test_every_example_draws_a_flow_in_the_docs() -> None:
    examples_page = (ROOT / "docs" / "examples.rst").read_text(encoding="utf-8")
    drawn = re.findall(
        r"flowforge-diagram:: examples/(\w+)\.py:build_flow", examples_page
    )

    assert sorted(drawn) == EXAMPLES_WITH_FLOWS
    assert len(EXAMPLES_WITH_FLOWS) == len(list((ROOT / "examples").glob("*.py")))


# -- Mermaid ---------------------------------------------------------------------


def test_mermaid_titles_the_diagram_with_the_flow_id(chain: Flow) -> None:
    diagram = parse_mermaid(to_mermaid(chain))

    assert diagram.title == "chain"


def test_mermaid_labels_nodes_with_id_class_slots_and_events(chain: Flow) -> None:
    diagram = parse_mermaid(to_mermaid(chain))

    assert diagram.nodes == {
        "r0": "source: Source<br/>events: output",
        "r1": "relay: Relay<br/>slots: input<br/>events: output",
    }


def test_mermaid_labels_edges_with_event_slot_and_param_mapping(chain: Flow) -> None:
    diagram = parse_mermaid(to_mermaid(chain))

    assert diagram.edges == [("r0", "r1", "output -> input {value: number}", False)]


def test_mermaid_marks_join_slots_and_draws_their_edges_thick(fan_in: Flow) -> None:
    diagram = parse_mermaid(to_mermaid(fan_in))

    assert "both [join, append]" in diagram.nodes["r2"]
    assert diagram.edges == [
        ("r0", "r2", "output -> both [join]", True),
        ("r1", "r2", "output -> both [join]", True),
        ("r1", "r2", "output -> single", False),
    ]


def test_mermaid_marks_append_and_custom_merge_slots(fan_in: Flow) -> None:
    diagram = parse_mermaid(to_mermaid(fan_in))

    assert diagram.nodes["r2"] == (
        "gather: Gather<br/>slots: single, both [join, append], custom [custom merge]"
        "<br/>events: done"
    )


def test_mermaid_keeps_keyword_and_unicode_ids_out_of_node_names(
    odd_ids: Flow,
) -> None:
    diagram = parse_mermaid(to_mermaid(odd_ids))

    assert list(diagram.nodes) == [f"r{i}" for i in range(len(ODD_IDS))]
    labelled = [label.split(":")[0] for label in diagram.nodes.values()]
    assert labelled == ODD_IDS
    assert len(diagram.edges) == len(ODD_IDS) - 1


def test_mermaid_escapes_quotes_entities_and_tags_in_labels() -> None:
    odd_class = type('Odd"<b>&#', (Recorder,), {})
    flow = Flow(flow_id="escapes")
    flow.add_routine(odd_class(), "données")

    diagram = parse_mermaid(to_mermaid(flow))

    label = diagram.nodes["r0"]
    assert label.startswith("données: Odd#34;#60;b>#38;#35;<br/>")
    assert "<" not in label.replace("<br/>", "")


def test_mermaid_quotes_an_odd_flow_id_in_the_title() -> None:
    flow = Flow(flow_id='say "end"\n%% <b>')

    text = to_mermaid(flow)

    assert parse_mermaid(text).title == 'say "end"\n%% <b>'
    assert text.count("\n") == 4


def test_mermaid_draws_a_self_loop() -> None:
    flow = Flow(flow_id="loop")
    flow.add_routine(Relay(), "relay")
    flow.connect("relay", "output", "relay", "input")

    diagram = parse_mermaid(to_mermaid(flow))

    assert diagram.edges == [("r0", "r0", "output -> input", False)]


def test_mermaid_of_a_flow_without_connections_has_nodes_and_no_edges() -> None:
    flow = Flow(flow_id="apart")
    flow.add_routine(Recorder(), "first")
    flow.add_routine(Recorder(), "second")

    diagram = parse_mermaid(to_mermaid(flow))

    assert list(diagram.nodes) == ["r0", "r1"]
    assert diagram.edges == []


def test_mermaid_of_an_empty_flow_is_the_header_only() -> None:
    text = to_mermaid(Flow(flow_id="empty"))

    assert text == '---\ntitle: "empty"\n---\nflowchart LR\n'


def test_mermaid_of_the_example_pipeline(pipeline: Flow) -> None:
    text = to_mermaid(pipeline)

    assert text == (
        "---\n"
        'title: "data_processing"\n'
        "---\n"
        "flowchart LR\n"
        '    r0["parse: Parse<br/>events: record, done"]\n'
        '    r1["validate: Validate<br/>slots: input<br/>events: valid"]\n'
        '    r2["enrich: Enrich<br/>slots: input<br/>events: enriched"]\n'
        '    r3["aggregate: Aggregate<br/>slots: rows [join, append]"]\n'
        '    r0 -->|"record -> input"| r1\n'
        '    r1 -->|"valid -> input"| r2\n'
        '    r2 ==>|"enriched -> rows [join]"| r3\n'
        '    r0 ==>|"done -> rows {count: lines} [join]"| r3\n'
    )


# -- DOT -------------------------------------------------------------------------


def test_dot_names_and_titles_the_graph_with_the_flow_id(chain: Flow) -> None:
    text = to_dot(chain)

    assert text.startswith('digraph "chain" {\n    label="chain";\n')


def test_dot_labels_nodes_with_id_class_slots_and_events(chain: Flow) -> None:
    diagram = parse_dot(to_dot(chain))

    assert diagram.nodes == {
        "source": r"source: Source\nevents: output",
        "relay": r"relay: Relay\nslots: input\nevents: output",
    }


def test_dot_labels_edges_with_event_slot_and_param_mapping(chain: Flow) -> None:
    diagram = parse_dot(to_dot(chain))

    assert diagram.edges == [
        ("source", "relay", "output -> input {value: number}", False)
    ]


def test_dot_marks_join_slots_and_draws_their_edges_bold(fan_in: Flow) -> None:
    diagram = parse_dot(to_dot(fan_in))

    assert "both [join, append]" in diagram.nodes["gather"]
    assert diagram.edges == [
        ("left", "gather", "output -> both [join]", True),
        ("right", "gather", "output -> both [join]", True),
        ("right", "gather", "output -> single", False),
    ]


def test_dot_quotes_keyword_and_unicode_ids(odd_ids: Flow) -> None:
    text = to_dot(odd_ids)

    diagram = parse_dot(text)
    assert list(diagram.nodes) == ODD_IDS
    assert '    "end" -> "graph" [label="output -> input"];' in text.splitlines()
    assert '    "données" [label="données: Recorder' in text


def test_dot_escapes_quotes_and_backslashes() -> None:
    odd_class = type('Odd"\\l', (Recorder,), {})
    flow = Flow(flow_id='say "hi" \\ bye')
    flow.add_routine(odd_class(), "routine")

    text = to_dot(flow)

    assert text.startswith('digraph "say \\"hi\\" \\\\ bye" {\n')
    assert '[label="routine: Odd\\"\\\\l\\nslots: input' in text
    assert parse_dot(text).title == 'say "hi" \\ bye'


def test_dot_draws_a_self_loop() -> None:
    flow = Flow(flow_id="loop")
    flow.add_routine(Relay(), "relay")
    flow.connect("relay", "output", "relay", "input")

    diagram = parse_dot(to_dot(flow))

    assert diagram.edges == [("relay", "relay", "output -> input", False)]


def test_dot_of_a_flow_without_connections_has_nodes_and_no_edges() -> None:
    flow = Flow(flow_id="apart")
    flow.add_routine(Recorder(), "first")
    flow.add_routine(Recorder(), "second")

    diagram = parse_dot(to_dot(flow))

    assert list(diagram.nodes) == ["first", "second"]
    assert diagram.edges == []


def test_dot_of_an_empty_flow_is_the_header_only() -> None:
    text = to_dot(Flow(flow_id="empty"))

    assert text.splitlines() == [
        'digraph "empty" {',
        '    label="empty";',
        *DOT_HEADER,
        "}",
    ]


def test_dot_of_the_example_pipeline(pipeline: Flow) -> None:
    diagram = parse_dot(to_dot(pipeline))

    assert list(diagram.nodes) == ["parse", "validate", "enrich", "aggregate"]
    assert (
        diagram.nodes["aggregate"]
        == r"aggregate: Aggregate\nslots: rows [join, append]"
    )
    assert diagram.edges[-1] == (
        "parse",
        "aggregate",
        "done -> rows {count: lines} [join]",
        True,
    )


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_dot_renders_with_graphviz(odd_ids: Flow) -> None:
    result = subprocess.run(
        ["dot", "-Tjson"],
        input=to_dot(odd_ids),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    graph = json.loads(result.stdout)
    assert [node["name"] for node in graph["objects"]] == ODD_IDS
    assert len(graph["edges"]) == len(ODD_IDS) - 1


# -- both ------------------------------------------------------------------------


@pytest.mark.parametrize("render", [to_mermaid, to_dot], ids=["mermaid", "dot"])
def test_diagram_of_the_same_flow_is_the_same_text(
    render: Callable[[Flow], str], pipeline: Flow
) -> None:
    first, second = render(pipeline), render(pipeline)

    assert first == second


BUILD_AND_DRAW = """
from flowforge import Flow
from flowforge.testing import Recorder

flow = Flow(flow_id="seeded")
for routine_id in ["zeta", "alpha", "données", "end", "mid"]:
    flow.add_routine(Recorder(), routine_id)
flow.connect("zeta", "output", "alpha", "input", {"a": "b", "c": "d", "e": "f"})
flow.connect("zeta", "output", "données", "input")
flow.connect("end", "output", "end", "input")
print(flow.to_mermaid() + flow.to_dot())
"""


def test_diagram_text_does_not_depend_on_hash_seed() -> None:
    def draw(seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        return subprocess.run(
            [sys.executable, "-c", BUILD_AND_DRAW],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env=env,
        ).stdout

    assert draw("1") == draw("2") != ""
