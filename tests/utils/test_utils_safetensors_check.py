"""Broken checkpoint folders give errors that say what is wrong, before anything loads:
truncated shards, foreign files, malformed or inconsistent index files, missing shards; the
convert command refuses a tokenizer larger than the model's vocabulary."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from spikingbrain.utils.safetensors_check import INDEX, check_safetensors_folder


def _sharded(tmp_path):
    save_file({"a": torch.arange(6.0)}, str(tmp_path / "s1.safetensors"))
    save_file({"b": torch.ones(3)}, str(tmp_path / "s2.safetensors"))
    (tmp_path / INDEX).write_text(json.dumps(
        {"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}))
    return tmp_path


def test_a_whole_folder_passes(tmp_path):
    assert [p.name for p in check_safetensors_folder(_sharded(tmp_path))] == \
        ["s1.safetensors", "s2.safetensors"]


@pytest.mark.parametrize("damage,match", [
    (lambda d: (d / "s2.safetensors").write_bytes((d / "s2.safetensors").read_bytes()[:-4]),
     "truncated"),
    (lambda d: (d / "s2.safetensors").write_bytes(b"<html>not found</html>"),
     "not a safetensors file"),
    (lambda d: (d / "s1.safetensors").write_bytes(b"abc"), "not a safetensors file"),
    (lambda d: (d / INDEX).write_text("{weight_map: "), "not valid JSON"),
    (lambda d: (d / INDEX).write_text(json.dumps({"metadata": {}})), "no 'weight_map'"),
    (lambda d: (d / INDEX).write_text(json.dumps({"weight_map": {"a": "s3.safetensors"}})),
     "lacks the shards"),
    (lambda d: (d / INDEX).write_text(json.dumps({"weight_map": {"c": "s1.safetensors"}})),
     "lacks tensors"),
])
def test_broken_folders_say_what_is_wrong(tmp_path, damage, match):
    folder = _sharded(tmp_path)
    damage(folder)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        check_safetensors_folder(folder)


def test_commands_report_a_truncated_shard_and_a_foreign_tokenizer(tmp_path):
    from spikingbrain.cli import app
    from spikingbrain.data import load_minilm
    from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM

    torch.manual_seed(0)
    model = GLAswaForCausalLM(GLAswaConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=48, bos_token_id=1, eos_token_id=2))
    src = tmp_path / "src"
    model.save_pretrained(src)
    load_minilm()[1].save_pretrained(src)  # 30522 tokens for a vocabulary of 64
    run = CliRunner().invoke
    res = run(app, ["convert", str(src), str(tmp_path / "out"), "--group-size", "16"])
    assert res.exit_code == 2 and "30522 tokens" in res.output and "vocabulary" in res.output
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    res = run(app, ["convert", str(src), str(tmp_path / "out"), "--group-size", "16"])
    assert res.exit_code == 2 and "truncated" in res.output, res.output
    assert not (tmp_path / "out").exists()
