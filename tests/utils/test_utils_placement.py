"""--device / --dtype / --device-map: validation and resolution (CUDA simulated where absent),
loading in a target dtype without touching the converted layers' codes and scales, inputs
following the model, and every command refusing CUDA on a CPU-only machine before loading."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from spikingbrain.cli import app
from spikingbrain.converter import SpikeConfig, convert, load_converted, save_converted
from spikingbrain.utils import placement as pl
from spikingbrain.utils.cli_checks import UsageError
from spikingbrain.utils.placement import Placement


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_defaults_on_a_cpu_machine(no_cuda):
    p = Placement()
    assert (p.device, p.dtype, p.device_map) == ("cpu", None, None)
    assert p.torch_dtype is None and not p.is_cuda
    assert p.describe() == "cpu, the folder's own dtype"
    assert Placement("CPU", "bfloat16").dtype == "bf16"
    assert Placement("cpu", "fp16").torch_dtype == torch.float16


def test_cuda_resolution(two_gpus):
    p = Placement()
    assert (p.device, p.dtype, p.torch_dtype) == ("cuda:0", "bf16", torch.bfloat16)
    assert Placement("cuda").device == "cuda:0"
    assert Placement(" CUDA:1 ", "fp32").device == "cuda:1"
    assert Placement("cuda:1", "fp32").dtype == "fp32"
    m = Placement(device_map="auto")
    assert (m.device, m.device_map, m.dtype) == ("cuda:0", "auto", "bf16")
    assert m.describe() == "device map auto over the visible GPUs, bf16"
    assert Placement("cuda", device_map="AUTO").device_map == "auto"
    with pytest.raises(UsageError, match=r"2 visible GPU\(s\) \(cuda:0 .. cuda:1\)"):
        Placement("cuda:2")


def test_from_pretrained_kwargs(two_gpus):
    import transformers

    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    kw = pl.from_pretrained_kwargs(Placement("cuda:1"))
    assert kw[key] == torch.bfloat16 and kw["device_map"] == {"": "cuda:1"}
    assert pl.from_pretrained_kwargs(Placement(device_map="auto"))["device_map"] == "auto"
    cpu = pl.from_pretrained_kwargs(Placement("cpu"))
    assert cpu[key] == "auto" and "device_map" not in cpu  # the folder's own dtype, host


@pytest.mark.parametrize("kw, match", [
    ({"device": "cuda"}, "--device cuda: CUDA is not available"),
    ({"device": "cuda:0"}, "--device cuda:0: CUDA is not available"),
    ({"device_map": "auto"}, "--device-map auto: CUDA is not available"),
])
def test_cuda_without_cuda_is_a_clear_error(no_cuda, kw, match):
    with pytest.raises(UsageError, match=match) as err:
        Placement(**kw)
    assert str(err.value).endswith("use --device cpu")


@pytest.mark.parametrize("kw, match", [
    ({"device": "tpu"}, "--device must be auto, cpu, cuda or cuda:N"),
    ({"device": "cuda:x"}, "--device must be"),
    ({"device": 3}, "--device must be a string"),
    ({"dtype": "int8"}, "--dtype must be auto, bf16, fp16 or fp32"),
    ({"device_map": "balanced"}, "--device-map must be 'auto'"),
    ({"device": "cpu", "device_map": "auto"}, "leave --device out"),
    ({"device": "cuda:1", "device_map": "auto"}, "leave --device out"),
])
def test_bad_values(two_gpus, kw, match):
    with pytest.raises(ValueError, match=match):
        Placement(**kw)


def test_cast_floats_and_place_leave_converted_layers_alone():
    torch.manual_seed(0)
    from spikingbrain.converter import SpikingLinear

    net = nn.Sequential(SpikingLinear.from_linear(nn.Linear(8, 6)), nn.LayerNorm(6),
                        nn.Linear(6, 4))
    q, s, b = net[0].qdata.clone(), net[0].scale.clone(), net[0].bias.clone()
    pl.place(net, Placement("cpu", "bf16"))
    assert net[1].weight.dtype == torch.bfloat16 and net[2].weight.dtype == torch.bfloat16
    assert torch.equal(net[0].qdata, q) and net[0].scale.dtype == torch.float32
    assert torch.equal(net[0].scale, s) and torch.equal(net[0].bias, b)


def test_to_device_and_input_device():
    from transformers import BatchEncoding

    enc = BatchEncoding({"input_ids": torch.ones(1, 3, dtype=torch.long)})
    assert pl.to_device(enc, "cpu") is enc
    moved = pl.to_device({"a": torch.zeros(2), "b": [torch.ones(1)], "c": 3}, "meta")
    assert moved["a"].device.type == "meta" and moved["b"][0].device.type == "meta"
    assert moved["c"] == 3

    class Lm(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 2, device="meta")
            self.emb = nn.Embedding(4, 2)

        def get_input_embeddings(self):
            return self.emb

    assert pl.input_device(Lm()) == torch.device("cpu")
    assert pl.input_device(nn.Module()) == torch.device("cpu")


def test_inputs_follow_model(monkeypatch):
    class Where(nn.Module):
        def forward(self, x, y=None):
            return x.device, y.device

    model = Where()
    monkeypatch.setattr(pl, "input_device", lambda _m: torch.device("meta"))
    with pl.inputs_follow_model(model):
        assert model(torch.zeros(1), y=torch.zeros(1)) == (torch.device("meta"),) * 2
    assert model(torch.zeros(1), y=torch.zeros(1)) == (torch.device("cpu"),) * 2  # removed


def test_modules_to_cpu_removes_accelerate_hooks():
    from accelerate.hooks import ModelHook, add_hook_to_module

    lin = nn.Linear(2, 2)
    add_hook_to_module(lin, ModelHook())
    pl.modules_to_cpu({"x": lin})
    assert not hasattr(lin, "_hf_hook") and lin.weight.device.type == "cpu"


def test_load_converted_in_bf16_keeps_codes_and_scales(tmp_path):
    from spikingbrain.converter.convert import spiking_layers
    from spikingbrain.testing import tiny_causal_lm

    model = convert(tiny_causal_lm("llama"), SpikeConfig(group_size=16)).eval()
    save_converted(model, tmp_path / "c")
    got = load_converted(tmp_path / "c", device="cpu", dtype=torch.bfloat16)
    want = pl.cast_floats(load_converted(tmp_path / "c"), torch.bfloat16)
    for name, layer in spiking_layers(got).items():
        ref = spiking_layers(model)[name]
        assert torch.equal(layer.qdata, ref.qdata) and layer.scale.dtype == torch.float32
        assert torch.equal(layer.scale, ref.scale)
    floats = {n: p.dtype for n, p in got.named_parameters()}
    assert floats and set(floats.values()) == {torch.bfloat16}
    assert not any(t.device.type == "meta" for t in list(got.parameters()) + list(got.buffers()))
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        assert torch.equal(got(ids).logits, want(ids).logits)  # bit for bit


def test_convert_in_bf16_on_the_cpu(tmp_path):
    """``convert --dtype bf16``: the folder records bf16 and its codes are those of the bf16
    model converted in Python."""
    from spikingbrain.converter.convert import spiking_layers
    from spikingbrain.converter.serialize import read_metadata
    from spikingbrain.data import load_minilm
    from spikingbrain.testing import tiny_causal_lm

    src = tmp_path / "tiny"
    tiny_causal_lm("llama", vocab_size=30522).save_pretrained(src)
    load_minilm()[1].save_pretrained(src)
    res = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "c"), "--group-size",
                                   "32", "--device", "cpu", "--dtype", "bf16"])
    assert res.exit_code == 0, res.output
    assert "cpu, bf16" in res.output
    assert read_metadata(tmp_path / "c")["hf"]["dtype"] == "bfloat16"
    from spikingbrain.converter.folder import load_float_model

    ref = convert(load_float_model(src, "causal-lm", Placement("cpu", "bf16")),
                  SpikeConfig(group_size=32))
    got = load_converted(tmp_path / "c")
    for name, layer in spiking_layers(ref).items():
        assert torch.equal(spiking_layers(got)[name].qdata, layer.qdata), name
        assert torch.equal(spiking_layers(got)[name].scale, layer.scale), name


@pytest.mark.parametrize("argv", [
    ["convert", "minilm", "{tmp}/out"],
    ["analyze", "minilm", "--out", "{tmp}/r"],
    ["sweep-k", "minilm", "--out", "{tmp}/s"],
    ["export", "nir", "minilm", "--out", "{tmp}/g.nir"],
    ["export", "lava", "minilm", "--out", "{tmp}/b.npz"],
    ["map", "loihi2", "minilm", "--text", "{tmp}/t.txt"],
    ["generate", "{tmp}/lm", "--prompt", "x"],
])
def test_every_command_refuses_cuda_without_cuda(no_cuda, tmp_path, argv):
    (tmp_path / "t.txt").write_text("Spiking neurons fire.\n")
    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "config.json").write_text("{}")
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--device", "cuda"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    line = " ".join(res.output.split())
    assert "CUDA is not available" in line and "use --device cpu" in line, line
    assert not (tmp_path / "out").exists()
