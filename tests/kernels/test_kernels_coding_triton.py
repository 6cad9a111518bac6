"""The Triton spike coders against the CPU coders, bit for bit, under the interpreter."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikingbrain.coding import decode, encode
from spikingbrain.coding.schemes import get_scheme
from spikingbrain.kernels.coding_triton import KIND, decode_flat, encode_flat

SCHEMES = list(KIND)


def _counts(scheme, n, dtype, lo=-60, hi=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(lo, hi + 1, (n,), generator=g)
    if not get_scheme(scheme).signed:
        c = c.abs()
    return c.to(dtype)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
@pytest.mark.parametrize("n,extra_steps", [(1, 0), (257, 0), (1000, 3)])
def test_encode_decode_equal_cpu(scheme, dtype, n, extra_steps):
    spec = get_scheme(scheme)
    c = _counts(scheme, n, dtype, seed=n)
    T = spec.min_steps(int(c.min()), int(c.max())) + extra_steps
    ref = encode(c, scheme, T, fast=False)
    s = encode_flat(c, spec, T)
    assert torch.equal(s, ref)
    out, bad = decode_flat(s, spec, torch.int32)
    assert int(bad) == 0
    assert torch.equal(out, decode(ref, scheme, fast=False))


@pytest.mark.parametrize("scheme", ["bitwise", "bitwise_bidirectional",
                                    "bitwise_twos_complement"])
def test_wide_windows_use_64_bit_words(scheme):
    spec = get_scheme(scheme)
    c = torch.tensor([2**40 + 5, 3, 0, 2**35], dtype=torch.int64)
    if spec.signed:
        c[1] = -(2**38)
    T = spec.min_steps(int(c.min()), int(c.max()))
    s = encode_flat(c, spec, T)
    assert torch.equal(s, encode(c, scheme, T, fast=False))
    out, _ = decode_flat(s, spec, torch.int64)
    assert torch.equal(out, c)


@pytest.mark.parametrize("scheme,train,why", [
    ("binary", [[1, 2]], "alphabet"), ("bitwise", [[-1, 0]], "alphabet"),
    ("ternary", [[1, 0], [-1, 0]], "sign"), ("bitwise_bidirectional", [[1], [-1]], "sign"),
    ("bitwise_twos_complement", [[0, 2]], "alphabet")])
def test_decode_flags_bad_trains(scheme, train, why):
    _, bad = decode_flat(torch.tensor(train, dtype=torch.int8), get_scheme(scheme), torch.int32)
    assert int(bad) == 1, why


@given(st.lists(st.integers(-300, 300), min_size=1, max_size=300),
       st.sampled_from(SCHEMES), st.integers(0, 2))
def test_round_trip_property(values, scheme, extra):
    spec = get_scheme(scheme)
    c = torch.tensor(values, dtype=torch.int32)
    if not spec.signed:
        c = c.abs()
    T = spec.min_steps(int(c.min()), int(c.max())) + extra
    s = encode_flat(c, spec, T)
    assert torch.equal(s, encode(c, scheme, T, fast=False))
    out, bad = decode_flat(s, spec, torch.int32)
    assert int(bad) == 0 and torch.equal(out, c)
