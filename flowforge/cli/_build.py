"""``draw``, ``run`` and ``ui``: commands that start from a flow or serve a store."""

from __future__ import annotations

import json
import socket

import click

from flowforge.cli._flow_path import load_flow
from flowforge.cli._output import report_end
from flowforge.cli._problem import USAGE, CommandError
from flowforge.cli._store_url import open_store
from flowforge.ui import create_app
from flowforge.ui._drawing import draw_svg

__all__ = ["draw", "parse_params", "run", "ui"]

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


@click.command()
@click.argument("flow_path", metavar="FLOW")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg"]),
    default="mermaid",
    show_default=True,
    help="Mermaid flowchart, Graphviz DOT, or an SVG image.",
)
def draw(flow_path: str, fmt: str) -> None:
    """Print a flow's diagram: its routines, ports and connections."""
    flow = load_flow(flow_path)
    if fmt == "mermaid":
        click.echo(flow.to_mermaid())
    elif fmt == "dot":
        click.echo(flow.to_dot())
    else:
        click.echo(draw_svg(flow), nl=False)


def parse_params(pairs: tuple[str, ...]) -> dict[str, object]:
    """Return ``key=value`` pairs as a dict; a value is JSON if it parses, else text.

    Raises:
        CommandError: If a pair has no ``=`` or an empty key (exit code 2).
    """
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"bad --param {pair!r}: use key=value", exit_code=USAGE)
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    return params


@click.command()
@click.argument("flow_path", metavar="FLOW")
@click.argument("entry")
@click.option("--param", "pairs", multiple=True, metavar="KEY=VALUE", help="Input.")
@click.option("--slot", help="The entry routine's slot, if it has several.")
@click.option("--store", "store_url", metavar="STORE", help="Make the job durable.")
@click.option("--job-id", help="The job's id (a random one by default).")
def run(
    flow_path: str,
    entry: str,
    pairs: tuple[str, ...],
    slot: str | None,
    store_url: str | None,
    job_id: str | None,
) -> None:
    """Run a job of FLOW from routine ENTRY until it ends.

    Each --param key=value is an input; values are read as JSON when they
    parse (42, true, "text", [1, 2]), else as text. With --store (created if
    missing) the job is durable and a --job-id the store holds is not run
    again. Exits 1 if the job fails.
    """
    params = parse_params(pairs)
    flow = load_flow(flow_path)
    store = None if store_url is None else open_store(store_url, create=True)
    report_end(flow.execute(entry, params, entry_slot=slot, job_id=job_id, store=store))


@click.command()
@click.argument("store_url", metavar="STORE")
@click.option("--flow", "flow_paths", multiple=True, metavar="MODULE:ATTR")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="0: any free port.",
)
@click.option("--allow-actions", is_flag=True, help="Allow resume, cancel, retry.")
def ui(
    store_url: str,
    flow_paths: tuple[str, ...],
    host: str,
    port: int,
    allow_actions: bool,
) -> None:
    """Serve the web inspector of a store (read-only unless --allow-actions).

    Each --flow draws its jobs' diagrams and, with --allow-actions, lets the
    page resume, retry or cancel them (each after a confirmation). Binds to
    127.0.0.1 unless --host says otherwise: put anything else behind your own
    authentication.
    """
    try:
        import uvicorn
        from starlette.middleware.trustedhost import TrustedHostMiddleware
    except ImportError as error:
        missing = str(error.name).split(".")[0]
        raise CommandError(
            f"flowforge ui needs the ui extra ({missing} is missing): "
            "pip install 'flowforge[ui]'"
        ) from error
    store = open_store(store_url)
    flows = [load_flow(path) for path in flow_paths]
    app = create_app(store, flows=flows, allow_actions=allow_actions)
    if host in _LOOPBACK:
        # A page of another site whose name was made to point at 127.0.0.1
        # (DNS rebinding) would send its own Host: refuse it.
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(_LOOPBACK))
    listening = _listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    mode = "actions allowed" if allow_actions else "read-only"
    click.echo(
        f"serving the inspector of {store!r} at http://{shown}:"
        f"{listening.getsockname()[1]}/ ({mode}); Ctrl+C stops it",
        err=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """Return a socket listening on ``host:port`` (0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise CommandError(f"cannot listen on {host}:{port}: {error}") from error
    listening.listen(128)
    return listening
