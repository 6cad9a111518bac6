"""Blocks of SpikingBrain-7B: sliding-window attention, gated linear attention, SwiGLU (or,
upcycled, MoE) FFN, under the public parameter names (``attn.q_proj``, ``attn.gk_proj.0``,
``attn.g_norm``, ``mlp.gate_proj`` ...).

Every attention layer takes a :class:`Step`: where the new tokens sit (their
:class:`~spikingbrain.models._common.Layout`, padding included), the RoPE tables, and the
cache (or None)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spikingbrain.models._common import Layout, mask_recurrent_inputs, merge_heads, split_heads
from spikingbrain.models.gla_swa.cache import GLAswaCache
from spikingbrain.models.gla_swa.configuration import GLAswaConfig
from spikingbrain.models.ops.attention import decode_attention, softmax_attention
from spikingbrain.models.ops.attn_quant import quantize_attention_inputs
from spikingbrain.models.ops.gla import gla
from spikingbrain.models.ops.moe import MoEFeedForward, SwiGLUMLP
from spikingbrain.models.ops.norm import RMSNorm
from spikingbrain.models.ops.rope import apply_rope

__all__ = ["GLAswaBlock", "GatedLinearAttention", "SlidingWindowAttention", "Step",
           "merge_heads", "split_heads"]


@dataclass
class Step:
    """One forward call's view of its new tokens."""

    layout: Layout
    rope: tuple[torch.Tensor, torch.Tensor]
    cache: GLAswaCache | None = None

    @property
    def decoding(self) -> bool:
        """One new token after cached ones (a generation step)."""
        return self.cache is not None and self.layout.length == 1 and \
            self.cache.seen_tokens > 0


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
    """Softmax attention with RoPE over the last ``sliding_window`` keys (flash semantics in
    prefill; ``config.decode_window`` in decoding)."""

    def qkv(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q [B, H, L, D]`` and ``k, v [B, Hkv, L, D]`` of ``x [B, L, hidden]``, RoPE applied
        and (``attention_quant``) quantised: what enters the cache and the attention (the
        eager and the static decode step both take it from here)."""
        cfg = self.cfg
        q = apply_rope(split_heads(self.q_proj(x), cfg.num_attention_heads), *rope)
        k = apply_rope(split_heads(self.k_proj(x), cfg.num_key_value_heads), *rope)
        v = split_heads(self.v_proj(x), cfg.num_key_value_heads)
        if cfg.attention_quant == "w8aspike":
            q, k, v = quantize_attention_inputs(q, k, v)
        return q, k, v

    def window(self, decoding: bool) -> int | None:
        """Keys ``i - window .. i`` a query at ``i`` sees (``decode_window`` while decoding)."""
        w = self.cfg.sliding_window
        if w is not None and decoding and self.cfg.decode_window == "public":
            w -= 1  # the public cache: w keys including the current one
        return w

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        cfg = self.cfg
        q, k, v = self.qkv(x, step.rope)
        lay = step.layout
        window = self.window(step.decoding)
        k_pos, k_start = lay.pos, lay.start
        if step.cache is not None:
            k, v, k_pos, k_start = step.cache.window_kv(self.idx).extend(k, v, lay)
        slots = None if cfg.sliding_window is None else cfg.sliding_window + 1
        if step.decoding and slots is not None and k.shape[2] <= slots:
            # a decode step: the same fixed-slot kernel call as the static (CUDA-graph) step
            n = k.shape[2]
            kp = k_pos if k_pos is not None else (
                torch.arange(n, device=k.device) + k_start)[None].expand(x.shape[0], n)
            qp = lay.pos[:, 0] if lay.pos is not None else torch.full(
                (x.shape[0],), lay.start, dtype=torch.long, device=k.device)
            o = decode_attention(q, k, v, kp, qp, window, slots)
        elif k_pos is not None:
            q_pos = lay.pos if lay.pos is not None else (
                torch.arange(lay.length, device=k_pos.device) + lay.start)[None].expand(
                x.shape[0], -1)
            o = softmax_attention(q, k, v, window=window, q_pos=q_pos, k_pos=k_pos)
        else:
            o = softmax_attention(q, k, v, window=window, q_start=lay.start, k_start=k_start)
        return self.o_proj(merge_heads(o))


class GatedLinearAttention(_QKV):
    """GLA: ReLU feature maps on q and k, a key-dimension gate
    ``log g = logsigmoid(gk_proj(x)) / gate_logit_normalizer`` (``gk_proj`` low-rank, or
    full-rank with ``gate_low_rank_dim=None``), K/V/gate repeated over the head groups,
    per-head RMSNorm ``g_norm`` of the output, then ``o_proj``. Padding steps leave the
    state unchanged."""

    def __init__(self, cfg: GLAswaConfig, idx: int) -> None:
        super().__init__(cfg, idx)
        hk, d = cfg.num_key_value_heads, cfg.head_dim
        if cfg.gate_low_rank_dim is None:
            self.gk_proj = nn.Linear(cfg.hidden_size, hk * d, bias=True)
        else:
            self.gk_proj = nn.Sequential(
                nn.Linear(cfg.hidden_size, cfg.gate_low_rank_dim, bias=False),
                nn.Linear(cfg.gate_low_rank_dim, hk * d, bias=True))
        self.g_norm = RMSNorm(d, eps=cfg.norm_eps)

    def recurrence(self, x: torch.Tensor, valid: torch.Tensor | None, state: torch.Tensor | None,
                   keep_state: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(output [B, L, hidden], final state or None)`` of ``x [B, L, hidden]`` from
        ``state [B, H, Dk, Dv]`` (None: zero); ``valid [B, L]`` marks padding steps, which leave
        the state unchanged. The eager and the static decode step both run this."""
        cfg = self.cfg
        rep = cfg.num_attention_heads // cfg.num_key_value_heads
        q = split_heads(F.relu(self.q_proj(x)), cfg.num_attention_heads)
        k = split_heads(F.relu(self.k_proj(x)), cfg.num_key_value_heads)
        v = split_heads(self.v_proj(x), cfg.num_key_value_heads)
        # the gate in float32 at least (float64 models keep float64)
        log_g = split_heads(F.logsigmoid(self.gk_proj(x).to(torch.promote_types(
            x.dtype, torch.float32))) / cfg.gate_logit_normalizer, cfg.num_key_value_heads)
        k, v, log_g = mask_recurrent_inputs(valid, k, v, log_g)
        k, v, log_g = (t.repeat_interleave(rep, 1) for t in (k, v, log_g))
        o, state = gla(q, k, v, log_g, initial_state=state, output_final_state=keep_state,
                       backend=cfg.gla_backend)
        return self.o_proj(merge_heads(self.g_norm(o.to(x.dtype)))), state

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        cache = step.cache
        h0 = cache.state.get(self.idx) if cache is not None else None
        out, state = self.recurrence(x, step.layout.valid, h0, cache is not None)
        if cache is not None:
            cache.state[self.idx] = state
        return out


def feed_forward(cfg: GLAswaConfig, idx: int) -> nn.Module:
    """The FFN of block ``idx``: dense SwiGLU, or MoE where ``config.moe_layers`` says."""
    if idx in cfg.moe_layers:
        return MoEFeedForward(cfg.hidden_size, cfg.intermediate_size,
                              n_experts=cfg.n_routed_experts, top_k=cfg.num_experts_per_tok,
                              n_shared=cfg.n_shared_experts, alpha=cfg.moe_alpha,
                              normalize_topk=cfg.norm_topk_prob)
    return SwiGLUMLP(cfg.hidden_size, cfg.intermediate_size)


class GLAswaBlock(nn.Module):
    """Pre-norm block: ``x + attn(attn_norm(x))``, then ``x + mlp(mlp_norm(x))``."""

    def __init__(self, cfg: GLAswaConfig, idx: int) -> None:
        super().__init__()
        self.kind = cfg.layer_kind(idx)
        self.attn_norm = RMSNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.attn = (SlidingWindowAttention if self.kind == "swa" else GatedLinearAttention)(
            cfg, idx)
        self.mlp_norm = RMSNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.mlp = feed_forward(cfg, idx)

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), step)
        h = self.mlp_norm(x)
        if isinstance(self.mlp, MoEFeedForward):
            return x + self.mlp(h, valid=step.layout.valid)
        return x + self.mlp(h)
