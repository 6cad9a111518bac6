"""``SpikingLinear.forward`` through the Triton kernels: threshold, then one fused GEMM.

:func:`unsupported_reason` says why a layer / input pair cannot take this path (None when it
can); :func:`spiking_linear_triton` runs it. The converter calls both from
``SpikingLinear.forward`` when ``SpikeConfig.kernel`` is ``"auto"`` (CUDA tensors) or
``"triton"``.

>>> import torch
>>> from torch import nn
>>> from spikingbrain.converter import SpikeConfig, SpikingLinear
>>> from spikingbrain.kernels.spiking_linear_triton import spiking_linear_triton
>>> _ = torch.manual_seed(0)
>>> layer = SpikingLinear.from_linear(nn.Linear(32, 16), SpikeConfig(group_size=16))
>>> x = torch.randn(4, 32)
>>> y, _ = spiking_linear_triton(layer, x)
>>> float((y - layer(x)).abs().max()) < 1e-5
True
"""

from __future__ import annotations

import torch

from spikingbrain.kernels.threshold_triton import exact_counts, threshold_counts
from spikingbrain.kernels.w8a_gemm_triton import MAX_EXACT_COUNT, w8a_gemm
from spikingbrain.neurons.emitter import SpikeRecord

__all__ = ["unsupported_reason", "spiking_linear_triton"]

_X_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def unsupported_reason(layer, x: torch.Tensor) -> str | None:
    """Why ``layer(x)`` cannot run on the Triton kernels, or None when it can."""
    cfg = layer.config
    if cfg.mode not in ("count", "spike"):
        return f"mode {cfg.mode!r} (the kernels implement 'count' and 'spike')"
    if cfg.compute_dtype != torch.float32:
        return f"compute_dtype {cfg.compute_dtype} (the kernels' epilogue is float32)"
    if x.dtype not in _X_DTYPES:
        return f"input dtype {x.dtype} (float16, bfloat16 or float32 only)"
    if layer.qdata.dtype != torch.int8:
        return "int16 weight codes (imported codes beyond int8 take the torch path)"
    if layer.n_groups > 1 and (layer.group_size < 16 or layer.group_size & (layer.group_size - 1)):
        return f"group size {layer.group_size} (a power of two >= 16, or one group per row)"
    lo, hi = cfg.count_limits()
    bound = cfg.k * layer.in_features  # |x_i| / (mean|x| / k) <= k * in_features
    if lo is not None:
        bound = min(bound, max(-lo, hi))
    if bound > MAX_EXACT_COUNT:
        return f"counts may reach {bound:.0f} (k x in_features), beyond the kernels' 2**21"
    if x.device.type != "cuda":
        from spikingbrain.kernels.triton_support import interpreting
        if not interpreting():
            return f"device {x.device.type} (the compiled kernels need CUDA tensors)"
    return None


def spiking_linear_triton(layer, x: torch.Tensor) -> tuple[torch.Tensor, SpikeRecord | None]:
    """``y = layer(x)`` through the kernels, and the :class:`SpikeRecord` (None when the
    layer has no observers, so no counts are materialised)."""
    cfg = layer.config
    lead = x.shape[:-1]
    x2 = x.reshape(-1, layer.in_features)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    lo, hi = cfg.count_limits()
    scheme = cfg.scheme if cfg.mode == "spike" else None
    t = threshold_counts(x2, cfg.k, lo, hi)
    if cfg.check_finite:
        _check_finite(x2, t.vth)
    y, _ = w8a_gemm(x2, t, layer.qdata, layer.scale, layer.bias, layer.group_size, scheme,
                    scale_t=_scale_t(layer) if x2.is_cuda and scheme is None else None)
    record = None
    if layer._spike_observers:
        counts = exact_counts(x2, t).reshape(*lead, layer.in_features)
        record = SpikeRecord(counts=counts, vth=t.vth.reshape(*lead, 1), scheme=cfg.scheme,
                             T=cfg.T, n_saturated=t.saturated.sum(), max_count=cfg.max_count)
    return y.reshape(*lead, layer.out_features), record


def _scale_t(layer) -> torch.Tensor | None:
    """``layer.scale.t().contiguous()`` (the Hopper count-mode kernel's layout), kept on the
    layer and rebuilt whenever ``scale`` moves or is written (its pointer, shape or version
    changes). None for one group per row (the Hopper kernel needs groups)."""
    scale = layer.scale
    if scale.shape[1] == 1:
        return None
    key = (scale.data_ptr(), tuple(scale.shape), scale._version, scale.device)
    cached = layer.__dict__.get("_scale_t_cache")
    if cached is None or cached[0] != key:
        cached = (key, scale.t().contiguous())
        layer.__dict__["_scale_t_cache"] = cached
    return cached[1]


def _check_finite(x2: torch.Tensor, vth: torch.Tensor) -> None:
    """The kernels mark a token holding NaN/Inf with ``Vth = NaN``: raise for it."""
    if x2.numel() and bool(torch.isnan(vth).any()):
        n_bad = int((~torch.isfinite(x2)).sum())
        raise ValueError(
            f"activations contain {n_bad} NaN/Inf value(s); the adaptive threshold needs "
            f"finite input (check the layer that produced them, or the model's dtype "
            f"overflow, e.g. run fp16 models in bfloat16 or float32)"
        )
