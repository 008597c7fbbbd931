"""The web inspector: a small ASGI app that shows a store's jobs in a browser.

Needs the ``ui`` extra (Starlette; uvicorn to serve it). Serve it with
``flowforge ui STORE``, or mount :func:`create_app`'s app in your own
Starlette or FastAPI application, behind your own authentication.
"""

from __future__ import annotations

from flowforge.ui._app import create_app

__all__ = ["create_app"]
