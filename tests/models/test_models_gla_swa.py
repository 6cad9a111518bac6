"""SpikingBrain-7B: equal to transformers' Qwen2 when built from it with every layer softmax;
cached decoding equal to a full forward; flat decoding memory; public names and Auto classes."""

from __future__ import annotations

import json

import pytest
import torch

from spikingbrain.models import from_transformer, register
from spikingbrain.models._common import cache_of
from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM

TINY = dict(vocab_size=96, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=48, bos_token_id=1, eos_token_id=2)


def _qwen2(seed=0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(**TINY, max_position_embeddings=256, rope_theta=10000.0)
    model = Qwen2ForCausalLM(cfg).float().eval()
    with torch.no_grad():  # non-zero biases and norms, so every mapped tensor matters
        for n, p in model.named_parameters():
            if n.endswith("bias") or "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    return model


def test_all_softmax_layers_with_a_long_window_equal_qwen2_logits():
    qwen = _qwen2()
    sb = from_transformer(qwen, sliding_window=1000, attn_layers=list(range(4))).float()
    ids = torch.randint(3, 96, (2, 37), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = qwen(input_ids=ids).logits
        got = sb(input_ids=ids, use_cache=False).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_windows_shorter_than_the_input_change_the_result():
    qwen = _qwen2()
    sb = from_transformer(qwen, sliding_window=5, attn_layers=list(range(4))).float()
    ids = torch.randint(3, 96, (1, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = qwen(input_ids=ids).logits, sb(input_ids=ids, use_cache=False).logits
    torch.testing.assert_close(b[:, :6], a[:, :6], rtol=1e-5, atol=1e-5)  # window not reached
    assert not torch.allclose(b[:, 10:], a[:, 10:], atol=1e-3)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return GLAswaForCausalLM(GLAswaConfig(**TINY, sliding_window=6, prefill_chunk_tokens=0,
                                          decode_window="flash")).eval()


@pytest.mark.parametrize("prefill", [1, 9, 15])
def test_prefill_plus_cached_decoding_equals_full_forward(tiny, prefill):
    ids = torch.randint(3, 96, (2, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = tiny(input_ids=ids, use_cache=False).logits
        out = tiny(input_ids=ids[:, :prefill], use_cache=True)
        logits, cache = [out.logits], cache_of(out)
        for t in range(prefill, 24):
            out = tiny(input_ids=ids[:, t:t + 1], cache=cache, use_cache=True)
            logits.append(out.logits)
    torch.testing.assert_close(torch.cat(logits, 1), full, rtol=1e-5, atol=1e-5)


def test_chunked_prefill_equals_one_pass(tiny):
    ids = torch.randint(3, 96, (1, 30), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = tiny(input_ids=ids, use_cache=False).logits
        tiny.config.prefill_chunk_tokens = 7
        chunked = tiny(input_ids=ids, use_cache=True).logits
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)


def test_generate_equals_greedy_full_forward(tiny):
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    out = tiny.generate(ids, max_new_tokens=10, do_sample=False)
    seq = ids
    with torch.no_grad():
        for _ in range(10):
            nxt = tiny(input_ids=seq, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
    assert torch.equal(out, seq)


def test_decoding_memory_is_flat_beyond_the_window():
    """Cache bytes after 1k and after 8k tokens are the same (window 64, tiny config)."""
    torch.manual_seed(0)
    model = GLAswaForCausalLM(GLAswaConfig(**TINY, sliding_window=64)).eval()
    sizes = {}
    with torch.no_grad():
        out = model(input_ids=torch.randint(3, 96, (1, 1024)), use_cache=True)
        cache = cache_of(out)
        sizes[1024] = cache.nbytes()
        ids = torch.randint(3, 96, (1, 7 * 1024))
        for s in range(0, ids.shape[1], 1024):  # 7k more tokens, a chunk at a time
            cache = cache_of(model(input_ids=ids[:, s:s + 1024], cache=cache))
        sizes[8192] = cache.nbytes()
        cache = cache_of(model(input_ids=ids[:, :1], cache=cache))
    assert cache.seen_tokens == 8193
    assert sizes[1024] == sizes[8192] == cache.nbytes() > 0


def test_public_names_and_auto_classes(tmp_path, tiny):
    """A tiny 7B saved with the public key names reloads through AutoModelForCausalLM, with
    and without the public config.json's auto_map."""
    from transformers import AutoModelForCausalLM

    names = set(tiny.state_dict())
    for key in ("model.embeddings.weight", "model.norm.weight", "lm_head.weight",
                "model.layers.0.attn.gk_proj.0.weight", "model.layers.0.attn.gk_proj.1.bias",
                "model.layers.0.attn.g_norm.weight", "model.layers.1.attn.q_proj.bias",
                "model.layers.1.attn.o_proj.weight", "model.layers.1.mlp.down_proj.weight",
                "model.layers.1.attn_norm.weight", "model.layers.1.mlp_norm.weight"):
        assert key in names, key
    assert "model.layers.1.attn.gk_proj.0.weight" not in names  # odd layers: softmax
    register()
    ids = torch.tensor([[4, 5, 6, 7]])
    for auto_map in (False, True):
        folder = tmp_path / f"m{auto_map}"
        tiny.save_pretrained(folder)
        cfg = json.loads((folder / "config.json").read_text())
        assert cfg["model_type"] == "gla_swa" and cfg["architectures"] == ["GLAswaForCausalLM"]
        if auto_map:
            cfg["auto_map"] = {"AutoConfig": "configuration_gla_swa.GLAswaConfig",
                               "AutoModelForCausalLM": "modeling_gla_swa.GLAswaForCausalLM"}
            (folder / "config.json").write_text(json.dumps(cfg))
        again = AutoModelForCausalLM.from_pretrained(folder).eval()
        with torch.no_grad():
            assert torch.equal(again(input_ids=ids).logits, tiny(input_ids=ids).logits)


def test_full_size_on_meta_has_7_6_billion_parameters():
    with torch.device("meta"):
        model = GLAswaForCausalLM(GLAswaConfig())
    n = sum(p.numel() for p in model.parameters())
    assert 7.5e9 < n < 7.7e9, n


def test_converted_7b_folder_saves_and_loads_by_itself(tmp_path, tiny):
    """save_converted / load_converted (no skeleton given) on a SpikingBrain-7B."""
    from spikingbrain.converter import SpikeConfig, convert, load_converted, save_converted

    conv = convert(tiny, SpikeConfig(group_size=16))
    save_converted(conv, tmp_path / "c")
    again = load_converted(tmp_path / "c")
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, conv(input_ids=ids).logits)
