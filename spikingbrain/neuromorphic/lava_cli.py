"""CLI for the Lava backend: ``spikingbrain export lava`` and ``spikingbrain simulate lava``.

Registered from :mod:`spikingbrain.neuromorphic.commands`; heavy imports stay inside the
command bodies so that ``spikingbrain --help`` stays instant.
"""

from __future__ import annotations

import fnmatch
import itertools
from pathlib import Path

import typer

__all__ = ["load_model", "register_export_lava", "register_simulate_lava", "select_layers"]

EMBEDDED = "minilm"


def select_layers(model, pattern: str) -> list[tuple[str, object]]:
    """``(name, SpikingLinear)`` pairs whose module name matches the glob ``pattern``, in model
    order; several must form a chain (``out_features`` of one = ``in_features`` of the next).

    Comma-separated patterns are allowed (``"*.0.intermediate.dense,*.0.output.dense"``).
    """
    from spikingbrain.converter import spiking_layers

    layers = spiking_layers(model)
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    chosen = [(n, m) for n, m in layers.items() if any(fnmatch.fnmatchcase(n, p) for p in pats)]
    if not chosen:
        some = ", ".join(list(layers)[:6])
        raise ValueError(f"no converted layer matches {pattern!r}; layer names look like: {some}")
    for (n0, a), (n1, b) in itertools.pairwise(chosen):
        if a.out_features != b.in_features:
            raise ValueError(
                f"the layers matching {pattern!r} do not form a chain: {n0} gives "
                f"{a.out_features} features but {n1} takes {b.in_features}; use a narrower "
                f"pattern (one layer, or consecutive layers of matching shapes)")
    return chosen


def load_model(model_dir: str, scheme: str, k: float, group_size: int):
    """``(model, tokenizer)``: a folder saved by ``save_converted`` (Hugging Face models), or
    ``minilm``: the embedded all-MiniLM-L6-v2 converted on the fly with the given options."""
    from spikingbrain.converter import SpikeConfig, convert, load_converted
    from spikingbrain.data import load_minilm

    if model_dir == EMBEDDED:
        model, tok = load_minilm()
        convert(model, SpikeConfig(scheme=scheme, k=k, group_size=group_size))
        return model, tok
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ValueError(f"MODEL_DIR {model_dir!r} is not a folder (a folder written by "
                         f"'spikingbrain convert' / save_converted, or '{EMBEDDED}')")
    model = load_converted(folder).eval()
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception:  # noqa: BLE001 - no tokenizer in the folder: try the embedded one
        _, tok = load_minilm()
        vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        if vocab != tok.vocab_size:
            raise ValueError(
                f"{model_dir} has no tokenizer; save one there with "
                f"tokenizer.save_pretrained({model_dir!r})") from None
    return model, tok


def _token_inputs(model, tok, layer_name: str, n_tokens: int):
    from spikingbrain.neuromorphic.lava import minilm_token_activations

    return minilm_token_activations(layer_name, n_tokens, model, tok)


def register_export_lava(export_app: typer.Typer) -> None:
    """Add ``lava`` to the ``export`` group."""

    @export_app.command("lava")
    def export_lava(
        model_dir: str = typer.Argument(
            ..., help=f"converted model folder (save_converted), or '{EMBEDDED}' for the "
                      f"embedded all-MiniLM-L6-v2 converted on the fly"),
        layers: str = typer.Option(
            "encoder.layer.0.intermediate.dense", "--layers",
            help="glob over converted layer names (comma-separated globs allowed); several "
                 "matches form a chain in model order"),
        tokens: int = typer.Option(4, "--tokens", min=1, help="real tokens to export"),
        out: Path = typer.Option(Path("lava_bundle.npz"), "--out", help="bundle file (.npz)"),  # noqa: B008
        scheme: str = typer.Option("bitwise_bidirectional", help=f"scheme (only for '{EMBEDDED}')"),
        k: float = typer.Option(3.0, help=f"threshold divisor (only for '{EMBEDDED}')"),
        group_size: int = typer.Option(128, help=f"weight group size (only for '{EMBEDDED}')"),
    ) -> None:
        """Write a self-contained Lava bundle: INT8 weights, scales, input spike trains of
        real tokens (standard-library sentences) and torch's reference results.

        Simulate it with `spikingbrain simulate lava BUNDLE`.
        """
        from spikingbrain.neuromorphic.bundle import write_bundle

        try:
            model, tok = load_model(model_dir, scheme, k, group_size)
            chosen = select_layers(model, layers)
            x = _token_inputs(model, tok, chosen[0][0], tokens)
            path = write_bundle([m for _, m in chosen], x, out, names=[n for n, _ in chosen])
        except (ValueError, TypeError) as err:
            raise typer.BadParameter(str(err)) from None
        names = " -> ".join(f"{n} ({m.in_features}->{m.out_features}, {m.config.scheme})"
                            for n, m in chosen)
        typer.echo(f"wrote {path}: {tokens} tokens through {names}")


def register_simulate_lava(simulate_app: typer.Typer) -> None:
    """Add ``lava`` to the ``simulate`` group."""

    @simulate_app.command("lava")
    def simulate_lava(
        bundle: Path = typer.Argument(..., help="bundle written by `spikingbrain export lava`"),  # noqa: B008
        tags: str = typer.Option("floating_pt,fixed_pt", "--tags",
                                 help="Loihi2SimCfg tags to run, comma-separated"),
        out: Path = typer.Option(None, "--out",  # noqa: B008
                                 help="results file (default: <bundle>.results.npz)"),
        python: str = typer.Option(None, "--python", envvar="SPIKINGBRAIN_LAVA_PYTHON",
                                   help="Python 3.10 interpreter with lava-nc (default: "
                                        "in-process if lava imports, else .venv-lava)"),
    ) -> None:
        """Simulate a bundle on Lava's Loihi 2 simulator (floating and fixed point) and print the
        agreement with torch: exact matches of integer accumulators, max |difference|, time.

        Exit status 1 when any accumulator differs from torch.
        """
        from spikingbrain.neuromorphic.lava import LavaEnvironmentError, simulate_bundle

        tag_list = [t.strip() for t in tags.split(",") if t.strip()]
        try:
            res = simulate_bundle(bundle, tags=tag_list, out=out, python=python)
        except LavaEnvironmentError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(3) from None
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
        typer.echo(str(res))
        typer.echo(f"results: {res.results_path}")
        if not res.exact:
            raise typer.Exit(1)
