"""Cross-check with the peer: spikingjelly 2.0's op_counter against our estimators.

On networks both tools run (a binary-spike stack of spikingjelly linear layers with its IF /
LIF neurons between them; the same stack with our IF / LIF through the spikingjelly adapter),
spikingjelly counts the run and our estimators price the workloads observed on the same input:

- synaptic operations: integers, equal exactly (ours is a rate x shape product in float:
  rounded to the nearest integer it is the peer's count, and within 1e-9 of it);
- Horowitz MAC / AC energies (``estimate_simple_energy`` with the FP16 / INT8 presets, neuron
  internals excluded, no epilogue): equal within rel 1e-9;
- Lemaire energies (``estimate_lemaire_energy``, total and every part) with the peer's
  definitions (:meth:`LemaireConfig.spikingjelly`): equal within rel 1e-9.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

# installed by `make test` (where a skip fails the run); other machines (the GPU image, where
# `make test-gpu` collects every module) skip this module instead of failing to collect it
pytest.importorskip("spikingjelly.activation_based.op_counter")
from spikingjelly.activation_based import functional, layer, neuron
from spikingjelly.activation_based.op_counter import (
    DispatchCounterMode,
    LemaireEnergyConfig,
    SimpleEnergyConfig,
    SimpleEnergyCostConfig,
    SynOpCounter,
    estimate_lemaire_energy,
    estimate_simple_energy,
)
from torch import nn

from spikingbrain.analysis.estimators import estimate
from spikingbrain.analysis.estimators.horowitz import HorowitzConfig
from spikingbrain.analysis.estimators.lemaire import LemaireConfig
from spikingbrain.analysis.estimators.observe import observe_linear_workloads
from spikingbrain.neuromorphic.spikingjelly_adapter import adapter_class, spikingjelly_neuron
from spikingbrain.neurons.params import IFParams, LIFParams

REL = 1e-9
T, B = 4, 3
SIZES = (24, 16, 12, 8)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-9)


def _linear(n: int, m: int, bias: bool, mode: str) -> nn.Module:
    return layer.Linear(n, m, bias=bias, step_mode=mode)


def _stack(kind: str, bias: bool, mode: str) -> nn.Module:
    """Linear layers with neurons between them (none after the last)."""
    mods: list[nn.Module] = []
    for i, (n, m) in enumerate(zip(SIZES, SIZES[1:])):
        mods.append(_linear(n, m, bias, mode))
        if i < len(SIZES) - 2:
            if kind == "sj_if":
                mods.append(neuron.IFNode(v_threshold=0.3, step_mode=mode))
            elif kind == "sj_lif":
                mods.append(neuron.LIFNode(tau=2.0, v_threshold=0.2, step_mode=mode))
            elif kind == "ours_if":
                mods.append(spikingjelly_neuron(IFParams(v_th=0.3), step_mode=mode))
            else:
                mods.append(spikingjelly_neuron(LIFParams(v_th=0.2), step_mode=mode))
    return nn.Sequential(*mods)


def _setup(kind: str, bias: bool, mode: str, seed: int):
    torch.manual_seed(seed)
    net = _stack(kind, bias, mode)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, nn.Linear):
                mod.weight.uniform_(-0.2, 1.0)  # mostly excitatory: the neurons fire
    shape = (T, B, SIZES[0]) if mode == "m" else (B, SIZES[0])
    x = (torch.rand(shape) < 0.4).float()
    steps = T if mode == "m" else 1
    functional.reset_net(net)
    ws = observe_linear_workloads(net, x, steps=steps)
    functional.reset_net(net)
    return net, x, ws, steps


def _peer_synops(net: nn.Module, x: torch.Tensor) -> int:
    c = SynOpCounter()
    functional.reset_net(net)
    with DispatchCounterMode([c]), torch.no_grad():
        net(x)
    functional.reset_net(net)
    return int(c.get_total())


def _neuron_types(kind: str) -> list[type]:
    return [neuron.IFNode, neuron.LIFNode] if kind.startswith("sj") else [adapter_class()]


def _peer_simple(net, x, preset: SimpleEnergyCostConfig, kind: str):
    functional.reset_net(net)
    rep = estimate_simple_energy(net, x, config=SimpleEnergyConfig(
        cost_config=preset, extra_ignore_modules=_neuron_types(kind)))
    functional.reset_net(net)
    return rep


CASES = [(k, b, md) for k in ("sj_if", "sj_lif", "ours_if", "ours_lif")
         for b in (False, True) for md in ("s", "m")]


@pytest.mark.parametrize("kind, bias, mode", CASES)
def test_synops_and_horowitz_spiking_equal_peer(kind, bias, mode):
    net, x, ws, _ = _setup(kind, bias, mode, seed=len(kind) + 2 * bias + (mode == "m"))
    assert all(w.source == "measured" for w in ws), "every layer must see binary spikes"
    assert sum(w.spikes_per_channel for w in ws[1:]) > 0, "the neurons must fire"
    ours_synops = sum(w.synaptic_ops_per_token * w.tokens_measured for w in ws)
    peer_synops = _peer_synops(net, x)
    assert round(ours_synops) == peer_synops and _close(ours_synops, peer_synops)
    cfg = HorowitzConfig(epilogue=False)
    est = estimate(ws, cfg)
    rep = _peer_simple(net, x, SimpleEnergyCostConfig.int8(), kind)
    assert rep.counts["synop"] == peer_synops == rep.counts["ac"]
    assert rep.energy_mac_pj == 0.0
    assert _close(est.total("spiking") * B, rep.energy_ac_pj)
    assert cfg.int8_add.value == SimpleEnergyCostConfig.int8().e_ac_pj


@pytest.mark.parametrize("bias", [False, True])
def test_horowitz_dense_macs_equal_peer(bias):
    """The float model (same shapes, analog inputs, no neurons): FP16 and INT8 MAC energies."""
    torch.manual_seed(3)
    net = nn.Sequential(*[nn.Linear(n, m, bias=bias) for n, m in zip(SIZES, SIZES[1:])])
    x = torch.randn(B, SIZES[0])
    ws = observe_linear_workloads(net, x)
    assert all(w.source.startswith("observed: non-spiking") for w in ws)
    est = estimate(ws, HorowitzConfig(epilogue=False))
    for regime, preset in (("fp16", SimpleEnergyCostConfig.fp16()),
                           ("int8", SimpleEnergyCostConfig.int8())):
        rep = estimate_simple_energy(net, x, config=SimpleEnergyConfig(cost_config=preset))
        assert rep.counts["mac"] == sum(w.dense_macs_per_token for w in ws) * B
        assert rep.energy_ac_pj == 0.0
        assert _close(est.total(regime) * B, rep.energy_mac_pj)


@pytest.mark.parametrize("kind, bias, mode", CASES)
def test_lemaire_spiking_equals_peer(kind, bias, mode):
    net, x, ws, _ = _setup(kind, bias, mode, seed=7 + len(kind) + 2 * bias + (mode == "m"))
    ours_neurons = kind.startswith("ours")
    functional.reset_net(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the peer omits neurons it does not know
        rep = estimate_lemaire_energy(net, x, config=LemaireEnergyConfig(strict=not ours_neurons))
    cfg = LemaireConfig.spikingjelly(
        neuron="lif" if kind.endswith("lif") else "if", batch=B,
        input_neurons="none" if ours_neurons else "all_but_first")
    est = estimate(ws, cfg)
    assert round(sum(e.extra["synaptic_ops"] for e in est.layers if e.regime == "spiking")
                 * B) == rep.counts["synop"]
    parts = {k: sum(e.breakdown[k] for e in est.layers if e.regime == "spiking") * B
             for k in ("ops", "addressing", "inputs", "weights", "potentials")}
    peer = rep.breakdown_pj
    assert _close(parts["ops"], peer["ops_pj"])
    assert _close(parts["addressing"], peer["addressing_pj"])
    assert _close(parts["inputs"], peer["inout_pj"])
    assert _close(parts["weights"], peer["params_pj"])
    assert _close(parts["potentials"], peer["potential_pj"])
    assert _close(est.total("spiking") * B, rep.total_pj)


@pytest.mark.parametrize("bias", [False, True])
def test_lemaire_ann_equals_peer(bias):
    torch.manual_seed(5)
    net = nn.Sequential(*[nn.Linear(n, m, bias=bias) for n, m in zip(SIZES, SIZES[1:])])
    x = torch.randn(B, SIZES[0])
    ws = observe_linear_workloads(net, x)
    rep = estimate_lemaire_energy(net, x)
    est = estimate(ws, LemaireConfig(buffer_tokens=B))  # ANN layers write their outputs
    assert _close(est.total("ann") * B, rep.total_pj)
    assert rep.counts["mac"] == sum(e.extra["macs"] for e in est.layers
                                    if e.regime == "ann") * B


def test_lemaire_dense_first_layer_equals_peer():
    """First layer fed by analog data every step (direct encoding): counted as MACs."""
    torch.manual_seed(11)
    net = _stack("sj_if", True, "m")
    x = torch.rand(T, B, SIZES[0])
    functional.reset_net(net)
    ws = observe_linear_workloads(net, x, steps=T)
    functional.reset_net(net)
    rep = estimate_lemaire_energy(net, x)
    est = estimate(ws, LemaireConfig.spikingjelly(batch=B, dense_first_layer=True))
    assert _close(est.total("spiking") * B, rep.total_pj)


def test_our_default_bias_differs_from_peer_by_the_bias_terms_only():
    """Ours adds (and reads) a bias once per token, the peer every time step: with the other
    definitions equal, the difference is exactly (T - 1) x m bias adds and bias reads."""
    from spikingbrain.analysis.estimators.lemaire import sram_pj_per_byte

    net, x, ws, _ = _setup("sj_if", True, "m", seed=1)
    peer_def = LemaireConfig.spikingjelly(batch=B)
    ours = LemaireConfig.spikingjelly(batch=B, bias_per_step=False)
    diff = estimate(ws, peer_def).total("spiking") - estimate(ws, ours).total("spiking")
    wb = ours.word_bytes.value
    expect = sum((T - 1) * w.out_features * (
        ours.e_add.value + wb * sram_pj_per_byte(ours, (w.weight_count + w.out_features) * wb))
        for w in ws)
    assert expect > 0 and _close(diff, expect)
