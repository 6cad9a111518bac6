"""SpikingBrain-76B: cached == full forward, generate, flat memory, full size on meta, convert."""

import pytest
import torch
from torch import nn

from spikingbrain.models._common import cache_of
from spikingbrain.models.hybrid import (
    SpikingBrainMoEConfig,
    SpikingBrainMoEForCausalLM,
    count_parameters,
    register,
)
from spikingbrain.models.hybrid.layers import tied_gate_qkg
from spikingbrain.models.ops.moe import MoEFeedForward, SwiGLUMLP


def _tiny(**overrides):
    torch.manual_seed(0)
    model = SpikingBrainMoEForCausalLM(SpikingBrainMoEConfig.tiny(**overrides)).double().eval()
    with torch.no_grad():  # non-trivial sinks, norms and mix so that every path matters
        model.model.sink_tokens.normal_()
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("branch_mix"):
                p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("overrides", [{}, {"branch_combine": "mean", "sink_gla": "separate"},
                                       {"branch_combine": "sum", "num_sink_tokens": 0}])
@torch.no_grad()
def test_prefill_then_decode_equals_full_forward(overrides):
    model = _tiny(**overrides)
    ids = torch.randint(0, 97, (2, 14))  # window 5 < 14 tokens
    full = model(ids, use_cache=False).logits
    out = model(ids[:, :6], use_cache=True)
    logits = [out.logits]
    for t in range(6, 14):
        logits.append(model(ids[:, t : t + 1], cache=cache_of(out)).logits)
    torch.testing.assert_close(torch.cat(logits, 1), full, rtol=1e-5, atol=1e-6)
    model.config.prefill_chunk_tokens = 4  # chunked prefill gives the same logits
    torch.testing.assert_close(model(ids, use_cache=True).logits, full, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_sinks_matter_and_are_computed_once():
    model = _tiny()
    ids = torch.randint(0, 97, (1, 8))
    base = model(ids, use_cache=False).logits
    out = model(ids, use_cache=True)
    sink_k = cache_of(out).layers[1].sink_k
    assert sink_k.shape == (1, 2, 3, 8)  # batch 1: shared by every sequence
    model.model(ids[:, :1], cache=cache_of(out))
    assert cache_of(out).layers[1].sink_k is sink_k
    model.model.sink_tokens.add_(1.0)
    assert not torch.allclose(model(ids, use_cache=False).logits, base)


@torch.no_grad()
def test_generate_equals_greedy_full_forward():
    model = _tiny()
    prompt = torch.randint(0, 97, (1, 4))
    generated = model.generate(prompt, max_new_tokens=9, do_sample=False)
    x = prompt
    for _ in range(9):
        x = torch.cat([x, model(x, use_cache=False).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(generated, x)


@torch.no_grad()
def test_cache_memory_flat_beyond_window_except_full_attention_layers():
    model = _tiny(num_hidden_layers=2, full_attention_layers=[1]).float()
    out = model(torch.randint(0, 97, (1, 8)), use_cache=True)
    cache = cache_of(out)
    sizes = []
    for step in range(24):
        model(torch.tensor([[step % 97]]), cache=cache)
        sizes.append([len(cache.layers[0].kv), len(cache.layers[1].kv)])
    assert all(s[0] == 5 for s in sizes)  # sliding layer: the window, constant
    assert [s[1] for s in sizes] == list(range(9, 33))  # full-attention layer: grows
    assert cache.layers[0].gla_state.shape == (1, 4, 8, 8)


def test_tied_gate_is_stable_and_exact():
    z = torch.tensor([-200.0, -5.0, 0.0, 5.0, 200.0])
    _, k, log_g = tied_gate_qkg(z, z)
    assert torch.isfinite(log_g).all() and (log_g <= 0).all()
    torch.testing.assert_close(log_g[1:4].exp(), 1 - k[1:4])
    assert log_g[-1].item() == pytest.approx(-200.0)


def _expected_counts(cfg):
    h, d, inter = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size
    qkv = h * d * (cfg.num_attention_heads + 2 * cfg.num_key_value_heads)
    bias = d * (cfg.num_attention_heads + 2 * cfg.num_key_value_heads)
    branch = qkv + bias + cfg.num_attention_heads * d * h
    norms_mix = 5 * h  # attn_norm, two branch-output norms, branch_mix, mlp_norm
    mlp = 3 * h * inter
    n_moe = cfg.num_hidden_layers - len(cfg.dense_ffn_layers)
    n_dense = len(cfg.dense_ffn_layers)
    experts = cfg.n_routed_experts + cfg.n_shared_experts
    other = 2 * cfg.vocab_size * h + cfg.num_sink_tokens * h + h
    common = cfg.num_hidden_layers * (2 * branch + norms_mix) + n_dense * mlp + other
    router = n_moe * h * cfg.n_routed_experts
    total = common + router + n_moe * experts * mlp
    active = common + router + n_moe * (cfg.n_shared_experts + cfg.num_experts_per_tok) * mlp
    return total, active


def test_full_size_on_meta_76b_total_12b_active():
    cfg = SpikingBrainMoEConfig()
    with torch.device("meta"):
        model = SpikingBrainMoEForCausalLM(cfg)
    assert all(p.is_meta for p in model.parameters())
    counts = count_parameters(model)
    print(f"SpikingBrain-76B on meta: {counts['total'] / 1e9:.2f} B total, "
          f"{counts['active'] / 1e9:.2f} B active per token")
    assert (counts["total"], counts["active"]) == _expected_counts(cfg)
    assert 75e9 < counts["total"] < 78e9 and 11.5e9 < counts["active"] < 13.5e9
    moe_layers = [i for i, layer in enumerate(model.model.layers)
                  if isinstance(layer.mlp, MoEFeedForward)]
    assert len(moe_layers) == 21 and {0, 1, 2, 4, 6, 8, 10}.isdisjoint(moe_layers)
    assert [i for i, layer in enumerate(model.model.layers) if layer.attn.window is None] == \
        [6, 13, 20, 27]
    assert model.model.layers[3].mlp.alpha == 1.0  # upcycling folds its scale into weights
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 28 * 8 + 21 * 52 + 7 * 3 + 1


def test_auto_classes_and_save_reload(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    register()
    model = _tiny().float()
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "spikingbrain_moe"
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 97, (1, 7))
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits, rtol=0, atol=0)


def test_convert_and_monitor_see_the_experts():
    from spikingbrain.analysis import monitor
    from spikingbrain.converter import SpikeConfig, SpikingLinear, convert

    model = _tiny().float()
    convert(model, SpikeConfig(k=3, group_size=16))
    names = {n for n, m in model.named_modules() if isinstance(m, SpikingLinear)}
    assert "model.layers.1.mlp.experts.3.up_proj" in names
    assert "model.layers.2.mlp.shared_experts.0.down_proj" in names
    assert "model.layers.0.linear_attn.k_proj" in names and "lm_head" not in names
    ids = torch.randint(0, 97, (2, 9))
    with torch.no_grad(), monitor(model) as mon:
        model(ids, use_cache=False)
    stats = {s.name: s for s in mon.stats().layers}
    expert_tokens = [stats[f"model.layers.1.mlp.experts.{e}.gate_proj"].tokens for e in range(4)]
    # every token reaches 1 expert; the 3 sink rows per sequence are computed but not counted
    assert sum(expert_tokens) == 2 * 9
    assert stats["model.layers.1.mlp.shared_experts.0.gate_proj"].tokens == 2 * 9
    with torch.no_grad(), monitor(model) as cached:  # the cached path runs the sinks alone
        model(ids, use_cache=True)
    assert {s.name: s.tokens for s in cached.stats().layers} == \
        {s.name: s.tokens for s in mon.stats().layers}


def test_config_rejects_bad_choices():
    with pytest.raises(ValueError, match="branch_combine"):
        SpikingBrainMoEConfig.tiny(branch_combine="max")
    with pytest.raises(ValueError, match="sink_gla"):
        SpikingBrainMoEConfig.tiny(sink_gla="all")
    with pytest.raises(ValueError, match="0-based"):
        SpikingBrainMoEConfig.tiny(full_attention_layers=[4])
    with pytest.raises(ValueError, match="num_key_value_heads"):
        SpikingBrainMoEConfig.tiny(num_key_value_heads=3)


def test_upcycle_dense_hybrid_into_moe_layout():
    from spikingbrain.models.upcycle import upcycle

    model = _tiny(dense_ffn_layers=[0, 1, 2, 3])
    assert all(isinstance(layer.mlp, SwiGLUMLP) for layer in model.model.layers)
    report = upcycle(model, n_experts=4, top_k=1, n_shared=1, seed=0, skip_layers=[0])
    assert report.layers == [f"model.layers.{i}.mlp" for i in (1, 2, 3)]
    cfg = model.config
    assert cfg.dense_ffn_layers == [0] and cfg.moe_alpha == 1.0  # the scale is in the weights
    rebuilt = SpikingBrainMoEForCausalLM(cfg)
    assert set(rebuilt.state_dict()) == set(model.state_dict())
    new_cfg = upcycle(SpikingBrainMoEConfig.tiny(dense_ffn_layers=[0, 1]), n_experts=8)
    assert new_cfg.n_routed_experts == 8 and new_cfg.dense_ffn_layers == [0, 1]


@torch.no_grad()
def test_cache_memory_same_at_1k_and_8k_tokens_without_full_attention_layers():
    model = _tiny(num_hidden_layers=2, full_attention_layers=[], prefill_chunk_tokens=512).float()
    sizes = {}
    for n_tokens in (1024, 8192):
        cache = cache_of(model(torch.randint(0, 97, (1, n_tokens)), use_cache=True,
                               logits_to_keep=1))
        for step in range(3):
            model(torch.tensor([[step]]), cache=cache, logits_to_keep=1)
        sizes[n_tokens] = cache.memory_bytes()
    print(f"76B tiny cache bytes: {sizes}")
    assert sizes[1024] == sizes[8192] > 0


@torch.no_grad()
def test_gla_branch_is_the_tied_gate_recurrence():
    model = _tiny()
    branch = model.model.layers[1].linear_attn
    x = torch.randn(1, 6, 32, dtype=torch.float64)
    out, state = branch(x)
    q = torch.sigmoid(branch.q_proj(x)).view(1, 6, 4, 8)
    k = torch.sigmoid(branch.k_proj(x)).view(1, 6, 2, 8).repeat_interleave(2, dim=2)
    v = branch.v_proj(x).view(1, 6, 2, 8).repeat_interleave(2, dim=2)
    s = torch.zeros(4, 8, 8, dtype=torch.float64)
    rows = []
    for t in range(6):
        s = (1 - k[0, t])[..., None] * s + k[0, t][..., None] * v[0, t][:, None, :]
        rows.append(torch.einsum("hk,hkv->hv", q[0, t] * 8**-0.5, s).reshape(-1))
    expected = branch.o_proj(torch.stack(rows)[None])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state[0], s, rtol=1e-5, atol=1e-6)



def test_cli_convert_tiny_76b_folder_and_reload(tmp_path):
    from typer.testing import CliRunner

    from spikingbrain.cli import app
    from spikingbrain.converter import SpikingLinear, load_converted

    register()
    _tiny().float().save_pretrained(tmp_path / "src")
    res = CliRunner().invoke(app, ["convert", str(tmp_path / "src"), str(tmp_path / "out"),
                                   "--group-size", "16"])
    assert res.exit_code == 0, res.output
    # load_converted looks model classes up in transformers by name only: hand it the shell
    shell = SpikingBrainMoEForCausalLM(SpikingBrainMoEConfig.from_pretrained(tmp_path / "out"))
    again = load_converted(tmp_path / "out", model=shell).eval()
    names = {n for n, m in again.named_modules() if isinstance(m, SpikingLinear)}
    assert "model.layers.3.mlp.experts.0.down_proj" in names
    with torch.no_grad():
        assert torch.isfinite(again(torch.tensor([[3, 4, 5]]), use_cache=False).logits).all()


@torch.no_grad()
def test_cache_reorder_for_beam_search_keeps_shared_sinks():
    model = _tiny()
    ids = torch.randint(0, 97, (2, 7))
    cache = cache_of(model(ids, use_cache=True))
    swapped = cache_of(model(ids.flip(0), use_cache=True))
    cache.reorder_cache(torch.tensor([1, 0]))
    for a, b in zip(cache.layers, swapped.layers, strict=True):
        assert a.sink_k.shape[0] == 1
        torch.testing.assert_close(a.kv.k, b.kv.k)
        torch.testing.assert_close(a.gla_state, b.gla_state)
    beams = model.generate(ids[:1], max_new_tokens=3, num_beams=2, do_sample=False)
    assert beams.shape == (1, 10) and torch.equal(beams[:, :7], ids[:1])
