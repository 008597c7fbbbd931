"""The web inspector: a small ASGI app that shows a store's jobs in a browser.

Needs the ``ui`` extra (Starlette; uvicorn to serve it), imported when
:func:`create_app` is called: importing ``flowforge.ui`` imports neither.
Serve the app with ``flowforge ui STORE``, or mount it in your own Starlette
or FastAPI application, behind your own authentication.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flowforge.flow import Flow
from flowforge.store import Store

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["create_app"]


def create_app(
    store: Store, *, flows: Iterable[Flow] = (), allow_actions: bool = False
) -> Starlette:
    """Return the inspector of ``store`` as an ASGI (Starlette) application.

    Mount it under any path of your own Starlette or FastAPI app (its links
    follow the mount's ``root_path``), behind your own authentication.

    Args:
        store: The store whose jobs it shows; every page reads it afresh.
        flows: Flows whose jobs (by flow id) get a diagram and, with
            ``allow_actions``, the resume, retry and cancel buttons.
        allow_actions: Let the page resume, retry and cancel jobs, each after
            a confirmation, by POST only. Without it every action answers
            403 and the inspector changes nothing.

    Raises:
        ImportError: If Starlette is missing (``pip install 'flowforge[ui]'``).
    """
    from flowforge.ui._app import build_app

    return build_app(store, flows=flows, allow_actions=allow_actions)
