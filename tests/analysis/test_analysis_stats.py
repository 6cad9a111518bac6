"""Metric definitions: spikes per count and windows agree with the exact coders."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikingbrain.analysis.stats import (
    LayerStats,
    count_statistics,
    popcount,
    spikes_per_count,
    window_for,
)
from spikingbrain.coding import encode, min_steps, scheme_names

SIGNED = ["ternary", "bitwise_bidirectional", "bitwise_twos_complement"]


def test_popcount_matches_python():
    xs = torch.tensor([0, 1, 2, 3, 255, 256, 2**31 - 1, 2**40 + 5, 2**62 - 1])
    assert popcount(xs).tolist() == [bin(int(x)).count("1") for x in xs]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-300, 300), min_size=1, max_size=40), st.sampled_from(SIGNED))
def test_spikes_per_count_equals_nonzero_spikes_of_encode(values, scheme):
    c = torch.tensor(values)
    T = min_steps(c, scheme)
    train = encode(c, scheme, T)
    assert spikes_per_count(c, scheme, T).tolist() == (train != 0).sum(0).tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5000, 5000), min_size=1, max_size=20),
       st.sampled_from(scheme_names()))
def test_window_for_equals_min_steps(values, scheme):
    c = torch.tensor(values)
    if scheme in ("binary", "bitwise"):
        c = c.abs()
    lo, hi = torch.aminmax(c)
    assert int(window_for(lo, hi, scheme)) == min_steps(c, scheme)


def test_unsigned_scheme_counts_magnitude():
    st_ = count_statistics([torch.tensor([[3, -3, 0]])], "binary")
    assert st_.spikes == 6 and st_.negative_unsigned == 1


def test_fractions_and_sparsity_at_window():
    st_ = count_statistics([torch.tensor([[0, 7, -8, 17, 100]])], "bitwise_bidirectional",
                           fan_out=2)
    assert st_.fraction_le_7 == pytest.approx(2 / 5)
    assert st_.fraction_gt_16 == pytest.approx(2 / 5)
    assert st_.silent_fraction == pytest.approx(1 / 5)
    # 3-step window: 7 -> 3 spikes, -8/17/100 saturate to ±7 -> 3 spikes each
    assert st_.sparsity_at(3) == pytest.approx(1 - 12 / 15)
    assert st_.effective_macs == 4 * 2 and st_.effective_acs == 0
    with pytest.raises(ValueError, match="histogram range"):
        LayerStats(name="x", scheme="ternary", hist_range=20, elements=1, hist=[0] * 41
                   ).sparsity_at(30)


def test_to_dict_round_trip_trims_histogram():
    st_ = count_statistics([torch.tensor([[0, 2, -1]])], "ternary")
    d = st_.to_dict(window=3)
    assert d["hist"] == [1, 1, 0, 1] and d["hist_min"] == -1
    assert LayerStats.from_dict(d) == st_
