"""SpikingBrain-76B blocks: softmax branch, tied-gate GLA branch, their mix, the decoder layer.

Every layer runs both branches on the same normalised input; each branch's output (after its
``o_proj``) is RMS-normalised and the two are combined as ``config.branch_combine`` says.
Sequences handed to a layer are one of: the sinks followed by tokens (full forward, no cache),
or new tokens after a cache that already holds the sinks (prefill chunks and decoding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spikingbrain.models.gla_swa.layers import merge_heads, split_heads
from spikingbrain.models.hybrid.cache import HybridCache
from spikingbrain.models.hybrid.configuration import SpikingBrainMoEConfig
from spikingbrain.models.ops import attention as attention_ops
from spikingbrain.models.ops import gla as gla_ops
from spikingbrain.models.ops.moe import MoEFeedForward, SwiGLUMLP
from spikingbrain.models.ops.norm import RMSNorm
from spikingbrain.models.ops.rope import apply_rope, rope_cos_sin


class _Projections(nn.Module):
    def __init__(self, config: SpikingBrainMoEConfig) -> None:
        super().__init__()
        hidden, d = config.hidden_size, config.head_dim
        self.n_heads, self.n_kv = config.num_attention_heads, config.num_key_value_heads
        self.q_proj = nn.Linear(hidden, self.n_heads * d, bias=config.attention_bias)
        self.k_proj = nn.Linear(hidden, self.n_kv * d, bias=config.attention_bias)
        self.v_proj = nn.Linear(hidden, self.n_kv * d, bias=config.attention_bias)
        self.o_proj = nn.Linear(self.n_heads * d, hidden, bias=False)


class SoftmaxBranch(_Projections):
    """Softmax attention with RoPE, GQA, sinks; sliding window or full (``window=None``)."""

    def __init__(self, config: SpikingBrainMoEConfig, window: int | None) -> None:
        super().__init__(config)
        self.window, self.theta, self.head_dim = window, config.rope_theta, config.head_dim

    def forward(self, x: torch.Tensor, positions: torch.Tensor, n_sink: int,
                cache: HybridCache | None = None, layer: int = 0,
                store_sinks: bool = False) -> torch.Tensor:
        """``x [B, L, hidden]`` at absolute ``positions [L]``; ``n_sink``: sinks in the keys."""
        cos, sin = rope_cos_sin(positions, self.head_dim, self.theta, dtype=x.dtype)
        q = apply_rope(split_heads(self.q_proj(x), self.n_heads), cos, sin)
        k = apply_rope(split_heads(self.k_proj(x), self.n_kv), cos, sin)
        v = split_heads(self.v_proj(x), self.n_kv)
        if cache is None or store_sinks:  # sinks (+ tokens): the sinks are the first queries
            if store_sinks:
                cache.layers[layer].sink_k, cache.layers[layer].sink_v = k, v
            o = attention_ops.softmax_attention(q, k, v, window=self.window, n_sink=n_sink,
                                                sink_queries=True)
        else:  # new tokens after the cache: keys = sinks, buffered tokens, new tokens
            entry = cache.layers[layer]
            past = 0 if entry.k is None else entry.k.shape[2]
            k, v = cache.append_kv(layer, k, v)
            if entry.sink_k is not None:
                b = x.shape[0]
                k = torch.cat([entry.sink_k.expand(b, -1, -1, -1), k], dim=2)
                v = torch.cat([entry.sink_v.expand(b, -1, -1, -1), v], dim=2)
            o = attention_ops.softmax_attention(q, k, v, window=self.window, n_sink=n_sink,
                                                k_start=cache.seen_tokens - past)
        return self.o_proj(merge_heads(o))


def tied_gate_qkg(q_lin: torch.Tensor, k_lin: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid Q and K with the gate tied to the key: ``g = 1 - k``.

    ``log g = log(1 - sigmoid(z)) = logsigmoid(-z)``, exact and finite for every ``z``.

    >>> q, k, log_g = tied_gate_qkg(torch.zeros(1), torch.tensor([0.0, 40.0]))
    >>> k.tolist(), torch.allclose(log_g.exp(), 1 - k)
    ([0.5, 1.0], True)
    """
    return torch.sigmoid(q_lin), torch.sigmoid(k_lin), F.logsigmoid(
        -k_lin.to(torch.promote_types(k_lin.dtype, torch.float32)))


