"""Run the ``flowforge`` command as ``python -m flowforge.cli``."""

from __future__ import annotations

from flowforge.cli import main

main()
