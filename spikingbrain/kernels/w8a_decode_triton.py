"""Small-batch (decode) spiking linear in ONE kernel: threshold, counts and INT8 GEMV fused.

At decode (a few tokens) the layer is bound by reading its INT8 weights once; a separate
threshold kernel would cost a launch as long as the whole GEMV. Here every program computes
``Vth`` of the (at most ``BM``) tokens from ``x`` itself (a few KB, served from L2), forms the
counts of each K step in registers, multiplies them with its slice of INT8 weights on the
tensor cores (exact int32 per group, base-128 digits where a count exceeds int8) and applies
the group scales, ``Vth`` and bias in the epilogue: the same arithmetic as
:mod:`spikingbrain.kernels.w8a_gemm_triton`. Spike mode expands the counts into bit planes.

>>> import torch
>>> from spikingbrain.kernels.w8a_decode_triton import w8a_decode
>>> x = torch.tensor([[0.3, -0.9, 0.0, 1.8] * 4])
>>> q = torch.ones(16, 16, dtype=torch.int8)
>>> y, vth = w8a_decode(x, q, torch.ones(16, 1), None, 3.0, 16)
>>> float(vth[0]) == 0.25, y[0, 0].item() == 4 * 4 * 0.25   # counts 1-4+0+7 per 4 columns
(True, True)
"""

from __future__ import annotations

import torch

from spikingbrain.kernels.threshold_triton import round_half_even
from spikingbrain.kernels.triton_support import import_triton, interpreting
from spikingbrain.kernels.w8a_gemm_triton import SPIKE_PLANES, _digits_dot, _planes_dot, _step
from spikingbrain.neurons.adaptive import VTH_MAX, VTH_MIN

triton, tl = import_triton()

__all__ = ["w8a_decode", "MAX_DECODE_TOKENS"]

#: tokens per call the fused kernel takes (one tensor-core tile of rows)
MAX_DECODE_TOKENS = 16


