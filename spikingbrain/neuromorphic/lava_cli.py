"""CLI for the Lava backend: ``spikingbrain export lava`` and ``spikingbrain simulate lava``.

Registered from :mod:`spikingbrain.neuromorphic.commands`; heavy imports stay inside the
command bodies so that ``spikingbrain --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer

from spikingbrain.neuromorphic.cli_args import (
    GROUP_SIZE_OPTION,
    K_OPTION,
    MODEL_DIR_ARGUMENT,
    SCHEME_OPTION,
)
from spikingbrain.utils.cli_checks import fail, with_usage_errors
from spikingbrain.utils.placement import (
    DEVICE_MAP_OPTION,
    DEVICE_OPTION,
    DTYPE_OPTION,
    Placement,
)

__all__ = ["register_export_lava", "register_simulate_lava"]


def _prepare_export(model_dir: str, layers: str, out: Path, scheme: str, k: float,
                    group_size: int, placement: Placement | None = None) -> tuple:
    """Check every argument, then load the model and pick a chain of layers:
    ``(model, tokenizer, how, {name: layer}, bundle path)``."""
    from spikingbrain.neuromorphic.cli_args import (
        load_model_dir,
        model_dir_arg,
        out_file_arg,
        spike_config_arg,
    )
    from spikingbrain.neuromorphic.layer_select import check_chain, select_layers
    from spikingbrain.utils.placement import input_device

    if not layers.strip(" ,"):
        fail("--layers is empty; give a glob such as 'encoder.layer.0.intermediate.dense'")
    out = out_file_arg(out, ".npz")
    cfg = spike_config_arg(scheme, k, group_size)
    model_dir_arg(model_dir)
    model, tok, how = load_model_dir(model_dir, cfg, placement)
    try:
        chosen = select_layers(model, layers)
        probe = tok("a chain check", return_tensors="pt").to(input_device(model))
        check_chain(model, chosen, lambda: model(**probe))
    except ValueError as err:
        fail(str(err))
    return model, tok, how, chosen, out


def _token_inputs(model, tok, layer_name: str, n_tokens: int):
    """The first layer's real token inputs ``[n_tokens, in]``, run where the model is placed
    and returned on the CPU."""
    from spikingbrain.neuromorphic.lava import minilm_token_activations
    from spikingbrain.utils.placement import inputs_follow_model

    with inputs_follow_model(model):
        return minilm_token_activations(layer_name, n_tokens, model, tok).cpu()


def register_export_lava(export_app: typer.Typer) -> None:
    """Add ``lava`` to the ``export`` group."""

    @export_app.command("lava")
    @with_usage_errors
    def export_lava(
        model_dir: str = MODEL_DIR_ARGUMENT,
        layers: str = typer.Option(
            "encoder.layer.0.intermediate.dense", "--layers",
            help="glob over converted layer names (comma-separated globs allowed); several "
                 "matches must form a sequential chain in the model's data flow with "
                 "connecting shapes (parallel siblings such as query/key/value are refused: "
                 "export them one at a time)"),
        tokens: int = typer.Option(4, "--tokens", help="real tokens to export (>= 1)"),
        out: Path = typer.Option(Path("lava_bundle.npz"), "--out",  # noqa: B008
                                 help="bundle file (.npz is appended when missing)"),
        scheme: str = SCHEME_OPTION,
        k: float = K_OPTION,
        group_size: int = GROUP_SIZE_OPTION,
        device: str = DEVICE_OPTION,
        dtype: str = DTYPE_OPTION,
        device_map: str | None = DEVICE_MAP_OPTION,
    ) -> None:
        """Write a self-contained Lava bundle: INT8 weights, scales, input spike trains of
        real tokens (standard-library sentences) and torch's reference results.

        The model runs on --device (--dtype, --device-map) to produce the layer inputs; the
        selected layers and those inputs come back to the CPU, where torch's reference results
        are computed. Simulate the bundle with `spikingbrain simulate lava BUNDLE`.
        """
        if tokens < 1:
            fail(f"--tokens must be >= 1, got {tokens}")
        placement = Placement(device, dtype, device_map)
        model, tok, how, chosen, out = _prepare_export(model_dir, layers, out, scheme, k,
                                                       group_size, placement)
        from spikingbrain.neuromorphic.bundle import write_bundle
        from spikingbrain.utils.placement import modules_to_cpu

        try:
            x = _token_inputs(model, tok, next(iter(chosen)), tokens)
            modules_to_cpu(chosen)
            path = write_bundle(list(chosen.values()), x, out, names=list(chosen))
        except (ValueError, TypeError) as err:
            fail(str(err))
        typer.echo(f"model: {model_dir}: {how}")
        names = " -> ".join(f"{n} ({m.in_features}->{m.out_features}, {m.config.scheme})"
                            for n, m in chosen.items())
        typer.echo(f"wrote {path}: {tokens} tokens through {names}")


def register_simulate_lava(simulate_app: typer.Typer) -> None:
    """Add ``lava`` to the ``simulate`` group."""

    @simulate_app.command("lava")
    @with_usage_errors
    def simulate_lava(
        bundle: Path = typer.Argument(..., help="bundle written by `spikingbrain export lava`"),  # noqa: B008
        tags: str = typer.Option("floating_pt,fixed_pt", "--tags",
                                 help="Loihi2SimCfg tags to run, comma-separated"),
        out: Path = typer.Option(None, "--out",  # noqa: B008
                                 help="results file (.npz appended when missing; default: "
                                      "<bundle>.results.npz); never the bundle itself"),
        python: str = typer.Option(None, "--python", envvar="SPIKINGBRAIN_LAVA_PYTHON",
                                   help="Python 3.10 interpreter with lava-nc (default: "
                                        "in-process if lava imports, else .venv-lava)"),
    ) -> None:
        """Simulate a bundle on Lava's Loihi 2 simulator (floating and fixed point) and print the
        agreement with torch: exact matches of integer accumulators, max |difference|, time.

        Exit status 1 when any accumulator differs from torch.
        """
        from spikingbrain.neuromorphic.cli_args import bundle_arg, results_arg
        from spikingbrain.neuromorphic.lava import LavaEnvironmentError, simulate_bundle
        from spikingbrain.neuromorphic.lava_runner import TAGS

        tag_list = [t.strip() for t in tags.split(",") if t.strip()]
        if not tag_list or any(t not in TAGS for t in tag_list):
            fail(f"--tags must name one or more of {', '.join(TAGS)}, got {tags!r}")
        path = bundle_arg(bundle)
        out = results_arg(out, path)
        try:
            res = simulate_bundle(path, tags=tag_list, out=out, python=python)
        except LavaEnvironmentError as err:
            typer.echo(f"spikingbrain: error: {err}", err=True)
            raise typer.Exit(3) from None
        except ValueError as err:
            fail(str(err))
        typer.echo(str(res))
        typer.echo(f"results: {res.results_path}")
        if not res.exact:
            raise typer.Exit(1)
