"""Reports (JSON schema, Markdown, self-contained HTML) and plots."""

import json

import pytest
import torch

from spikingbrain.analysis import build_report, raster
from spikingbrain.analysis.report import SCHEMA, SCHEMA_VERSION, report_figures, write_report


def test_write_report(tmp_path, toy_stats):
    stats, samples = toy_stats
    sweep = [{"k": k, "fraction_le_7": 0.9, "fraction_gt_16": 0.01, "mean_spikes_per_channel": k,
              "sparsity": 0.8, "sparsity_at_window": 0.6, "silent_fraction": 0.1,
              "energy_per_token_pj": 10.0, "fp16_energy_per_token_pj": 100.0, "cosine": 0.99}
             for k in (2, 3)]
    rep = build_report(stats, title="toy", window=3, memory="sram_32kb",
                       fidelity={"cosine": 0.99}, sweep=sweep)
    figs = report_figures(stats, window=3, samples=samples, sweep=sweep,
                          estimators=rep["estimators"])
    assert {f.name for f in figs} == {"raster", "histograms", "sparsity", "energy", "k_sweep",
                                      "estimators"}
    paths = write_report(tmp_path, rep, figs)
    doc = json.loads(paths["json"].read_text())
    assert doc["schema"] == SCHEMA and doc["schema_version"] == SCHEMA_VERSION
    assert set(doc["definitions"]) >= {"mean_spikes_per_channel", "sparsity", "effective_acs"}
    assert doc["energy"]["omissions"] and doc["energy"]["assumptions"]
    assert doc["neurobench"]["synaptic_operations"]["dense_macs"] == 6 * 16 * 12 + 6 * 12 * 4
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 6 and "<img" in html
    assert "src='plots/" not in html  # self-contained
    md = paths["markdown"].read_text()
    assert "![Spike raster of 0](plots/raster.png)" in md
    for f in figs:
        assert (tmp_path / "plots" / f"{f.name}.png").read_bytes()[:4] == b"\x89PNG"


def test_raster_draws_into_given_axis():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    spikes = torch.tensor([[1, 0, -1], [0, 1, 0]])
    assert raster(spikes, ax=ax) is ax
    assert len(ax.collections) == 2  # +1 and -1 spikes in two colours
    with pytest.raises(ValueError, match=r"\[T, neurons\]"):
        raster(torch.zeros(2, 2, 2))
