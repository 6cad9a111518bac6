"""Where the W8ASpike conversion error of the embedded MiniLM comes from, and what calibration
does about it, on held-out sentences.

Prints mean cosine (sentence embeddings, 75 held-out standard-library sentences) against the
float model for: INT8 weights only (float activations), spiking activations only (float
weights), both (the converted model), both after clipping calibration on 128 other sentences;
then the five layers with the largest relative output error from each source, measured on the
layers' recorded float inputs. Run: ``python benchmarks/conversion_error.py [--k 3]``.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

from spikingbrain.converter import SpikeConfig, calibrate, convert
from spikingbrain.converter.quant import dequantize_weight, quantize_weight
from spikingbrain.data import embed, load_minilm, stdlib_sentences
from spikingbrain.neurons import adaptive_threshold


def _linears(model: nn.Module) -> dict[str, nn.Linear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}


def weights_only(model: nn.Module, cfg: SpikeConfig) -> nn.Module:
    m = copy.deepcopy(model)
    for lin in _linears(m).values():
        gs = cfg.group_size_for(lin.in_features)
        q, s = quantize_weight(lin.weight, gs)
        lin.weight.data = dequantize_weight(q, s, gs)
    return m


def spikes_only(model: nn.Module, cfg: SpikeConfig) -> nn.Module:
    m = copy.deepcopy(model)
    for lin in _linears(m).values():
        lin.register_forward_pre_hook(
            lambda mod, args: (adaptive_threshold(args[0], cfg.k).counts
                               * adaptive_threshold(args[0], cfg.k).vth,))
    return m


def cosine(model, tok, sentences, ref) -> float:
    emb = embed(model, tok, sentences)
    return float(torch.nn.functional.cosine_similarity(emb, ref, dim=-1).mean())


def layer_errors(model, tok, sentences, cfg):
    """Relative output error per layer from weight codes and from spike rounding."""
    inputs: dict[str, torch.Tensor] = {}
    lins = _linears(model)
    hs = [m.register_forward_pre_hook(lambda mod, a, n=n: inputs.setdefault(n, a[0].detach()))
          for n, m in lins.items()]
    with torch.no_grad():
        model(**tok(sentences[:16], padding=True, return_tensors="pt"))
    for h in hs:
        h.remove()
    rows = []
    torch.set_grad_enabled(False)
    for n, lin in lins.items():
        x = inputs[n].reshape(-1, lin.in_features)
        y = x @ lin.weight.T
        gs = cfg.group_size_for(lin.in_features)
        q, s = quantize_weight(lin.weight, gs)
        yw = x @ dequantize_weight(q, s, gs).T
        out = adaptive_threshold(x, cfg.k)
        ys = (out.counts * out.vth) @ lin.weight.T
        rows.append((n, float((yw - y).norm() / y.norm()), float((ys - y).norm() / y.norm()),
                     int(out.counts.abs().max())))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=float, default=3.0)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, tok = load_minilm()
    cfg = SpikeConfig(k=args.k)
    sentences = stdlib_sentences(203)
    calib, held = sentences[:128], sentences[128:]
    ref = embed(model, tok, held)
    rows = [("INT8 weights only (float activations)", weights_only(model, cfg)),
            ("spiking activations only (float weights)", spikes_only(model, cfg)),
            ("W8ASpike (both)", convert(copy.deepcopy(model), cfg))]
    batches = (tok(calib[i:i + 16], padding=True, return_tensors="pt")
               for i in range(0, 128, 16))
    rows.append(("W8ASpike after clipping calibration",
                 calibrate(copy.deepcopy(model), batches, n=128, config=cfg, show_progress=False)))
    print(f"MiniLM, k={args.k:g}, {len(held)} held-out sentences: mean cosine to float")
    for name, m in rows:
        print(f"  {name:45s} {cosine(m, tok, held, ref):.5f}")
    errs = layer_errors(model, tok, held, cfg)
    for col, label in ((1, "weight codes"), (2, "spike rounding")):
        print(f"largest relative output error from {label}:")
        for n, ew, es, cmax in sorted(errs, key=lambda r: -r[col])[:5]:
            print(f"  {n:45s} weights {ew:.4f}  spikes {es:.4f}  max|c| {cmax}")
    mw = sum(r[1] for r in errs) / len(errs)
    ms = sum(r[2] for r in errs) / len(errs)
    print(f"mean over {len(errs)} layers: weights {mw:.4f}, spikes {ms:.4f}")


if __name__ == "__main__":
    main()
