"""The adaptive threshold on the GPU: ``Vth`` and int8 counts of every token in one kernel.

For each token (row of ``x [M, K]``): ``Vth = clamp(mean(|x|) / k, 1e-5, 1e4)``, then
``q = round_half_even(x / Vth)`` (IEEE division, as torch), clamped to the window's limits
``[lo, hi]`` when ``T`` or ``max_count`` set them. Outputs per token: the counts as int8
(values beyond int8 saturate here; the GEMM recomputes those tokens exactly from ``x``, see
:mod:`spikingbrain.kernels.w8a_gemm_triton`), ``Vth``, ``max |q|`` and the number of clamped
counts. A token holding NaN or Inf gets ``Vth = NaN`` and zero counts, so its outputs are NaN.
So does a token whose largest count exceeds :data:`MAX_EXACT_COUNT` (possible where ``Vth``
is clamped at its upper limit 1e4): the GEMM cannot multiply such counts exactly, and the
caller's one read-back of ``Vth`` (``check_finite``) finds both cases.

CPU reference: :func:`spikingbrain.neurons.adaptive.adaptive_threshold` (the tests compare
``Vth`` and the counts with it).

``Vth`` is a float sum over the row: its last bit can differ from torch's reduction order, so
a count whose ``x / Vth`` lies within an ulp of a half-integer may differ from the CPU's. The
integer arithmetic after the counts is exact (tests compare it bit for bit).

>>> import torch
>>> from spikingbrain.kernels.threshold_triton import threshold_counts
>>> x = torch.tensor([[0.3, -0.9, 0.0, 1.8]])
>>> t = threshold_counts(x, k=3.0)
>>> t.counts8.tolist(), round(float(t.vth[0]), 4), t.absmax.tolist()
([[1, -4, 0, 7]], 0.25, [7])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikingbrain.kernels.triton_support import import_triton
from spikingbrain.neurons.adaptive import VTH_MAX, VTH_MIN

triton, tl = import_triton()

__all__ = ["ThresholdCounts", "threshold_counts", "exact_counts", "round_half_even",
           "MAX_EXACT_COUNT"]

#: largest count magnitude the GEMM multiplies exactly (three balanced base-128 digits)
MAX_EXACT_COUNT = 2**21 - 2**14 - 1

_MAGIC = 12582912.0  # 1.5 * 2**23: (u + M) - M rounds |u| < 2**22 to an integer, ties to even


@triton.jit
def round_half_even(u):
    """Round float32 ``u`` to the nearest integer, ties to even (as ``torch.round``)."""
    return tl.where(tl.abs(u) < 4194304.0, (u + 12582912.0) - 12582912.0, u)


@triton.jit
def _threshold_kernel(x_ptr, c_ptr, vth_ptr, absmax_ptr, sat_ptr, K, stride_x, stride_c,
                      k_div, lo, hi, bound, VTH_LO: tl.constexpr, VTH_HI: tl.constexpr,
                      HAS_LIMITS: tl.constexpr, BLOCK_K: tl.constexpr,
                      ONE_PASS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_x
    c_row = c_ptr + row * stride_c
    offs = tl.arange(0, BLOCK_K)
    if ONE_PASS:  # the whole row in registers: read x once
        x_all = tl.load(x_row + offs, mask=offs < K, other=0.0).to(tl.float32)
        total = tl.sum(tl.abs(x_all), axis=0)
    else:
        part = tl.zeros([BLOCK_K], dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            xv = tl.load(x_row + k0 + offs, mask=k0 + offs < K, other=0.0).to(tl.float32)
            part += tl.abs(xv)
        total = tl.sum(part, axis=0)
    finite = total < float("inf")  # False for +Inf and for NaN
    mean = tl.math.div_rn(total, K.to(tl.float32))
    vth = tl.minimum(tl.maximum(tl.math.div_rn(mean, k_div), VTH_LO), VTH_HI)
    vth = tl.where(finite, vth, float("nan"))
    vth_div = tl.where(finite, vth, 1.0)
    big = tl.zeros([BLOCK_K], dtype=tl.float32)
    sat = tl.zeros([BLOCK_K], dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):
        m = k0 + offs < K
        if ONE_PASS:
            xv = x_all
        else:
            xv = tl.load(x_row + k0 + offs, mask=m, other=0.0).to(tl.float32)
        q = round_half_even(tl.math.div_rn(xv, vth_div))
        if HAS_LIMITS:
            sat += ((q < lo) | (q > hi)).to(tl.int32)
            q = tl.minimum(tl.maximum(q, lo), hi)
        q = tl.where(finite, q, 0.0)
        big = tl.maximum(big, tl.abs(q))
        tl.store(c_row + k0 + offs, tl.minimum(tl.maximum(q, -128.0), 127.0).to(tl.int8), mask=m)
    top = tl.max(big, axis=0)
    # counts beyond the GEMM's exact range: mark the token like a non-finite one (Vth = NaN,
    # absmax 0 so no kernel loops over its planes or digits); its outputs are NaN
    over = top > bound
    tl.store(vth_ptr + row, tl.where(over, float("nan"), vth))
    tl.store(absmax_ptr + row, tl.where(over, 0.0, top).to(tl.int32))
    tl.store(sat_ptr + row, tl.sum(sat, axis=0))


@dataclass
class ThresholdCounts:
    """Kernel outputs for ``x [M, K]``: ``counts8 [M, K]`` int8 (saturated at int8),
    ``vth [M]`` float32, ``absmax [M]`` int32 (largest ``|count|`` per token, exact) and
    ``saturated [M]`` int32 (counts clamped by the window)."""

    counts8: torch.Tensor
    vth: torch.Tensor
    absmax: torch.Tensor
    saturated: torch.Tensor
    lo: float
    hi: float


def threshold_counts(x: torch.Tensor, k: float, lo: int | None = None, hi: int | None = None,
                     block_k: int = 1024) -> ThresholdCounts:
    """Run the threshold kernel on ``x [M, K]`` (float16 / bfloat16 / float32, contiguous
    last dimension). ``lo, hi``: the window's count limits (None: unbounded). Tokens with a
    count beyond :data:`MAX_EXACT_COUNT` get ``Vth = NaN`` (see the module doc)."""
    if x.dim() != 2 or x.stride(-1) != 1:
        raise ValueError(f"x must be 2-D with a contiguous last dimension, got {tuple(x.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"x must be float16, bfloat16 or float32, got {x.dtype}")
    M, K = x.shape
    counts = torch.empty(M, K, dtype=torch.int8, device=x.device)
    vth = torch.empty(M, dtype=torch.float32, device=x.device)
    absmax = torch.empty(M, dtype=torch.int32, device=x.device)
    sat = torch.empty(M, dtype=torch.int32, device=x.device)
    has = lo is not None or hi is not None
    flo = float(lo) if lo is not None else -float(2**31)
    fhi = float(hi) if hi is not None else float(2**31)
    if M and K:
        # rows up to 8192 wide stay in registers (one read of x); wider rows take two passes
        one_pass = triton.next_power_of_2(K) <= 8192
        bk = triton.next_power_of_2(K) if one_pass else block_k
        _threshold_kernel[(M,)](x, counts, vth, absmax, sat, K, x.stride(0), counts.stride(0),
                                float(k), flo, fhi, float(MAX_EXACT_COUNT), VTH_LO=VTH_MIN, VTH_HI=VTH_MAX,
                                HAS_LIMITS=has, BLOCK_K=bk, ONE_PASS=one_pass,
                                num_warps=8 if bk >= 4096 else 4)
    return ThresholdCounts(counts, vth, absmax, sat, flo, fhi)


def exact_counts(x: torch.Tensor, t: ThresholdCounts) -> torch.Tensor:
    """The exact counts ``[M, K]`` as float32 (what an observer sees): the int8 counts, with
    the tokens whose counts exceed int8 recomputed from ``x`` by the kernel's formula.
    Tokens marked with ``Vth = NaN`` (non-finite input, counts beyond
    :data:`MAX_EXACT_COUNT`) get zero counts."""
    counts = t.counts8.to(torch.float32)
    rows = torch.nonzero(t.absmax > 127).flatten()
    if rows.numel():
        u = x[rows].to(torch.float32) / t.vth[rows, None]
        counts[rows] = torch.round(u).clamp(t.lo, t.hi)
    counts[torch.isnan(t.vth)] = 0.0
    return counts
