"""The demo's LLM stage: the embedded SmolLM2-135M (a trained causal LM) converted to W8ASpike.

Held-out English prose (``pydoc_data`` passages the calibration side never sees) runs through
the float model and the W8ASpike model (k = 3, count mode): perplexity of each, their ratio,
top-1 agreement, the spikes per channel and silent fraction per token under the
sign-magnitude bitwise coder, and a raster of one layer's first tokens (time steps x channels).

>>> import inspect
>>> "perplexity" in inspect.getsource(llm_stage)
True
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

__all__ = ["RASTER_LAYER", "llm_stage", "perplexity"]

RASTER_LAYER = "model.layers.15.mlp.down_proj"


def perplexity(model: Any, ids: Any) -> tuple[float, Any]:
    """``(perplexity, argmax [B, L])`` of next-token prediction over ``ids [B, L]``."""
    import torch

    with torch.no_grad():
        logits = model(ids).logits.float()
    logp = torch.log_softmax(logits[:, :-1], -1)
    nll = -logp.gather(-1, ids[:, 1:, None]).mean()
    return math.exp(float(nll)), logits.argmax(-1)


def llm_stage(out_dir: Path, passages: int = 4, tokens: int = 128, k: float = 3.0
              ) -> dict[str, Any]:
    """Run the stage, print its lines, write ``out_dir / "llm_raster.png"``; returns the
    figures."""
    import torch
    import typer

    from spikingbrain.analysis import SpikeMonitor
    from spikingbrain.analysis.plots import raster, save_figure
    from spikingbrain.coding import encode
    from spikingbrain.converter import SpikeConfig, convert
    from spikingbrain.data_llm import load_smollm2, pydoc_passages

    t0 = time.perf_counter()
    model, tok = load_smollm2()
    rows = []
    for text in pydoc_passages("heldout"):
        ids = tok(text).input_ids
        if len(ids) >= tokens:
            rows.append(ids[:tokens])
        if len(rows) == passages:
            break
    ids = torch.tensor(rows)
    ppl_float, top_float = perplexity(model, ids)
    spiking = convert(copy.deepcopy(model), SpikeConfig(k=k, scheme="bitwise_bidirectional",
                                                       mode="count")).eval()
    mon = SpikeMonitor(spiking, sample={RASTER_LAYER: (8, 48)})
    mon.attach()
    try:
        ppl_spk, top_spk = perplexity(spiking, ids)
    finally:
        mon.detach()
    st = mon.stats().total
    agree = float((top_spk[:, :-1] == top_float[:, :-1]).float().mean())
    typer.echo(f"SmolLM2-135M on {ids.numel()} held-out tokens ({len(rows)} pydoc passages): "
               f"perplexity float {ppl_float:.2f}, W8ASpike k={k:g} {ppl_spk:.2f} "
               f"({ppl_spk / ppl_float:.3f}x), top-1 agreement {agree:.1%}")
    typer.echo(f"spikes: {st.mean_spikes_per_channel:.3f} per channel per token, silent "
               f"{st.silent_fraction:.1%}, |c| <= 7 for {st.fraction_le_7:.1%} "
               f"(SpikingBrain-7B report: 1.13, 18.4 %, 95.1 %)")
    counts = mon.samples()[RASTER_LAYER].to(torch.int64)  # [8 tokens, 48 channels]
    trains = encode(counts, "bitwise_bidirectional")  # [T, 8, 48]
    T = trains.shape[0]
    ax = raster(trains.transpose(0, 1).reshape(-1, counts.shape[1]), legend=True)
    for j in range(1, counts.shape[0]):  # token boundaries
        ax.axvline(j * T - 0.5, color="0.85", lw=0.6, zorder=0)
    ax.set_xlabel(f"time step ({counts.shape[0]} tokens x T={T}, most significant bit first)")
    ax.set_title(f"SmolLM2-135M W8ASpike (k={k:g}): input spikes of {RASTER_LAYER}",
                 fontsize=8)
    path = save_figure(ax.figure, Path(out_dir) / "llm_raster.png")
    typer.echo(f"raster: {path} ({time.perf_counter() - t0:.0f} s for this stage)")
    return {"perplexity_float": ppl_float, "perplexity_w8aspike": ppl_spk,
            "top1_agreement": agree, "mean_spikes_per_channel": st.mean_spikes_per_channel,
            "silent_fraction": st.silent_fraction, "raster": str(path)}
