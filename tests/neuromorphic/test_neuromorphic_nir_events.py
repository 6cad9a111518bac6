"""Event streams as NIR event data, recorded layer activity, and the ``export nir`` CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

nir = pytest.importorskip("nir")

from spikingbrain.coding.events import to_events
from spikingbrain.coding.schemes import get_scheme
from spikingbrain.converter import SpikeConfig, SpikingLinear, spiking_layers
from spikingbrain.neuromorphic.nir_events import (
    events_from_nir,
    events_to_nir,
    record_nir_data,
)
from spikingbrain.neuromorphic.nir_export import data_path, export_nir
from spikingbrain.neuromorphic.nir_import import (
    from_nir,
    read_nir,
    read_nir_data,
    spiking_layers_from_nir,
)


@settings(max_examples=40, deadline=None)
@given(T=st.integers(0, 5), S=st.integers(1, 4), N=st.integers(1, 7), seed=st.integers(0, 999),
       dt=st.sampled_from([1.0, 0.25, 1e-3]))
def test_events_round_trip_property(T, S, N, seed, dt):
    g = torch.Generator().manual_seed(seed)
    spikes = torch.randint(-1, 2, (T, S, N), generator=g).to(torch.int8)
    ev = to_events(spikes, scheme="ternary")
    data = events_to_nir(ev, dt=dt)
    assert data.n_neurons == N and data.t_max == pytest.approx(T * dt)
    back = events_from_nir(data, dt=dt, scheme="ternary")
    assert back.shape == (T, S, N) and torch.equal(back.to_dense(), spikes)
    assert torch.equal(back.times, ev.times) and torch.equal(back.indices, ev.indices)


def test_events_file_round_trip(tmp_path):
    spikes = torch.tensor([[[0, 1, -1]], [[1, 0, 0]], [[0, 0, 1]]], dtype=torch.int8)
    data = nir.NIRGraphData({"in": nir.NIRNodeData({"spikes": events_to_nir(to_events(spikes))})})
    nir.write_data(tmp_path / "ev.data.nir", data)
    back = read_nir_data(tmp_path / "ev.data.nir")
    assert torch.equal(events_from_nir(back.nodes["in"].observables["spikes"]).to_dense(), spikes)


def test_events_from_nir_rejects_off_grid():
    data = nir.ValuedEventData(idx=np.array([[0]]), time=np.array([[0.5]]), value=np.array([[1.0]]),
                               n_neurons=1, t_max=2.0)
    with pytest.raises(ValueError, match="not on the grid"):
        events_from_nir(data, dt=1.0)
    plain = nir.EventData(idx=np.array([[0, -1]]), time=np.array([[1.0, np.inf]]), n_neurons=2,
                          t_max=2.0)
    assert events_from_nir(plain).to_dense()[:, 0].tolist() == [[0, 0], [1, 0]]


@pytest.mark.parametrize("scheme", ["binary", "bitwise_bidirectional", "bitwise_twos_complement"])
def test_recorded_events_decode_to_the_layer_counts(tmp_path, scheme):
    layer = SpikingLinear.from_linear(nn.Linear(12, 5), SpikeConfig(scheme=scheme, group_size=8))
    x = torch.randn(6, 12)
    files = export_nir(layer, tmp_path / "fc.nir", example_input=x, name="fc")
    assert files == [tmp_path / "fc.nir", data_path(tmp_path / "fc.nir")]
    data = read_nir_data(files[1])
    ev = events_from_nir(data.nodes["fc.regroup"].observables["spikes"])
    spikes = ev.to_dense().to(torch.int64)  # [T, tokens, in]
    spec = get_scheme(scheme)
    w = spec.time_weights(spikes.shape[0]).abs().view(-1, 1, 1)
    counts, vth, _ = layer.spike_counts(x)
    assert torch.equal((w * spikes).sum(0), counts.to(torch.int64))
    obs = data.nodes["fc.threshold"].observables
    assert np.array_equal(obs["vth"].data[:, 0, :], vth.numpy())
    assert np.array_equal(obs["input"].data[:, 0, :], x.numpy())
    y = data.nodes["fc.group_sum"].observables["output"].data[:, 0, :]
    assert np.array_equal(y, from_nir(read_nir(files[0]))(x).numpy())


def test_record_needs_the_layers_to_run():
    a = SpikingLinear.from_linear(nn.Linear(4, 3), SpikeConfig())
    b = SpikingLinear.from_linear(nn.Linear(4, 3), SpikeConfig())
    with pytest.raises(ValueError, match="did not call the layers"):
        record_nir_data({"a": a, "b": b}, lambda: a(torch.randn(2, 4)))


# ------------------------------------------------------------------ CLI on the embedded MiniLM


@pytest.fixture(scope="module")
def minilm():
    """The embedded all-MiniLM-L6-v2 converted with the default SpikeConfig (loaded once)."""
    from spikingbrain.neuromorphic.cli_args import load_model_dir

    return load_model_dir("minilm", SpikeConfig())


def test_cli_export_nir_minilm(tmp_path, monkeypatch, minilm):
    from typer.testing import CliRunner

    from spikingbrain.cli import app
    from spikingbrain.neuromorphic import cli_args
    from spikingbrain.neuromorphic.layer_select import select_layers

    model = minilm[0]
    monkeypatch.setattr(cli_args, "load_model_dir", lambda *a, **k: minilm)  # load it once
    out = tmp_path / "minilm.nir"
    pattern = "encoder.layer.0.attention.self.query,encoder.layer.0.intermediate.dense"
    res = CliRunner().invoke(app, ["export", "nir", "minilm", "--layers", pattern,
                                   "--tokens", "6", "--out", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "encoder.layer.0.intermediate.dense" in res.output and "384->1536" in res.output
    layers = spiking_layers_from_nir(read_nir(out))
    assert list(layers) == pattern.split(",")
    ref = spiking_layers(model)
    x = torch.randn(3, 384)
    for name, layer in layers.items():
        assert torch.equal(layer.qdata, ref[name].qdata)  # the codes, bit for bit
        assert torch.equal(layer(x), ref[name](x))
    data = read_nir_data(data_path(out))
    ev = data.nodes["encoder.layer.0.intermediate.dense.regroup"].observables["spikes"]
    assert ev.n_samples == 6 and ev.n_neurons == 384
    with pytest.raises(ValueError, match="no converted layer matches 'nothing.*'"):
        select_layers(model, "nothing.*")


def test_cli_bad_model_dir(tmp_path):
    from typer.testing import CliRunner

    from spikingbrain.cli import app

    bad = CliRunner().invoke(app, ["export", "nir", str(tmp_path / "nowhere"),
                                   "--out", str(tmp_path / "x.nir")], env={"COLUMNS": "200"})
    assert bad.exit_code == 2 and "does not exist" in bad.output
    assert not (tmp_path / "x.nir").exists()
