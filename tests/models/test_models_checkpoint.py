"""Checkpoints: sharded saves reload through from_pretrained; a public-format W8ASpike folder
loads into a converted model with its exact codes."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file
from torch import nn

from spikingbrain.converter import SpikeConfig, SpikingLinear, spiking_layers
from spikingbrain.models import register
from spikingbrain.models.checkpoint import load_w8aspike_folder, save_sharded
from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM

TINY = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=48, bos_token_id=1, eos_token_id=2,
            sliding_window=8)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return GLAswaForCausalLM(GLAswaConfig(**TINY)).eval()


def test_sharded_save_reloads_through_auto_class(tmp_path):
    from transformers import AutoModelForCausalLM

    model = _tiny()
    files = save_sharded(model, tmp_path / "ckpt", max_shard_size="40KB")
    shards = [f for f in files if f.suffix == ".safetensors"]
    assert len(shards) > 2 and (tmp_path / "ckpt" / "model.safetensors.index.json").is_file()
    register()
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt").eval()
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, model(input_ids=ids).logits)


def _public_w8aspike_folder(model: nn.Module, folder, group=16):
    """The public release's layout: fp32 weights plus weight_quantizer.scales [out, in/g, 1];
    a few codes pushed beyond int8 as in the public checkpoint."""
    state, expected = {}, {}
    for name, t in model.state_dict().items():
        state[name] = t.contiguous()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and name != "lm_head":
            w = mod.weight.detach().float()
            s = w.view(w.shape[0], -1, group).abs().amax(-1, keepdim=True) / 127
            s = s * 0.98  # scales a little small: the largest codes fall outside int8
            state[f"{name}.weight_quantizer.scales"] = s.contiguous()
            expected[name] = torch.round(w / s.repeat_interleave(group, 1).squeeze(-1))
    folder.mkdir()
    names = sorted(state)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half],
              "model-00002-of-00002.safetensors": names[half:]}
    for fname, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(folder / fname))
    index = {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    model.config.save_pretrained(folder)
    return expected


def test_public_w8aspike_folder_loads_with_exact_codes(tmp_path):
    model = _tiny()
    expected = _public_w8aspike_folder(model, tmp_path / "w8")
    conv = load_w8aspike_folder(tmp_path / "w8", SpikeConfig(k=3.0), dtype=torch.float32)
    layers = spiking_layers(conv)
    assert set(layers) == set(expected) and isinstance(conv.lm_head, nn.Linear)
    n_out = 0
    for name, layer in layers.items():
        assert isinstance(layer, SpikingLinear) and layer.group_size == 16
        assert torch.equal(layer.qdata.to(torch.float32), expected[name]), name
        n_out += layer.n_out_of_range
    assert n_out > 0  # codes beyond int8 exist and are kept exact (int16)
    assert any(m.qdata.dtype == torch.int16 for m in layers.values())
    torch.testing.assert_close(conv.model.embeddings.weight, model.model.embeddings.weight)
    out = conv(input_ids=torch.tensor([[3, 4, 5, 6]])).logits
    assert torch.isfinite(out).all()
