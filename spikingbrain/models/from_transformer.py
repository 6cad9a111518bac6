"""Build SpikingBrain-7B-architecture models from a Qwen2-style transformer, as the report does
(section 3, attention map transfer): every q/k/v/o projection, FFN, norm and embedding weight
is reused; only the new low-rank parameters (GLA gate projections ``gk_proj``, output norms
``g_norm``) are initialised. Qwen2.5-7B has exactly SpikingBrain-7B's shapes.

>>> from transformers import Qwen2Config, Qwen2ForCausalLM
>>> qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=48,
...     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()
>>> sb = from_transformer(qwen, sliding_window=16)
>>> type(sb).__name__, [b.kind for b in sb.model.layers]
('GLAswaForCausalLM', ['gla', 'swa'])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM

__all__ = ["config_from_transformer", "from_transformer", "weight_map"]

#: Qwen2 parameter name suffix -> SpikingBrain-7B name suffix (per layer).
_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "mlp_norm.weight",
    "self_attn.q_proj.weight": "attn.q_proj.weight",
    "self_attn.q_proj.bias": "attn.q_proj.bias",
    "self_attn.k_proj.weight": "attn.k_proj.weight",
    "self_attn.k_proj.bias": "attn.k_proj.bias",
    "self_attn.v_proj.weight": "attn.v_proj.weight",
    "self_attn.v_proj.bias": "attn.v_proj.bias",
    "self_attn.o_proj.weight": "attn.o_proj.weight",
    "mlp.gate_proj.weight": "mlp.gate_proj.weight",
    "mlp.up_proj.weight": "mlp.up_proj.weight",
    "mlp.down_proj.weight": "mlp.down_proj.weight",
}


def weight_map(n_layers: int) -> dict[str, str]:
    """Qwen2 parameter name -> SpikingBrain-7B parameter name for every reused weight."""
    m = {"model.embed_tokens.weight": "model.embeddings.weight",
         "model.norm.weight": "model.norm.weight", "lm_head.weight": "lm_head.weight"}
    for i in range(n_layers):
        for a, b in _LAYER_MAP.items():
            m[f"model.layers.{i}.{a}"] = f"model.layers.{i}.{b}"
    return m


def config_from_transformer(src_config: Any, *, sliding_window: int | None = None,
                            attn_layers: list[int] | None = None, **overrides: Any
                            ) -> GLAswaConfig:
    """A :class:`GLAswaConfig` with the shapes of a Qwen2-style config."""
    c = src_config
    theta = getattr(c, "rope_theta", None)
    if theta is None:  # transformers 5 keeps it in rope_parameters
        theta = (getattr(c, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    kw = dict(vocab_size=c.vocab_size, hidden_size=c.hidden_size,
              num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
              num_key_value_heads=c.num_key_value_heads, intermediate_size=c.intermediate_size,
              norm_eps=c.rms_norm_eps, rope_theta=float(theta),
              max_position_embeddings=c.max_position_embeddings,
              tie_word_embeddings=bool(getattr(c, "tie_word_embeddings", False)),
              bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id,
              pad_token_id=c.pad_token_id,
              sliding_window=sliding_window if sliding_window is not None else 4096,
              attn_layers=attn_layers)
    kw.update(overrides)
    return GLAswaConfig(**kw)


def from_transformer(model: nn.Module, *, sliding_window: int | None = None,
                     attn_layers: list[int] | None = None, seed: int = 0,
                     **overrides: Any) -> GLAswaForCausalLM:
    """A SpikingBrain-7B-architecture model carrying ``model``'s weights (Qwen2-style causal LM).

    Args:
        model: a transformers Qwen2-style ``*ForCausalLM`` (q/k/v with biases, SwiGLU FFN).
        sliding_window: window of the softmax layers (default 4096).
        attn_layers: which layers stay softmax attention (default: the odd ones); the others
            become GLA, reusing q/k/v/o with fresh gate projections and output norms.
        seed: seed of the fresh parameters.
    """
    cfg = config_from_transformer(model.config, sliding_window=sliding_window,
                                  attn_layers=attn_layers, **overrides)
    src = model.state_dict()
    if cfg.tie_word_embeddings and "lm_head.weight" not in src:
        src["lm_head.weight"] = src["model.embed_tokens.weight"]
    torch.manual_seed(seed)
    dtype = next(model.parameters()).dtype
    out = GLAswaForCausalLM(cfg).to(dtype)
    dst = out.state_dict()
    mapping = weight_map(cfg.num_hidden_layers)
    missing = [a for a in mapping if a not in src]
    if missing:
        raise ValueError(f"the source model lacks {missing[:4]}...: it is not a Qwen2-style "
                         f"causal LM (q/k/v with biases, gate/up/down FFN)")
    with torch.no_grad():
        for a, b in mapping.items():
            if dst[b].shape != src[a].shape:
                raise ValueError(f"{a} has shape {tuple(src[a].shape)} but {b} needs "
                                 f"{tuple(dst[b].shape)}")
            dst[b].copy_(src[a])
    return out.eval() if not model.training else out
