"""The ``flowforge`` command: list, inspect, resume, cancel and prune stored jobs.

It needs the ``cli`` extra (click and rich), imported only when the command
runs: ``import flowforge`` and ``import flowforge.cli`` import neither.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(args: Sequence[str] | None = None) -> None:
    """Run the ``flowforge`` command with ``args`` (default: ``sys.argv[1:]``).

    Exits the process with the command's exit code: 0 when it succeeded, 1
    when it or the job it ran failed, 2 for a usage error.
    """
    try:
        from flowforge.cli._app import cli
    except ImportError as error:  # the cli extra is missing
        missing = str(error.name).split(".")[0]
        raise SystemExit(
            f"flowforge: the command needs the cli extra ({missing} is missing); "
            "install it with: pip install 'flowforge[cli]'"
        ) from None
    cli.main(args=None if args is None else list(args), prog_name="flowforge")
