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
    monkeypatch.setattr(kernels, "_int_mm_exact_on_cpu", lambda: True)  # routing under test

    monkeypatch.setenv("SPIKINGBRAIN_CPU_GEMM", "int")

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


# ---------------------------------------------------------------- exact float GEMM (CPU)
def _float_backend(monkeypatch, backend: str = "float") -> None:
    monkeypatch.setenv("SPIKINGBRAIN_CPU_GEMM", backend)


def _uniform(n: int, gs: int, out: int, count: int, code: int, code_dtype=torch.int16):
    """Counts all ``count`` and codes all ``code``: every partial sum reaches the bound."""
    return (torch.full((n, gs), count), torch.full((out, gs), code, dtype=code_dtype))


@pytest.mark.parametrize("gs, code, count, sign", [
    (45, 91, 4097, 1),       # 45 * 91 * 4097 == 2**24 - 1
    (45, 91, 4097, -1),
    (128, -128, 1024, 1),    # 128 * 128 * 1024 == 2**24 (int8 code -128)
    (128, 128, 1024, -1),    # == 2**24 with int16 codes
])
def test_float_path_exact_at_and_below_the_fp32_bound(monkeypatch, gs, code, count, sign):
    from spikingbrain.converter.kernels import exact_float_dtype

    _float_backend(monkeypatch)
    assert gs * abs(code) * count in (2**24 - 1, 2**24)
    assert exact_float_dtype(gs, count, abs(code)) == torch.float32
    import spikingbrain.converter.kernels as kernels

    used = []
    real = kernels._grouped_float_mm
    monkeypatch.setattr(kernels, "_grouped_float_mm",
                        lambda a, b, sl, dt: used.append(dt) or real(a, b, sl, dt))
    dtype = torch.int8 if -128 <= code <= 127 else torch.int16
    c, q = _uniform(3, gs, 5, sign * count, code, dtype)
    acc = kernels.count_accumulators(c, q, gs, code_absmax=abs(code))
    assert used == [torch.float32]  # the fp32 GEMM itself ran, right at the bound
    assert torch.equal(acc.long(), reference_accumulators(c, q, gs))
    assert int(acc[0, 0, 0]) == sign * gs * code * count


def test_float_path_above_the_fp32_bound_uses_fp64(monkeypatch):
    """Just above 2**24 fp32 would round (2**24 + 1 is not representable); the bound check
    sends the product to fp64 and the result stays exact."""
    from spikingbrain.converter.kernels import exact_float_dtype

    _float_backend(monkeypatch)
    c = torch.tensor([[2**24, 1]])
    q = torch.tensor([[1, 1]], dtype=torch.int8)
    assert (c.float() @ q.float().t()).item() != 2**24 + 1  # fp32 alone is inexact here
    assert exact_float_dtype(2, 2**24, 1) == torch.float64
    assert int(count_accumulators(c, q, 2)[0, 0, 0]) == 2**24 + 1
    # 2**24 + 1 as the bound: one above the fp32 limit
    assert exact_float_dtype(1, 2**24 + 1, 1) == torch.float64
    assert exact_float_dtype(1, 2**24, 1) == torch.float32


def test_float_path_above_the_fp64_bound_takes_the_integer_path(monkeypatch):
    import spikingbrain.converter.kernels as kernels
    monkeypatch.setattr(kernels, "_int_mm_exact_on_cpu", lambda: True)  # routing under test

    _float_backend(monkeypatch)
    assert kernels.exact_float_dtype(2**20, 2**20, 2**14) is None
    called = []
    real = kernels._grouped_int_mm
    monkeypatch.setattr(kernels, "_grouped_int_mm",
                        lambda *a, **k: called.append(1) or real(*a, **k))
    c = torch.tensor([[3, -2]])
    q = torch.tensor([[5, 7]], dtype=torch.int8)
    # a caller-supplied max|code| far above the fp64 bound forces the integer path
    acc = kernels.count_accumulators(c, q, 2, code_absmax=2**60)
    assert called and int(acc[0, 0, 0]) == 1