class GLABranch(_Projections):
    """Gated linear attention, sigmoid Q/K, decay tied to the key (``g = 1 - k``), GQA."""

    def __init__(self, config: SpikingBrainMoEConfig) -> None:
        super().__init__(config)
        self.backend, self.chunk_size = config.gla_backend, config.gla_chunk_size

    def forward(self, x: torch.Tensor, initial_state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, L, hidden]`` -> (output ``[B, L, hidden]``, final state ``[B, H, D, D]``)."""
        groups = self.n_heads // self.n_kv
        q, k, log_g = tied_gate_qkg(split_heads(self.q_proj(x), self.n_heads),
                                    split_heads(self.k_proj(x), self.n_kv))
        v = split_heads(self.v_proj(x), self.n_kv)
        k, v, log_g = (t.repeat_interleave(groups, dim=1) for t in (k, v, log_g))
        o, state = gla_ops.gla(q, k, v, log_g,
                               initial_state=initial_state, output_final_state=True,
                               backend=self.backend, chunk_size=self.chunk_size)
        return self.o_proj(merge_heads(o.to(x.dtype))), state


class HybridDecoderLayer(nn.Module):
    """Pre-norm block: ``h = x + combine(norm(softmax(x')), norm(gla(x')))``, ``h + ffn(norm(h))``."""

    def __init__(self, config: SpikingBrainMoEConfig, layer: int) -> None:
        super().__init__()
        hidden, eps = config.hidden_size, config.rms_norm_eps
        self.layer, self.combine, self.sink_gla = layer, config.branch_combine, config.sink_gla
        self.attn_norm = RMSNorm(hidden, eps=eps)
        self.attn = SoftmaxBranch(config, config.layer_window(layer))
        self.linear_attn = GLABranch(config)
        self.attn_out_norm = RMSNorm(hidden, eps=eps)
        self.linear_attn_out_norm = RMSNorm(hidden, eps=eps)
        if self.combine == "mix":
            self.branch_mix = nn.Parameter(torch.zeros(hidden))
        self.mlp_norm = RMSNorm(hidden, eps=eps)
        if config.layer_has_moe(layer):
            self.mlp = MoEFeedForward(hidden, config.moe_intermediate_size,
                                      n_experts=config.n_routed_experts,
                                      top_k=config.num_experts_per_tok,
                                      n_shared=config.n_shared_experts, alpha=config.moe_alpha,
                                      normalize_topk=config.norm_topk_prob)
        else:
            self.mlp = SwiGLUMLP(hidden, config.intermediate_size)

    def mix(self, soft: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
        """Combine the normalised branch outputs (``config.branch_combine``)."""
        soft, linear = self.attn_out_norm(soft), self.linear_attn_out_norm(linear)
        if self.combine == "sum":
            return soft + linear
        if self.combine == "mean":
            return 0.5 * (soft + linear)
        m = torch.sigmoid(self.branch_mix).to(soft.dtype)
        return m * linear + (1 - m) * soft

    def _gla(self, x: torch.Tensor, n_sink: int, cache: HybridCache | None,
             store_sinks: bool) -> torch.Tensor:
        entry = None if cache is None else cache.layers[self.layer]
        if cache is None:  # full forward over sinks + tokens
            if self.sink_gla == "prefix" or n_sink == 0:
                return self.linear_attn(x)[0]
            return torch.cat([self.linear_attn(x[:, :n_sink])[0],
                              self.linear_attn(x[:, n_sink:])[0]], dim=1)
        if store_sinks:
            out, state = self.linear_attn(x)
            entry.gla_state = state if self.sink_gla == "prefix" else None
            return out
        state = entry.gla_state
        if state is not None and state.shape[0] != x.shape[0]:
            state = state.expand(x.shape[0], -1, -1, -1)
        out, entry.gla_state = self.linear_attn(x, initial_state=state)
        return out

    def forward(self, x: torch.Tensor, positions: torch.Tensor, n_sink: int,
                cache: HybridCache | None = None, store_sinks: bool = False) -> torch.Tensor:
        h = self.attn_norm(x)
        soft = self.attn(h, positions, n_sink, cache, self.layer, store_sinks)
        x = x + self.mix(soft, self._gla(h, n_sink, cache, store_sinks))
        return x + self.mlp(self.mlp_norm(x))