@triton.jit
def _w8a_decode_kernel(x_ptr, b_ptr, s_ptr, bias_ptr, out_ptr, vth_ptr, M, N, K, stride_xm,
                       stride_bn, stride_sn, stride_om, k_div, lo, hi,
                       VTH_LO: tl.constexpr, VTH_HI: tl.constexpr, BM: tl.constexpr,
                       BN: tl.constexpr, BK: tl.constexpr, RED: tl.constexpr,
                       ONE_GROUP: tl.constexpr, HAS_BIAS: tl.constexpr, PLANES: tl.constexpr):
    pid = tl.program_id(0)
    offs_m = tl.arange(0, BM)
    m_ok = offs_m < M
    offs_n = (pid * BN + tl.arange(0, BN)).to(tl.int64)
    n_ok = offs_n < N
    # Vth of every token (each program recomputes it: x is tiny next to the weights)
    offs_r = tl.arange(0, RED)
    part = tl.zeros([BM, RED], dtype=tl.float32)
    peak = tl.zeros([BM, RED], dtype=tl.float32)
    for k0 in range(0, K, RED):
        xv = tl.load(x_ptr + offs_m[:, None] * stride_xm + k0 + offs_r[None, :],
                     mask=m_ok[:, None] & (k0 + offs_r < K)[None, :], other=0.0)
        part += tl.abs(xv.to(tl.float32))
        peak = tl.maximum(peak, tl.abs(xv.to(tl.float32)))
    total = tl.sum(part, axis=1)
    finite = total < float("inf")
    vth = tl.minimum(tl.maximum(tl.math.div_rn(tl.math.div_rn(total, K.to(tl.float32)), k_div),
                                VTH_LO), VTH_HI)
    vth = tl.where(finite, vth, float("nan"))
    vth_div = tl.where(finite, vth, 1.0)
    if pid == 0:
        tl.store(vth_ptr + offs_m, vth, mask=m_ok)
    # largest |count| of the block, known before the K loop (rounding is monotone)
    row_max = tl.minimum(round_half_even(tl.math.div_rn(tl.max(peak, axis=1), vth_div)),
                         tl.maximum(-lo, hi))
    tile_max = tl.max(tl.where(finite & m_ok, row_max, 0.0), axis=0).to(tl.int32)
    offs_k = tl.arange(0, BK)
    b_ptrs = b_ptr + offs_n[None, :] * stride_bn + offs_k[:, None]
    x_ptrs = x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :]
    y = tl.zeros([BM, BN], dtype=tl.float32)
    acc = tl.zeros([BM, BN], dtype=tl.int32)
    if tile_max > 127 or PLANES != 0:
        for kt in range(0, tl.cdiv(K, BK)):
            k_ok = offs_k + kt * BK < K
            b = tl.load(b_ptrs, mask=k_ok[:, None] & n_ok[None, :], other=0)
            xv = tl.load(x_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            q = round_half_even(tl.math.div_rn(xv.to(tl.float32), vth_div[:, None]))
            q = tl.where(finite[:, None], tl.minimum(tl.maximum(q, lo), hi), 0.0)
            if PLANES == 0:
                p = _digits_dot(q, b)
            else:
                p = _planes_dot(q.to(tl.int32), b, tile_max, PLANES)
            y, acc = _step(y, acc, p, s_ptr, s_ptr, offs_m, offs_n, m_ok[:, None], stride_sn,
                           N, 1, kt, ONE_GROUP, False)
            b_ptrs += BK
            x_ptrs += BK
    else:
        for kt in range(0, tl.cdiv(K, BK)):
            k_ok = offs_k + kt * BK < K
            b = tl.load(b_ptrs, mask=k_ok[:, None] & n_ok[None, :], other=0)
            xv = tl.load(x_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            q = round_half_even(tl.math.div_rn(xv.to(tl.float32), vth_div[:, None]))
            q = tl.where(finite[:, None], tl.minimum(tl.maximum(q, lo), hi), 0.0)
            p = tl.dot(q.to(tl.int8), b, out_dtype=tl.int32)
            y, acc = _step(y, acc, p, s_ptr, s_ptr, offs_m, offs_n, m_ok[:, None], stride_sn,
                           N, 1, kt, ONE_GROUP, False)
            b_ptrs += BK
            x_ptrs += BK
    if ONE_GROUP:
        y = acc.to(tl.float32) * tl.load(s_ptr + offs_n * stride_sn, mask=n_ok, other=0.0)[None, :]
    y = y * vth[:, None]
    if HAS_BIAS:
        y += tl.load(bias_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :],
             y.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def w8a_decode(x: torch.Tensor, qdata: torch.Tensor, scale: torch.Tensor,
               bias: torch.Tensor | None, k: float, group_size: int,
               lo: int | None = None, hi: int | None = None, scheme: str | None = None,
               block_n: int | None = None, out_dtype: torch.dtype | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y [M, N], vth [M])`` for ``x [M, K]`` with ``M <= 16`` tokens (see module doc).

    ``group_size``: columns per scale (a power of two >= 16 when ``scale`` has several
    groups; K step 128 otherwise). ``lo, hi``: the window's count limits.
    """
    M, K = x.shape
    N, G = scale.shape
    if M > MAX_DECODE_TOKENS:
        raise ValueError(f"w8a_decode takes at most {MAX_DECODE_TOKENS} tokens, got {M}")
    if x.stride(-1) != 1 or qdata.stride(-1) != 1:
        raise ValueError("x and qdata need a contiguous last dimension")
    bk = 128 if G == 1 else group_size
    out = torch.empty(M, N, dtype=out_dtype or x.dtype, device=x.device)
    vth = torch.empty(M, dtype=torch.float32, device=x.device)
    if M == 0 or N == 0:
        return out, vth
    bn = block_n or (16 if interpreting() else 32)
    _w8a_decode_kernel[(triton.cdiv(N, bn),)](
        x, qdata, scale, bias if bias is not None else scale, out, vth, M, N, K, x.stride(0),
        qdata.stride(0), scale.stride(0), out.stride(0), float(k),
        float(lo) if lo is not None else -float(2**31),
        float(hi) if hi is not None else float(2**31), VTH_LO=VTH_MIN, VTH_HI=VTH_MAX,
        BM=16, BN=bn, BK=bk, RED=256, ONE_GROUP=G == 1, HAS_BIAS=bias is not None,
        PLANES=SPIKE_PLANES[scheme or "count"], num_warps=4, num_stages=4)
    return out, vth