def test_float_path_is_skipped_when_fp32_matmul_is_not_ieee(monkeypatch):
    from spikingbrain.converter.kernels import exact_float_dtype

    prev = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")  # may run fp32 matmuls in bf16
        assert exact_float_dtype(128, 60, 127) == torch.float64
    finally:
        torch.set_float32_matmul_precision(prev)
    assert exact_float_dtype(128, 60, 127) == torch.float32


@settings(max_examples=60, deadline=None)
@given(problems(), st.sampled_from(["int", "float"]), st.booleans())
def test_both_cpu_backends_equal_the_reference(problem, backend, as_float):
    counts, q, gs = problem
    import os

    old = os.environ.get("SPIKINGBRAIN_CPU_GEMM")
    os.environ["SPIKINGBRAIN_CPU_GEMM"] = backend
    try:
        c = counts.float() if as_float else counts
        col = c.abs().amax(0) if c.numel() else None
        acc = count_accumulators(c, q, gs, col_absmax=col)
    finally:
        if old is None:
            del os.environ["SPIKINGBRAIN_CPU_GEMM"]
        else:
            os.environ["SPIKINGBRAIN_CPU_GEMM"] = old
    assert acc.dtype == torch.int32
    assert torch.equal(acc.long(), reference_accumulators(counts, q, gs))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 64), st.integers(1, 2**12), st.integers(1, 2**12), st.integers(0, 2**31))
def test_random_products_near_the_bound_are_exact(gs, cmax, qmax, seed):
    """Counts and codes drawn up to their maxima, so the bound lands on either side of 2**24;
    the float backend stays bit-equal whichever dtype the bound picks."""
    import os

    g = torch.Generator().manual_seed(seed)
    c = torch.randint(-cmax, cmax + 1, (4, 2 * gs), generator=g)
    c[0, 0] = cmax  # the maxima are attained
    q = torch.randint(-qmax, qmax + 1, (3, 2 * gs), generator=g).to(torch.int16)
    q[0, 0] = qmax
    old = os.environ.get("SPIKINGBRAIN_CPU_GEMM")
    os.environ["SPIKINGBRAIN_CPU_GEMM"] = "float"
    try:
        acc = count_accumulators(c, q, gs)
    finally:
        if old is None:
            del os.environ["SPIKINGBRAIN_CPU_GEMM"]
        else:
            os.environ["SPIKINGBRAIN_CPU_GEMM"] = old
    assert torch.equal(acc.long(), reference_accumulators(c, q, gs))


def test_env_override_chooses_the_backend(monkeypatch):
    import spikingbrain.converter.kernels as kernels
    monkeypatch.setattr(kernels, "_int_mm_exact_on_cpu", lambda: True)  # routing under test

    calls = {"int": 0, "float": 0}
    real_int, real_float = kernels._grouped_int_mm, kernels._grouped_float_mm

    def count(name, real):
        def wrapped(*a, **k):
            calls[name] += 1
            return real(*a, **k)
        return wrapped

    monkeypatch.setattr(kernels, "_grouped_int_mm", count("int", real_int))
    monkeypatch.setattr(kernels, "_grouped_float_mm", count("float", real_float))
    c = torch.randint(-9, 10, (8, 32))
    q = torch.randint(-63, 64, (4, 32), dtype=torch.int8)  # small: exact on every oneDNN ISA
    ref = reference_accumulators(c, q, 16)
    for backend in ("int", "float"):
        monkeypatch.setenv("SPIKINGBRAIN_CPU_GEMM", backend)
        assert kernels.cpu_gemm_backend() == backend
        assert torch.equal(kernels.count_accumulators(c, q, 16).long(), ref)
    assert calls == {"int": 1, "float": 1}
    monkeypatch.setenv("SPIKINGBRAIN_CPU_GEMM", "fastest")
    with pytest.raises(ValueError, match="SPIKINGBRAIN_CPU_GEMM"):
        kernels.cpu_gemm_backend()


