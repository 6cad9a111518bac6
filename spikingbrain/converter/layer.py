"""``SpikingLinear``: a linear layer with INT8 weights and spiking (integer count) inputs.

``y = Vth * sum_g scale[:, g] * (qdata[:, g] @ counts[g]) + bias`` where ``counts, Vth`` come
from the adaptive-threshold neuron applied to the input (report section 3.3, W8ASpike 5.5).

>>> import torch
>>> from torch import nn
>>> torch.manual_seed(0) is not None
True
>>> lin = nn.Linear(16, 4)
>>> sl = SpikingLinear.from_linear(lin, SpikeConfig(granularity="channel"))
>>> sl.qdata.dtype, tuple(sl.scale.shape)
(torch.int8, (4, 1))
>>> x = torch.randn(2, 16)
>>> y = sl(x)
>>> spike = SpikingLinear.from_linear(lin, SpikeConfig(granularity="channel", mode="spike"))
>>> torch.equal(spike(x), y)
True
>>> float((y - lin(x).detach()).abs().max()) < 0.2
True
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from spikingbrain.converter.config import SpikeConfig
from spikingbrain.converter.kernels import (
    CodeAbsmaxCache,
    count_accumulators,
    epilogue,
    spike_accumulators,
)
from spikingbrain.converter.quant import (
    codes_from_scales,
    dequantize_weight,
    n_groups,
    pack_codes,
    quantize_weight,
)
from spikingbrain.neurons.adaptive import adaptive_threshold
from spikingbrain.neurons.emitter import SpikeEmitter, SpikeRecord

__all__ = ["SpikingLinear", "is_conv1d", "linear_weight", "reset_fallback_warnings",
           "share_fallback_warnings"]


def is_conv1d(module: nn.Module) -> bool:
    """Whether ``module`` is transformers' ``Conv1D`` (GPT-2 style, weight ``[in, out]``)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


def linear_weight(module: nn.Module) -> torch.Tensor:
    """The ``[out, in]`` weight of an ``nn.Linear`` or a transposed ``Conv1D``."""
    if is_conv1d(module):
        return module.weight.t()
    if isinstance(module, nn.Linear):
        return module.weight
    raise TypeError(
        f"cannot convert a {type(module).__name__}: only nn.Linear and transformers' Conv1D "
        f"(and public W8ASpike QuantLinear layers) can become SpikingLinear"
    )


