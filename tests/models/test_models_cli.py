"""The shell commands on tiny SpikingBrain-7B and -76B folders: convert, analyze (HTML report
with per-layer statistics of GLA, SWA and FFN projections) and export lava."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from spikingbrain.cli import app
from spikingbrain.data import load_minilm


def _tiny_folder(tmp_path, kind: str):
    """A tiny random model with the embedded MiniLM tokenizer (vocabulary 30522) beside it."""
    torch.manual_seed(0)
    common = dict(vocab_size=30522, hidden_size=64, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=96, bos_token_id=101,
                  eos_token_id=102, sliding_window=8)
    if kind == "7b":
        from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM

        model = GLAswaForCausalLM(GLAswaConfig(num_hidden_layers=2, **common))
    else:
        from spikingbrain.models.hybrid import SpikingBrainMoEConfig, SpikingBrainMoEForCausalLM

        model = SpikingBrainMoEForCausalLM(SpikingBrainMoEConfig(
            num_hidden_layers=2, moe_intermediate_size=96, n_routed_experts=4,
            num_sink_tokens=4, full_attention_layers=[1], dense_ffn_layers=[0], **common))
    folder = tmp_path / kind
    model.save_pretrained(folder)
    load_minilm()[1].save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["7b", "76b"])
def test_convert_analyze_and_export_lava(tmp_path, kind):
    src = _tiny_folder(tmp_path, kind)
    run = CliRunner().invoke
    res = run(app, ["convert", str(src), str(tmp_path / "conv"), "--group-size", "32"])
    assert res.exit_code == 0, res.output
    text = tmp_path / "t.txt"
    text.write_text("Spiking neurons fire.\nThe quick brown fox jumps over the lazy dog.\n")
    res = run(app, ["analyze", str(tmp_path / "conv"), "--text", str(text), "--out",
                    str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    names = [layer["name"] for layer in rep["layers"]]
    html = (tmp_path / "report" / "index.html").read_text()
    roles = {layer["name"]: layer["role"] for layer in rep["layers"]}
    if kind == "7b":  # layer 0 is GLA (gk_proj), layer 1 sliding-window softmax
        assert roles["model.layers.0.attn.q_proj"] == "GatedLinearAttention"
        assert roles["model.layers.0.attn.gk_proj.0"] == "GatedLinearAttention"
        assert roles["model.layers.1.attn.q_proj"] == "SlidingWindowAttention"
        assert roles["model.layers.1.mlp.down_proj"] == "SwiGLUMLP"
        shown = ("GatedLinearAttention", "SlidingWindowAttention", "SwiGLUMLP",
                 "L0 attn.gk_proj.0", "L1 attn.o_proj")
    else:
        assert any("experts" in n for n in names), names
        shown = tuple(sorted({r for r in roles.values() if r}))
        assert len(shown) >= 3, shown
    for s in shown:
        assert s in html, s
    plain = [n for n in names if "experts" not in n]  # expert inputs are gathered tokens
    res = run(app, ["export", "lava", str(tmp_path / "conv"), "--layers", plain[-1],
                    "--tokens", "4", "--out", str(tmp_path / "bundle")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "bundle.npz").is_file()
