"""CLI commands of `spikingbrain.neuromorphic` (registered on the `spikingbrain` app)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to ``app``: the ``export`` and ``simulate`` groups."""
    export_app = typer.Typer(
        help="Export converted spiking layers to neuromorphic formats (NIR graphs, Lava bundles).",
        no_args_is_help=True,
    )
    app.add_typer(export_app, name="export")
    _register_nir(export_app)
    _register_lava(export_app)
    simulate_app = typer.Typer(
        help="Simulate exported spiking layers on a neuromorphic simulator and compare with torch.",
        no_args_is_help=True,
    )
    app.add_typer(simulate_app, name="simulate")
    _register_simulate(simulate_app)


def _register_nir(export_app: typer.Typer) -> None:
    """``export nir MODEL_DIR --layers PATTERN --tokens N --out OUT``."""
    from spikingbrain.neuromorphic.nir_cli import register_export_nir

    register_export_nir(export_app)


def _register_lava(export_app: typer.Typer) -> None:
    """``export lava MODEL_DIR --layers PATTERN --tokens N --out OUT``."""
    from spikingbrain.neuromorphic.lava_cli import register_export_lava

    register_export_lava(export_app)


def _register_simulate(simulate_app: typer.Typer) -> None:
    """``simulate lava BUNDLE``."""
    from spikingbrain.neuromorphic.lava_cli import register_simulate_lava

    register_simulate_lava(simulate_app)
