"""Adaptive-threshold neuron: formula, clamp, saturation, gradient, errors, observers."""

import pytest
import torch

from spikingbrain.neurons import VTH_MAX, VTH_MIN, AdaptiveThreshold, adaptive_threshold


def test_matches_formula_per_token():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 7, 64, generator=g)
    for k in (2.0, 3.0, 4.0):
        counts, vth = adaptive_threshold(x, k=k)
        ref_vth = (x.abs().mean(-1, keepdim=True) / k).clamp(VTH_MIN, VTH_MAX)
        assert torch.equal(vth, ref_vth)
        assert torch.equal(counts, torch.round(x / ref_vth))
        assert vth.shape == (4, 7, 1)
        # x is approximated within half a threshold
        assert torch.all((x - counts * vth).abs() <= vth / 2 + 1e-6)


def test_mean_count_magnitude_is_about_k():
    x = torch.randn(256, 1024, generator=torch.Generator().manual_seed(0))
    counts, _ = adaptive_threshold(x, k=3.0)
    assert 2.9 < counts.abs().mean().item() < 3.1


def test_all_zero_tokens_are_silent_not_nan():
    counts, vth = adaptive_threshold(torch.zeros(2, 8))
    assert torch.all(counts == 0) and torch.all(vth == VTH_MIN)


def test_threshold_clamped_to_reference_range():
    _, vth = adaptive_threshold(torch.full((1, 4), 1e9))
    assert vth.item() == VTH_MAX


def test_max_count_saturates_and_reports():
    x = torch.tensor([[0.0, 0.0, 0.0, 100.0]])
    out = adaptive_threshold(x, k=3.0, max_count=5)
    assert out.counts.abs().max().item() == 5
    assert out.n_saturated == 1
    counts, vth = out  # unpacks as a pair
    assert counts is out.counts and vth is out.vth


def test_straight_through_gradient():
    x = torch.randn(3, 16, dtype=torch.float64, requires_grad=True)
    counts, vth = adaptive_threshold(x, k=3.0)
    (counts * vth.detach()).sum().backward()
    # d(counts * vth)/dx with vth held fixed is 1 under the straight-through estimator,
    # plus the path through vth inside counts = x / vth
    assert torch.isfinite(x.grad).all()
    x2 = x.detach().clone().requires_grad_(True)
    u = x2 / (x2.abs().mean(-1, keepdim=True) / 3.0)
    (u * vth.detach()).sum().backward()
    assert torch.allclose(x.grad, x2.grad)


def test_half_precision_inputs_computed_in_float32():
    x = torch.randn(2, 32).to(torch.bfloat16)
    counts, vth = adaptive_threshold(x)
    assert counts.dtype == torch.float32 and vth.dtype == torch.float32
    ref, _ = adaptive_threshold(x.float())
    assert torch.equal(counts, ref)


def test_bad_inputs():
    with pytest.raises(ValueError, match="NaN/Inf"):
        adaptive_threshold(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="NaN/Inf"):
        adaptive_threshold(torch.tensor([[1.0, float("-inf")]]))
    with pytest.raises(TypeError, match="floating-point"):
        adaptive_threshold(torch.tensor([[1, 2]]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        adaptive_threshold([1.0, 2.0])
    with pytest.raises(ValueError, match="at least one dimension"):
        adaptive_threshold(torch.tensor(1.0))
    with pytest.raises(ValueError, match="k must be"):
        adaptive_threshold(torch.ones(3), k=0)
    with pytest.raises(ValueError, match="max_count"):
        adaptive_threshold(torch.ones(3), max_count=0)


def test_module_emits_records_to_observers():
    neuron = AdaptiveThreshold(k=3.0, max_count=2, scheme="ternary")
    records = []
    handle = neuron.add_spike_observer(lambda m, r: records.append(r))
    neuron(torch.tensor([[0.1, 5.0, -0.2, 0.0]]))
    handle.remove()
    neuron(torch.ones(1, 4))
    assert len(records) == 1
    rec = records[0]
    assert rec.scheme == "ternary" and rec.max_count == 2 and int(rec.n_saturated) == 1
    assert rec.counts.shape == (1, 4) and rec.vth.shape == (1, 1)
