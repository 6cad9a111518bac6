"""CLI commands of `spikingbrain.converter` (registered on the `spikingbrain` app)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to ``app``."""