class SpikingLinear(SpikeEmitter):
    """Linear layer with int8 weight codes (``qdata``), float32 scales and spiking inputs.

    Build one with :meth:`from_linear` (quantise a float layer), :meth:`from_quantized` (import
    public W8ASpike codes) or the constructor (an empty shell, e.g. before loading a state dict).

    Args:
        in_features, out_features: layer shape.
        config: the :class:`SpikeConfig` (mode, k, scheme, T, max_count, granularity...).
        bias: whether the layer has a bias.
        qdata_dtype: ``torch.int8`` (default) or ``torch.int16`` for imported codes beyond int8.
        bias_dtype: dtype of the stored bias (the source layer's dtype).

    Buffers:
        qdata: ``[out, in]`` int8 (int16 only for kept out-of-range imported codes).
        scale: ``[out, n_groups]`` float32.
        bias: ``[out]`` or ``None``.

    Shapes: ``forward(x [..., in]) -> y [..., out]`` in ``x``'s dtype.
    """

    def __init__(self, in_features: int, out_features: int, config: SpikeConfig | None = None,
                 bias: bool = True, qdata_dtype: torch.dtype = torch.int8,
                 bias_dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        config = SpikeConfig() if config is None else config
        if not isinstance(config, SpikeConfig):
            raise TypeError(f"config must be a SpikeConfig, got {type(config).__name__}")
        if qdata_dtype not in (torch.int8, torch.int16):
            raise ValueError(f"qdata_dtype must be torch.int8 or torch.int16, got {qdata_dtype}")
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.in_features, self.out_features = in_features, out_features
        self.config = config
        self.group_size = config.group_size_for(in_features)
        self.n_groups = n_groups(in_features, self.group_size)
        #: imported weight codes outside [-128, 127] (kept in int16, or clipped if asked)
        self.n_out_of_range = 0
        self._code_absmax = CodeAbsmaxCache()  # code range: CPU float GEMM bound, GPU digits
        self.register_buffer("qdata", torch.zeros(out_features, in_features, dtype=qdata_dtype,
                                                  device=device))
        self.register_buffer("scale", torch.ones(out_features, self.n_groups,
                                                 dtype=torch.float32, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=bias_dtype, device=device)
                             if bias else None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_linear(cls, linear: nn.Module, config: SpikeConfig | None = None,
                    clip_ratio: torch.Tensor | None = None) -> SpikingLinear:
        """Quantise an ``nn.Linear`` (or transformers ``Conv1D``) with absmax scales.

        ``clip_ratio [out, n_groups]`` in (0, 1] shrinks the scales (see
        :func:`spikingbrain.calibrate`).
        """
        config = SpikeConfig() if config is None else config
        w = linear_weight(linear).detach()
        out_f, in_f = w.shape
        b = linear.bias
        layer = cls(in_f, out_f, config, bias=b is not None,
                    bias_dtype=b.dtype if b is not None else torch.float32, device=w.device)
        q, s = quantize_weight(w, layer.group_size, clip_ratio)
        layer.qdata.copy_(q)
        layer.scale.copy_(s)
        if b is not None:
            layer.bias.copy_(b.detach())
        return layer

    @classmethod
    def from_quantized(cls, weight: torch.Tensor, scales: torch.Tensor,
                       bias: torch.Tensor | None = None,
                       config: SpikeConfig | None = None) -> SpikingLinear:
        """Import a public W8ASpike layer: fp32 ``weight [out, in]`` and ``scales``
        (``[out, in // group_size, 1]`` or ``[out, 1]``); codes are ``round(weight / scales)``.

        Codes outside [-128, 127] are counted (``n_out_of_range``) and kept exact in int16,
        unless ``config.clip_weights`` is set: then they are clipped and a warning gives their
        count. The group size comes from ``scales`` (it overrides ``config.group_size``).

        >>> w = torch.tensor([[0.02, -1.30], [0.5, 0.1]])
        >>> sl = SpikingLinear.from_quantized(w, torch.full((2, 1, 1), 0.01))
        >>> sl.qdata.dtype, sl.n_out_of_range
        (torch.int16, 1)
        """
        config = SpikeConfig() if config is None else config
        codes, gs = codes_from_scales(weight, scales)
        out_f, in_f = codes.shape
        config = config.replace(granularity="group" if gs < in_f else "channel", group_size=gs,
                                remainder="partial")
        qdata, n_out = pack_codes(codes, clip=config.clip_weights)
        if n_out and config.clip_weights:
            warnings.warn(
                f"{n_out} of {codes.numel()} weight codes ({100 * n_out / codes.numel():.2f} %) "
                f"lie outside [-128, 127] and were clipped to int8 (clip_weights=True); set "
                f"clip_weights=False to keep them exact in int16",
                stacklevel=2,
            )
        layer = cls(in_f, out_f, config, bias=bias is not None, qdata_dtype=qdata.dtype,
                    bias_dtype=bias.dtype if bias is not None else torch.float32,
                    device=weight.device)
        s = scales.detach().float().reshape(out_f, -1)
        layer.qdata.copy_(qdata)
        layer.scale.copy_(s)
        if bias is not None:
            layer.bias.copy_(bias.detach())
        layer.n_out_of_range = n_out
        return layer

    # ------------------------------------------------------------------ weights
    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``qdata * scale`` as a float ``[out, in]`` tensor."""
        return dequantize_weight(self.qdata, self.scale, self.group_size, dtype)

    def weight_nbytes(self) -> int:
        """Bytes held by ``qdata``, ``scale`` and ``bias``."""
        return sum(t.numel() * t.element_size()
                   for t in (self.qdata, self.scale, self.bias) if t is not None)

    # ------------------------------------------------------------------ spiking inputs
    def spike_counts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Counts ``[..., in]`` (integer-valued float), ``vth [..., 1]`` and the number of
        saturated counts (``max_count`` or a fixed window ``T``) for input ``x [..., in]``.

        Raises ValueError for NaN/Inf activations (with ``config.check_finite``; without it
        such a token gets ``Vth = NaN`` and zero counts, so its outputs are NaN, as on the
        GPU kernels). All-zero tokens give ``Vth = 1e-5`` (the clamp) and zero counts.
        """
        return self._threshold(x)[:3]

    def _threshold(self, x: torch.Tensor):
        cfg = self.config
        # with a fixed window, T and max_count clamp together (each count saturates once)
        out = adaptive_threshold(x, cfg.k, None if cfg.T is not None else cfg.max_count,
                                 check_finite=False)
        counts, vth, saturated = out.counts, out.vth, out.saturated
        # NaN input makes Vth NaN; Inf input makes counts infinite: one reduction finds both
        col = counts.abs().amax(dim=tuple(range(counts.dim() - 1))) \
            if counts.numel() else None
        if col is not None and not bool(torch.isfinite(col).all()):
            xf = x.detach()
            if cfg.check_finite:
                n_bad = int((~torch.isfinite(xf)).sum())
                raise ValueError(
                    f"activations contain {n_bad} NaN/Inf value(s); the adaptive threshold "
                    f"needs finite input (check the layer that produced them, or the model's "
                    f"dtype overflow, e.g. run fp16 models in bfloat16 or float32)"
                )
            # check_finite=False: such a token gets Vth = NaN and zero counts (NaN outputs),
            # the GPU kernels' behaviour
            bad = ~torch.isfinite(xf).all(dim=-1, keepdim=True)
            counts = counts.masked_fill(bad, 0.0)
            vth = vth.masked_fill(bad, float("nan"))
            col = counts.abs().amax(dim=tuple(range(counts.dim() - 1)))
        if cfg.T is not None:
            lo, hi = cfg.count_limits()
            saturated = ((counts < lo) | (counts > hi)).sum()
            counts = counts.clamp(lo, hi)
            if col is not None:
                col = col.clamp(max=max(-lo, hi))
        return counts, vth, saturated, col

    def integer_accumulators(self, counts: torch.Tensor, mode: str | None = None,
                             _col_absmax: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``acc[..., o, g] = sum_{i in g} qdata[o, i] * counts[..., i]`` (int32).

        Args:
            counts: integer (or integer-valued float) counts ``[..., in]``.
            mode: ``"count"`` or ``"spike"`` (default: the config's mode; ``"fake"`` uses
                ``"count"``). Both give identical integers.

        Returns:
            int32 ``[..., out, n_groups]``.
        """
        mode = mode or self.config.mode
        if mode not in ("count", "spike", "fake"):
            raise ValueError(f"mode must be 'count' or 'spike', got {mode!r}")
        if counts.shape[-1] != self.in_features:
            raise ValueError(
                f"counts have {counts.shape[-1]} channels, the layer expects {self.in_features}"
            )
        lead = counts.shape[:-1]
        c = counts.reshape(-1, self.in_features)
        if mode == "spike":
            acc = spike_accumulators(c, self.qdata, self.group_size, self.config.scheme,
                                     self.config.T)
        else:
            acc = count_accumulators(c, self.qdata, self.group_size, _col_absmax,
                                     self._code_absmax(self.qdata))
        return acc.reshape(*lead, self.out_features, self.n_groups)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"input has shape {tuple(x.shape)}; the last dimension must be "
                f"in_features={self.in_features}"
            )
        cfg = self.config
        if self._use_triton(x):
            from spikingbrain.kernels.spiking_linear_triton import spiking_linear_triton

            with torch.no_grad():
                y, record = spiking_linear_triton(self, x)
            if record is not None:
                self.emit(record)
            return y
        with torch.no_grad():
            counts, vth, saturated, col_absmax = self._threshold(x)
            self.emit(SpikeRecord(counts=counts, vth=vth, scheme=cfg.scheme, T=cfg.T,
                                  n_saturated=saturated, max_count=cfg.max_count))
            cd = cfg.compute_dtype
            if cfg.mode == "fake":
                x_hat = (counts * vth).to(cd)
                y = F.linear(x_hat, self.dequantized_weight(cd),
                             None if self.bias is None else self.bias.to(cd))
            else:
                acc = self.integer_accumulators(counts, _col_absmax=col_absmax)
                lead = acc.shape[:-2]
                y = epilogue(acc.reshape(-1, self.out_features, self.n_groups), self.scale,
                             vth.reshape(-1, 1), self.bias, cd).reshape(*lead, self.out_features)
        return y.to(x.dtype)

    def _use_triton(self, x: torch.Tensor) -> bool:
        """Whether this call takes the Triton kernels (``config.kernel``, see SpikeConfig)."""
        kernel = self.config.kernel
        if kernel == "torch" or (kernel == "auto" and not x.is_cuda):
            return False
        try:
            from spikingbrain.kernels.spiking_linear_triton import unsupported_reason
        except ImportError as e:
            if kernel == "triton":
                raise RuntimeError(f"kernel='triton' needs triton: {e}") from None
            return False
        reason = unsupported_reason(self, x)
        if reason is not None and kernel == "triton":
            raise ValueError(f"kernel='triton' cannot run this layer: {reason}; "
                             f"use kernel='auto' to fall back to torch")
        if reason is not None and x.is_cuda:
            _warn_fallback(self, reason)
        return reason is None

    def extra_repr(self) -> str:
        c = self.config
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, qdata={str(self.qdata.dtype).removeprefix('torch.')}, "
                f"group_size={self.group_size}, k={c.k}, scheme={c.scheme!r}, T={c.T}, "
                f"mode={c.mode!r}")


#: the fall-back notice of layers not given one by :func:`share_fallback_warnings`
_PROCESS_NOTICE: dict = {}


def _warn_fallback(layer: SpikingLinear, reason: str) -> None:
    """``kernel="auto"`` sends a CUDA call to the torch path: warn once per model and kind
    of reason, naming the reason, so no fall-back is silent. The layers of a model passed to
    :func:`share_fallback_warnings` share one notice; other layers share the process's (one
    warning per kind of reason until :func:`reset_fallback_warnings`)."""
    notice = layer.__dict__.get("_fallback_notice", _PROCESS_NOTICE)
    kind = reason.split(" (")[0].split(" ")[0]
    if kind in notice:
        notice[kind] += 1
        return
    notice[kind] = 1
    warnings.warn(
        f"SpikingLinear ({layer.in_features}->{layer.out_features}) on CUDA takes the torch "
        f"path, not the Triton kernels: {reason}. Same integers, slower. Warned once per "
        f"model; other layers falling back for this reason are not reported again. "
        f"kernel='triton' makes this an error, kernel='torch' silences it.",
        RuntimeWarning, stacklevel=4,
    )


def share_fallback_warnings(model: nn.Module) -> int:
    """Give every :class:`SpikingLinear` in ``model`` one shared fall-back notice, so that
    ``kernel="auto"`` warns once per model rather than once per layer; returns the number of
    layers. Layers never passed here share the process's notice instead."""
    notice: dict = {}
    n = 0
    for m in model.modules():
        if isinstance(m, SpikingLinear):
            m.__dict__["_fallback_notice"] = notice
            n += 1
    return n


def reset_fallback_warnings() -> None:
    """Forget the process-wide fall-back notice (the next fall-back warns again)."""
    _PROCESS_NOTICE.clear()
