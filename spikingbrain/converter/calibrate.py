"""Weight-clipping calibration: pick each row/group's scale by minimising output error.

For every layer to convert, the float model is run on calibration inputs and the layer inputs
``x`` are recorded (at most ``max_tokens`` rows per layer). The spiking input ``x_hat = Vth *
counts`` follows from ``x``. For each candidate ratio ``r`` (1.0 = absmax first) the weight is
quantised with ``scale = r * absmax / 127`` and the squared error of each row/group's partial
output, ``sum_n (W[o, g] . x[n, g] - Q_r(W)[o, g] . x_hat[n, g])**2``, is measured; each
row/group keeps the ratio with the smallest error (ties keep absmax). Then the model is
converted with those ratios. With one group per row (granularity ``"channel"``) this is exactly
the layer's output error; with groups it ignores cross-group terms.

>>> import torch
>>> from torch import nn
>>> torch.manual_seed(0) is not None
True
>>> net = nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 4))
>>> data = [torch.randn(32, 16) for _ in range(2)]
>>> net = calibrate(net, data, n=64, config=SpikeConfig(group_size=8), show_progress=False)
>>> type(net[0]).__name__
'SpikingLinear'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from spikingbrain.converter.config import SpikeConfig
from spikingbrain.converter.convert import convert, is_convertible, output_head_names
from spikingbrain.converter.layer import SpikingLinear, linear_weight
from spikingbrain.converter.quant import grouped, quantize_weight

__all__ = ["DEFAULT_RATIOS", "calibrate", "layer_clip_ratios"]

#: Candidate clipping ratios (absmax first, so ties keep absmax).
DEFAULT_RATIOS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)


def layer_clip_ratios(weight: torch.Tensor, x: torch.Tensor, config: SpikeConfig,
                      ratios: Iterable[float] = DEFAULT_RATIOS) -> torch.Tensor:
    """Best clipping ratio per row and group ``[out, n_groups]`` for one layer.

    Args:
        weight: float weight ``[out, in]``.
        x: calibration inputs ``[M, in]`` of the layer (float activations).
        config: the conversion config (k, max_count, T, granularity).
        ratios: candidate ratios in (0, 1].

    >>> w = torch.randn(4, 8); x = torch.randn(64, 8)
    >>> r = layer_clip_ratios(w, x, SpikeConfig(granularity="channel"))
    >>> r.shape, bool((r <= 1).all())
    (torch.Size([4, 1]), True)
    """
    ratios = [float(r) for r in ratios]
    if not ratios or any(not (0 < r <= 1) for r in ratios):
        raise ValueError(f"ratios must be a non-empty list of values in (0, 1], got {ratios}")
    w = weight.detach().float()
    out_f, in_f = w.shape
    probe = SpikingLinear(in_f, out_f, config, bias=False, device=w.device)
    gs = probe.group_size
    x = x.detach().float().reshape(-1, in_f)
    counts, vth, _ = probe.spike_counts(x)
    xg = grouped(x, gs)  # [M, G, g]
    xh = grouped(counts * vth, gs)
    wg = grouped(w, gs)  # [O, G, g]
    M = x.shape[0]
    G = xg.shape[1]
    chunk = max(1, (1 << 24) // max(1, M * G))
    best_err = torch.full((out_f, G), float("inf"), device=w.device)
    best = torch.ones(out_f, G, device=w.device)
    for r in ratios:
        q, s = quantize_weight(w, gs, r)
        qg = grouped(q.float(), gs) * s.unsqueeze(-1)  # dequantised [O, G, g]
        err = torch.empty(out_f, G, device=w.device)
        for o0 in range(0, out_f, chunk):
            sl = slice(o0, o0 + chunk)
            ref = torch.einsum("mgi,ogi->ogm", xg, wg[sl])
            got = torch.einsum("mgi,ogi->ogm", xh, qg[sl])
            err[sl] = (ref - got).square().sum(-1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, torch.full_like(best, r), best)
    return best


def _call(model: nn.Module, batch: Any) -> None:
    if isinstance(batch, dict) or hasattr(batch, "keys"):
        model(**batch)
    elif isinstance(batch, (tuple, list)):
        model(*batch)
    else:
        model(batch)


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() else 1
    if isinstance(batch, dict) or hasattr(batch, "keys"):
        for v in batch.values():
            if isinstance(v, torch.Tensor) and v.dim():
                return v.shape[0]
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0].shape[0]
    return 1


def calibrate(
    model: nn.Module,
    batches: Iterable[Any],
    n: int = 128,
    config: SpikeConfig | None = None,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
    *,
    ratios: Iterable[float] = DEFAULT_RATIOS,
    max_tokens: int = 2048,
    show_progress: bool = True,
) -> nn.Module:
    """Convert ``model`` with weight clipping calibrated on ``n`` samples (in place).

    Args:
        model: the float model (calibration needs the float weights, which ``convert``
            drops; calibrate instead of converting first).
        batches: iterable of model inputs: a tensor, a tuple of positional arguments, or a dict
            of keyword arguments (e.g. a tokenizer's output). Its first dimension is counted.
        n: calibration samples to use (128 as in the report); iteration stops after ``n``.
        config, filter_fn: as in :func:`convert`.
        ratios: candidate clipping ratios (absmax = 1.0 is always tried first).
        max_tokens: rows of activations kept per layer (the first ones seen).
        show_progress: show a rich progress bar.

    Returns:
        the converted model.
    """
    from rich.progress import Progress

    config = SpikeConfig() if config is None else config
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if filter_fn is None:
        heads = output_head_names(model)

        def filter_fn(mod: nn.Module, name: str) -> bool:
            return is_convertible(mod) and name not in heads

    targets = {name: mod for name, mod in model.named_modules()
               if not isinstance(mod, SpikingLinear) and filter_fn(mod, name)
               and is_convertible(mod)}
    if not targets:
        raise ValueError(
            "calibrate found no float linear layer to convert; it needs the float model "
            "(convert() drops the float weights): call calibrate(float_model, batches, "
            "config=...) instead of convert()"
        )
    captured: dict[str, list[torch.Tensor]] = {name: [] for name in targets}
    rows = dict.fromkeys(targets, 0)

    def make_hook(name: str):
        def hook(mod, args):
            if rows[name] >= max_tokens or not args:
                return
            x = args[0].detach().reshape(-1, args[0].shape[-1])[: max_tokens - rows[name]]
            captured[name].append(x.float().cpu())
            rows[name] += x.shape[0]
        return hook

    handles = [mod.register_forward_pre_hook(make_hook(name)) for name, mod in targets.items()]
    seen = 0
    try:
        with Progress(transient=True, disable=not show_progress) as bar, torch.no_grad():
            task = bar.add_task("calibration forward passes", total=n)
            for batch in batches:
                _call(model, batch)
                b = _batch_size(batch)
                seen += b
                bar.advance(task, b)
                if seen >= n:
                    break
            if seen == 0:
                raise ValueError("batches yielded no calibration input")
            ratios_by_layer: dict[str, torch.Tensor] = {}
            task = bar.add_task("choosing weight clipping", total=len(targets))
            for name, mod in targets.items():
                if captured[name]:
                    x = torch.cat(captured[name]).to(linear_weight(mod).device)
                    ratios_by_layer[name] = layer_clip_ratios(linear_weight(mod), x, config,
                                                              ratios)
                captured[name] = []
                bar.advance(task)
    finally:
        for h in handles:
            h.remove()
    return convert(model, config, lambda m, nm: nm in targets, clip_ratios=ratios_by_layer)
