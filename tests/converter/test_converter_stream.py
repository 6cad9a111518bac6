"""Streaming conversion of sharded float folders: the same tensors, bit for bit, as the
in-memory ``convert`` + ``save_converted``; sharded output that ``load_converted`` and
``load_model_folder`` read; all or nothing; the ``convert`` command takes this path."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from spikingbrain.cli import app
from spikingbrain.converter import SpikeConfig, convert, load_converted, save_converted
from spikingbrain.converter.folder import load_float_model, load_model_folder
from spikingbrain.converter.serialize import META_FILE, read_metadata
from spikingbrain.converter.stream import can_stream, stream_convert
from spikingbrain.models.checkpoint import save_sharded


def _gla_swa():
    from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM

    return GLAswaForCausalLM(GLAswaConfig(
        vocab_size=96, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=96, bos_token_id=1, eos_token_id=2,
        sliding_window=8))


def _qwen2_tied():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return Qwen2ForCausalLM(Qwen2Config(
        vocab_size=96, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=96, tie_word_embeddings=True))


MODELS = {"gla_swa": _gla_swa, "qwen2_tied": _qwen2_tied}


def _float_folder(path, kind: str, dtype=torch.bfloat16):
    torch.manual_seed(0)
    model = MODELS[kind]().to(dtype).eval()
    # small shards: weights and their biases land in different shards
    save_sharded(model, path, max_shard_size="20KB")
    return path


def _tensors(folder):
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_stream_equals_in_memory_convert(tmp_path, kind):
    src = _float_folder(tmp_path / "float", kind)
    assert can_stream(src) is None and len(list(src.glob("*.safetensors"))) > 3
    cfg = SpikeConfig(k=3.0, group_size=32)
    summary = stream_convert(src, tmp_path / "stream", cfg)
    ref = convert(load_float_model(src, "auto"), cfg)
    save_converted(ref, tmp_path / "memory")
    got, want = _tensors(tmp_path / "stream"), _tensors(tmp_path / "memory")
    assert sorted(got) == sorted(want)
    for name, t in want.items():
        assert got[name].dtype == t.dtype and torch.equal(got[name], t), name
    m_s, m_m = read_metadata(tmp_path / "stream"), read_metadata(tmp_path / "memory")
    assert m_s["layers"] == m_m["layers"] and m_s["aliases"] == m_m["aliases"]
    assert m_s["hf"] == m_m["hf"] and m_s["config"] == m_m["config"]
    assert m_s["schema_version"] == 3 and len(m_s["weights"]["files"]) == summary.n_shards > 3
    if kind == "qwen2_tied":
        assert m_s["aliases"] == {"lm_head.weight": "model.embed_tokens.weight"}
    a, b = load_converted(tmp_path / "stream"), load_converted(tmp_path / "memory")
    ids = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    with torch.no_grad():
        assert torch.equal(a(input_ids=ids).logits, b(input_ids=ids).logits)
    loaded = load_model_folder(tmp_path / "stream", require_tokenizer=False)
    assert loaded.kind == "converted"


def test_stream_is_all_or_nothing(tmp_path):
    src = _float_folder(tmp_path / "float", "gla_swa")
    dst = tmp_path / "out"
    stream_convert(src, dst, SpikeConfig(group_size=32))
    before = {p.name: p.read_bytes() for p in dst.iterdir()}
    # a config that disagrees with the tensors fails halfway through the shards
    cfg = json.loads((src / "config.json").read_text())
    cfg["intermediate_size"] = 128
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"mlp\.\w+_proj\.weight has shape"):
        stream_convert(src, dst, SpikeConfig(group_size=32))
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    # a checksum catches a damaged shard
    shard = dst / read_metadata(dst)["weights"]["files"][0]
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 1
    shard.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="does not match the checksum"):
        load_converted(dst)


def test_stream_refuses_what_it_cannot_do(tmp_path):
    torch.manual_seed(0)
    model = _gla_swa()
    model.save_pretrained(tmp_path / "single")  # one file, no index
    assert "no model.safetensors.index.json" in can_stream(tmp_path / "single")
    with pytest.raises(ValueError, match="cannot stream-convert"):
        stream_convert(tmp_path / "single", tmp_path / "o")
    src = _float_folder(tmp_path / "float", "gla_swa")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="choose a new or empty folder"):
        stream_convert(src, tmp_path / "foreign")


def test_convert_command_streams_sharded_folders(tmp_path):
    src = _float_folder(tmp_path / "float", "gla_swa")
    res = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "out"), "--k", "3",
                                   "--group-size", "32"])
    assert res.exit_code == 0, res.output
    assert "streamed" in res.output
    meta = json.loads((tmp_path / "out" / META_FILE).read_text())
    assert meta["schema_version"] == 3 and (tmp_path / "out" /
                                            "model.safetensors.index.json").is_file()
    ref = convert(load_float_model(src, "auto"), SpikeConfig(k=3.0, group_size=32))
    got = load_converted(tmp_path / "out")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.equal(got(input_ids=ids).logits, ref(input_ids=ids).logits)
