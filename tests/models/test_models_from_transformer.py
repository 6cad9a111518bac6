"""from_transformer: Qwen2 and Llama sources (tied or not) rebuilt exactly; every source setting
the SpikingBrain-7B architecture cannot reproduce raises; no float32 copy; tied 76B heads."""

from __future__ import annotations

import pytest
import torch

from spikingbrain.models import from_transformer

TINY = dict(vocab_size=96, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=48, bos_token_id=1, eos_token_id=2,
            max_position_embeddings=256)


def _source(kind: str, **overrides):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg_cls, model_cls = {"qwen2": (Qwen2Config, Qwen2ForCausalLM),
                          "llama": (LlamaConfig, LlamaForCausalLM)}[kind]
    model = model_cls(cfg_cls(**{**TINY, **overrides})).float().eval()
    with torch.no_grad():  # non-trivial norms and biases: every mapped tensor matters
        for n, p in model.named_parameters():
            if n.endswith("bias") or "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("kind,tied", [("qwen2", False), ("qwen2", True), ("llama", False),
                                       ("llama", True)])
def test_all_softmax_rebuild_equals_the_source(kind, tied):
    src = _source(kind, tie_word_embeddings=tied)
    sb = from_transformer(src, sliding_window=1000, attn_layers=[0, 1, 2])
    assert sb.config.tie_word_embeddings == tied
    assert (sb.lm_head.weight.data_ptr() == sb.model.embeddings.weight.data_ptr()) == tied
    ids = torch.randint(3, 96, (2, 21), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(sb(ids, use_cache=False).logits, src(ids).logits,
                                   rtol=1e-5, atol=1e-5)
    assert all(p.requires_grad for p in sb.parameters())  # trainable (attention transfer)


@pytest.mark.parametrize("setting,match", [
    (dict(hidden_act="gelu"), "hidden_act"),
    (dict(rope_scaling={"rope_type": "linear", "factor": 2.0}), "RoPE scaling"),
    (dict(mlp_bias=True), "mlp_bias"),
    (dict(head_dim=16), "head_dim"),
])
def test_settings_that_cannot_be_reproduced_raise(setting, match):
    src = _source("llama", **setting)
    with pytest.raises(ValueError, match=match):
        from_transformer(src)


def test_target_dtype_without_a_float32_copy():
    src = _source("qwen2").to(torch.bfloat16)
    sb = from_transformer(src, dtype=torch.bfloat16, copy=False)
    assert {p.dtype for p in sb.parameters()} == {torch.bfloat16}
    shared = sb.model.layers[0].mlp.up_proj.weight.data_ptr()
    assert shared == src.model.layers[0].mlp.up_proj.weight.data_ptr()
    copied = from_transformer(src)
    assert copied.model.layers[0].mlp.up_proj.weight.data_ptr() != \
        src.model.layers[0].mlp.up_proj.weight.data_ptr()
    assert not any(p.is_meta for p in copied.parameters())


def test_76b_ties_its_head_when_configured():
    from spikingbrain.models.hybrid import SpikingBrainMoEConfig, SpikingBrainMoEForCausalLM

    tied = SpikingBrainMoEForCausalLM(SpikingBrainMoEConfig.tiny(tie_word_embeddings=True))
    assert tied.lm_head.weight.data_ptr() == tied.model.embeddings.weight.data_ptr()
    untied = SpikingBrainMoEForCausalLM(SpikingBrainMoEConfig.tiny())
    assert untied.lm_head.weight.data_ptr() != untied.model.embeddings.weight.data_ptr()
