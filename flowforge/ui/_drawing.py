"""Draw a flow as SVG, with routines coloured by what they did in a job."""

from __future__ import annotations

from collections.abc import Mapping

from flowforge.flow import Flow

# The one private module the integrations use: a pure renderer of a flow.
from flowforge._svg import to_svg

__all__ = ["draw_svg"]


def draw_svg(flow: Flow, status: Mapping[str, str] | None = None) -> str:
    """Return ``flow`` as an SVG document; ``status`` colours routines by id.

    Each routine is a ``<g class="ff-routine ff-status-<status>">`` with its
    id in ``data-routine-id``; statuses are ``completed``, ``failed``,
    ``running``, ``waiting`` and ``skipped``.
    """
    return to_svg(
        flow.flow_id,
        flow.routines,
        flow.connections,
        status=status,
        failures=flow.failure_routes,
    )
