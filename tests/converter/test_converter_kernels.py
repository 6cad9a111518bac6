"""Exact integer accumulation: count mode == spike mode == int64 reference, every scheme."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikingbrain.coding import scheme_names
from spikingbrain.converter.kernels import (
    count_accumulators,
    exact_int_matmul,
    int8_digits,
    reference_accumulators,
    spike_accumulators,
    spike_trains,
)


@st.composite
def problems(draw):
    n = draw(st.integers(0, 6))
    inp = draw(st.integers(1, 40))
    out = draw(st.integers(1, 7))
    gs = draw(st.integers(1, 48))
    cmax = draw(st.sampled_from([1, 7, 127, 128, 300, 5000]))
    seed = draw(st.integers(0, 2**31 - 1))
    wide = draw(st.booleans())
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(-cmax, cmax + 1, (n, inp), generator=g)
    if wide:
        q = torch.randint(-1000, 1001, (out, inp), generator=g).to(torch.int16)
    else:
        q = torch.randint(-128, 128, (out, inp), generator=g).to(torch.int8)
    return counts, q, gs


@settings(max_examples=60, deadline=None)
@given(problems(), st.sampled_from(scheme_names()))
def test_count_spike_reference_identical(problem, scheme):
    counts, q, gs = problem
    ref = reference_accumulators(counts, q, gs)
    cnt = count_accumulators(counts, q, gs)
    assert cnt.dtype == torch.int32
    assert torch.equal(cnt.long(), ref)
    spk = spike_accumulators(counts, q, gs, scheme)
    assert torch.equal(spk, cnt)
    # float-valued counts (as the neuron produces them) give the same integers
    assert torch.equal(count_accumulators(counts.float(), q, gs), cnt)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=20))
def test_int8_digits_roundtrip(values):
    t = torch.tensor(values)
    digits = int8_digits(t)
    assert all(d.dtype == torch.int8 for d in digits)
    back = sum(d.long() * 128**j for j, d in enumerate(digits))
    assert torch.equal(back, t)


def test_large_counts_do_not_wrap():
    # counts far beyond int8 and a sum close to the int32 limit
    c = torch.full((2, 64), 16000)
    q = torch.full((3, 64), 127, dtype=torch.int8)
    acc = count_accumulators(c, q, 64)
    assert int(acc[0, 0, 0]) == 16000 * 127 * 64
    assert torch.equal(exact_int_matmul(c, q).long(), c @ q.long().t())


@pytest.mark.parametrize("scheme", scheme_names())
def test_spike_trains_decode_to_counts(scheme):
    c = torch.tensor([[5, -3, 0, 12]])
    total = sum((s.long() * w.view(-1, 1, 1)).sum(0) for s, w in spike_trains(c, scheme))
    assert torch.equal(total, c)


def test_fixed_window_spike_mode():
    c = torch.tensor([[3, -3, 1, 0]])
    q = torch.tensor([[1, 2, 3, 4]], dtype=torch.int8)
    for scheme in scheme_names():
        T = 4 if "twos" in scheme else 3
        assert torch.equal(spike_accumulators(c, q, 4, scheme, T), count_accumulators(c, q, 4))


def test_errors_inside_the_integer_matmul_are_not_swallowed(monkeypatch):
    """Only the narrow, tested shape rules choose the float path; any other error (out of
    memory, a bug) propagates instead of a silent float64 retry."""
    import spikingbrain.converter.kernels as kernels

    def boom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(kernels, "_grouped_int_mm", boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        kernels.count_accumulators(torch.ones(4, 16, dtype=torch.int8),
                                   torch.ones(3, 16, dtype=torch.int8), 8)


def test_int_mm_shape_rules_choose_the_exact_path():
    """The CUDA rule (m > 16, k and n multiples of 8) and the CPU rule (k >= 2) decide per
    product; e.g. 3 outlier columns in a group (k = 3) take the float path on CUDA."""
    from spikingbrain.converter.kernels import _int_mm_shape_ok

    a = torch.zeros(32, 3, dtype=torch.int8)
    assert _int_mm_shape_ok(a, torch.zeros(16, 3, dtype=torch.int8))  # CPU: k >= 2
    assert not _int_mm_shape_ok(torch.zeros(32, 1, dtype=torch.int8),
                                torch.zeros(16, 1, dtype=torch.int8))


def test_few_outlier_columns_per_group_stay_exact():
    g = torch.Generator().manual_seed(5)
    c = torch.randint(-20, 21, (40, 64), generator=g)
    c[:, [3, 9, 50]] *= 40  # three columns beyond int8: extra digit products with k = 1..2
    q = torch.randint(-127, 128, (24, 64), generator=g, dtype=torch.int8)
    assert torch.equal(count_accumulators(c, q, 32), reference_accumulators(c, q, 32).int())
