"""Our neurons inside spikingjelly networks: step modes, reset_net, bit-exact dynamics."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

sj_base = pytest.importorskip("spikingjelly.activation_based.base")
from spikingjelly.activation_based import functional, layer

from spikingbrain.neuromorphic.spikingjelly_adapter import (
    spikingjelly_neuron,
    wrap_neurons,
)
from spikingbrain.neurons.classic import ALIF, IF, LIF, reset_states
from spikingbrain.neurons.params import ALIFParams, IFParams, LIFParams


def ours_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8), LIF(tau_mem=4.0, r=3.0, step_mode="m"),
        nn.Linear(8, 6), ALIF(tau_mem=3.0, r=2.0, tau_adapt=10.0, beta=0.3, step_mode="m"),
        nn.Linear(6, 3), IF(v_th=0.5, reset="hard", step_mode="m"),
    )


def sj_net(net: nn.Sequential, step_mode: str) -> nn.Sequential:
    """The same network built from spikingjelly layers with our neurons as adapters."""
    mods = []
    for m in net:
        if isinstance(m, nn.Linear):
            lin = layer.Linear(m.in_features, m.out_features, step_mode=step_mode)
            lin.load_state_dict(m.state_dict())
            mods.append(lin)
        else:
            mods.append(spikingjelly_neuron(m.params, step_mode=step_mode))
    return nn.Sequential(*mods)


def test_adapter_is_a_memory_module():
    n = spikingjelly_neuron(LIFParams(tau_mem=2.0))
    assert isinstance(n, sj_base.MemoryModule) and n.step_mode == "s" and n.state is None


def test_multi_and_single_step_equal_ours_bit_for_bit():
    net = ours_net()
    x = torch.rand(30, 2, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net(x)
    assert ref.sum() > 5  # the last layer fires
    sj_m = sj_net(net, "m")
    with torch.no_grad():
        out_m = sj_m(x)
    assert torch.equal(out_m, ref)
    sj_s = sj_net(net, "s")
    with torch.no_grad():
        out_s = torch.stack([sj_s(x[t]) for t in range(x.shape[0])])
    assert torch.equal(out_s, ref)
    # spikingjelly's own multi-step helper over single-step modules gives the same
    functional.reset_net(sj_s)
    with torch.no_grad():
        out_seq = functional.multi_step_forward(x, sj_s)
    assert torch.equal(out_seq, ref)


def test_reset_net_and_set_step_mode():
    net = ours_net()
    sj = sj_net(net, "m")
    x = torch.rand(10, 2, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        first = sj(x)
        assert sj[1].state is not None
        functional.reset_net(sj)
        assert all(m.state is None for m in sj if hasattr(m, "params"))
        assert torch.equal(sj(x), first)  # from rest again
        functional.reset_net(sj)
        functional.set_step_mode(sj, "s")
        assert sj[1].step_mode == "s"
        assert torch.equal(torch.stack([sj(x[t]) for t in range(10)]), first)


def test_state_continues_across_chunks_and_checks_shape():
    n = spikingjelly_neuron(IFParams(v_th=1.0), step_mode="m")
    x = torch.full((6, 1, 2), 0.4)
    whole = n(x)
    functional.reset_net(n)
    chunks = torch.cat([n(x[:3]), n(x[3:])])
    assert torch.equal(chunks, whole)
    with pytest.raises(ValueError, match="state"):
        n(torch.zeros(2, 5, 2))  # another batch without reset_net


def test_functional_state_api():
    n = spikingjelly_neuron(ALIFParams(tau_mem=2.0, r=2.0, tau_adapt=5.0, beta=0.5), "s")
    x = torch.rand(8, 3, generator=torch.Generator().manual_seed(4))
    (spikes,), (_state,) = n.functional_forward((x,), (None,))
    ref = ALIF(params=n.params)(x)
    assert torch.equal(spikes, ref)
    assert n.state is None  # the functional API does not touch the module's memory


def test_wrap_neurons_in_place():
    net = ours_net()
    x = torch.rand(12, 2, 4, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = net(x)
    wrapped = copy.deepcopy(net)
    reset_states(wrapped)
    assert wrap_neurons(wrapped) == 3
    assert all(isinstance(m, sj_base.MemoryModule) for m in wrapped[1::2])
    with torch.no_grad():
        assert torch.equal(wrapped(x), ref)
    with pytest.raises(TypeError, match="spikingjelly_neuron"):
        wrap_neurons(LIF())
    with pytest.raises(TypeError, match="IFParams, LIFParams or ALIFParams"):
        spikingjelly_neuron(3.0)
