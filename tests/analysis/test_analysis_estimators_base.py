"""Estimator contract: workloads, constants, results and the registry."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError, dataclass, field

import pytest
import torch

from spikingbrain.analysis.estimators import (
    Constant,
    EnergyEstimate,
    EstimatorConfig,
    LayerEstimate,
    LayerWorkload,
    config_for,
    estimate,
    estimator_names,
    register_estimator,
    unregister_estimator,
    workloads_from_model_stats,
    workloads_from_shapes,
)
from spikingbrain.analysis.stats import ModelStats, count_statistics


def _w(**kw):
    base = dict(name="fc", in_features=6, out_features=5, group_size=4, tokens_measured=3,
                spikes_per_channel=1.25, nonzero_per_channel=0.5)
    return LayerWorkload(**(base | kw))


def test_workload_derived_figures():
    w = _w()
    assert w.weight_count == w.dense_macs_per_token == 30
    assert w.synaptic_ops_per_token == 1.25 * 30
    assert w.binary_events_per_token == 1.25 * 6
    assert w.graded_events_per_token == 0.5 * 6
    assert w.active_synapses_per_token == 0.5 * 30
    assert w.groups_per_output == 2  # ceil(6 / 4)
    assert _w(group_size=None).groups_per_output == 1
    assert _w(n_groups=7).groups_per_output == 7
    d = w.to_dict()
    assert d["synaptic_ops_per_token"] == w.synaptic_ops_per_token
    json.dumps(d)
    with pytest.raises(FrozenInstanceError):
        w.in_features = 3


@pytest.mark.parametrize("kw, match", [
    (dict(name=""), "name"),
    (dict(in_features=0), "in_features"),
    (dict(out_features=2.0), "out_features"),
    (dict(group_size=0), "group_size"),
    (dict(tokens_measured=-1), "tokens_measured"),
    (dict(spikes_per_channel=float("nan")), "spikes_per_channel"),
    (dict(spikes_per_channel=-0.1), "spikes_per_channel"),
    (dict(nonzero_per_channel=1.5), "nonzero_per_channel"),
    (dict(active_fraction=0.0), "active_fraction"),
    (dict(weight_bits=0), "weight_bits"),
    (dict(trains=3), "trains"),
    (dict(steps=-1.0), "steps"),
    (dict(scheme="bits"), "unknown spike coding scheme"),
    (dict(source=""), "source"),
])
def test_workload_rejects_bad_fields(kw, match):
    with pytest.raises(ValueError, match=match):
        _w(**kw)


def test_workload_from_stats_matches_statistics():
    counts = torch.tensor([[0, 1, -3, 9], [2, 0, 0, -1]])
    st = count_statistics([counts], "bitwise_bidirectional", window=3, fan_out=7, groups=2,
                          name="blk.q")
    w = LayerWorkload.from_stats(st)
    assert (w.in_features, w.out_features, w.tokens_measured) == (4, 7, 2)
    assert w.spikes_per_channel == st.mean_spikes_per_channel
    assert w.nonzero_per_channel == 1 - st.silent_fraction == 5 / 8
    assert w.groups_per_output == 2 and w.steps == st.mean_window
    # per token: spikes / tokens x fan-out, the event-driven ACs of the statistics
    assert math.isclose(w.synaptic_ops_per_token, st.event_acs / st.tokens, rel_tol=1e-12)
    with pytest.raises(ValueError, match="fan-in/fan-out"):
        LayerWorkload.from_stats(count_statistics([counts], "ternary", name="bare"))


def test_workloads_from_model_stats_active_fraction():
    a = count_statistics([torch.tensor([[1, 0, 2], [0, 0, 1]])], "binary", fan_out=2, name="a")
    b = count_statistics([torch.tensor([[1, 1, 1]])], "binary", fan_out=4, name="expert")
    bare = count_statistics([torch.tensor([[1]])], "binary", name="bare")
    ws = workloads_from_model_stats(ModelStats([a, b, bare]))
    assert [(w.name, w.active_fraction) for w in ws] == [("a", 1.0), ("expert", 0.5)]
    assert workloads_from_model_stats(ModelStats([bare])) == []


def test_workloads_from_shapes_tiny_moe():
    from spikingbrain.models.hybrid import SpikingBrainMoEConfig

    cfg = SpikingBrainMoEConfig.tiny()
    ws = workloads_from_shapes(cfg, spikes_per_channel=1.0, silent_fraction=0.25)
    assert all(w.tokens_measured == 0 and w.source.startswith("assumed") for w in ws)
    assert all(w.nonzero_per_channel == 0.75 and w.trains == 1 for w in ws)
    experts = [w for w in ws if ".experts." in w.name]
    shared = [w for w in ws if ".shared_experts." in w.name]
    assert experts and shared
    frac = cfg.num_experts_per_tok / cfg.n_routed_experts
    assert all(w.active_fraction == frac for w in experts)
    assert all(w.active_fraction == 1.0 for w in ws if w not in experts)
    assert not any("lm_head" in w.name for w in ws)
    unsigned = workloads_from_shapes(cfg, scheme="bitwise")
    assert all(w.trains == 2 for w in unsigned)
    with pytest.raises(ValueError, match="silent_fraction"):
        workloads_from_shapes(cfg, silent_fraction=1.5)


def test_constant_requires_source_and_finite_value():
    c = Constant("e", 0.03, "pJ", "Horowitz 2014")
    assert c.to_dict() == {"name": "e", "value": 0.03, "unit": "pJ", "source": "Horowitz 2014"}
    with pytest.raises(ValueError, match="source"):
        Constant("e", 0.03, "pJ", " ")
    with pytest.raises(ValueError, match="finite"):
        Constant("e", math.inf, "pJ", "x")
    with pytest.raises(ValueError, match="finite"):
        Constant("e", True, "pJ", "x")


def test_layer_estimate_checks_breakdown_and_energy():
    LayerEstimate("l", "int8", 3.0, {"a": 1.0, "b": 2.0}, {})
    with pytest.raises(ValueError, match="breakdown sums"):
        LayerEstimate("l", "int8", 3.5, {"a": 1.0, "b": 2.0}, {})
    with pytest.raises(ValueError, match=">= 0"):
        LayerEstimate("l", "int8", -1.0, {}, {})
    with pytest.raises(ValueError, match="regime"):
        LayerEstimate("l", "", 1.0, {}, {})


@dataclass(frozen=True)
class _ToyConfig(EstimatorConfig):
    name = "toy_test"
    e_ac: Constant = field(default=Constant("e_ac", 2.0, "pJ", "assumed: test"))
    factor: float = 1.0

    def __post_init__(self):
        if self.factor <= 0:
            raise ValueError("factor must be > 0")


def _toy_factory(cfg):
    def run(workloads):
        layers = []
        for w in workloads:
            e = w.synaptic_ops_per_token * cfg.e_ac.value * cfg.factor * w.active_fraction
            layers.append(LayerEstimate(w.name, "spiking", e, {"synaptic": e},
                                        {"synops": w.synaptic_ops_per_token}))
            layers.append(LayerEstimate(w.name, "fp16", 1.0, {}, {}))
        return EnergyEstimate(cfg.name, layers, cfg.constants(), ["toy"])
    return run


@pytest.fixture
def toy():
    register_estimator(_ToyConfig, _toy_factory)
    yield
    unregister_estimator("toy_test")


def test_registry_round_trip(toy):
    assert "toy_test" in estimator_names()
    cfg = config_for("toy_test", factor=2.0)
    assert isinstance(cfg, _ToyConfig) and cfg.constants() == [cfg.e_ac]
    ws = [_w(name="a"), _w(name="b", active_fraction=0.5)]
    est = estimate(ws, cfg)
    expect = 37.5 * 2 * 2 + 37.5 * 2 * 2 * 0.5
    assert math.isclose(est.total("spiking"), expect, rel_tol=1e-12)
    assert est.total("fp16") == 2.0 and est.regimes == ["spiking", "fp16"]
    assert est.layer("b", "spiking").extra["synops"] == 37.5
    d = json.loads(json.dumps(est.to_dict()))
    assert d["totals_pj_per_token"]["spiking"] == est.total("spiking")
    assert d["constants"][0]["source"] == "assumed: test"
    assert estimate(ws, "toy_test").total("spiking") == est.total("spiking") / 2
    with pytest.raises(ValueError, match="no regime 'int8'"):
        est.total("int8")


def test_registry_errors(toy):
    with pytest.raises(ValueError, match="unknown energy estimator 'nope'.*toy_test"):
        config_for("nope")
    with pytest.raises(ValueError, match="no field"):
        config_for("toy_test", bogus=1)
    with pytest.raises(ValueError, match="factor"):
        config_for("toy_test", factor=0.0)
    with pytest.raises(ValueError, match="no layer workloads"):
        estimate([], "toy_test")
    with pytest.raises(TypeError, match="LayerWorkload"):
        estimate([{"name": "x"}], "toy_test")
    with pytest.raises(TypeError, match="EstimatorConfig"):
        estimate([_w()], 3)

    @dataclass(frozen=True)
    class Other(EstimatorConfig):
        name = "toy_test"

    with pytest.raises(ValueError, match="taken"):
        register_estimator(Other, _toy_factory)
    with pytest.raises(TypeError, match="dataclass subclass"):
        register_estimator(dict, _toy_factory)


def test_constant_field_is_the_one_helper_in_constants_order():
    import inspect

    from spikingbrain.analysis.estimators import base, horowitz, lemaire, loihi2
    from spikingbrain.analysis.estimators.base import constant_field

    @dataclass(frozen=True)
    class Cfg(EstimatorConfig):
        name = "doctest_constant_field"
        e: Constant = constant_field("e", 2.5, "pJ", "assumed: test")

    assert Cfg().constants() == [Constant("e", 2.5, "pJ", "assumed: test")]
    # no estimator keeps a private helper with its own argument order
    for mod in (horowitz, lemaire, loihi2):
        assert not hasattr(mod, "_c"), mod.__name__
        assert "constant_field(" in inspect.getsource(mod)
    assert list(inspect.signature(base.constant_field).parameters) == \
        ["name", "value", "unit", "source"] == [f.name for f in base.dataclasses.fields(Constant)]
    # every built-in constant's unit is a unit, never a citation (the old orders could swap them)
    for name in ("horowitz", "lemaire", "loihi2"):
        for c in config_for(name).constants():
            assert len(c.unit) <= 12 and len(c.source) > 12, (name, c)
