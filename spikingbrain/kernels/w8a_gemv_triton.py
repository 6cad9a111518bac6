"""Decode-sized (at most 16 tokens) INT8 x spike-count products, split over K.

At decode sizes the product reads the whole weight matrix for a handful of tokens: it is bound
by memory bandwidth, and the general kernel's one program per ``[16, 32]`` output tile leaves a
``down_proj`` (3584 outputs, 18944 inputs) with 112 programs for 132 SMs, each streaming 600 KB.
Here the weight groups are split over a second grid axis as well: each program takes ``BN``
outputs and a run of whole weight groups, computes every group's exact int32 accumulator on
the tensor cores and folds it in with its scale (the same per-group epilogue), and writes a
float partial sum; a second small kernel adds the partials in a fixed order (deterministic),
multiplies ``Vth`` and adds the bias. Counts beyond int8 and int16 weight codes take the same
exact digit paths as the general kernel.

CPU reference: :func:`spikingbrain.converter.kernels.count_accumulators` and
:func:`~spikingbrain.converter.kernels.epilogue`. The accumulators are the integer ones bit for
bit; the float sum over groups is split into partial sums, so outputs agree with the CPU to
float rounding (tested to 2e-6 relative).

>>> import torch
>>> from spikingbrain.kernels.threshold_triton import threshold_counts
>>> x = torch.randn(3, 64)
>>> q = torch.randint(-127, 128, (48, 64), dtype=torch.int8)
>>> s = torch.rand(48, 4) / 100
>>> t = threshold_counts(x, 3.0)
>>> y = w8a_gemv(x, t, q, s, None, 16)
>>> c = torch.round(x / t.vth[:, None]).to(torch.int64)
>>> acc = (c[:, None, :] * q.to(torch.int64)[None]).view(3, 48, 4, 16).sum(-1)
>>> ref = (acc.double() * s.double()[None]).sum(-1) * t.vth.double()[:, None]
>>> bool(torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-6))
True
"""

from __future__ import annotations

import torch

from spikingbrain.kernels.threshold_triton import ThresholdCounts, round_half_even
from spikingbrain.kernels.triton_support import import_triton, interpreting
from spikingbrain.kernels.w8a_gemm_triton import _digits_dot, _split_codes

triton, tl = import_triton()

__all__ = ["GEMV_MAX_TOKENS", "GEMV_MIN_K", "gemv_applies", "w8a_gemv"]

#: the largest token count this path takes (one 16-row tensor-core tile)
GEMV_MAX_TOKENS = 16


