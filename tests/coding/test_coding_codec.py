"""encode/decode: exact round trips, agreement with the naive reference, errors."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikingbrain.coding import decode, encode, get_scheme, min_steps, scheme_names
from spikingbrain.coding.reference import reference_decode, reference_encode

SIGNED = [s for s in scheme_names() if get_scheme(s).signed]
UNSIGNED = [s for s in scheme_names() if not get_scheme(s).signed]


@st.composite
def count_tensors(draw, signed: bool, bitwise: bool = True):
    shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=4))
    # unary trains are as long as the largest count: keep those windows moderate
    lim = draw(st.sampled_from([1, 7, 20, 300, 2**20] if bitwise else [1, 7, 20, 300]))
    lo = -lim if signed else 0
    n = 1
    for s in shape:
        n *= s
    values = draw(st.lists(st.integers(lo, lim), min_size=n, max_size=n))
    dtype = draw(st.sampled_from([torch.int64, torch.int32, torch.float32, torch.float64]))
    t = torch.tensor(values, dtype=torch.int64).reshape(shape)
    if dtype == torch.float32:
        t = t.clamp(-(2**23), 2**23)
    return t.to(dtype)


@pytest.mark.parametrize("scheme", scheme_names())
@given(data=st.data())
def test_roundtrip_minimal_T(scheme, data):
    spec = get_scheme(scheme)
    counts = data.draw(count_tensors(spec.signed, spec.bitwise))
    spikes = encode(counts, scheme)
    assert spikes.dtype == torch.int8
    assert spikes.shape[1:] == counts.shape
    assert spikes.shape[0] == min_steps(counts, scheme)
    assert torch.equal(decode(spikes, scheme, dtype=torch.int64), counts.to(torch.int64))


@pytest.mark.parametrize("scheme", scheme_names())
@given(data=st.data(), extra=st.integers(0, 3))
def test_roundtrip_fixed_T_and_alphabet(scheme, data, extra):
    spec = get_scheme(scheme)
    counts = data.draw(count_tensors(spec.signed, spec.bitwise))
    T = min_steps(counts, scheme) + extra
    spikes = encode(counts, scheme, T=T)
    assert spikes.shape[0] == T
    assert set(spikes.unique().tolist()) <= set(spec.alphabet)
    assert torch.equal(decode(spikes, scheme, dtype=torch.int64), counts.to(torch.int64))


@pytest.mark.parametrize("scheme", scheme_names())
def test_matches_naive_reference(scheme):
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(-40, 41, (64, 33), generator=g)
    if not get_scheme(scheme).signed:
        counts = counts.abs()
    spikes = encode(counts, scheme)
    ref = reference_encode(counts, scheme, spikes.shape[0])
    assert torch.equal(ref.to(torch.int8), spikes)
    assert torch.equal(reference_decode(spikes, scheme).to(torch.int64), counts)


def test_bitwise_msb_first_and_twos_complement_sign_bit():
    assert encode(torch.tensor([6]), "bitwise").flatten().tolist() == [1, 1, 0]
    assert encode(torch.tensor([-6]), "bitwise_bidirectional").flatten().tolist() == [-1, -1, 0]
    # two's complement: -6 in 4 bits = 1010, sign bit first with weight -8
    assert encode(torch.tensor([-6]), "bitwise_twos_complement").flatten().tolist() == [1, 0, 1, 0]
    assert min_steps(torch.tensor([0]), "bitwise_twos_complement") == 2
    assert min_steps(torch.tensor([-8, 7]), "bitwise_twos_complement") == 4
    assert min_steps(torch.tensor([8]), "bitwise_twos_complement") == 5


@pytest.mark.parametrize("scheme", scheme_names())
def test_saturate_clamps_to_window_range(scheme):
    spec = get_scheme(scheme)
    counts = torch.arange(-50, 51) if spec.signed else torch.arange(0, 51)
    T = 3
    lo, hi = spec.value_range(T)
    spikes = encode(counts, scheme, T=T, overflow="saturate")
    assert torch.equal(decode(spikes, scheme).long(), counts.clamp(lo, hi))
    with pytest.raises(ValueError, match="do not fit.*overflow='saturate'"):
        encode(counts, scheme, T=T)


@pytest.mark.parametrize("scheme", scheme_names())
def test_empty_and_zero_tensors(scheme):
    empty = torch.zeros(0, 4, dtype=torch.int64)
    s = encode(empty, scheme)
    assert s.shape[1:] == (0, 4)
    assert decode(s, scheme).shape == (0, 4)
    zeros = torch.zeros(3, 2, dtype=torch.int32)
    assert torch.equal(decode(encode(zeros, scheme), scheme), zeros)
    assert torch.equal(decode(encode(zeros, scheme, T=4), scheme), zeros)


def test_scalar_counts():
    s = encode(torch.tensor(5), "binary")
    assert s.shape == (5,)
    assert decode(s, "binary").item() == 5


@pytest.mark.parametrize("scheme", UNSIGNED)
def test_negative_counts_name_the_signed_scheme(scheme):
    alt = get_scheme(scheme).unsigned_alternative
    with pytest.raises(ValueError, match=f"use scheme '{alt}'"):
        encode(torch.tensor([1, -2]), scheme)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="whole numbers"):
        encode(torch.tensor([0.5, 1.0]), "ternary")
    with pytest.raises(ValueError, match="NaN/Inf"):
        encode(torch.tensor([float("nan")]), "ternary")
    with pytest.raises(ValueError, match="NaN/Inf"):
        encode(torch.tensor([float("inf")]), "ternary")
    with pytest.raises(TypeError, match="dtype torch.bool"):
        encode(torch.tensor([True]), "binary")
    with pytest.raises(TypeError, match="torch.Tensor"):
        encode([1, 2], "binary")
    with pytest.raises(ValueError, match="unknown spike coding scheme"):
        encode(torch.tensor([1]), "unary")
    with pytest.raises(ValueError, match="overflow must be"):
        encode(torch.tensor([1]), "binary", overflow="wrap")
    with pytest.raises(ValueError, match="too small"):
        encode(torch.tensor([1]), "binary", T=-1)
    with pytest.raises(TypeError, match="T must be a Python int"):
        encode(torch.tensor([1]), "binary", T=2.0)
    with pytest.raises(ValueError, match="too large"):
        encode(torch.tensor([1]), "bitwise", T=63)
    with pytest.raises(ValueError, match="values in"):
        decode(torch.tensor([[2]], dtype=torch.int8), "binary")
    with pytest.raises(ValueError, match="signed trains need scheme 'ternary'"):
        decode(torch.tensor([[-1]], dtype=torch.int8), "binary")
    with pytest.raises(ValueError, match="leading time dimension"):
        decode(torch.tensor(1, dtype=torch.int8), "binary")
    with pytest.raises(ValueError, match="pass dtype=torch.int64"):
        decode(torch.zeros(40, 1, dtype=torch.int8), "bitwise", dtype=torch.int32)


def test_decode_dtype_widens_for_long_bitwise_windows():
    c = torch.tensor([2**40 + 3, 0])
    s = encode(c, "bitwise")
    out = decode(s, "bitwise")
    assert out.dtype == torch.int64 and torch.equal(out, c)
    assert decode(encode(torch.tensor([3]), "bitwise"), "bitwise").dtype == torch.int32


def test_decode_accepts_bool_and_float_trains():
    s = torch.tensor([[True, False], [True, True]])
    assert decode(s, "binary").tolist() == [2, 1]
    assert decode(s.float(), "bitwise").tolist() == [3, 1]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_trains_equal_cpu_trains_bit_for_bit():
    device = "cuda"
    counts = torch.randint(-100, 101, (7, 9, 11))
    for scheme in SIGNED:
        cpu = encode(counts, scheme)
        dev = encode(counts.to(device), scheme)
        assert dev.device.type == device
        assert torch.equal(dev.cpu(), cpu)
        assert torch.equal(decode(dev, scheme).cpu(), decode(cpu, scheme))


@pytest.mark.parametrize("scheme", scheme_names())
@given(
    words=st.integers(1, 6),
    lim=st.sampled_from([1, 7, 127, 128, 255, 300]),
    seed=st.integers(0, 2**16),
    extra=st.integers(0, 2),
)
def test_fast_path_equals_portable_path(scheme, words, lim, seed, extra):
    """The eight-lane path (N % 8 == 0) is bit-identical to the broadcast path."""
    spec = get_scheme(scheme)
    g = torch.Generator().manual_seed(seed)
    lo = -lim if spec.signed else 0
    counts = torch.randint(lo, lim + 1, (words * 8,), generator=g)
    counts[0] = lim  # make sure the largest value occurs
    T = min_steps(counts, scheme) + extra
    fast = encode(counts, scheme, T=T)
    slow = encode(counts, scheme, T=T, fast=False)
    assert torch.equal(fast, slow)
    for validate in (True, False):
        assert torch.equal(
            decode(fast, scheme, validate=validate), decode(slow, scheme, fast=False)
        )
    assert torch.equal(decode(fast, scheme, dtype=torch.int64), counts)


def test_fast_path_handles_multi_dim_and_long_unary_windows():
    counts = torch.randint(-600, 601, (4, 6, 8))
    s = encode(counts, "ternary")
    assert s.shape == (600, 4, 6, 8) or s.shape[0] == int(counts.abs().max())
    assert torch.equal(s, encode(counts, "ternary", fast=False))
    assert torch.equal(decode(s, "ternary", dtype=torch.int64), counts)


@pytest.mark.parametrize("scheme", scheme_names())
def test_fast_path_block_by_block(scheme, monkeypatch):
    """Several cache blocks (tiny blocks forced here) give the same trains as one."""
    from spikingbrain.coding import _swar

    spec = get_scheme(scheme)
    counts = torch.randint(-300 if spec.signed else 0, 301, (5, 24))
    one_block = encode(counts, scheme)
    monkeypatch.setattr(_swar, "CPU_BLOCK", 16)
    assert len(_swar.blocks(counts.numel(), counts.device)) == 8
    many = encode(counts, scheme)
    assert torch.equal(many, one_block)
    assert torch.equal(decode(many, scheme, dtype=torch.int64), counts)
    bad = many.clone()
    bad.view(-1)[-1] = 3  # outside every alphabet, in the last block
    with pytest.raises(ValueError, match="values in"):
        decode(bad, scheme)


@pytest.mark.parametrize("scheme", ["bitwise_bidirectional", "ternary"])
@pytest.mark.parametrize("n", [5, 64])  # portable path and eight-lane fast path
def test_decode_rejects_mixed_signs_within_an_element(scheme, n):
    s = encode((torch.arange(n) % 9) - 4, scheme, 4)
    s[0, 1], s[1, 1] = 1, -1
    with pytest.raises(ValueError, match="one sign per element"):
        decode(s, scheme)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16])
@pytest.mark.parametrize("fast", [True, False])
def test_most_negative_value_of_the_input_dtype_round_trips(dtype, fast):
    """abs(-128) overflows int8: the encoder must work in a wider dtype (found by the thorough
    hypothesis profile)."""
    lo = torch.iinfo(dtype).min
    c = torch.full((16,), lo, dtype=dtype)
    for scheme in ("bitwise_bidirectional", "ternary", "bitwise_twos_complement"):
        if scheme == "ternary" and dtype == torch.int16:
            continue  # a 32768-step unary train is pointless here
        s = encode(c, scheme, fast=fast)
        assert torch.equal(decode(s, scheme, dtype=torch.int64), c.to(torch.int64)), scheme


def test_twos_complement_window_of_only_negative_counts_is_minimal():
    """-2 fits two bits (0b10): an all-negative tensor must not get an extra step (found by
    the statistics' window_for disagreeing with min_steps)."""
    c = torch.tensor([-2, -1])
    assert min_steps(c, "bitwise_twos_complement") == 2
    assert torch.equal(decode(encode(c, "bitwise_twos_complement"), "bitwise_twos_complement"),
                       c.int())
