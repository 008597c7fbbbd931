"""Draw a flow as SVG, with routines coloured by what they did in a job.

Uses FlowForge's own SVG renderer (pure Python); ``svg_available`` says
whether this FlowForge has it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import cast

from flowforge import Flow

__all__ = ["draw_svg", "svg_available"]

Renderer = Callable[..., str]


def _renderer() -> Renderer | None:
    try:
        # The one private module the integrations use: a pure renderer.
        module = importlib.import_module("flowforge._svg")
    except ImportError:
        return None
    return cast(Renderer, module.to_svg)


def svg_available() -> bool:
    """Return whether this FlowForge can draw flows as SVG."""
    return _renderer() is not None


def draw_svg(flow: Flow, status: Mapping[str, str] | None = None) -> str:
    """Return ``flow`` as an SVG document; ``status`` colours routines by id.

    Raises:
        RuntimeError: If this FlowForge has no SVG renderer.
    """
    render = _renderer()
    if render is None:
        raise RuntimeError("this FlowForge cannot draw SVG yet")
    return render(flow.flow_id, flow.routines, flow.connections, status=status)
