"""Lava simulation against torch, bit for bit, on the converted all-MiniLM-L6-v2.

Runs through the subprocess path (``SPIKINGBRAIN_LAVA_PYTHON`` / ``.venv-lava``, which
``make test`` sets up) in floating and fixed point.
"""

from __future__ import annotations

import itertools
import subprocess

import numpy as np
import pytest
import torch

from spikingbrain.coding import scheme_names
from spikingbrain.converter import SpikeConfig, SpikingLinear
from spikingbrain.neuromorphic import lava_runner as runner
from spikingbrain.neuromorphic.bundle import write_bundle
from spikingbrain.neuromorphic.lava import (
    RUNNER_PATH,
    LavaEnvironmentError,
    demo_agreement,
    find_lava_environment,
    minilm_token_activations,
    simulate_bundle,
)

pytestmark = pytest.mark.lava

LAYER1 = "encoder.layer.0.intermediate.dense"  # 384 -> 1536
LAYER2 = "encoder.layer.0.output.dense"  # 1536 -> 384


@pytest.fixture(scope="session")
def lava_env():
    try:
        env = find_lava_environment()
    except LavaEnvironmentError as err:
        pytest.skip(str(err))
    return env


@pytest.fixture(scope="session")
def minilm():
    from spikingbrain.data import load_minilm

    model, tok = load_minilm()
    mods = dict(model.named_modules())
    x = minilm_token_activations(LAYER1, 4, model, tok)
    return model, tok, mods, x


# binary/ternary windows are max|count| steps (about 380 on this layer): 2 tokens keep it short
N_TOKENS = {"binary": 2, "ternary": 2}


@pytest.mark.parametrize("scheme", scheme_names())
def test_minilm_layer_and_chain_accumulators_exact(lava_env, minilm, tmp_path, scheme):
    _, _, mods, x = minilm
    cfg = SpikeConfig(scheme=scheme)
    l1 = SpikingLinear.from_linear(mods[LAYER1], cfg)
    l2 = SpikingLinear.from_linear(mods[LAYER2], cfg)
    x = x[: N_TOKENS.get(scheme, 4)]
    path = write_bundle([l1, l2], x, tmp_path / f"{scheme}.npz", names=[LAYER1, LAYER2])
    # first make sure torch's count kernel agrees with a plain int64 reference, so that a
    # failure below points at Lava and not at the converter
    c0, _, _ = l1.spike_counts(x)
    assert np.array_equal(l1.integer_accumulators(c0).numpy(),
                          runner.integer_accumulators(l1.qdata.numpy(), c0.numpy(), 128)), \
        "torch's SpikingLinear.integer_accumulators differs from the int64 reference"
    res = simulate_bundle(path)
    print(res)
    assert set(res.agreement) == {"floating_pt", "fixed_pt"}
    assert res.exact, str(res)
    # layer 1 (384 -> 1536): Lava's integers equal torch's count mode directly
    counts, _, _ = l1.spike_counts(x)
    acc1 = l1.integer_accumulators(counts).numpy()
    for tag in ("floating_pt", "fixed_pt"):
        assert np.array_equal(res.accumulators[tag][0], acc1)
        # and the host-finished float64 output is torch's float32 output up to float32 rounding
        y_torch = l1(x).numpy()
        np.testing.assert_allclose(res.outputs[tag][0], y_torch, rtol=1e-5,
                                   atol=1e-5 * np.abs(y_torch).max())
    # layer 2 (1536 -> 384): torch's accumulators for the chain-encoder counts
    for tag in ("floating_pt", "fixed_pt"):
        rows = res.agreement[tag]
        assert [r["acc_max_abs_diff"] for r in rows] == [0, 0]
        assert rows[1]["acc_total"] == x.shape[0] * 384 * 12
    assert res.runs["fixed_pt"]["n_saturated"] == 0


def test_runner_rejects_bad_bundle_and_writes_nothing(lava_env, tmp_path):
    if lava_env.kind != "subprocess":
        pytest.skip("checks the subprocess path")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "r.npz"
    proc = subprocess.run([lava_env.python, str(RUNNER_PATH), str(bad), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == runner.EXIT_BAD_INPUT
    assert "corrupt" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]


def test_three_layer_chain_exact(lava_env, tmp_path):
    from torch import nn

    torch.manual_seed(0)
    dims = (24, 16, 12, 8)
    layers = [SpikingLinear.from_linear(nn.Linear(a, b),
                                        SpikeConfig(scheme=s, group_size=8))
              for (a, b), s in zip(itertools.pairwise(dims),
                                   ("ternary", "bitwise_twos_complement", "bitwise"))]
    path = write_bundle(layers, torch.randn(3, 24), tmp_path / "c3.npz")
    res = simulate_bundle(path)
    assert res.exact, str(res)


def test_demo_agreement(lava_env, minilm, tmp_path, capsys):
    model, tok, _, _ = minilm
    res = demo_agreement(n_tokens=2, out_dir=tmp_path, tags=("fixed_pt",), model=model,
                         tokenizer=tok)
    assert res.exact
    out = capsys.readouterr().out
    assert "EXACT" in out and "1536" in out


def test_cli_readme_export_and_simulate(lava_env, tmp_path, monkeypatch):
    """The README's two Lava commands as written: ``--out bundle`` writes bundle.npz and
    ``simulate lava bundle`` reads it."""
    from typer.testing import CliRunner

    from spikingbrain.cli import app

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["export", "lava", "minilm", "--layers",
                                 "encoder.layer.0.intermediate.dense", "--tokens", "2",
                                 "--out", "bundle"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "bundle.npz").exists()
    r = CliRunner().invoke(app, ["simulate", "lava", "bundle", "--tags", "fixed_pt"])
    assert r.exit_code == 0, r.output
    assert "accumulators equal 9216/9216" in r.output and "EXACT" in r.output
    assert (tmp_path / "bundle.results.npz").exists()
