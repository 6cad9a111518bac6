"""Blocks of SpikingBrain-7B: sliding-window attention, gated linear attention, SwiGLU FFN,
under the public parameter names (``attn.q_proj``, ``attn.gk_proj.0``, ``attn.g_norm``,
``mlp.gate_proj`` ...)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spikingbrain.models.gla_swa.cache import GLAswaCache
from spikingbrain.models.gla_swa.configuration import GLAswaConfig
from spikingbrain.models.ops.attention import softmax_attention
from spikingbrain.models.ops.gla import gla
from spikingbrain.models.ops.moe import SwiGLUMLP
from spikingbrain.models.ops.norm import RMSNorm
from spikingbrain.models.ops.rope import apply_rope

__all__ = ["GLAswaBlock", "GatedLinearAttention", "SlidingWindowAttention", "merge_heads",
           "split_heads"]


def split_heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, L, n * D] -> [B, n, L, D]``."""
    B, L, _ = x.shape
    return x.view(B, L, n, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, n, L, D] -> [B, L, n * D]``."""
    B, n, L, D = x.shape
    return x.transpose(1, 2).reshape(B, L, n * D)


class _QKV(nn.Module):
    def __init__(self, cfg: GLAswaConfig, idx: int) -> None:
        super().__init__()
        self.idx, self.cfg = idx, cfg
        d, h, hk = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
        self.q_proj = nn.Linear(cfg.hidden_size, h * d, bias=True)
        self.k_proj = nn.Linear(cfg.hidden_size, hk * d, bias=True)
        self.v_proj = nn.Linear(cfg.hidden_size, hk * d, bias=True)
        self.o_proj = nn.Linear(h * d, cfg.hidden_size, bias=False)


class SlidingWindowAttention(_QKV):
    """Softmax attention with RoPE over the last ``sliding_window`` keys (flash semantics)."""

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                cache: GLAswaCache | None) -> torch.Tensor:
        cfg = self.cfg
        q = apply_rope(split_heads(self.q_proj(x), cfg.num_attention_heads), *rope)
        k = apply_rope(split_heads(self.k_proj(x), cfg.num_key_value_heads), *rope)
        v = split_heads(self.v_proj(x), cfg.num_key_value_heads)
        q_start = cache.seen_tokens if cache is not None else 0
        k_start = q_start
        if cache is not None:
            k, v, k_start = cache.append_kv(self.idx, k, v)
        o = softmax_attention(q, k, v, window=cfg.sliding_window, q_start=q_start,
                              k_start=k_start)
        if cache is not None:
            cache.trim(self.idx)
        return self.o_proj(merge_heads(o))


class GatedLinearAttention(_QKV):
    """GLA: ReLU feature maps on q and k, a low-rank key-dimension gate
    ``log g = logsigmoid(gk_proj(x)) / gate_logit_normalizer``, K/V/gate repeated over the
    head groups, per-head RMSNorm ``g_norm`` of the output, then ``o_proj``."""

    def __init__(self, cfg: GLAswaConfig, idx: int) -> None:
        super().__init__(cfg, idx)
        hk, d = cfg.num_key_value_heads, cfg.head_dim
        self.gk_proj = nn.Sequential(nn.Linear(cfg.hidden_size, cfg.gate_low_rank_dim, bias=False),
                                     nn.Linear(cfg.gate_low_rank_dim, hk * d, bias=True))
        self.g_norm = RMSNorm(d, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor, rope, cache: GLAswaCache | None) -> torch.Tensor:
        cfg = self.cfg
        rep = cfg.num_attention_heads // cfg.num_key_value_heads
        q = split_heads(F.relu(self.q_proj(x)), cfg.num_attention_heads)
        k = split_heads(F.relu(self.k_proj(x)), cfg.num_key_value_heads)
        v = split_heads(self.v_proj(x), cfg.num_key_value_heads)
        # the gate in float32 at least (float64 models keep float64)
        log_g = split_heads(F.logsigmoid(self.gk_proj(x).to(torch.promote_types(
            x.dtype, torch.float32))) / cfg.gate_logit_normalizer, cfg.num_key_value_heads)
        k, v, log_g = (t.repeat_interleave(rep, 1) for t in (k, v, log_g))
        h0 = cache.state.get(self.idx) if cache is not None else None
        o, state = gla(q, k, v, log_g, initial_state=h0, output_final_state=cache is not None,
                       backend=cfg.gla_backend)
        if cache is not None:
            cache.state[self.idx] = state
        return self.o_proj(merge_heads(self.g_norm(o.to(x.dtype))))


class GLAswaBlock(nn.Module):
    """Pre-norm block: ``x + attn(attn_norm(x))``, then ``x + mlp(mlp_norm(x))``."""

    def __init__(self, cfg: GLAswaConfig, idx: int) -> None:
        super().__init__()
        self.kind = cfg.layer_kind(idx)
        self.attn_norm = RMSNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.attn = (SlidingWindowAttention if self.kind == "swa" else GatedLinearAttention)(
            cfg, idx)
        self.mlp_norm = RMSNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.mlp = SwiGLUMLP(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor, rope, cache: GLAswaCache | None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), rope, cache)
        return x + self.mlp(self.mlp_norm(x))
