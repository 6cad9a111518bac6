"""Shared fixtures of the converter tests: tiny Hugging Face models and the real MiniLM."""

from __future__ import annotations

import pytest
import torch


def tiny_causal_lm(kind: str):
    """A tiny random causal LM of ``kind`` (llama, qwen2, gpt2) built from a transformers config."""
    import transformers

    torch.manual_seed(0)
    if kind == "llama":
        cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=96,
                                       num_hidden_layers=2, num_attention_heads=4,
                                       num_key_value_heads=2, max_position_embeddings=64)
        return transformers.LlamaForCausalLM(cfg).eval()
    if kind == "qwen2":
        cfg = transformers.Qwen2Config(vocab_size=128, hidden_size=64, intermediate_size=96,
                                       num_hidden_layers=2, num_attention_heads=4,
                                       num_key_value_heads=2, max_position_embeddings=64)
        return transformers.Qwen2ForCausalLM(cfg).eval()
    if kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=128, n_embd=64, n_layer=2, n_head=4,
                                      n_positions=64)
        return transformers.GPT2LMHeadModel(cfg).eval()
    raise ValueError(kind)


@pytest.fixture(scope="session")
def minilm():
    from spikingbrain.data import load_minilm

    return load_minilm()


@pytest.fixture(scope="session")
def minilm_batch(minilm):
    from spikingbrain.data import stdlib_sentences

    _, tok = minilm
    return tok(stdlib_sentences(16), padding=True, return_tensors="pt")
