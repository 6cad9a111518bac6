"""Symmetric INT8 weight quantisation per output channel or per group of input columns.

A weight ``W [out, in]`` is cut into ``n_groups = ceil(in / group_size)`` column groups (the last
one shorter when ``group_size`` does not divide ``in``). Each row and group gets one scale
``scale[o, g] = ratio[o, g] * max|W[o, group g]| / 127`` (``ratio`` = 1 is absmax, smaller
ratios clip) and codes ``qdata = clamp(round(W / scale), -127, 127)`` (int8). All-zero groups
get scale 1 and codes 0. ``W ≈ qdata * scale`` (scale repeated over each group's columns).

>>> W = torch.tensor([[0.5, -1.0, 0.25], [2.0, 0.0, -0.5]])
>>> q, s = quantize_weight(W, group_size=2)
>>> q.tolist(), s.shape
([[64, -127, 127], [127, 0, -127]], torch.Size([2, 2]))
>>> torch.allclose(dequantize_weight(q, s, 2), W, atol=0.01)
True
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "QMAX",
    "codes_from_scales",
    "dequantize_weight",
    "expand_scale",
    "n_groups",
    "pack_codes",
    "quantize_weight",
]

#: Largest INT8 code magnitude (symmetric range [-127, 127]).
QMAX = 127


def n_groups(in_features: int, group_size: int) -> int:
    """Number of column groups (the last one may be shorter).

    >>> n_groups(300, 128)
    3
    """
    return max(1, math.ceil(in_features / group_size))


def expand_scale(scale: torch.Tensor, group_size: int, in_features: int) -> torch.Tensor:
    """Repeat ``scale [out, n_groups]`` over each group's columns: ``[out, in_features]``.

    >>> expand_scale(torch.tensor([[1.0, 2.0]]), 2, 3).tolist()
    [[1.0, 1.0, 2.0]]
    """
    return scale.repeat_interleave(group_size, dim=1)[:, :in_features]


def _check_weight(weight: torch.Tensor) -> torch.Tensor:
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(
            f"weight must be a 2-D tensor [out_features, in_features], got "
            f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}"
        )
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a float tensor, got dtype {weight.dtype}")
    if weight.numel() and not bool(torch.isfinite(weight).all()):
        raise ValueError("weight contains NaN/Inf values; it cannot be quantised")
    return weight


def grouped(t: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[R, in] -> [R, G, group_size]``, the last group padded with zeros.

    >>> grouped(torch.arange(5.0).view(1, 5), 2).tolist()
    [[[0.0, 1.0], [2.0, 3.0], [4.0, 0.0]]]
    """
    r, inp = t.shape
    g = n_groups(inp, group_size)
    pad = g * group_size - inp
    if pad:
        t = torch.nn.functional.pad(t, (0, pad))
    return t.reshape(r, g, group_size)


def _grouped_absmax(w: torch.Tensor, group_size: int) -> torch.Tensor:
    out, inp = w.shape
    if not inp:
        return w.new_zeros(out, n_groups(inp, group_size))
    return grouped(w, group_size).abs().amax(-1)


def quantize_weight(
    weight: torch.Tensor, group_size: int, clip_ratio: torch.Tensor | float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise ``weight [out, in]`` to ``(qdata int8 [out, in], scale float32 [out, n_groups])``.

    Args:
        weight: float weight (any float dtype; computed in float32).
        group_size: input columns per scale (``in`` for one scale per output channel).
        clip_ratio: optional ``[out, n_groups]`` tensor (or a float) in (0, 1]: the scale is
            ``ratio * absmax / 127`` and codes beyond ±127 are clipped. ``None`` is absmax.
    """
    w = _check_weight(weight).detach().float()
    absmax = _grouped_absmax(w, group_size)
    if clip_ratio is not None:
        r = torch.as_tensor(clip_ratio, dtype=torch.float32, device=w.device)
        if r.numel() and (bool((r <= 0).any()) or bool((r > 1).any())):
            raise ValueError("clip_ratio values must lie in (0, 1]")
        absmax = absmax * r
    scale = torch.where(absmax > 0, absmax / QMAX, torch.ones_like(absmax))
    full = expand_scale(scale, group_size, w.shape[1])
    q = torch.round(w / full).clamp_(-QMAX, QMAX).to(torch.int8)
    return q, scale.contiguous()


def dequantize_weight(qdata: torch.Tensor, scale: torch.Tensor, group_size: int,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``qdata * scale`` with the scale repeated over each group: float ``[out, in]``."""
    full = expand_scale(scale.to(dtype), group_size, qdata.shape[1])
    return qdata.to(dtype) * full


def codes_from_scales(weight: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Codes of a public W8ASpike layer: ``round(W / scales)`` without clipping.

    Args:
        weight: fp32 weight ``[out, in]``.
        scales: ``[out, n_groups, 1]``, ``[out, n_groups]`` or ``[out, 1]`` (one per row);
            ``in`` must be a multiple of ``n_groups`` as in the public code.

    Returns:
        ``(codes int64 [out, in], group_size)``.

    >>> codes, g = codes_from_scales(torch.tensor([[1.0, -3.0]]), torch.tensor([[[0.01]]]))
    >>> codes.tolist(), g
    ([[100, -300]], 2)
    """
    w = _check_weight(weight).detach().float()
    s = scales.detach().float()
    if s.dim() == 3 and s.shape[-1] == 1:
        s = s[..., 0]
    out, inp = w.shape
    if s.dim() != 2 or s.shape[0] != out or s.shape[1] < 1 or inp % s.shape[1]:
        raise ValueError(
            f"scales of shape {tuple(scales.shape)} do not fit a weight of shape {(out, inp)}; "
            f"expected [out, n_groups(, 1)] with n_groups dividing in_features"
        )
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise ValueError("scales must be positive and finite")
    group_size = inp // s.shape[1]
    codes = torch.round(w / expand_scale(s, group_size, inp)).to(torch.int64)
    return codes, group_size


def pack_codes(codes: torch.Tensor, clip: bool) -> tuple[torch.Tensor, int]:
    """Store integer codes as int8 when they fit, else int16 (or int8 clipped when ``clip``).

    Returns ``(qdata, n_out_of_range)`` where ``n_out_of_range`` counts codes outside
    [-128, 127]. Codes beyond int16 raise ValueError.

    >>> q, n = pack_codes(torch.tensor([[5, 300]]), clip=False)
    >>> q.dtype, n
    (torch.int16, 1)
    >>> pack_codes(torch.tensor([[5, 300]]), clip=True)[0].tolist()
    [[5, 127]]
    """
    n_out = int(((codes < -128) | (codes > 127)).sum())
    if n_out == 0:
        return codes.to(torch.int8), 0
    if clip:
        return codes.clamp(-128, 127).to(torch.int8), n_out
    lo, hi = int(codes.min()), int(codes.max())
    if lo < -(2**15) or hi >= 2**15:
        raise ValueError(
            f"weight codes span [{lo}, {hi}], beyond int16; the scales do not match the weights"
        )
    return codes.to(torch.int16), n_out
