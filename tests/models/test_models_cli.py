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


def test_76b_sinks_and_padding_are_no_tokens_in_analyze_sweep_and_nir(tmp_path):
    """Two sentences of a few tokens: every non-expert layer of the 76B counts exactly their
    real tokens (not the 4 sink rows per sentence, not the padding of the shorter one), in
    analyze, sweep-k and the NIR export (an expert included)."""
    src = _tiny_folder(tmp_path, "76b")
    run = CliRunner().invoke
    assert run(app, ["convert", str(src), str(tmp_path / "conv"), "--group-size", "32"]
               ).exit_code == 0
    text = tmp_path / "t.txt"
    text.write_text("Spiking neurons fire.\nThe quick brown fox jumps over the lazy dog.\n")
    tok = load_minilm()[1]
    real = sum(len(tok(s)["input_ids"]) for s in text.read_text().splitlines())
    res = run(app, ["analyze", str(tmp_path / "conv"), "--text", str(text), "--out",
                    str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    plain = [la for la in rep["layers"] if "experts." not in la["name"]]
    assert plain and all(la["tokens"] == real for la in plain), \
        {la["name"]: la["tokens"] for la in plain}
    routed = [la for la in rep["layers"] if ".mlp.experts." in la["name"]
              and la["name"].endswith("gate_proj")]
    assert sum(la["tokens"] for la in routed) == real  # top-1: each token reaches one expert
    assert "sink tokens" in json.dumps(rep["definitions"])
    res = run(app, ["sweep-k", str(src), "--text", str(text), "--k", "2,3",
                    "--out", str(tmp_path / "sweep")])
    assert res.exit_code == 0, res.output
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    first_layer_tokens = real * sum(1 for la in plain if la["name"] == plain[0]["name"])
    assert all(row["tokens"] % real == 0 and row["tokens"] >= first_layer_tokens
               for row in sweep["rows"]), sweep["rows"]
    from spikingbrain.neuromorphic.nir_import import read_nir_data

    res = run(app, ["export", "nir", str(tmp_path / "conv"), "--layers",
                    "model.layers.1.attn.q_proj", "--tokens", "5", "--out",
                    str(tmp_path / "q.nir")])
    assert res.exit_code == 0, res.output
    data = read_nir_data(tmp_path / "q.data.nir")
    assert data.nodes["model.layers.1.attn.q_proj.threshold"].observables["vth"].data.shape[0] \
        == 5
    reached = 0  # top-1 routing: the 5 tokens reach the experts 5 times in all
    for e in range(4):
        name = f"model.layers.1.mlp.experts.{e}.gate_proj"
        res = run(app, ["export", "nir", str(tmp_path / "conv"), "--layers", name,
                        "--tokens", "5", "--out", str(tmp_path / f"e{e}.nir")])
        if res.exit_code:
            assert "did not call" in res.output, res.output
            continue
        rows = read_nir_data(tmp_path / f"e{e}.data.nir").nodes[f"{name}.threshold"]
        reached += rows.observables["vth"].data.shape[0]
    assert reached == 5


def test_public_w8aspike_folder_through_analyze_generate_and_convert(tmp_path):
    """A public-layout W8ASpike folder (fp32 weights + weight_quantizer.scales, full-rank
    gate, codes beyond int8) is recognised by every command and loaded with its exact codes."""
    import importlib.util
    import pathlib

    spec = importlib.util.spec_from_file_location(
        "public_w8aspike_folder",
        pathlib.Path(__file__).parents[2] / "benchmarks" / "public_w8aspike_folder.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    size = dict(mod.SIZES["tiny"], vocab_size=30522, bos_token_id=101, eos_token_id=102)
    folder = tmp_path / "pub"
    summary = mod.write_folder(folder, size, beyond=0.01)
    assert summary["fraction_beyond"] >= 0.005
    load_minilm()[1].save_pretrained(folder)
    from spikingbrain.converter.folder import folder_kind

    assert folder_kind(folder) == "w8aspike"
    run = CliRunner().invoke
    text = tmp_path / "t.txt"
    text.write_text("Spiking neurons fire.\nThe quick brown fox jumps over the lazy dog.\n")
    res = run(app, ["analyze", str(folder), "--text", str(text), "--out", str(tmp_path / "r"),
                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "public W8ASpike" in json.dumps(rep["model"])
    res = run(app, ["generate", str(folder), "--prompt", "The quick brown fox",
                    "--prompt", "Spiking", "--max-new-tokens", "4", "--device", "cpu",
                    "--spikes"])
    assert res.exit_code == 0, res.output
    res = run(app, ["convert", str(folder), str(tmp_path / "conv")])
    assert res.exit_code == 0, res.output
    from spikingbrain.converter import load_converted
    from spikingbrain.models.checkpoint import load_w8aspike_folder

    a = load_converted(tmp_path / "conv")
    b = load_w8aspike_folder(folder, dtype=torch.float32)
    qa = {n: m.qdata for n, m in a.named_modules() if hasattr(m, "qdata")}
    qb = {n: m.qdata for n, m in b.named_modules() if hasattr(m, "qdata")}
    assert qa.keys() == qb.keys() and all(torch.equal(qa[n], qb[n]) for n in qa)
    assert any(q.dtype == torch.int16 for q in qa.values())  # the codes beyond int8 kept
