"""The "horowitz" and "lemaire" estimators: equal to the report's energy model, hand counts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import fields

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikingbrain.analysis.energy import HOROWITZ_45NM, REPORT_TABLE, model_energy
from spikingbrain.analysis.estimators import (
    LayerWorkload,
    config_for,
    estimate,
    estimator_names,
    workloads_from_model_stats,
)
from spikingbrain.analysis.estimators.horowitz import HorowitzConfig
from spikingbrain.analysis.estimators.lemaire import LemaireConfig, sram_pj_per_byte
from spikingbrain.analysis.stats import ModelStats, count_statistics

REL = 1e-12


def _stats() -> ModelStats:
    g = torch.Generator().manual_seed(0)
    layers = []
    for i, (n, m, groups, scheme) in enumerate([(16, 8, 2, "bitwise_bidirectional"),
                                                (8, 12, 1, "ternary"), (12, 4, 3, "binary")]):
        counts = torch.randint(-9, 10, (5, n), generator=g)
        if scheme == "binary":
            counts = counts.abs()
        layers.append(count_statistics([counts], scheme, fan_out=m, groups=groups,
                                       name=f"l{i}", window=None))
    return ModelStats(layers)


def test_registry_lists_builtins():
    names = estimator_names()
    assert {"horowitz", "lemaire"} <= set(names)
    assert isinstance(config_for("horowitz"), HorowitzConfig)


@pytest.mark.parametrize("table, memory", [(REPORT_TABLE, None), (HOROWITZ_45NM, None),
                                           (HOROWITZ_45NM, "sram_32kb"), (HOROWITZ_45NM, "dram")])
def test_horowitz_equals_layer_and_model_energy(table, memory):
    stats = _stats()
    layers, total = model_energy(stats, table, memory)
    est = estimate(workloads_from_model_stats(stats), HorowitzConfig.from_table(table, memory))
    for le in layers:
        for regime, key in (("fp16", "fp16_total_pj"), ("int8", "int8_total_pj"),
                            ("spiking", "spiking_total_pj")):
            ours = est.layer(le.name, regime)
            assert math.isclose(ours.energy_pj_per_token, getattr(le, key), rel_tol=REL)
        assert math.isclose(est.layer(le.name, "spiking").breakdown["epilogue"],
                            le.epilogue_pj, rel_tol=REL)
    for regime, key in (("fp16", "fp16_total_pj"), ("int8", "int8_total_pj"),
                        ("spiking", "spiking_total_pj")):
        assert math.isclose(est.total(regime), getattr(total, key), rel_tol=REL)
    names = {c.name for c in est.constants}
    assert {"fp16_mac", "int8_mac", "int8_add", "epilogue_mac"} <= names
    assert (f"read_{memory}" in names) == (memory is not None)
    assert all(c.source for c in est.constants)


def test_horowitz_routed_expert_counts_its_share():
    w = LayerWorkload("e", 8, 4, None, 0, 1.0, 0.5, source="assumed")
    half = LayerWorkload("e", 8, 4, None, 0, 1.0, 0.5, source="assumed", active_fraction=0.25)
    a, b = estimate([w], "horowitz"), estimate([half], "horowitz")
    for r in ("fp16", "int8", "spiking"):
        assert math.isclose(b.total(r), a.total(r) / 4, rel_tol=REL)


def test_horowitz_config_validation():
    with pytest.raises(TypeError, match="Constant"):
        HorowitzConfig(int8_add=0.03)
    with pytest.raises(ValueError, match="memory level"):
        HorowitzConfig.from_table("report", memory="sram_32kb")
    with pytest.raises(ValueError, match="no field"):
        config_for("horowitz", int8_ad=1)


def test_sram_interpolation():
    cfg = LemaireConfig()
    assert sram_pj_per_byte(cfg, 0) == 0.0
    assert sram_pj_per_byte(cfg, 4096) == 1.25  # half-way to 8 KB: half of 10 pJ / 4 bytes
    assert sram_pj_per_byte(cfg, 32768) == 5.0
    assert math.isclose(sram_pj_per_byte(cfg, 32768 + (1048576 - 32768) / 2), 15.0)
    assert sram_pj_per_byte(cfg, 10 * 2**20) == 25.0


def test_lemaire_hand_count():
    """One layer n=10, m=5, 2 tokens' worth of rates, T=2, bias, our defaults."""
    w = LayerWorkload("l", 10, 5, None, 2, 0.3, 0.2, scheme="binary", steps=2.0,
                      has_bias=True)
    cfg = LemaireConfig()
    est = estimate([w], cfg)
    cost = lambda size: sram_pj_per_byte(cfg, size)  # noqa: E731
    S, syn = 3.0, 15.0  # spikes per token, synaptic ops per token
    ops = (syn + 5 + S) * 0.1                    # synapses, bias once, neuron resets
    addr = syn * 0.1
    inputs = 2 * S * 4 * cost(4000)              # read events, neurons write them
    weights = (syn + 5) * 4 * cost(55 * 4)
    potentials = 2 * syn * 4 * cost(5 * 4) + 2 * 10 * 2 * 4 * cost(10 * 4)
    sp = est.layer("l", "spiking")
    assert math.isclose(sp.breakdown["ops"], ops, rel_tol=REL)
    assert math.isclose(sp.breakdown["addressing"], addr, rel_tol=REL)
    assert math.isclose(sp.breakdown["inputs"], inputs, rel_tol=REL)
    assert math.isclose(sp.breakdown["weights"], weights, rel_tol=REL)
    assert math.isclose(sp.breakdown["potentials"], potentials, rel_tol=REL)
    ann = est.layer("l", "ann")
    expect = 50 * 3.2 + 5 * 0.1 + 15 * 0.1 + 40 * cost(40) + 20 * cost(20) + 55 * 4 * cost(220)
    assert math.isclose(ann.energy_pj_per_token, expect, rel_tol=REL)
    lif = estimate([w], LemaireConfig(neuron="lif")).layer("l", "spiking")
    assert math.isclose(lif.breakdown["ops"] - sp.breakdown["ops"], 20 * 3.2, rel_tol=REL)
    assert {c.name for c in est.constants} == {"e_add", "e_mul", "word_bytes", "sram_8kb",
                                              "sram_32kb", "sram_1mb", "fifo_capacity"}


