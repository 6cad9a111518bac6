"""Lava bundles (torch side) and the runner's numpy definitions; no Lava needed here."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from spikingbrain.coding import encode, scheme_names
from spikingbrain.converter import SpikeConfig, SpikingLinear
from spikingbrain.neuromorphic import lava_runner as runner
from spikingbrain.neuromorphic.bundle import BundleError, read_bundle, write_bundle
from spikingbrain.neuromorphic.lava import (
    ENV_VAR,
    LavaEnvironmentError,
    find_lava_environment,
    simulate_bundle,
)

SCHEMES = scheme_names()


def _chain(scheme: str, dims=(20, 12, 6), group_size=8, seed=0, T=None):
    torch.manual_seed(seed)
    cfg = SpikeConfig(scheme=scheme, group_size=group_size, T=T)
    return [SpikingLinear.from_linear(nn.Linear(a, b), cfg) for a, b in itertools.pairwise(dims)]


@pytest.fixture
def bundle_path(tmp_path):
    layers = _chain("bitwise_bidirectional")
    return write_bundle(layers, torch.randn(3, 20), tmp_path / "b.npz")


# ------------------------------------------------------------------ round trip and references
@pytest.mark.parametrize("scheme", SCHEMES)
def test_bundle_round_trip_and_references(tmp_path, scheme):
    layers = _chain(scheme)
    x = torch.randn(5, 20)
    b = read_bundle(write_bundle(layers, x, tmp_path / "b.npz", names=["a", "b"]))
    assert b.meta["schema_version"] == runner.SCHEMA_VERSION
    assert [L["name"] for L in b.meta["layers"]] == ["a", "b"]
    assert [L["n_groups"] for L in b.meta["layers"]] == [3, 2]  # 20 = 8 + 8 + 4 (partial)
    # layer 0: torch's count mode, bit for bit
    counts0, _, _ = layers[0].spike_counts(x)
    assert np.array_equal(b.arrays["input.counts"], counts0.to(torch.int64).numpy())
    acc0 = layers[0].integer_accumulators(counts0)
    assert np.array_equal(b.arrays["ref.layer0.acc"], acc0.numpy())
    assert np.array_equal(b.arrays["ref.layer0.y"], layers[0](x).numpy())
    np.testing.assert_array_equal(b.arrays["layer0.qdata"], layers[0].qdata.numpy())
    # spikes decode back to the counts (unsigned schemes: negative-polarity entries are -1)
    T = b.meta["layers"][0]["T"]
    s = b.arrays["input.spikes"].astype(np.int64)  # [n, T, d]
    w = runner.SCHEMES[scheme]
    tw = (2 ** np.arange(T - 1, -1, -1)) if w[1] else np.ones(T, dtype=np.int64)
    if w[2]:
        tw = tw.copy()
        tw[0] = -tw[0]
    assert np.array_equal(np.einsum("t,ntd->nd", tw, s), b.arrays["input.counts"])
    # the chain: layer 1 follows the exact float64 encoder, accumulators from torch
    ref = runner.chain_reference(b.layers, b.arrays["input.counts"], b.arrays["input.vth"])
    assert np.array_equal(ref[1]["counts"], b.arrays["ref.layer1.counts"])
    acc1 = layers[1].integer_accumulators(torch.from_numpy(ref[1]["counts"]))
    assert np.array_equal(acc1.numpy(), b.arrays["ref.layer1.acc"])
    assert np.array_equal(ref[1]["acc"], b.arrays["ref.layer1.acc"])


def test_chain_definition_close_to_float32_chain(tmp_path):
    layers = _chain("bitwise_bidirectional", dims=(64, 48, 32), group_size=16)
    b = read_bundle(write_bundle(layers, torch.randn(16, 64), tmp_path / "c.npz"))
    # float64 vs float32 can only differ where y/Vth sits on a rounding tie
    assert b.meta["chain_count_mismatch_vs_float32"][0] <= 2


def test_fixed_window_clamps_like_torch(tmp_path):
    layers = _chain("bitwise_bidirectional", T=2)
    x = torch.randn(4, 20) * 5
    b = read_bundle(write_bundle(layers, x, tmp_path / "t.npz"))
    assert [L["T"] for L in b.meta["layers"]] == [2, 2]
    assert np.abs(b.arrays["input.counts"]).max() <= 3
    assert np.abs(b.arrays["ref.layer1.counts"]).max() <= 3


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(SCHEMES), st.lists(st.integers(-40, 40), min_size=1, max_size=12))
def test_runner_expansion_equals_coding_encode(scheme, values):
    c = torch.tensor(values)
    spec = runner.SCHEMES[scheme]
    if spec[0]:
        ref = encode(c, scheme)
    else:
        ref = encode(c.abs(), scheme) * c.sign().to(torch.int8)
    T = ref.shape[0]
    if T == 0:
        return
    assert np.array_equal(runner.expand_spikes(c.numpy(), scheme, T), ref.numpy())


@settings(max_examples=30, deadline=None)
# in_features >= 2: the converter's count kernel returns garbage for in_features == 1 (reported)
@given(st.integers(2, 40), st.integers(1, 9), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_runner_accumulators_equal_torch(d, group_size, n, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(-128, 128, (5, d), generator=g, dtype=torch.int8)
    c = torch.randint(-300, 300, (n, d), generator=g)
    layer = SpikingLinear(d, 5, SpikeConfig(group_size=group_size))
    layer.qdata.copy_(q)
    ref = layer.integer_accumulators(c)
    got = runner.integer_accumulators(q.numpy(), c.numpy(), layer.group_size)
    assert np.array_equal(got, ref.numpy())


def test_runner_encoder_matches_adaptive_threshold_in_float64():
    from spikingbrain.neurons import adaptive

    y = torch.randn(8, 50, dtype=torch.float64) * 3
    counts, vth, _ = runner.encode_counts(y.numpy(), 3.0)
    c_ref, v_ref = adaptive.adaptive_threshold(y, 3.0)
    np.testing.assert_allclose(vth, v_ref.reshape(-1).numpy(), rtol=1e-15)
    assert (counts != c_ref.numpy()).sum() == 0


def test_expand_weights_split_is_exact():
    q = np.random.default_rng(0).integers(-128, 128, size=(6, 10)).astype(np.int8)
    for scheme in ("ternary", "binary"):
        exc, inh = runner.expand_weights(q, 4, scheme)
        assert exc.min() >= 0 and inh.max() <= 0
        s = np.random.default_rng(1).integers(-1, 2, size=10)
        x = s if scheme == "ternary" else runner.to_rails(s[:, None], scheme)[:, 0]
        got = ((exc + inh) @ x).reshape(6, 3)
        assert np.array_equal(got, runner.integer_accumulators(q, s[None], 4)[0])


# ------------------------------------------------------------------ bad input, nothing half written
def test_write_bundle_rejects_bad_input(tmp_path):
    layers = _chain("ternary")
    with pytest.raises(ValueError, match="shape"):
        write_bundle(layers, torch.randn(3, 7), tmp_path / "x.npz")
    with pytest.raises(ValueError, match="do not chain"):
        write_bundle([layers[1], layers[0]], torch.randn(3, 12), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="not a converted SpikingLinear"):
        write_bundle([nn.Linear(20, 4)], torch.randn(3, 20), tmp_path / "x.npz")
    with pytest.raises(ValueError, match=".npz"):
        write_bundle(layers, torch.randn(3, 20), tmp_path / "x.bin")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_bundle(tmp_path, monkeypatch, bundle_path):
    before = bundle_path.read_bytes()

    def boom(f, **kw):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        write_bundle(_chain("ternary"), torch.randn(2, 20), bundle_path)
    assert bundle_path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.npz"]


def _rewrite(path, meta_fn=None, drop=None):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    if meta_fn:
        meta_fn(meta)
    if drop:
        arrays.pop(drop)
    runner.save_npz_atomic(path, arrays, meta)


def test_corrupt_bundle_clear_error(bundle_path):
    data = bundle_path.read_bytes()
    bundle_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="corrupt"):
        read_bundle(bundle_path)
    bundle_path.write_bytes(b"not a zip at all")
    with pytest.raises(BundleError, match="corrupt"):
        read_bundle(bundle_path)


def test_wrong_schema_version_clear_error(bundle_path):
    _rewrite(bundle_path, lambda m: m.update(schema_version=99))
    with pytest.raises(BundleError, match="schema version 99.*re-export"):
        read_bundle(bundle_path)


@pytest.mark.parametrize("drop", ["input.spikes", "layer1.scale", "ref.layer0.acc"])
def test_missing_array_clear_error(bundle_path, drop):
    _rewrite(bundle_path, drop=drop)
    with pytest.raises(BundleError, match=f"misses the array '{drop}'"):
        read_bundle(bundle_path)


def test_missing_meta_key_and_bad_values(bundle_path, tmp_path):
    _rewrite(bundle_path, lambda m: m["layers"][0].pop("scheme"))
    with pytest.raises(BundleError, match="misses the key 'scheme'"):
        read_bundle(bundle_path)
    with pytest.raises(BundleError, match="does not exist"):
        read_bundle(tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(BundleError, match="no 'meta'"):
        read_bundle(tmp_path / "other.npz")


def test_wrong_shape_clear_error(bundle_path):
    with np.load(bundle_path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    arrays["layer0.scale"] = arrays["layer0.scale"][:, :1]
    runner.save_npz_atomic(bundle_path, arrays, meta)
    with pytest.raises(BundleError, match="layer0.scale.*shape"):
        read_bundle(bundle_path)


def test_simulate_validates_bundle_before_lava(bundle_path, tmp_path, monkeypatch):
    bundle_path.write_bytes(b"garbage")
    monkeypatch.setenv(ENV_VAR, "/no/such/python")  # never reached: the bundle is checked first
    with pytest.raises(BundleError, match="corrupt"):
        simulate_bundle(bundle_path, out=tmp_path / "r.npz")
    assert not (tmp_path / "r.npz").exists()


# ------------------------------------------------------------------ missing Lava environment
def test_missing_lava_environment_says_how(monkeypatch, tmp_path, bundle_path):
    import spikingbrain.neuromorphic.lava as lava_mod

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(lava_mod, "_lava_importable", lambda: False)
    monkeypatch.setattr(lava_mod, "_search_roots", lambda: [tmp_path])
    with pytest.raises(LavaEnvironmentError, match="make setup-lava"):
        find_lava_environment()
    with pytest.raises(LavaEnvironmentError, match="make setup-lava"):
        simulate_bundle(bundle_path, out=tmp_path / "r.npz")
    assert not (tmp_path / "r.npz").exists()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "python3.10"))
    with pytest.raises(LavaEnvironmentError, match=f"{ENV_VAR}=.*does not exist"):
        find_lava_environment()


def test_not_a_lava_python_says_how(bundle_path, tmp_path):
    import sys

    # this interpreter has no lava: the runner fails at import, with the set-up hint
    with pytest.raises(RuntimeError, match="make setup-lava"):
        simulate_bundle(bundle_path, out=tmp_path / "r.npz", python=sys.executable)
    assert not (tmp_path / "r.npz").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".r.npz")]


def test_runner_imports_without_torch_or_spikingbrain(bundle_path):
    import subprocess
    import sys

    code = ("import sys, runpy; sys.modules['torch'] = None; sys.modules['spikingbrain'] = None; "
            f"ns = runpy.run_path({runner.__file__!r}, run_name='probe'); "
            f"b = ns['load_bundle']({str(bundle_path)!r}); print(b.meta['n_tokens'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"


def test_cli_simulate_bad_bundle_is_a_clear_usage_error(tmp_path):
    from typer.testing import CliRunner

    from spikingbrain.cli import app

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"xx")
    r = CliRunner().invoke(app, ["simulate", "lava", str(bad)])
    assert r.exit_code == 2 and "corrupt" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]
