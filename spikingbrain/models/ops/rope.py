"""Rotary position embedding (RoPE) in the half-split layout of Llama / Qwen2.

>>> cos, sin = rope_cos_sin(torch.arange(4), 8, 10000.0)
>>> x = torch.randn(1, 2, 4, 8)
>>> y = apply_rope(x, cos, sin)
>>> torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-6)   # a rotation
True
"""

from __future__ import annotations

import torch

__all__ = ["apply_rope", "rope_cos_sin"]


def rope_cos_sin(positions: torch.Tensor, dim: int, theta: float,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin [L, dim]`` for integer ``positions [L]``, or ``[B, L, dim]`` for per-row
    positions ``[B, L]`` (angles computed in float32)."""
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, device=positions.device,
                                        dtype=torch.int64).float() / dim))
    ang = positions.float()[..., None] * inv
    emb = torch.cat([ang, ang], -1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, -1)
    return torch.cat([-b, a], -1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, H, L, D]`` by ``cos, sin [L, D]`` (or per row ``[B, L, D]``)."""
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]
    return x * cos.to(x.dtype) + _rotate_half(x) * sin.to(x.dtype)
