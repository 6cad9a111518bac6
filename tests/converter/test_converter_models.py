"""convert() on plain and Hugging Face models; memory; calibration; save/load round trips."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from spikingbrain.converter import (
    SpikeConfig,
    SpikingLinear,
    calibrate,
    convert,
    load_converted,
    memory_summary,
    save_converted,
    set_mode,
    spiking_layers,
)
from spikingbrain.converter.serialize import META_FILE, WEIGHTS_FILE
from spikingbrain.testing import tiny_causal_lm


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2"])
def test_tiny_hf_models_convert_and_generate(kind):
    model = tiny_causal_lm(kind)
    ids = torch.tensor([[1, 5, 9, 2]])
    fp16_dense = sum(2 * m.weight.numel() for n, m in model.named_modules()
                     if n != "lm_head" and (isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"))
    convert(model, SpikeConfig())
    layers = spiking_layers(model)
    assert layers and "lm_head" not in layers  # output head kept in float
    assert isinstance(model.lm_head, nn.Linear)
    if kind == "gpt2":
        assert any(n.endswith("attn.c_attn") for n in layers)  # Conv1D converted
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 8)
    mem = memory_summary(model)
    assert mem.ratio <= 0.55 and mem.fp16_bytes >= fp16_dense


def test_idempotent_and_filter_errors():
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    convert(net, SpikeConfig())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    convert(net, SpikeConfig(k=2.0))  # already converted: k applies, the weights stay
    assert net[0].config.k == 2.0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(TypeError, match="cannot be converted"):
        convert(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), SpikeConfig(), lambda m, n: n == "1")
    with pytest.raises(TypeError, match="SpikeConfig"):
        convert(net, {"k": 3})
    lin = convert(nn.Linear(4, 2), SpikeConfig())
    assert isinstance(lin, SpikingLinear)


def test_tied_output_head_excluded():
    model = tiny_causal_lm("gpt2")  # lm_head tied to wte
    convert(model, SpikeConfig())
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()


def test_modes_identical_on_whole_model():
    model = tiny_causal_lm("llama")
    convert(model, SpikeConfig(scheme="ternary"))
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        a = model(ids).logits
        set_mode(model, "spike")
        b = model(ids).logits
    assert torch.equal(a, b)


def test_calibration_not_worse_than_absmax():
    torch.manual_seed(0)
    lin = nn.Linear(64, 16)
    with torch.no_grad():
        lin.weight[:, 0] *= 20  # an outlier column makes absmax coarse
    x = torch.randn(256, 64)
    with torch.no_grad():
        ref = lin(x)
    absmax = convert(nn.Sequential(nn.Linear(64, 16)), SpikeConfig(granularity="channel"))
    absmax[0] = SpikingLinear.from_linear(lin, SpikeConfig(granularity="channel"))
    cal = calibrate(nn.Sequential(lin), [x[:128], x[128:]], n=256,
                    config=SpikeConfig(granularity="channel"), show_progress=False)
    e_abs = (absmax(x) - ref).square().sum()
    e_cal = (cal(x) - ref).square().sum()
    assert e_cal <= e_abs
    with pytest.raises(ValueError, match="float model"):
        calibrate(cal, [x], n=1, show_progress=False)


def test_save_load_roundtrip_hf(tmp_path):
    model = tiny_causal_lm("qwen2")
    convert(model, SpikeConfig(group_size=32))
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        ref = model(ids).logits
    save_converted(model, tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["schema_version"] == 2 and meta["config"]["group_size"] == 32
    assert (tmp_path / "config.json").is_file()
    again = load_converted(tmp_path)  # rebuilt from config.json
    with torch.no_grad():
        assert torch.equal(again(ids).logits, ref)
    skel = load_converted(tmp_path, model=tiny_causal_lm("qwen2"))
    with torch.no_grad():
        assert torch.equal(skel(ids).logits, ref)


def test_save_load_tied_gpt2(tmp_path):
    model = tiny_causal_lm("gpt2")
    convert(model, SpikeConfig())
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        ref = model(ids).logits
    save_converted(model, tmp_path)
    again = load_converted(tmp_path)
    with torch.no_grad():
        assert torch.equal(again(ids).logits, ref)


def _saved(tmp_path):
    net = convert(nn.Sequential(nn.Linear(8, 4)), SpikeConfig())
    save_converted(net, tmp_path)
    return net


def test_corrupt_safetensors(tmp_path):
    _saved(tmp_path)
    data = bytearray((tmp_path / WEIGHTS_FILE).read_bytes())
    data[-3] ^= 0xFF
    (tmp_path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        load_converted(tmp_path, model=nn.Sequential(nn.Linear(8, 4)))
    (tmp_path / WEIGHTS_FILE).write_bytes(b"\x00\x01garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_converted(tmp_path, model=nn.Sequential(nn.Linear(8, 4)), verify=False)


def test_schema_foreign_and_mismatch(tmp_path):
    _saved(tmp_path)
    meta_path = tmp_path / META_FILE
    meta = json.loads(meta_path.read_text())
    with pytest.raises(ValueError, match="does not match|mismatch"):
        load_converted(tmp_path, model=nn.Sequential(nn.Linear(8, 5)))
    with pytest.raises(ValueError, match="does not match"):
        load_converted(tmp_path, model=nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="lacks"):
        load_converted(tmp_path, model=nn.Sequential())
    with pytest.raises(ValueError, match="plain PyTorch"):
        load_converted(tmp_path)
    meta_path.write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(ValueError, match="newer"):
        load_converted(tmp_path, model=nn.Sequential(nn.Linear(8, 4)))
    meta_path.write_text(json.dumps({**meta, "format": "somebody.else"}))
    with pytest.raises(ValueError, match="not a spikingbrain"):
        load_converted(tmp_path, model=nn.Sequential(nn.Linear(8, 4)))
    meta_path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_converted(tmp_path, model=nn.Sequential(nn.Linear(8, 4)))
    with pytest.raises(FileNotFoundError, match="holds no converted model"):
        load_converted(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no SpikingLinear"):
        save_converted(nn.Linear(2, 2), tmp_path / "x")


def test_cli_convert_tiny_gpt2(tmp_path):
    from typer.testing import CliRunner

    from spikingbrain.cli import app

    model = tiny_causal_lm("gpt2")
    model.save_pretrained(tmp_path / "src")
    res = CliRunner().invoke(app, ["convert", str(tmp_path / "src"), str(tmp_path / "out"),
                                   "--k", "3", "--group-size", "32", "--T", "4"])
    assert res.exit_code == 0, res.output
    assert "layers converted" in res.output and "fp16" in res.output
    again = load_converted(tmp_path / "out")
    assert spiking_layers(again)
    bad = CliRunner().invoke(app, ["convert", str(tmp_path), str(tmp_path / "o2")])
    assert bad.exit_code != 0


def test_converting_a_converted_model_applies_or_refuses_the_new_config():
    net = convert(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4)), SpikeConfig(group_size=4))
    convert(net, SpikeConfig(group_size=4, k=2.0, scheme="ternary", mode="spike"))
    assert all(m.config.k == 2.0 and m.config.scheme == "ternary" and m.config.mode == "spike"
               for m in spiking_layers(net).values())
    with pytest.raises(ValueError, match="needs the float weights"):
        convert(net, SpikeConfig(group_size=8))
    convert(net)  # no config given: nothing changes
    assert spiking_layers(net)["0"].config.k == 2.0
