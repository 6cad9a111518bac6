"""SpikingBrain-76B blocks: softmax branch, tied-gate GLA branch, their mix, the decoder layer.

Every layer runs both branches on the same normalised input; each branch's output (after its
``o_proj``) is RMS-normalised and the two are combined as ``config.branch_combine`` says.
Sequences handed to a layer (:class:`HybridStep` says which) are one of: the sinks followed by
tokens (``"full"``: no cache), the sinks alone (``"sinks"``: filling a cache), or new tokens
after a cache that already holds the sinks (``"tokens"``: prefill chunks and decoding).
Padding anywhere in a row is skipped (see :mod:`spikingbrain.models._common`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spikingbrain.models._common import Layout, mask_recurrent_inputs, merge_heads, split_heads
from spikingbrain.models.hybrid.cache import HybridCache
from spikingbrain.models.hybrid.configuration import SpikingBrainMoEConfig
from spikingbrain.models.ops import attention as attention_ops
from spikingbrain.models.ops import gla as gla_ops
from spikingbrain.models.ops.moe import MoEFeedForward, SwiGLUMLP
from spikingbrain.models.ops.norm import RMSNorm
from spikingbrain.models.ops.rope import apply_rope


@dataclass
class HybridStep:
    """One pass through the layers.

    Attributes:
        mode: ``"full"``, ``"sinks"`` or ``"tokens"`` (see the module docstring).
        n_sink: sink tokens of the model.
        rope: ``cos, sin`` for the rows of ``x`` (sinks at positions ``0 .. n_sink - 1``,
            tokens from ``n_sink`` on).
        layout: where the (non-sink) tokens sit, in token positions (``None`` for ``"sinks"``).
        cache: the cache (``None`` for ``"full"``).
    """

    mode: str
    n_sink: int
    rope: tuple[torch.Tensor, torch.Tensor]
    layout: Layout | None = None
    cache: HybridCache | None = None
    decode_window: str = "flash"

    @functools.cached_property
    def valid(self) -> torch.Tensor | None:
        """``[B, rows]`` bool for the rows of ``x`` (sinks True), None without padding (made
        once per step: every layer's GLA branch and MoE read it)."""
        v = None if self.layout is None else self.layout.valid
        if v is None or self.mode != "full" or not self.n_sink:
            return v
        return torch.cat([v.new_ones(v.shape[0], self.n_sink), v], 1)

    @property
    def decoding(self) -> bool:
        return self.mode == "tokens" and self.layout.length == 1 and self.cache.seen_tokens > 0


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
        self.window, self.head_dim = window, config.head_dim

    def forward(self, x: torch.Tensor, step: HybridStep, layer: int = 0) -> torch.Tensor:
        """``x [B, L, hidden]``: the rows ``step.mode`` says."""
        q = apply_rope(split_heads(self.q_proj(x), self.n_heads), *step.rope)
        k = apply_rope(split_heads(self.k_proj(x), self.n_kv), *step.rope)
        v = split_heads(self.v_proj(x), self.n_kv)
        n, lay = step.n_sink, step.layout
        window = self.window
        if step.mode == "sinks":  # the sinks see each other, nothing else
            entry = step.cache.layers[layer]
            entry.sink_k, entry.sink_v = k, v
            o = attention_ops.softmax_attention(q, k, v, n_sink=n, sink_queries=True)
            return self.o_proj(merge_heads(o))
        if step.mode == "full":
            o = attention_ops.softmax_attention(
                q, k, v, window=window, n_sink=n, sink_queries=True, q_start=lay.start,
                k_start=lay.start, **_pos_args(lay, lay.pos))
            return self.o_proj(merge_heads(o))
        if window is not None and step.decoding and step.decode_window == "public":
            window -= 1
        entry = step.cache.layers[layer]
        k, v, k_pos, k_start = entry.kv.extend(k, v, lay)
        if entry.sink_k is not None:
            b = x.shape[0]
            k = torch.cat([entry.sink_k.expand(b, -1, -1, -1), k], dim=2)
            v = torch.cat([entry.sink_v.expand(b, -1, -1, -1), v], dim=2)
        o = attention_ops.softmax_attention(q, k, v, window=window, n_sink=n,
                                            q_start=lay.start, k_start=k_start,
                                            **_pos_args(lay, k_pos))
        return self.o_proj(merge_heads(o))


def _pos_args(lay: Layout, k_pos: torch.Tensor | None) -> dict:
    """The per-row position arguments of attention (empty without padding)."""
    if k_pos is None:
        return {}
    q_pos = lay.pos if lay.pos is not None else (
        torch.arange(lay.length, device=k_pos.device) + lay.start)[None].expand(
        k_pos.shape[0], -1)
    return {"q_pos": q_pos, "k_pos": k_pos}


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

    def forward(self, x: torch.Tensor, initial_state: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, L, hidden]`` -> (output ``[B, L, hidden]``, final state ``[B, H, D, D]``);
        rows where ``valid [B, L]`` is False (padding) leave the state unchanged."""
        groups = self.n_heads // self.n_kv
        q, k, log_g = tied_gate_qkg(split_heads(self.q_proj(x), self.n_heads),
                                    split_heads(self.k_proj(x), self.n_kv))
        v = split_heads(self.v_proj(x), self.n_kv)
        k, v, log_g = mask_recurrent_inputs(valid, k, v, log_g)
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

    def _gla(self, x: torch.Tensor, step: HybridStep) -> torch.Tensor:
        n = step.n_sink
        if step.mode == "full":  # sinks + tokens
            valid = step.valid
            if self.sink_gla == "prefix" or n == 0:
                return self.linear_attn(x, valid=valid)[0]
            return torch.cat([self.linear_attn(x[:, :n])[0],
                              self.linear_attn(x[:, n:], valid=step.layout.valid)[0]], dim=1)
        entry = step.cache.layers[self.layer]
        if step.mode == "sinks":
            out, state = self.linear_attn(x)
            entry.gla_state = state if self.sink_gla == "prefix" else None
            return out
        state = entry.gla_state
        if state is not None and state.shape[0] != x.shape[0]:
            state = state.expand(x.shape[0], -1, -1, -1)
        out, entry.gla_state = self.linear_attn(x, initial_state=state, valid=step.layout.valid)
        return out

    def forward(self, x: torch.Tensor, step: HybridStep) -> torch.Tensor:
        h = self.attn_norm(x)
        soft = self.attn(h, step, self.layer)
        x = x + self.mix(soft, self._gla(h, step))
        h = self.mlp_norm(x)
        if isinstance(self.mlp, MoEFeedForward):
            return x + self.mlp(h, valid=step.valid)
        return x + self.mlp(h)