@triton.jit
def _gemv_partial_kernel(a_ptr, b_ptr, s_ptr, x_ptr, vth_ptr, absmax_ptr, part_ptr,
                         M, N, K, G, stride_am, stride_bn, stride_sn, stride_xm, lo, hi,
                         GPS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                         BK: tl.constexpr, HAS_HI: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    offs_m = tl.arange(0, BM)
    offs_n = (pid_n * BN + tl.arange(0, BN)).to(tl.int64)
    offs_k = tl.arange(0, BK)
    m_ok = offs_m < M
    n_ok = offs_n < N
    tile_max = tl.max(tl.load(absmax_ptr + offs_m, mask=m_ok, other=0), axis=0)
    vth = tl.load(vth_ptr + offs_m, mask=m_ok, other=1.0)
    vth_div = tl.where(vth == vth, vth, 1.0)
    y = tl.zeros([BM, BN], dtype=tl.float32)
    for j in range(GPS):
        g = pid_s * GPS + j
        k0 = g * BK
        k_ok = (offs_k + k0 < K) & (g < G)
        b = tl.load(b_ptr + offs_n[None, :] * stride_bn + (k0 + offs_k)[:, None],
                    mask=k_ok[:, None] & n_ok[None, :], other=0)
        if tile_max > 127:  # counts beyond int8: recompute them from x, base-128 digits
            xv = tl.load(x_ptr + offs_m[:, None] * stride_xm + (k0 + offs_k)[None, :],
                         mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            q = round_half_even(tl.math.div_rn(xv.to(tl.float32), vth_div[:, None]))
            q = tl.minimum(tl.maximum(q, lo), hi)
            if HAS_HI:
                lo8, hi8 = _split_codes(b)
                part = _digits_dot(q, lo8) + _digits_dot(q, hi8) * 256
            else:
                part = _digits_dot(q, b)
        else:
            a = tl.load(a_ptr + offs_m[:, None] * stride_am + (k0 + offs_k)[None, :],
                        mask=m_ok[:, None] & k_ok[None, :], other=0)
            if HAS_HI:
                lo8, hi8 = _split_codes(b)
                part = tl.dot(a, lo8, out_dtype=tl.int32)
                part += tl.dot(a, hi8, out_dtype=tl.int32) * 256
            else:
                part = tl.dot(a, b, out_dtype=tl.int32)
        s = tl.load(s_ptr + offs_n * stride_sn + g, mask=n_ok & (g < G), other=0.0)
        y += part.to(tl.float32) * s[None, :]
    tl.store(part_ptr + (pid_s * BM + offs_m[:, None]) * N + offs_n[None, :], y,
             mask=m_ok[:, None] & n_ok[None, :])


@triton.jit
def _gemv_reduce_kernel(part_ptr, vth_ptr, bias_ptr, out_ptr, M, N, S, stride_om,
                        BLOCK: tl.constexpr, HAS_BIAS: tl.constexpr, BM: tl.constexpr):
    m = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < N
    y = tl.zeros([BLOCK], dtype=tl.float32)
    for s in range(S):  # a fixed order: the same result on every run
        y += tl.load(part_ptr + (s * BM + m) * N + offs, mask=ok, other=0.0)
    y = y * tl.load(vth_ptr + m)
    if HAS_BIAS:
        y += tl.load(bias_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + m * stride_om + offs, y.to(out_ptr.dtype.element_ty), mask=ok)


#: the shortest K the split pays for: measured on an H100 (batch 1, CUDA graphs, time / BF16):
#: down_proj (K = 18944) 1.03x split against 1.20x unsplit; q/o_proj (K = 3584) 1.81x against
#: 1.38x and gate/up_proj 0.78x against 0.62x, where the extra reduce launch costs more than
#: the split gains (benchmarks/results_int16_layers_h100.txt, docs/gpu.md)
GEMV_MIN_K = 8192


def gemv_applies(M: int, G: int, planes: int, store_acc: bool, K: int = GEMV_MIN_K) -> bool:
    """Whether :func:`w8a_gemm` sends a call here: count mode, group scales, at most 16
    tokens, and a long K (``>= GEMV_MIN_K``) that one program per output tile streams slowly."""
    return (0 < M <= GEMV_MAX_TOKENS and G > 1 and planes == 0 and not store_acc
            and K >= GEMV_MIN_K)


def _splits(N: int, G: int, BN: int) -> int:
    """Groups are split so that about 4 programs per SM of a 132-SM GPU run."""
    if interpreting():
        return min(G, 2)
    blocks = triton.cdiv(N, BN)
    return max(1, min(G, triton.cdiv(528, blocks)))


def w8a_gemv(x: torch.Tensor, t: ThresholdCounts, qdata: torch.Tensor, scale: torch.Tensor,
             bias: torch.Tensor | None, group_size: int, out_dtype: torch.dtype | None = None
             ) -> torch.Tensor:
    """``y [M, N]`` for ``x [M, K]`` (``M <= 16``) with weight groups of ``group_size``."""
    M, K = x.shape
    N, G = scale.shape
    BN = 32 if interpreting() else 64
    S = _splits(N, G, BN)
    gps = triton.cdiv(G, S)
    S = triton.cdiv(G, gps)
    part = torch.empty(S, GEMV_MAX_TOKENS, N, dtype=torch.float32, device=x.device)
    _gemv_partial_kernel[(triton.cdiv(N, BN), S)](
        t.counts8, qdata, scale, x, t.vth, t.absmax, part, M, N, K, G, t.counts8.stride(0),
        qdata.stride(0), scale.stride(0), x.stride(0), t.lo, t.hi, GPS=gps,
        BM=GEMV_MAX_TOKENS, BN=BN, BK=group_size, HAS_HI=qdata.dtype == torch.int16,
        num_warps=4, num_stages=1 if interpreting() else 3)
    out = torch.empty(M, N, dtype=out_dtype or x.dtype, device=x.device)
    block = 256 if not interpreting() else 64
    _gemv_reduce_kernel[(M, triton.cdiv(N, block))](
        part, t.vth, bias if bias is not None else scale, out, M, N, S, out.stride(0),
        BLOCK=block, HAS_BIAS=bias is not None, BM=GEMV_MAX_TOKENS, num_warps=4)
    return out
