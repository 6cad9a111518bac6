"""``spikingbrain demo``: the whole pipeline on the embedded model, in one command.

1. spike coding: real activations of all-MiniLM-L6-v2 on standard-library sentences become
   integer counts (adaptive threshold, k=3) and spike trains under every scheme; a table of
   T, firing rate and sparsity, an exactness check, and a raster PNG (time x neuron);
2. conversion: W8ASpike (INT8 weights, spiking inputs) vs float, similarity and memory;
3. analysis: the HTML/Markdown/JSON spike and energy report in ``report/``;
4. neuromorphic: one layer simulated on Intel Lava, agreement with torch;
5. a trained causal LM: the embedded SmolLM2-135M converted to W8ASpike, perplexity float
   vs spiking on held-out prose, spikes per token and a raster (:mod:`spikingbrain.demo_llm`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

__all__ = ["register", "coding_stage", "capture_layer_input"]

DEMO_LAYER = "encoder.layer.3.intermediate.dense"


def capture_layer_input(model: Any, tokenizer: Any, sentences: list[str], layer: str) -> Any:
    """Float inputs ``[tokens, in_features]`` of ``layer`` over ``sentences`` (padding dropped)."""
    import torch

    module = model.get_submodule(layer)
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    try:
        batch = tokenizer(sentences, padding=True, truncation=True, max_length=64,
                          return_tensors="pt")
        with torch.no_grad():
            model(**batch)
    finally:
        handle.remove()
    mask = batch["attention_mask"].bool()
    return seen[0][mask]


def coding_stage(x: Any, out_dir: Path, layer: str = DEMO_LAYER, k: float = 3.0) -> list[dict]:
    """Counts and spike trains of activations ``x [tokens, channels]`` under every scheme.

    Prints a table, checks that every train decodes to its counts, writes ``raster.png``, and
    returns one row per scheme. Unsigned schemes (binary, bitwise) carry magnitudes ``|c|``.
    """
    import torch
    from rich.console import Console
    from rich.table import Table

    from spikingbrain.analysis.plots import save_figure, scheme_raster_figure
    from spikingbrain.coding import decode, encode, get_scheme, scheme_names
    from spikingbrain.neurons import adaptive_threshold

    counts, vth = adaptive_threshold(x, k=k)
    c = counts.to(torch.int32)
    rows = []
    table = Table(title=f"Spike coding of {c.shape[0]} real tokens x {c.shape[1]} channels "
                        f"({layer} input, k={k:g})")
    for col, just in (("scheme", "left"), ("encodes", "left"), ("T", "right"),
                      ("spikes/channel", "right"), ("firing rate", "right"),
                      ("sparsity", "right"), ("exact", "center")):
        table.add_column(col, justify=just, no_wrap=True,
                         min_width=max(map(len, scheme_names())) if col == "scheme" else None)
    for scheme in scheme_names():
        spec = get_scheme(scheme)
        values = c if spec.signed else c.abs()
        spikes = encode(values, scheme)
        exact = bool(torch.equal(decode(spikes, scheme), values))
        nz = int((spikes != 0).sum())
        T = spikes.shape[0]
        row = {"scheme": scheme, "T": T, "spikes_per_channel": nz / values.numel(),
               "firing_rate": nz / spikes.numel(), "sparsity": 1 - nz / spikes.numel(),
               "exact": exact}
        rows.append(row)
        table.add_row(scheme, "c" if spec.signed else "|c|", str(T),
                      f"{row['spikes_per_channel']:.2f}", f"{row['firing_rate']:.3f}",
                      f"{row['sparsity']:.1%}", "yes" if exact else "NO")
    # never truncate the scheme names, also on a narrow or non-terminal console
    console = Console()
    Console(width=max(console.width, 110)).print(table)
    a = c.abs()
    typer.echo(f"counts: |c| <= 7 for {(a <= 7).float().mean():.1%}, > 16 for "
               f"{(a > 16).float().mean():.2%}, silent channels {(a == 0).float().mean():.1%}, "
               f"max |c| {int(a.max())}")
    fig = scheme_raster_figure(c[:6, :48], layer=layer,
                               schemes=("ternary", "bitwise_bidirectional",
                                        "bitwise_twos_complement"))
    path = save_figure(fig, out_dir / "raster.png")
    typer.echo(f"raster: {path}")
    if not all(r["exact"] for r in rows):
        raise RuntimeError("a spike train did not decode to its counts")
    return rows


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""

    @app.command()
    def demo(
        out: Path = typer.Option(Path("demo_out"), help="folder for the raster PNG and the "
                                 "Lava bundle"),
        report: Path = typer.Option(Path("report"), help="folder for the analysis report"),
        sentences: int = typer.Option(16, min=1, help="real sentences for the coding stage"),
        lava: bool = typer.Option(True, help="simulate one layer on Intel Lava"),
        llm: bool = typer.Option(True, help="convert the embedded SmolLM2-135M causal LM "
                                 "and compare its perplexity float vs W8ASpike"),
    ) -> None:
        """Run the whole toolkit on the embedded all-MiniLM-L6-v2 and real English text.

        Prints the spike coding table, the conversion summary and the Lava agreement, and writes
        OUT/raster.png, OUT/llm_raster.png and REPORT/index.html (with report.json, report.md
        and the plots).
        """
        from spikingbrain.data import load_minilm, stdlib_sentences

        t0 = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        model, tok = load_minilm()
        typer.secho("== 1. spike coding", bold=True)
        x = capture_layer_input(model, tok, stdlib_sentences(sentences), DEMO_LAYER)
        coding_stage(x, out)

        typer.secho("\n== 2. W8ASpike conversion", bold=True)
        from spikingbrain.converter import demo_summary

        demo_summary(model=model, tokenizer=tok)

        typer.secho("\n== 3. spike and energy analysis", bold=True)
        from spikingbrain.analysis.pipeline import demo_report

        demo_report(report, model=model, tokenizer=tok)
        typer.echo(f"report: {report / 'index.html'}")

        if lava:
            typer.secho("\n== 4. Intel Lava simulation", bold=True)
            from spikingbrain.neuromorphic.lava import demo_agreement

            demo_agreement(n_tokens=4, model=model, tokenizer=tok, out_dir=out / "lava")

        if llm:
            typer.secho("\n== 5. a trained causal LM: SmolLM2-135M -> W8ASpike", bold=True)
            from spikingbrain.demo_llm import llm_stage

            llm_stage(out, passages=3)
        typer.echo(f"\ndemo finished in {time.perf_counter() - t0:.0f} s")