def test_auto_measures_once_per_process(monkeypatch):
    import spikingbrain.converter.kernels as kernels

    monkeypatch.delenv("SPIKINGBRAIN_CPU_GEMM", raising=False)
    monkeypatch.setattr(kernels, "_measured_backend", None)
    runs = []
    monkeypatch.setattr(kernels, "_measure_cpu_gemm", lambda: runs.append(1) or "float")
    assert kernels.cpu_gemm_backend() == "float"
    assert kernels.cpu_gemm_backend() == "float"
    assert runs == [1]
    monkeypatch.undo()
    assert kernels._measure_cpu_gemm() in ("int", "float")  # the real decision runs
    monkeypatch.setattr(kernels, "_int_mm_uses_onednn", lambda: False)  # torch's ref loop
    assert kernels._measure_cpu_gemm() in ("int", "float")  # the timing runs


def test_int_mm_is_avoided_where_onednn_would_saturate(monkeypatch):
    """A VNNI CPU with oneDNN limited to AVX2: torch still calls oneDNN, whose pre-VNNI int8
    kernels saturate; both backends must then avoid _int_mm and stay exact."""
    import spikingbrain.converter.kernels as kernels

    monkeypatch.setattr(kernels, "_int_mm_uses_onednn", lambda: True)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not kernels._int_mm_exact_on_cpu()
    assert kernels._measure_cpu_gemm() == "float"
    monkeypatch.setattr(torch, "_int_mm", lambda *a: pytest.fail("_int_mm must not run"))
    c = torch.randint(-60, 61, (20, 64))
    q = torch.randint(-127, 128, (8, 64), dtype=torch.int8)
    for backend in ("int", "float"):
        monkeypatch.setenv("SPIKINGBRAIN_CPU_GEMM", backend)
        assert torch.equal(kernels.count_accumulators(c, q, 32).long(),
                           reference_accumulators(c, q, 32))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
    assert kernels._int_mm_exact_on_cpu()


def test_auto_picks_float_only_when_clearly_faster(monkeypatch):
    import spikingbrain.converter.kernels as kernels
    monkeypatch.setattr(kernels, "_int_mm_exact_on_cpu", lambda: True)  # routing under test

    monkeypatch.setattr(kernels, "_int_mm_uses_onednn", lambda: False)
    # an "_int_mm" 20x slower than anything else: the slow-CPU case the float path is for
    real = torch._int_mm

    def slow_int_mm(a, b):
        import time as _t

        t0 = _t.perf_counter()
        out = real(a, b)
        _t.sleep(max(0.05, 20 * (_t.perf_counter() - t0)))  # far beyond noise
        return out

    monkeypatch.setattr(torch, "_int_mm", slow_int_mm)
    assert kernels._measure_cpu_gemm(repeats=2) == "float"
    monkeypatch.setattr(kernels, "_int_mm_uses_onednn", lambda: True)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert kernels._measure_cpu_gemm() == "int"  # oneDNN with VNNI: no timing needed


def test_code_absmax_cache_follows_in_place_updates():
    from spikingbrain.converter.kernels import CodeAbsmaxCache

    cache = CodeAbsmaxCache()
    assert cache(torch.zeros(2, 2, dtype=torch.int8)) == 128  # int8: the dtype's bound
    q = torch.tensor([[200, -3]], dtype=torch.int16)
    assert cache(q) == 200
    q.copy_(torch.tensor([[5, -900]]))
    assert cache(q) == 900
    q.data[0, 0] = 2000  # bypasses the version counter: clear() is the documented remedy
    cache.clear()
    assert cache(q) == 2000


def test_spiking_linear_float_backend_equals_int_backend(monkeypatch):
    from torch import nn

    from spikingbrain.converter import SpikeConfig, SpikingLinear

    torch.manual_seed(0)
    lin = nn.Linear(96, 40)
    x = torch.randn(7, 96) * 3
    ys = {}
    for backend in ("int", "float"):
        monkeypatch.setenv("SPIKINGBRAIN_CPU_GEMM", backend)
        for gran in ("channel", "group"):
            sl = SpikingLinear.from_linear(lin, SpikeConfig(granularity=gran, group_size=32))
            ys[backend, gran] = sl(x)
    for gran in ("channel", "group"):
        assert torch.equal(ys["int", gran], ys["float", gran])