@pytest.mark.parametrize("kw, match", [
    (dict(input_neurons="some"), "input_neurons"), (dict(neuron="alif"), "neuron"),
    (dict(buffer_tokens=0), "buffer_tokens"), (dict(bias_per_step=1), "bool"),
])
def test_lemaire_config_validation(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LemaireConfig(**kw)


def test_lemaire_weight_reads_per_active_channel():
    w = LayerWorkload("l", 10, 5, None, 2, 0.9, 0.3, scheme="bitwise", steps=3.0)
    cfg = LemaireConfig(weight_reads="per_active_channel")
    a = estimate([w], LemaireConfig()).layer("l", "spiking")
    b = estimate([w], cfg).layer("l", "spiking")
    assert math.isclose(a.extra["weights_bytes"], 0.9 * 50 * 4, rel_tol=REL)
    assert math.isclose(b.extra["weights_bytes"], 0.3 * 50 * 4, rel_tol=REL)
    assert math.isclose(a.breakdown["potentials"], b.breakdown["potentials"], rel_tol=REL)

@st.composite
def _workloads(draw):
    """Valid workloads: the non-zero fraction never exceeds the spikes per channel."""
    spikes = draw(st.floats(0, 8, allow_nan=False))
    return LayerWorkload(
        name="l", in_features=draw(st.integers(1, 5000)),
        out_features=draw(st.integers(1, 5000)),
        group_size=draw(st.one_of(st.none(), st.integers(1, 256))),
        tokens_measured=draw(st.integers(0, 100)), spikes_per_channel=spikes,
        nonzero_per_channel=min(1.0, spikes) * draw(st.floats(0, 1)),
        steps=draw(st.floats(0, 8)), has_bias=draw(st.booleans()),
        active_fraction=draw(st.floats(0.01, 1)), trains=draw(st.sampled_from([1, 2])))


@settings(max_examples=60, deadline=None)
@given(_workloads())
def test_workload_dict_round_trip_and_horowitz_per_mac_identity(w):
    d = w.to_dict()
    assert LayerWorkload(**{f.name: d[f.name] for f in fields(LayerWorkload)}) == w
    est = estimate([w], "horowitz")
    cfg = HorowitzConfig()
    per_mac = est.total("spiking") / (w.dense_macs_per_token * w.active_fraction)
    expect = (w.spikes_per_channel * cfg.int8_add.value
              + w.groups_per_output * cfg.epilogue_mac.value / w.in_features)
    assert math.isclose(per_mac, expect, rel_tol=1e-9, abs_tol=1e-15)


@settings(max_examples=60, deadline=None)
@given(_workloads(), st.floats(0.1, 4))
def test_lemaire_spiking_energy_is_affine_in_the_spike_rate(w, factor):
    """Every spiking term but the per-step neuron potentials scales with the spikes."""
    cfg = LemaireConfig(input_neurons="none")
    w = dataclasses.replace(w, nonzero_per_channel=0.0)  # valid at every spike rate below
    base = dataclasses.replace(w, spikes_per_channel=0.0)
    more = dataclasses.replace(w, spikes_per_channel=w.spikes_per_channel * factor)
    e0, e1, e2 = (estimate([x], cfg).total("spiking") for x in (base, w, more))
    assert math.isclose(e2 - e0, factor * (e1 - e0), rel_tol=1e-9, abs_tol=1e-6)
