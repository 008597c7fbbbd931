"""Diagrams of a flow as Mermaid or Graphviz DOT text, built locally.

Both renderers draw one node per routine, labelled with its id, class name,
slots and events, and one edge per connection, labelled ``event -> slot`` plus
its ``param_mapping``; slots declared as joins are marked ``[join]`` and their
edges drawn bold. A failure route is a dashed red edge labelled
``on failure -> slot``. The text depends only on the flow's definition (routines in
the order they were added, connections in the order they were made), so the
same flow always gives the same text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from flowforge.connection import Connection
    from flowforge.routine import Routine
    from flowforge.slot import Slot

__all__ = ["failure_label", "to_dot", "to_mermaid"]

# Mermaid reads "#code;" as an entity, so these become numeric entities: '"'
# would end the label, '<' would start an HTML tag, '#' and '&' an entity.
_MERMAID_ESCAPES: Final = str.maketrans(
    {
        '"': "#34;",
        "#": "#35;",
        "&": "#38;",
        "<": "#60;",
        "\n": "<br/>",
        "\r": "",
    }
)

# In a quoted DOT string '"' ends the string and '\' starts a label escape
# such as '\n' or '\l', so both are escaped; a newline becomes DOT's '\n'.
_DOT_ESCAPES: Final = str.maketrans({'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": ""})


def to_mermaid(
    flow_id: str,
    routines: Mapping[str, Routine],
    connections: Sequence[Connection],
    failures: Mapping[str, tuple[str, str]] | None = None,
) -> str:
    """Return a Mermaid flowchart of a flow's routines and connections.

    Nodes are named ``r0``, ``r1``, ... in the order routines were added, so
    no routine id can clash with Mermaid's syntax (``end``, ``graph``, Unicode
    letters); the labels, quoted and escaped, carry the real ids. The flow id
    becomes the diagram's title. Edges into join slots are thick (``==>``);
    failure routes are dotted (``-.->``) and styled red, after the connections.

    Args:
        flow_id: The flow's id, the diagram's title.
        routines: The flow's routines by id; they are only read.
        connections: The flow's connections.
        failures: The flow's failure routes, source id -> (target id, slot).

    Returns:
        The diagram's source text, ending with a newline.

    Example:
        >>> from flowforge import Flow
        >>> from flowforge.testing import Recorder
        >>> flow = Flow("demo")
        >>> flow.add_routine(Recorder(), "end")
        'end'
        >>> print(to_mermaid("demo", flow.routines, flow.connections), end="")
        ---
        title: "demo"
        ---
        flowchart LR
            r0["end: Recorder<br/>slots: input<br/>events: output"]
    """
    names = {routine_id: f"r{i}" for i, routine_id in enumerate(routines)}
    lines = ["---", f"title: {json.dumps(flow_id, ensure_ascii=False)}", "---"]
    lines.append("flowchart LR")
    for routine_id, routine in routines.items():
        label = "<br/>".join(
            _mermaid_text(line) for line in _node_lines(routine_id, routine)
        )
        lines.append(f'    {names[routine_id]}["{label}"]')
    for connection in connections:
        slot = routines[connection.target_id].slots[connection.slot]
        arrow = "==>" if slot.is_join else "-->"
        label = _mermaid_text(_edge_label(connection, slot))
        source, target = names[connection.source_id], names[connection.target_id]
        lines.append(f'    {source} {arrow}|"{label}"| {target}')
    routes = (failures or {}).items()
    for number, (source_id, (target_id, slot_name)) in enumerate(routes):
        label = _mermaid_text(failure_label(slot_name))
        source, target = names[source_id], names[target_id]
        lines.append(f'    {source} -.->|"{label}"| {target}')
        style = "stroke:#c62828,color:#c62828,stroke-dasharray:5 4"
        lines.append(f"    linkStyle {len(connections) + number} {style}")
    return "\n".join(lines) + "\n"


def to_dot(
    flow_id: str,
    routines: Mapping[str, Routine],
    connections: Sequence[Connection],
    failures: Mapping[str, tuple[str, str]] | None = None,
) -> str:
    r"""Return a Graphviz DOT digraph of a flow's routines and connections.

    Every id and label is a quoted, escaped DOT string, so routine ids that
    are DOT keywords (``node``, ``edge``, ``graph``) or Unicode stay valid.
    The flow id names the graph and titles it. Edges into join slots are
    bold; failure routes are dashed and red, after the connections.

    Args:
        flow_id: The flow's id, the graph's name and title.
        routines: The flow's routines by id; they are only read.
        connections: The flow's connections.
        failures: The flow's failure routes, source id -> (target id, slot).

    Returns:
        The diagram's source text, ending with a newline; render it with,
        for example, ``dot -Tsvg``.

    Example:
        >>> from flowforge import Flow
        >>> from flowforge.testing import Recorder
        >>> flow = Flow("demo")
        >>> flow.add_routine(Recorder(), "node")
        'node'
        >>> print(to_dot("demo", flow.routines, flow.connections), end="")
        digraph "demo" {
            label="demo";
            labelloc="t";
            rankdir="LR";
            node [shape="box"];
            "node" [label="node: Recorder\nslots: input\nevents: output"];
        }
    """
    title = _dot_text(flow_id)
    lines = [f'digraph "{title}" {{', f'    label="{title}";']
    lines += ['    labelloc="t";', '    rankdir="LR";', '    node [shape="box"];']
    for routine_id, routine in routines.items():
        label = "\\n".join(_dot_text(line) for line in _node_lines(routine_id, routine))
        lines.append(f'    "{_dot_text(routine_id)}" [label="{label}"];')
    for connection in connections:
        slot = routines[connection.target_id].slots[connection.slot]
        style = ', style="bold"' if slot.is_join else ""
        source = _dot_text(connection.source_id)
        target = _dot_text(connection.target_id)
        label = _dot_text(_edge_label(connection, slot))
        lines.append(f'    "{source}" -> "{target}" [label="{label}"{style}];')
    for source_id, (target_id, slot_name) in (failures or {}).items():
        source, target = _dot_text(source_id), _dot_text(target_id)
        label = _dot_text(failure_label(slot_name))
        style = 'style="dashed", color="#c62828", fontcolor="#c62828"'
        lines.append(f'    "{source}" -> "{target}" [label="{label}", {style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_lines(routine_id: str, routine: Routine) -> list[str]:
    """Return a routine's label as plain lines: id and class, slots, events."""
    lines = [f"{routine_id}: {type(routine).__name__}"]
    if routine.slots:
        slots = ", ".join(_slot_text(slot) for slot in routine.slots.values())
        lines.append(f"slots: {slots}")
    if routine.events:
        lines.append(f"events: {', '.join(routine.events)}")
    return lines


def _slot_text(slot: Slot) -> str:
    """Return a slot's name with its join and non-default merge marks."""
    marks = ["join"] if slot.is_join else []
    if callable(slot.merge_strategy):
        marks.append("custom merge")
    elif slot.merge_strategy != "override":
        marks.append(slot.merge_strategy)
    return f"{slot.name} [{', '.join(marks)}]" if marks else slot.name


def _edge_label(connection: Connection, slot: Slot) -> str:
    """Return a connection's label as plain text: ``event -> slot {a: b}``."""
    label = f"{connection.event} -> {connection.slot}"
    if connection.param_mapping:
        pairs = ", ".join(f"{k}: {v}" for k, v in connection.param_mapping.items())
        label += f" {{{pairs}}}"
    if slot.is_join:
        label += " [join]"
    return label


def failure_label(slot: str) -> str:
    """Return a failure route's label as plain text: ``on failure -> slot``."""
    return f"on failure -> {slot}"


def _mermaid_text(text: str) -> str:
    return text.translate(_MERMAID_ESCAPES)


def _dot_text(text: str) -> str:
    return text.translate(_DOT_ESCAPES)
