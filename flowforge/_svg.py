"""A flow's diagram as a self-contained SVG document, drawn in pure Python.

It shows what :func:`flowforge._diagram.to_dot` describes (one box per
routine with its id, class, slots and events; one arrow per connection,
labelled ``event -> slot``; join edges bold; failure routes dashed red,
labelled ``on failure -> slot``), laid out left to right in
layers: a routine's layer is the longest path to it from a root, once the
back edges a depth-first search finds are set aside, so cycles are drawn too.
The document holds no script and links nothing; every text is XML-escaped,
and the same input always gives the same text.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from flowforge._diagram import _edge_label, _node_lines, failure_label

if TYPE_CHECKING:
    from flowforge.connection import Connection
    from flowforge.routine import Routine

__all__ = ["STATUSES", "to_svg"]

STATUSES: Final = ("completed", "failed", "running", "waiting", "skipped")
"""The routine statuses ``to_svg`` colours, each with a class ``ff-status-<name>``."""

_CHAR: Final = 7.2  # width of one character at the 12px font, roughly
_LINE: Final = 16.0
_PAD: Final = 8.0
_ROW_GAP: Final = 28.0
_MIN_GAP: Final = 80.0
_MARGIN: Final = 20.0
_TOP: Final = 48.0
# Characters XML 1.0 forbids even as references: they become U+FFFD.
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_STYLE: Final = """
.ff-diagram text { font: 12px ui-monospace, Menlo, Consolas, monospace; fill: #222; }
.ff-diagram .ff-title { font-size: 14px; font-weight: bold; }
.ff-routine rect { fill: #f7f7f7; stroke: #555; stroke-width: 1; }
.ff-edge path { fill: none; stroke: #555; stroke-width: 1.2; stroke-linejoin: round; }
.ff-edge polygon { fill: #555; }
.ff-edge.ff-join path { stroke-width: 2.6; }
.ff-edge.ff-failure path { stroke: #c62828; stroke-dasharray: 6 4; }
.ff-edge.ff-failure polygon { fill: #c62828; }
.ff-diagram .ff-edge.ff-failure text { fill: #c62828; }
.ff-diagram .ff-edge text { paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.ff-status-completed rect { fill: #d9f2dd; stroke: #2e7d32; }
.ff-status-failed rect { fill: #fbdada; stroke: #c62828; stroke-width: 2; }
.ff-status-running rect { fill: #d6e8fb; stroke: #1565c0; stroke-width: 2; }
.ff-status-waiting rect { fill: #fff3cd; stroke: #b28704; }
.ff-status-skipped rect { fill: #ececec; stroke: #888; stroke-dasharray: 4 3; }
"""


@dataclass(slots=True)
class _Box:
    """Where one routine's box is drawn, and what it says."""

    lines: list[str]
    column: int = 0
    right: float = 0.0
    """The right side of the box's column, where edges leave it for a lane."""
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0


def to_svg(
    flow_id: str,
    routines: Mapping[str, Routine],
    connections: Sequence[Connection],
    *,
    status: Mapping[str, str] | None = None,
    failures: Mapping[str, tuple[str, str]] | None = None,
) -> str:
    """Return an SVG document drawing the routines and connections of a flow.

    Args:
        flow_id: The flow's id, shown as the title.
        routines: Routine id -> routine, in the order they were added.
        connections: The flow's connections, in the order they were made.
        status: Routine id -> one of :data:`STATUSES`, to colour that box;
            ids not in ``routines`` are ignored.
        failures: The flow's failure routes, source id -> (target id, slot),
            drawn after the connections as dashed red arrows.

    Returns:
        The document's text, ending with a newline.

    Raises:
        ValueError: If a status is not one of :data:`STATUSES`.
    """
    status = dict(status or {})
    unknown = sorted(repr(s) for s in set(status.values()) if s not in STATUSES)
    if unknown:
        raise ValueError(f"unknown status {', '.join(unknown)}; use one of {STATUSES}")
    routes = list((failures or {}).items())
    edges = [(c.source_id, c.target_id) for c in connections]
    edges += [(source, target) for source, (target, _) in routes]
    columns = _columns(list(routines), edges, _back_edges(list(routines), edges))
    boxes = {rid: _Box(_node_lines(rid, r)) for rid, r in routines.items()}
    labels = [_edge_label(c, routines[c.target_id].slots[c.slot]) for c in connections]
    labels += [failure_label(slot) for _, (_, slot) in routes]
    kinds = [_kind(routines[c.target_id].slots[c.slot].is_join) for c in connections]
    kinds += ["failure"] * len(routes)
    width, height = _place(columns, boxes, edges, labels)
    body = [_routine(rid, boxes[rid], status.get(rid)) for rid in routines]
    ends = [(boxes[source], boxes[target]) for source, target in edges]
    arrows, bottom = _edges(list(boxes.values()), ends, labels, kinds)
    height = max(height, bottom) + _MARGIN
    width = max(width, 2 * _MARGIN + _width(flow_id) * 14 / 12)
    return _document(flow_id, width, height, body + arrows)


def _kind(join: bool) -> str:
    """Return the class suffix of a connection's edge: ``join`` or none."""
    return "join" if join else ""


def _back_edges(nodes: list[str], edges: list[tuple[str, str]]) -> set[int]:
    """Return the indexes of the edges that close a cycle, found by DFS."""
    outgoing: dict[str, list[int]] = {node: [] for node in nodes}
    for number, (source, _) in enumerate(edges):
        outgoing[source].append(number)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    back: set[int] = set()
    for root in nodes:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(outgoing[root]))]
        while stack:
            node, pending = stack[-1]
            index = next(pending, None)
            if index is None:
                state[node] = 2
                stack.pop()
                continue
            target = edges[index][1]
            if state.get(target) == 1:
                back.add(index)
            elif target not in state:
                state[target] = 1
                stack.append((target, iter(outgoing[target])))
    return back


def _columns(
    nodes: list[str], edges: list[tuple[str, str]], back: set[int]
) -> list[list[str]]:
    """Return the routines by layer, each layer ordered by barycenter."""
    forward = [edge for index, edge in enumerate(edges) if index not in back]
    indegree = {node: 0 for node in nodes}
    for _, target in forward:
        indegree[target] += 1
    layer = {node: 0 for node in nodes}
    ready = [node for node in nodes if indegree[node] == 0]
    successors: dict[str, list[str]] = {node: [] for node in nodes}
    for source, target in forward:
        successors[source].append(target)
    while ready:  # Kahn's order; the back edges removed, no node is left over
        node = ready.pop()
        for target in successors[node]:
            layer[target] = max(layer[target], layer[node] + 1)
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    columns: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node in nodes:
        columns[layer[node]].append(node)
    return _barycenter(columns, forward)


def _barycenter(
    columns: list[list[str]], forward: list[tuple[str, str]]
) -> list[list[str]]:
    """Order each layer by the mean row of its predecessors; ties keep their order."""
    predecessors: dict[str, list[str]] = {}
    for source, target in forward:
        predecessors.setdefault(target, []).append(source)
    row: dict[str, int] = {}
    ordered: list[list[str]] = []
    for column in columns:

        def key(item: tuple[int, str]) -> float:
            rows = [row[node] for node in predecessors.get(item[1], ())]
            return sum(rows) / len(rows) if rows else float(item[0])

        column = [node for _, node in sorted(enumerate(column), key=key)]
        row.update((node, index) for index, node in enumerate(column))
        ordered.append(column)
    return ordered


def _place(
    columns: list[list[str]],
    boxes: dict[str, _Box],
    edges: list[tuple[str, str]],
    labels: list[str],
) -> tuple[float, float]:
    """Size and place every box; return the drawing's width and height."""
    gaps = {node: _MIN_GAP for node in boxes}
    for number, column in enumerate(columns):
        for node in column:
            boxes[node].column = number
    for (source, target), label in zip(edges, labels, strict=True):
        if boxes[target].column == boxes[source].column + 1:  # a label in the gap
            gaps[source] = max(gaps[source], _width(label) + 24)
    for box in boxes.values():
        box.width = max(_width(line) for line in box.lines) + 2 * _PAD
        box.height = len(box.lines) * _LINE + 2 * _PAD
    tallest = max((_column_height(c, boxes) for c in columns), default=0.0)
    x = _MARGIN
    for column in columns:
        y = _TOP + (tallest - _column_height(column, boxes)) / 2
        right = x + max(boxes[node].width for node in column)
        for node in column:
            box = boxes[node]
            box.right, box.x, box.y = right, x, y
            y += box.height + _ROW_GAP
        x = right + max(gaps[node] for node in column)
    right = max((box.x + box.width for box in boxes.values()), default=_MARGIN)
    return right + _MARGIN, _TOP + tallest


def _column_height(column: list[str], boxes: dict[str, _Box]) -> float:
    heights = [boxes[node].height for node in column]
    return sum(heights) + _ROW_GAP * (len(heights) - 1)


def _routine(routine_id: str, box: _Box, status: str | None) -> str:
    """Return the ``<g>`` of one routine: its box, its lines, its status."""
    classes = "ff-routine" + (f" ff-status-{status}" if status else "")
    parts = [f'<g class="{classes}" data-routine-id="{_xml(routine_id)}">']
    if status:
        parts.append(f"<title>{_xml(routine_id)}: {status}</title>")
    parts.append(
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" '
        f'height="{box.height:.1f}" rx="4"/>'
    )
    for index, line in enumerate(box.lines):
        y = box.y + _PAD + (index + 1) * _LINE - 4
        parts.append(f'<text x="{box.x + _PAD:.1f}" y="{y:.1f}">{_xml(line)}</text>')
    return "".join(parts) + "</g>"


def _edges(
    boxes: list[_Box],
    ends: list[tuple[_Box, _Box]],
    labels: list[str],
    kinds: list[str],
) -> tuple[list[str], float]:
    """Return every arrow's ``<g>`` and the lowest point the arrows reach.

    An edge to the next layer is a curve between the two boxes; any other
    (a longer one, a back edge, a loop) leaves its column to the right, runs
    along a lane of its own below the boxes it passes, and enters the target
    from the left.
    """
    floors: dict[int, float] = {}
    for box in boxes:
        floors[box.column] = max(floors.get(box.column, 0.0), box.y + box.height)
    drawn: list[str] = []
    repeats: dict[tuple[int, int], int] = {}
    bottom = 0.0
    for (source, target), label, kind in zip(ends, labels, kinds, strict=True):
        y0, y1 = source.y + source.height / 2, target.y + target.height / 2
        x0, x1 = source.x + source.width, target.x
        if target.column == source.column + 1:
            key = (id(source), id(target))
            repeat = repeats[key] = repeats.get(key, -1) + 1
            bend = (x1 - x0) / 2
            path = f"M{x0:.1f},{y0:.1f} C{x0 + bend:.1f},{y0:.1f} "
            path += f"{x1 - bend:.1f},{y1:.1f} {x1:.1f},{y1:.1f}"
            lx, ly = (x0 + x1) / 2, (y0 + y1) / 2 - 5 - 14 * repeat
        else:
            low, high = sorted((source.column, target.column))
            lane = max(floors[c] for c in range(low, high + 1)) + 20
            lane = max(lane, bottom + 10)
            out, into = source.right + 12, target.x - 12
            path = f"M{x0:.1f},{y0:.1f} H{out:.1f} V{lane:.1f} H{into:.1f} "
            path += f"V{y1:.1f} H{x1:.1f}"
            lx, ly = (out + into) / 2, lane + 14
            bottom = ly + 4
        drawn.append(_arrow(path, x1, y1, label, lx, ly, kind))
    return drawn, bottom


def _arrow(
    path: str, x: float, y: float, label: str, lx: float, ly: float, kind: str
) -> str:
    """Return one edge's ``<g>``: its path, a head pointing right at x, y, a label.

    ``kind`` (``join``, ``failure`` or empty) adds the class ``ff-<kind>``.
    """
    head = f"{x:.1f},{y:.1f} {x - 8:.1f},{y - 4:.1f} {x - 8:.1f},{y + 4:.1f}"
    group = f'<g class="ff-edge ff-{kind}">' if kind else '<g class="ff-edge">'
    text = f'{group}<path d="{path}"/><polygon points="{head}"/>'
    text += f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle">{_xml(label)}</text>'
    return text + "</g>"


def _document(title: str, width: float, height: float, parts: list[str]) -> str:
    """Return the ``<svg>`` element holding ``parts`` under a title."""
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ff-diagram" '
        f'width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="Diagram of the flow {_xml(title)}">'
    )
    lines = [head, f"<title>{_xml(title)}</title>", f"<style>{_STYLE}</style>"]
    lines.append(
        f'<text class="ff-title" x="{_MARGIN:.0f}" y="28">{_xml(title)}</text>'
    )
    return "\n".join(lines + parts + ["</svg>"]) + "\n"


def _width(text: str) -> float:
    """Estimate the width of ``text`` in pixels; wide (CJK) characters count twice."""
    units = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return units * _CHAR


def _xml(text: str) -> str:
    """Escape ``text`` for XML content or a quoted attribute."""
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)
