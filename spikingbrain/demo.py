"""The ``spikingbrain demo`` command (filled in below as the stages land)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""
