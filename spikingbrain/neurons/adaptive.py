"""The SpikingBrain adaptive-threshold neuron (report section 3.3.1, eq. 19-21).

``Vth = clamp(mean(|x|, dim=-1) / k, 1e-5, 1e4)`` per token, ``counts = round(x / Vth)``, with a
straight-through gradient for the rounding. ``x ≈ Vth * counts``.
"""

from __future__ import annotations

import math

import torch

from spikingbrain.neurons.emitter import SpikeEmitter, SpikeRecord

__all__ = ["adaptive_threshold", "AdaptiveThreshold", "ThresholdOutput", "VTH_MIN", "VTH_MAX"]

#: Threshold clamp of the public reference implementation.
VTH_MIN, VTH_MAX = 1e-5, 1e4


class ThresholdOutput(tuple):
    """``(counts, vth)`` pair with the number of saturated values as ``.saturated``.

    Unpacks like a tuple: ``counts, vth = adaptive_threshold(x)``.
    """

    counts: torch.Tensor
    vth: torch.Tensor
    saturated: torch.Tensor

    def __new__(cls, counts: torch.Tensor, vth: torch.Tensor, saturated: torch.Tensor):
        obj = super().__new__(cls, (counts, vth))
        obj.counts, obj.vth, obj.saturated = counts, vth, saturated
        return obj

    @property
    def n_saturated(self) -> int:
        """How many counts ``max_count`` clamped (a Python int; synchronises on CUDA)."""
        return int(self.saturated)


def _check_activations(x: object, k: float, max_count: int | None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"x must be a floating-point tensor of activations, got dtype {x.dtype}; "
            f"convert with x.float()"
        )
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (the hidden dimension is the last)")
    if not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0):
        raise ValueError(f"k must be a positive finite number, got {k!r}")
    if max_count is not None and (
        isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1
    ):
        raise ValueError(f"max_count must be a positive int or None, got {max_count!r}")
    return x


def adaptive_threshold(
    x: torch.Tensor,
    k: float = 3.0,
    max_count: int | None = None,
    check_finite: bool = True,
) -> ThresholdOutput:
    """Integer spike counts and per-token thresholds of the SpikingBrain neuron.

    Args:
        x: activations ``[..., hidden]``; the threshold is shared along the last dimension.
        k: threshold divisor, ``Vth = mean(|x|) / k`` (default 3, as in the report).
        max_count: if set, counts are clamped to ``[-max_count, max_count]`` and the number of
            clamped values is reported in ``.saturated``.
        check_finite: raise ValueError on NaN/Inf input (one extra pass over ``x``).

    Returns:
        ``(counts, vth)``: ``counts [..., hidden]`` integer-valued, in ``x``'s dtype (float32
        for half/bfloat16 input), with a straight-through gradient; ``vth [..., 1]``.

    >>> x = torch.tensor([[0.3, -0.9, 0.0, 1.8]])
    >>> counts, vth = adaptive_threshold(x, k=3.0)
    >>> counts.tolist(), round(vth.item(), 4)
    ([[1.0, -4.0, 0.0, 7.0]], 0.25)
    >>> out = adaptive_threshold(x, k=3.0, max_count=4)
    >>> out.counts.tolist(), out.n_saturated
    ([[1.0, -4.0, 0.0, 4.0]], 1)
    """
    _check_activations(x, k, max_count)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if check_finite and x.numel() and not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"activations contain {n_bad} NaN/Inf value(s); the adaptive threshold needs finite "
            f"input (check the layer that produced them, or the model's dtype overflow)"
        )
    vth = (x.abs().mean(dim=-1, keepdim=True) / k).clamp(VTH_MIN, VTH_MAX)
    u = x / vth
    q = torch.round(u.detach())
    if max_count is not None:
        saturated = (q.abs() > max_count).sum()
        q = q.clamp(-max_count, max_count)
    else:
        saturated = torch.zeros((), dtype=torch.int64, device=x.device)
    counts = u + (q - u).detach() if u.requires_grad else q
    return ThresholdOutput(counts, vth, saturated)


class AdaptiveThreshold(SpikeEmitter):
    """Module form of :func:`adaptive_threshold`; emits a :class:`SpikeRecord` per call.

    Args:
        k: threshold divisor.
        max_count: optional saturation limit.
        scheme: the coding scheme reported to observers (how the counts would be expanded).

    >>> neuron = AdaptiveThreshold(k=2.0)
    >>> counts, vth = neuron(torch.tensor([1.0, -1.0, 2.0, 0.0]))
    >>> counts.tolist()
    [2.0, -2.0, 4.0, 0.0]
    """

    def __init__(
        self, k: float = 3.0, max_count: int | None = None, scheme: str = "bitwise_bidirectional"
    ) -> None:
        super().__init__()
        _check_activations(torch.zeros(1), k, max_count)
        self.k, self.max_count, self.scheme = float(k), max_count, scheme

    def forward(self, x: torch.Tensor) -> ThresholdOutput:
        out = adaptive_threshold(x, self.k, self.max_count)
        self.emit(
            SpikeRecord(
                counts=out.counts.detach(),
                vth=out.vth.detach(),
                scheme=self.scheme,
                n_saturated=out.saturated,
                max_count=self.max_count,
            )
        )
        return out

    def extra_repr(self) -> str:
        return f"k={self.k}, max_count={self.max_count}, scheme={self.scheme!r}"
