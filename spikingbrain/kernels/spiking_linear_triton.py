"""``SpikingLinear.forward`` through the Triton kernels: threshold, then one fused GEMM.

:func:`unsupported_reason` says why a layer / input pair cannot take this path (None when it
can); :func:`spiking_linear_triton` runs it. The converter calls both from
``SpikingLinear.forward`` when ``SpikeConfig.kernel`` is ``"auto"`` (CUDA tensors) or
``"triton"``.

CPU reference: ``SpikingLinear.forward`` with ``kernel="torch"``
(:func:`spikingbrain.neurons.adaptive.adaptive_threshold`, then
:func:`spikingbrain.converter.kernels.count_accumulators` /
:func:`~spikingbrain.converter.kernels.spike_accumulators` and
:func:`~spikingbrain.converter.kernels.epilogue`).

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

from spikingbrain.kernels.threshold_triton import MAX_EXACT_COUNT, exact_counts, threshold_counts
from spikingbrain.kernels.w8a_gemm_triton import CODE_RANGE, GemmWeights, w8a_gemm
from spikingbrain.neurons.emitter import SpikeRecord

__all__ = ["captured_error_flag", "raise_captured_errors", "spiking_linear_triton",
           "unsupported_reason"]

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
    if layer.qdata.dtype != torch.int8 and not _codes_fit(layer):
        return (f"int16 weight codes outside [{CODE_RANGE[0]}, {CODE_RANGE[1]}] (the kernels "
                f"split codes into two int8 digits)")
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


def _codes_fit(layer) -> bool:
    """Whether the layer's int16 codes lie in :data:`CODE_RANGE` (two int8 digits), from the
    layer's code-range cache (scanned once per storage and version of ``qdata``)."""
    lo, hi = layer._code_absmax.code_range(layer.qdata)
    return CODE_RANGE[0] <= lo and hi <= CODE_RANGE[1]


def spiking_linear_triton(layer, x: torch.Tensor) -> tuple[torch.Tensor, SpikeRecord | None]:
    """``y = layer(x)`` through the kernels, and the :class:`SpikeRecord` (None when the
    layer has no observers, so no counts are materialised).

    With ``config.check_finite`` one flag is read back (a device sync): a ValueError for
    tokens with NaN/Inf, or with counts beyond the kernels' exact range (2**21, reachable
    where ``Vth`` is clamped at 1e4). Without it, those tokens give NaN outputs, as on the
    CPU (see ``SpikeConfig.check_finite``)."""
    cfg = layer.config
    lead = x.shape[:-1]
    x2 = x.reshape(-1, layer.in_features)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    lo, hi = cfg.count_limits()
    scheme = cfg.scheme if cfg.mode == "spike" else None
    t = threshold_counts(x2, cfg.k, lo, hi)
    if cfg.check_finite:
        _check_read_back(x2, t.vth, cfg.k, lo, hi)
    weights = GemmWeights(layer.qdata, layer.scale, layer.bias, layer.group_size,
                          scale_t=_scale_t(layer) if x2.is_cuda and scheme is None else None)
    y = w8a_gemm(x2, t, weights, scheme)
    record = None
    if layer._spike_observers:
        counts = exact_counts(x2, t).reshape(*lead, layer.in_features)
        record = SpikeRecord(counts=counts, vth=t.vth.reshape(*lead, 1), scheme=cfg.scheme,
                             T=cfg.T, n_saturated=t.saturated.sum(), max_count=cfg.max_count)
    return y.reshape(*lead, layer.out_features), record


def _scale_t(layer) -> torch.Tensor | None:
    """``layer.scale`` transposed to a contiguous ``[G, N]`` (the Hopper count-mode kernel's
    layout), made from the current scales on every call: no cache, so no write (in place,
    through ``.data``, or a replacement) can leave it stale. A view when the scales are
    already stored column-major. None for one group per row (the Hopper kernel needs
    groups)."""
    scale = layer.scale
    if scale.shape[1] == 1:
        return None
    st = scale.t()
    return st if st.is_contiguous() else st.contiguous()


#: per device, a flag set on the GPU by captured steps whose tokens were marked bad
_CAPTURED_FLAGS: dict[torch.device, torch.Tensor] = {}


def captured_error_flag(device: torch.device) -> torch.Tensor:
    """The flag that calls made while a CUDA graph is captured raise on the GPU (no read-back
    is possible inside a graph): check it after replays with :func:`raise_captured_errors`."""
    flag = _CAPTURED_FLAGS.get(device)
    if flag is None:
        flag = _CAPTURED_FLAGS[device] = torch.zeros((), dtype=torch.bool, device=device)
    return flag


def raise_captured_errors(device: torch.device) -> None:
    """After replays of a captured graph: raise if a replayed call saw NaN/Inf activations
    or counts beyond the exact range (then reset the flag)."""
    flag = _CAPTURED_FLAGS.get(device)
    if flag is not None and bool(flag):
        flag.zero_()
        raise ValueError("a captured (CUDA-graph) step met NaN/Inf activations or spike counts "
                         f"beyond {MAX_EXACT_COUNT}: its outputs are NaN; run the model "
                         "eagerly to see which layer")


def _check_read_back(x2: torch.Tensor, vth: torch.Tensor, k: float, lo, hi) -> None:
    """The threshold kernel marks a token holding NaN/Inf, or counts beyond
    :data:`MAX_EXACT_COUNT`, with ``Vth = NaN``: one read-back, then a ValueError saying
    which. While a CUDA graph is captured the mark goes to a device flag instead
    (:func:`raise_captured_errors`)."""
    if x2.is_cuda and torch.cuda.is_current_stream_capturing():
        flag = captured_error_flag(x2.device)
        flag.logical_or_(torch.isnan(vth).any())
        return
    if not x2.numel() or not bool(torch.isnan(vth).any()):
        return
    n_bad = int((~torch.isfinite(x2)).sum())
    if n_bad:
        raise ValueError(
            f"activations contain {n_bad} NaN/Inf value(s); the adaptive threshold needs "
            f"finite input (check the layer that produced them, or the model's dtype "
            f"overflow, e.g. run fp16 models in bfloat16 or float32)"
        )
    n_tok = int(torch.isnan(vth).sum())
    big = float(x2.float().abs().amax())
    raise ValueError(
        f"{n_tok} token(s) have spike counts beyond {MAX_EXACT_COUNT} (largest |x| {big:.3g}; "
        f"Vth is clamped at 1e4, so counts grow with |x|): the GPU kernels cannot multiply "
        f"them exactly. Use SpikeConfig(kernel='torch') for this model, or a window "
        f"(T / max_count) that bounds the counts"
    )
