"""CLI for the Lava backend: ``spikingbrain export lava`` and ``spikingbrain simulate lava``.

Registered from :mod:`spikingbrain.neuromorphic.commands`; heavy imports stay inside the
command bodies so that ``spikingbrain --help`` stays instant.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import typer

from spikingbrain.utils.cli_checks import EMBEDDED, UsageError, check_out_file, fail

__all__ = ["check_sequential", "load_model", "register_export_lava", "register_simulate_lava",
           "select_layers"]


def select_layers(model, pattern: str) -> list[tuple[str, object]]:
    """``(name, SpikingLinear)`` pairs matching the glob ``pattern`` (comma-separated globs
    allowed), in model order; several must form a chain (``out_features`` of one =
    ``in_features`` of the next). :func:`check_sequential` checks the data flow."""
    from spikingbrain.converter.convert import select_layers as match

    chosen = list(match(model, pattern).items())
    for (n0, a), (n1, b) in itertools.pairwise(chosen):
        if a.out_features != b.in_features:
            raise ValueError(
                f"the layers matching {pattern!r} do not form a chain: {n0} gives "
                f"{a.out_features} features but {n1} takes {b.in_features}; use a narrower "
                f"pattern (one layer, or consecutive layers of matching shapes)")
    return chosen


def check_sequential(model, tokenizer, names: list[str]) -> None:
    """Refuse layers that are parallel in the model's data flow (siblings such as q/k/v,
    which read the same input) even when their shapes chain: a Lava bundle runs its layers
    one after the other. One forward pass on a short real sentence records every layer's
    input and the order the layers run in."""
    import torch

    from spikingbrain.data import stdlib_sentences

    if len(names) < 2:
        return
    mods = dict(model.named_modules())
    seen: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def hook(name):
        def record(mod, args, out):
            if name not in seen:
                seen[name] = args[0].detach()
                order.append(name)
        return record

    handles = [mods[n].register_forward_hook(hook(n)) for n in names]
    try:
        batch = tokenizer(stdlib_sentences(1), return_tensors="pt")
        with torch.no_grad():
            model(**batch)
    finally:
        for h in handles:
            h.remove()
    for a, b in itertools.pairwise(names):
        if a not in seen or b not in seen:
            raise ValueError(f"layer {a if a not in seen else b} did not run on a real sentence; "
                             f"it cannot be part of a chain")
        if order.index(b) < order.index(a) or (seen[a].shape == seen[b].shape
                                               and torch.equal(seen[a], seen[b])):
            raise ValueError(
                f"{a} and {b} run in parallel in the model (they read the same input), not one "
                f"after the other, so they cannot be chained in one Lava bundle; export them "
                f"one at a time (--layers {a}, then --layers {b})")


def load_model(model_dir: str, scheme: str, k: float, group_size: int):
    """``(model, tokenizer, description)`` through the shared loader
    (:func:`spikingbrain.converter.folder.load_model_folder`): a converted folder as saved, a
    Hugging Face folder or ``minilm`` converted on the fly with the given options."""
    from spikingbrain.converter import SpikeConfig
    from spikingbrain.converter.folder import load_model_folder

    loaded = load_model_folder(model_dir, SpikeConfig(scheme=scheme, k=k, group_size=group_size))
    return loaded.model, loaded.tokenizer, loaded.description


def _token_inputs(model, tok, layer_name: str, n_tokens: int):
    from spikingbrain.neuromorphic.lava import minilm_token_activations

    return minilm_token_activations(layer_name, n_tokens, model, tok)


def register_export_lava(export_app: typer.Typer) -> None:
    """Add ``lava`` to the ``export`` group."""

    @export_app.command("lava")
    def export_lava(
        model_dir: str = typer.Argument(
            ..., help=f"a converted model folder (spikingbrain convert), a Hugging Face model "
                      f"folder (converted on the fly with --scheme/--k/--group-size), or "
                      f"'{EMBEDDED}' for the embedded all-MiniLM-L6-v2"),
        layers: str = typer.Option(
            "encoder.layer.0.intermediate.dense", "--layers",
            help="glob over converted layer names (comma-separated globs allowed); several "
                 "matches form a chain in model order"),
        tokens: int = typer.Option(4, "--tokens", min=1, help="real tokens to export"),
        out: Path = typer.Option(Path("lava_bundle.npz"), "--out",  # noqa: B008
                                 help="bundle file; .npz is appended when missing"),
        scheme: str = typer.Option("bitwise_bidirectional", help="scheme for on-the-fly conversion"),
        k: float = typer.Option(3.0, help="threshold divisor k for on-the-fly conversion"),
        group_size: int = typer.Option(128, help="weight group size for on-the-fly conversion"),
    ) -> None:
        """Write a self-contained Lava bundle: INT8 weights, scales, input spike trains of
        real tokens (standard-library sentences) and torch's reference results.

        Simulate it with `spikingbrain simulate lava BUNDLE`.
        """
        from spikingbrain.neuromorphic.bundle import write_bundle

        try:
            out = check_out_file(out, "--out", suffix=".npz")
            model, tok, how = load_model(model_dir, scheme, k, group_size)
            chosen = select_layers(model, layers)
            check_sequential(model, tok, [n for n, _ in chosen])
            x = _token_inputs(model, tok, chosen[0][0], tokens)
            path = write_bundle([m for _, m in chosen], x, out, names=[n for n, _ in chosen])
        except (UsageError, ValueError, TypeError) as err:
            fail(str(err))
        names = " -> ".join(f"{n} ({m.in_features}->{m.out_features}, {m.config.scheme})"
                            for n, m in chosen)
        typer.echo(f"model: {how}")
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
        if not bundle.exists() and bundle.suffix != ".npz" and \
                bundle.with_name(bundle.name + ".npz").is_file():
            bundle = bundle.with_name(bundle.name + ".npz")  # as `export lava --out NAME` wrote it
        if bundle.is_dir():
            fail(f"BUNDLE {bundle} is a directory; give the .npz file written by "
                 f"'spikingbrain export lava'")
        try:
            res = simulate_bundle(bundle, tags=tag_list, out=out, python=python)
        except LavaEnvironmentError as err:
            typer.echo(f"spikingbrain: error: {err}", err=True)
            raise typer.Exit(3) from None
        except ValueError as err:
            fail(str(err))
        typer.echo(str(res))
        typer.echo(f"results: {res.results_path}")
        if not res.exact:
            raise typer.Exit(1)
