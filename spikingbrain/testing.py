"""Tiny random Hugging Face models for trying conversions without downloading anything.

>>> model = tiny_causal_lm("llama")
>>> type(model).__name__, sum(p.numel() for p in model.parameters()) < 200_000
('LlamaForCausalLM', True)
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["tiny_causal_lm", "TINY_KINDS"]

TINY_KINDS = ("llama", "qwen2", "gpt2")


def tiny_causal_lm(kind: str, seed: int = 0, vocab_size: int = 128) -> Any:
    """A tiny random causal LM (``"llama"``, ``"qwen2"`` or ``"gpt2"``) from a transformers config.

    Hidden size 64, 2 layers, vocabulary ``vocab_size`` (128), in eval mode; GPT-2 uses transformers' ``Conv1D``
    projections and ties its output head to the embedding.
    """
    from spikingbrain.utils.optional import require

    transformers = require("transformers", extra="hf", purpose="tiny Hugging Face models")
    torch.manual_seed(seed)
    if kind == "llama":
        cfg = transformers.LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=96,
                                       num_hidden_layers=2, num_attention_heads=4,
                                       num_key_value_heads=2, max_position_embeddings=64)
        return transformers.LlamaForCausalLM(cfg).eval()
    if kind == "qwen2":
        cfg = transformers.Qwen2Config(vocab_size=vocab_size, hidden_size=64, intermediate_size=96,
                                       num_hidden_layers=2, num_attention_heads=4,
                                       num_key_value_heads=2, max_position_embeddings=64)
        return transformers.Qwen2ForCausalLM(cfg).eval()
    if kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=vocab_size, n_embd=64, n_layer=2, n_head=4,
                                      n_positions=64)
        return transformers.GPT2LMHeadModel(cfg).eval()
    raise ValueError(f"unknown tiny model kind {kind!r}; choose one of {', '.join(TINY_KINDS)}")
