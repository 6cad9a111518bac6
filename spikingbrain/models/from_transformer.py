"""Build SpikingBrain-7B-architecture models from a Qwen2- or Llama-style transformer, as the
report does (section 3, attention map transfer): every q/k/v/o projection, FFN, norm and
embedding weight is reused; only the new low-rank parameters (GLA gate projections
``gk_proj``, output norms ``g_norm``) are initialised. Qwen2.5-7B has exactly SpikingBrain-7B's
shapes. A Llama-style source has no q/k/v biases: they become zero biases (the same function).

Any source setting the SpikingBrain-7B architecture cannot reproduce raises ValueError instead
of giving other logits: an activation other than SiLU, RoPE scaling (``rope_type`` other than
``default``), MLP or output-projection biases, a head_dim other than hidden / heads, or Qwen2's
own sliding windows. Tied embeddings (Qwen2.5-0.5B/1.5B/3B, SmolLM2) stay tied.

The model is built on the meta device in the target dtype and filled with the source's tensors,
so no float32 host copy of a large model is ever made.

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


_BIASES = ("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias")


def _rope_theta_and_type(c: Any) -> tuple[float, str]:
    params = dict(getattr(c, "rope_parameters", None) or {})
    scaling = getattr(c, "rope_scaling", None)
    if isinstance(scaling, dict):
        params = {**scaling, **params}
    theta = getattr(c, "rope_theta", None) or params.get("rope_theta", 10000.0)
    kind = params.get("rope_type", params.get("type", "default")) or "default"
    return float(theta), str(kind)


def check_transferable(c: Any) -> None:
    """Raise ValueError for every source setting SpikingBrain-7B cannot reproduce."""
    problems = []
    act = getattr(c, "hidden_act", "silu")
    if act not in ("silu", "swish"):
        problems.append(f"hidden_act={act!r} (SpikingBrain-7B's FFN is SwiGLU with SiLU)")
    _, kind = _rope_theta_and_type(c)
    if kind != "default":
        problems.append(f"RoPE scaling rope_type={kind!r} (only plain RoPE is implemented)")
    if getattr(c, "mlp_bias", False):
        problems.append("mlp_bias=True (the FFN has no biases)")
    if getattr(c, "use_sliding_window", False):
        problems.append("use_sliding_window=True (choose the windows with sliding_window= "
                        "and attn_layers= instead)")
    head_dim = getattr(c, "head_dim", None)
    if head_dim is not None and head_dim * c.num_attention_heads != c.hidden_size:
        problems.append(f"head_dim={head_dim} != hidden_size / num_attention_heads = "
                        f"{c.hidden_size // c.num_attention_heads}")
    if problems:
        raise ValueError("the source model cannot be rebuilt as SpikingBrain-7B without "
                         "changing its outputs: " + "; ".join(problems))


def config_from_transformer(src_config: Any, *, sliding_window: int | None = None,
                            attn_layers: list[int] | None = None, **overrides: Any
                            ) -> GLAswaConfig:
    """A :class:`GLAswaConfig` with the shapes of a Qwen2- or Llama-style config (every
    setting it cannot reproduce raises, see :func:`check_transferable`)."""
    c = src_config
    check_transferable(c)
    theta, _ = _rope_theta_and_type(c)
    kw = dict(vocab_size=c.vocab_size, hidden_size=c.hidden_size,
              num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
              num_key_value_heads=c.num_key_value_heads, intermediate_size=c.intermediate_size,
              norm_eps=c.rms_norm_eps, rope_theta=theta,
              max_position_embeddings=c.max_position_embeddings,
              tie_word_embeddings=bool(getattr(c, "tie_word_embeddings", False)),
              bos_token_id=c.bos_token_id, eos_token_id=_first(c.eos_token_id),
              pad_token_id=getattr(c, "pad_token_id", None),
              sliding_window=sliding_window if sliding_window is not None else 4096,
              attn_layers=attn_layers)
    kw.update(overrides)
    return GLAswaConfig(**kw)


def _first(token: Any) -> Any:
    return token[0] if isinstance(token, (list, tuple)) and token else token


def from_transformer(model: nn.Module, *, sliding_window: int | None = None,
                     attn_layers: list[int] | None = None, seed: int = 0,
                     dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                     copy: bool = True, **overrides: Any) -> GLAswaForCausalLM:
    """A SpikingBrain-7B-architecture model carrying ``model``'s weights (Qwen2- or Llama-style
    causal LM).

    Args:
        model: a transformers ``*ForCausalLM`` with q/k/v/o attention (biases optional) and a
            SwiGLU FFN.
        sliding_window: window of the softmax layers (default 4096).
        attn_layers: which layers stay softmax attention (default: the odd ones); the others
            become GLA, reusing q/k/v/o with fresh gate projections and output norms.
        seed: seed of the fresh parameters.
        dtype, device: of the new model (default: the source's); it is built on the meta
            device and filled directly, never as a float32 host copy.
        copy: copy the source's tensors (default); ``False`` shares their storage where dtype
            and device agree (no second copy of a large model; the source must then not be
            trained further).
    """
    from spikingbrain.models._common import init_weights_
    from spikingbrain.models.checkpoint import set_tensor, skeleton

    cfg = config_from_transformer(model.config, sliding_window=sliding_window,
                                  attn_layers=attn_layers, **overrides)
    src = dict(model.state_dict())
    first = next(model.parameters())
    dtype = first.dtype if dtype is None else dtype
    device = first.device if device is None else torch.device(device)
    if cfg.tie_word_embeddings:
        src.pop("lm_head.weight", None)  # tied: the embeddings are the head
    mapping = weight_map(cfg.num_hidden_layers)
    if cfg.tie_word_embeddings:
        mapping.pop("lm_head.weight")
    missing = [a for a in mapping if a not in src
               and not any(a.endswith(b) for b in _BIASES)]
    if missing:
        raise ValueError(f"the source model lacks {missing[:4]}...: it is not a Qwen2- or "
                         f"Llama-style causal LM (q/k/v/o attention, gate/up/down FFN)")
    out = skeleton(cfg, dtype)
    dst = dict(out.state_dict())
    with torch.no_grad():
        for a, b in mapping.items():
            if a not in src:  # a Llama-style source: no q/k/v bias, the same as a zero bias
                set_tensor(out, b, torch.zeros(dst[b].shape, dtype=dtype, device=device), True)
                continue
            if dst[b].shape != src[a].shape:
                raise ValueError(f"{a} has shape {tuple(src[a].shape)} but {b} needs "
                                 f"{tuple(dst[b].shape)}")
            t = src[a].to(device=device, dtype=dtype)
            set_tensor(out, b, t.clone() if copy and t.data_ptr() == src[a].data_ptr() else t,
                       True)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        fresh = [n for n, t in list(out.named_parameters()) + list(out.named_buffers())
                 if t.device.type == "meta"]
        for name in fresh:  # gate projections, output norms: initialised as the model does
            owner, _, leaf = name.rpartition(".")
            mod = out.get_submodule(owner)
            shape = getattr(mod, leaf).shape
            set_tensor(out, name, torch.empty(shape, dtype=dtype, device=device), True)
            if leaf == "weight" and isinstance(mod, nn.Linear):
                mod.weight.copy_(torch.randn(shape, generator=gen) * cfg.initializer_range)
            elif leaf == "bias":
                mod.bias.zero_()
            else:
                init_weights_(mod, cfg.initializer_range)
    if cfg.tie_word_embeddings:
        out.tie_weights()
    return out.eval() if not model.training else out
