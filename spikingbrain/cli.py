"""The ``spikingbrain`` command.

Each subpackage contributes its commands through a ``commands`` module with a
``register(app)`` function; heavy imports stay inside the command bodies so that
``spikingbrain --help`` is instant.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="spikingbrain",
    help=(
        "Spiking mechanisms of the SpikingBrain models: adaptive-threshold spike counts, exact "
        "binary/ternary/bitwise spike coding, W8ASpike conversion of Hugging Face models, spike "
        "and energy analysis, text generation with spike statistics, and export to NIR and "
        "Intel Lava. Every command that loads a model takes --device (auto: cuda:0 when CUDA "
        "is available, else cpu), --dtype (auto: bf16 on CUDA) and --device-map auto."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_COMMAND_MODULES = (
    "spikingbrain.demo",
    "spikingbrain.converter.commands",
    "spikingbrain.models.commands",
    "spikingbrain.analysis.commands",
    "spikingbrain.neuromorphic.commands",
    "spikingbrain.generate_cli",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


@app.command()
def version() -> None:
    """Print the package version."""
    from spikingbrain import __version__

    typer.echo(__version__)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover - python -m spikingbrain.cli
    main()
