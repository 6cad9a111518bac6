"""Multi-step IF neuron: its spikes equal the encoded single-step counts for every scheme."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikingbrain.coding import decode, encode, get_scheme, scheme_names
from spikingbrain.neurons import adaptive_threshold
from spikingbrain.neurons.multistep import (
    AdaptiveThresholdMultiStep,
    adaptive_threshold_multistep,
    if_soft_reset_multistep,
)


def _rectified(counts, scheme):
    return counts if get_scheme(scheme).signed else counts.clamp_min(0)


@pytest.mark.parametrize("scheme", scheme_names())
@given(
    rows=st.integers(1, 4),
    cols=st.integers(1, 24),
    scale=st.sampled_from([0.01, 1.0, 50.0]),
    seed=st.integers(0, 2**16),
    k=st.sampled_from([2.0, 2.5, 3.0, 4.0]),
)
def test_spikes_sum_to_single_step_counts(scheme, rows, cols, scale, seed, k):
    x = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * scale
    if not get_scheme(scheme).signed:
        x = x.abs()
    spikes, vth = adaptive_threshold_multistep(x, scheme, k=k)
    counts, vth1 = adaptive_threshold(x, k=k)
    assert torch.equal(vth, vth1)
    assert torch.equal(decode(spikes, scheme).to(torch.int64), counts.to(torch.int64))
    assert torch.equal(spikes, encode(counts, scheme))


@pytest.mark.parametrize("scheme", scheme_names())
@given(halves=st.lists(st.integers(-60, 60), min_size=1, max_size=30), extra=st.integers(0, 2))
def test_ties_follow_round_half_to_even(scheme, halves, extra):
    """Membranes exactly halfway between integers: the neuron agrees with torch.round."""
    u = torch.tensor(halves, dtype=torch.float32) / 2
    counts = _rectified(torch.round(u).to(torch.int64), scheme)
    T = get_scheme(scheme).min_steps(int(counts.min()), int(counts.max())) + extra
    assert torch.equal(if_soft_reset_multistep(u, scheme, T), encode(counts, scheme, T))


@pytest.mark.parametrize("scheme", scheme_names())
def test_short_window_saturates_like_encode(scheme):
    u = torch.linspace(-40, 40, 321)
    counts = _rectified(torch.round(u).to(torch.int64), scheme)
    T = 3
    assert torch.equal(
        if_soft_reset_multistep(u, scheme, T), encode(counts, scheme, T, overflow="saturate")
    )


def test_unsigned_schemes_rectify():
    spikes, _ = adaptive_threshold_multistep(torch.tensor([[-1.0, 2.0, 1.0]]), "binary")
    assert decode(spikes, "binary").tolist() == [[0, 4, 2]]


def test_max_count_clamps_membrane():
    x = torch.tensor([[0.0, 0.0, 0.0, 100.0]])
    spikes, _ = adaptive_threshold_multistep(x, "ternary", max_count=5)
    assert spikes.shape[0] == 5 and decode(spikes, "ternary").tolist() == [[0, 0, 0, 5]]


def test_module_and_errors():
    neuron = AdaptiveThresholdMultiStep("bitwise_twos_complement", T=6, k=3.0)
    spikes, _ = neuron(torch.randn(2, 10))
    assert spikes.shape == (6, 2, 10)
    with pytest.raises(ValueError, match="unknown spike coding scheme"):
        AdaptiveThresholdMultiStep("morse")
    with pytest.raises(ValueError, match="too small"):
        AdaptiveThresholdMultiStep("bitwise_twos_complement", T=0)
    with pytest.raises(TypeError, match="floating-point"):
        if_soft_reset_multistep(torch.tensor([1, 2]), "binary", 3)
