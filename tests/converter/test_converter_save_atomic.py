"""save_converted is all or nothing: a save killed at any stage leaves the old model or the new
one, never a mix; edited metadata and foreign folders are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from spikingbrain.converter import SpikeConfig, convert, load_converted, save_converted
from spikingbrain.converter.serialize import KILL_AT_ENV, META_FILE, WEIGHTS_FILE

STAGES = ["weights", "config", "tokenizer", "meta", "synced"]

SAVER = textwrap.dedent('''
    import sys, torch
    from spikingbrain.converter import SpikeConfig, convert, save_converted
    from spikingbrain.testing import tiny_causal_lm
    from spikingbrain.data import load_minilm
    torch.manual_seed(int(sys.argv[2]))
    model = convert(tiny_causal_lm("llama", seed=int(sys.argv[2])), SpikeConfig(k=float(sys.argv[3])))
    _, tok = load_minilm()
    save_converted(model, sys.argv[1], tokenizer=tok)
''')


def _save_in_subprocess(folder, seed: int, k: float, kill_at: str | None):
    env = {k_: v for k_, v in os.environ.items() if k_ != KILL_AT_ENV}
    if kill_at:
        env[KILL_AT_ENV] = kill_at
    return subprocess.run([sys.executable, "-c", SAVER, str(folder), str(seed), str(k)],
                          env=env, capture_output=True, text=True, timeout=300)


def _fingerprint(folder):
    model = load_converted(folder)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    k = next(m for m in model.modules() if hasattr(m, "qdata")).config.k
    return k, logits


@pytest.mark.parametrize("stage", STAGES)
def test_save_killed_at_each_stage_leaves_the_old_model(tmp_path, stage):
    folder = tmp_path / "model"
    assert _save_in_subprocess(folder, 0, 2.0, None).returncode == 0
    k_old, logits_old = _fingerprint(folder)
    res = _save_in_subprocess(folder, 1, 4.0, stage)
    assert res.returncode == -9, res.stderr  # SIGKILL at that stage
    k, logits = _fingerprint(folder)
    assert k == k_old == 2.0 and torch.equal(logits, logits_old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"] or \
        all(p.name.startswith(".") for p in tmp_path.iterdir() if p.name != "model")
    # the next save cleans up what the killed one abandoned and lands whole
    assert _save_in_subprocess(folder, 1, 4.0, None).returncode == 0
    assert _fingerprint(folder)[0] == 4.0
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_first_save_killed_leaves_nothing(tmp_path):
    res = _save_in_subprocess(tmp_path / "model", 0, 2.0, "meta")
    assert res.returncode == -9
    assert not (tmp_path / "model").exists()


def _small(tmp_path):
    net = convert(nn.Sequential(nn.Linear(8, 4)), SpikeConfig())
    save_converted(net, tmp_path)
    return net


def test_checksums_cover_weights_and_layer_table(tmp_path):
    _small(tmp_path)
    meta_path = tmp_path / META_FILE
    meta = json.loads(meta_path.read_text())
    skeleton = lambda: nn.Sequential(nn.Linear(8, 4))  # noqa: E731
    edited = json.loads(json.dumps(meta))
    edited["layers"]["0"]["config"]["k"] = 9.0  # an edited layer config
    meta_path.write_text(json.dumps(edited))
    with pytest.raises(ValueError, match="its own checksum"):
        load_converted(tmp_path, model=skeleton())
    no_sum = json.loads(json.dumps(meta))
    del no_sum["weights"]["sha256"]
    meta_path.write_text(json.dumps(no_sum))
    with pytest.raises(ValueError, match="checksum"):
        load_converted(tmp_path, model=skeleton())


def test_foreign_folder_is_not_overwritten(tmp_path):
    (tmp_path / WEIGHTS_FILE).write_bytes(b"somebody else's weights")
    net = convert(nn.Sequential(nn.Linear(8, 4)), SpikeConfig())
    with pytest.raises(ValueError, match="did not write"):
        save_converted(net, tmp_path)
    assert (tmp_path / WEIGHTS_FILE).read_bytes() == b"somebody else's weights"
