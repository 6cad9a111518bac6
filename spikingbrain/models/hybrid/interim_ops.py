"""Interim ops of the 76B model (used until the shared ``spikingbrain.models.ops`` land).

Plain references: masked softmax attention with window and sinks, the GLA recurrence, RoPE,
RMSNorm. Same signatures as MODELS_API.md so that switching is an import change.

>>> q = torch.randn(1, 2, 4, 8)
>>> softmax_attention(q, q[:, :1], q[:, :1], window=2, n_sink=1).shape
torch.Size([1, 2, 4, 8])
"""

from __future__ import annotations

import torch
from torch import nn


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                      window: int | None = None, scale: float | None = None, n_sink: int = 0,
                      q_start: int | None = None) -> torch.Tensor:
    """Masked softmax attention ``[B,H,Lq,D]`` x ``[B,Hkv,Lk,D]`` (GQA repeated inside).

    Key j is visible to query i (key indices) iff j <= i and i - j <= window; the first
    ``n_sink`` keys are visible to every query, sink queries see only the sinks.
    """
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    lq, lk = q.shape[2], k.shape[2]
    start = lk - lq if q_start is None else q_start
    i = torch.arange(lq, device=q.device)[:, None] + start
    j = torch.arange(lk, device=q.device)[None]
    visible = j <= i
    if window is not None:
        visible &= i - j <= window
    visible |= j < n_sink
    visible &= ~((i < n_sink) & (j >= n_sink))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    acc = _acc(q.dtype)
    scores = (q.to(acc) @ k.to(acc).transpose(-1, -2)) * scale
    probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
    return (probs @ v.to(acc)).to(q.dtype)


def gla_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_g: torch.Tensor, *,
                  scale: float | None = None, initial_state: torch.Tensor | None = None,
                  output_final_state: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """GLA recurrence ``S_t = diag(exp(log_g_t)) S_{t-1} + k_t^T v_t``, ``o_t = (q_t s) S_t``
    (a loop over time: the reference, and the decoding step)."""
    b, h, length, dk = q.shape
    acc = _acc(q.dtype)
    scale = dk ** -0.5 if scale is None else scale
    state = (torch.zeros(b, h, dk, v.shape[-1], dtype=acc, device=q.device)
             if initial_state is None else initial_state.to(acc))
    decay = log_g.to(acc).exp()
    outs = []
    for t in range(length):
        state = decay[:, :, t, :, None] * state + \
            k[:, :, t, :, None].to(acc) * v[:, :, t, None, :].to(acc)
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, :, t].to(acc) * scale, state))
    return torch.stack(outs, 2).to(q.dtype), state if output_final_state else None


def gla_chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_g: torch.Tensor, *,
                scale: float | None = None, initial_state: torch.Tensor | None = None,
                output_final_state: bool = False, chunk_size: int = 16
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same GLA in chunks: within a chunk every decay factor is ``exp(b_i - b_j) <= 1``
    (``b`` the cumulative log gate), formed explicitly, so no factor can overflow."""
    acc = _acc(q.dtype)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    state = (torch.zeros(*q.shape[:2], q.shape[-1], v.shape[-1], dtype=acc, device=q.device)
             if initial_state is None else initial_state.to(acc))
    outs = []
    for start in range(0, q.shape[2], chunk_size):
        sl = slice(start, start + chunk_size)
        qc, kc, vc = q[:, :, sl].to(acc) * scale, k[:, :, sl].to(acc), v[:, :, sl].to(acc)
        cum = log_g[:, :, sl].to(acc).cumsum(dim=2)  # [B, H, C, Dk]
        n = cum.shape[2]
        causal = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        rel = (cum[:, :, :, None] - cum[:, :, None]).masked_fill(~causal[..., None], -torch.inf)
        scores = torch.einsum("bhik,bhjk,bhijk->bhij", qc, kc, rel.exp())
        outs.append(scores @ vc + (qc * cum.exp()) @ state)
        last = cum[:, :, -1:]
        state = last[:, :, 0, :, None].exp() * state + \
            (kc * (last - cum).exp()).transpose(-1, -2) @ vc
    return torch.cat(outs, 2).to(q.dtype), state if output_final_state else None


def gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_g: torch.Tensor, *,
        scale: float | None = None, initial_state: torch.Tensor | None = None,
        output_final_state: bool = False, backend: str = "auto"
        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """GLA ``[B,H,L,D]``: recurrent for one step (or ``backend="recurrent"``), else chunked."""
    use_loop = backend == "recurrent" or (backend == "auto" and q.shape[2] == 1)
    fn = gla_recurrent if use_loop else gla_chunked
    return fn(q, k, v, log_g, scale=scale, initial_state=initial_state,
              output_final_state=output_final_state)


class RMSNorm(nn.Module):
    """``x / rms(x) * weight`` over the last dimension (float32 math)."""

    def __init__(self, hidden: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(hidden)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(_acc(x.dtype))
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
                              ).to(x.dtype)


def rope_cos_sin(positions: torch.Tensor, dim: int, theta: float,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables ``[L, dim]`` (rotate-half layout) for absolute ``positions``."""
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64,
                                       device=positions.device) / dim)
    angles = positions.to(torch.float64)[:, None] * inv[None]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, H, L, D]`` by the tables (rotate-half convention, as Qwen2)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin
