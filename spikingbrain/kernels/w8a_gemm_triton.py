"""INT8 weights x integer spike counts on the GPU, exact per weight group, fused epilogue.

``y[m, n] = Vth[m] * sum_g scale[n, g] * acc[m, n, g] + bias[n]`` with
``acc[m, n, g] = sum_{k in group g} counts[m, k] * qdata[n, k]`` accumulated exactly in int32
on the INT8 tensor cores, one weight group (``BLOCK_K`` = group size) per K step, the float
epilogue applied in registers. The group order of the float sum is the CPU's (g = 0, 1, ...).

Counts beyond int8 (a token whose ``max |count|`` exceeds 127): the kernel recomputes that
block of tokens from ``x`` with the threshold kernel's formula and splits the counts into
balanced base-128 digits, ``q = d0 + 128 d1 + 16384 d2``, one int8 GEMM per digit, so the
accumulators stay exact for ``|count| < 2**21`` (the caller checks that bound).

Spike mode computes the same accumulators from the spike trains: each time step of the
scheme is a plane of spikes in {-1, 0, 1} expanded in registers from the counts, multiplied
on the tensor cores and added with its time weight. Steps that are silent for a whole block of
tokens (beyond its largest count) are skipped: they add zero.

>>> import torch
>>> from spikingbrain.kernels.threshold_triton import threshold_counts
>>> from spikingbrain.kernels.w8a_gemm_triton import w8a_gemm
>>> x = torch.tensor([[0.3, -0.9, 0.0, 1.8]] * 16)
>>> q = torch.tensor([[1, 2, 3, 4], [-5, 6, -7, 8]] * 8, dtype=torch.int8)
>>> t = threshold_counts(x, 3.0)
>>> acc = w8a_gemm(x, t, q, torch.ones(16, 1), None, group_size=4, store_acc=True)[1]
>>> acc[0, :2, 0].tolist()   # [1, -4, 0, 7] . q rows
[21, 27]
"""

from __future__ import annotations

import torch

from spikingbrain.kernels.threshold_triton import ThresholdCounts, round_half_even
from spikingbrain.kernels.triton_support import import_triton, interpreting

triton, tl = import_triton()

__all__ = ["w8a_gemm", "SPIKE_PLANES", "MAX_EXACT_COUNT"]

#: spike-plane kinds of spike mode (0 = count mode): unary trains (binary, ternary), bits of
#: the magnitude (bitwise unsigned, sign-magnitude), two's complement bits
SPIKE_PLANES = {"count": 0, "binary": 1, "ternary": 1, "bitwise_unsigned": 2,
                "bitwise_bidirectional": 2, "bitwise_twos_complement": 3}
#: counts beyond this magnitude do not fit three base-128 digits
MAX_EXACT_COUNT = 2**21 - 2**14 - 1


@triton.jit
def _planes_dot(a, b, tile_max, PLANES: tl.constexpr):
    """Exact ``a @ b`` (``a`` int32 [BM, BK] counts, ``b`` int8 [BK, BN]) from spike planes."""
    acc = tl.zeros([a.shape[0], b.shape[1]], dtype=tl.int32)
    mag = tl.abs(a)
    sgn = tl.where(a < 0, -1, 1)
    if PLANES == 1:  # unary trains: step t spikes where |c| > t
        t = 0
        while t < tile_max:
            plane = tl.where(mag > t, sgn, 0).to(tl.int8)
            acc += tl.dot(plane, b, out_dtype=tl.int32)
            t += 1
    elif PLANES == 2:  # bits of |c|, step weight 2**bit, spikes carry the sign
        t = 0
        while (tile_max >> t) > 0:
            plane = (((mag >> t) & 1) * sgn).to(tl.int8)
            acc += tl.dot(plane, b, out_dtype=tl.int32) << t
            t += 1
    else:  # two's complement: bits 0..T-2 weigh 2**t, the sign bit weighs -2**(T-1)
        t = 0
        while (tile_max >> t) > 0:
            plane = ((a >> t) & 1).to(tl.int8)
            acc += tl.dot(plane, b, out_dtype=tl.int32) << t
            t += 1
        sign_plane = ((a >> t) & 1).to(tl.int8)  # bit t: the sign bit of a t+1-bit window
        acc -= tl.dot(sign_plane, b, out_dtype=tl.int32) << t
    return acc


@triton.jit
def _planes_dot_int8(a, b, tile_max, PLANES: tl.constexpr):
    """Exact ``a @ b`` for counts ``|a| <= 127`` (int32 [BM, BK]) from spike planes, each
    plane multiplied with its time weight folded in (a power of two, so the plane stays int8:
    ``+-2**t`` for the magnitude bits ``t <= 6``, ``-128`` for a sign bit ``t = 7``). The
    products of all planes accumulate in place in one int32 accumulator, so the tensor cores
    run them back to back."""
    acc = tl.zeros([a.shape[0], b.shape[1]], dtype=tl.int32)
    mag = tl.abs(a)
    neg = a < 0
    if PLANES == 1:  # unary trains: step t spikes where |c| > t
        sgn = tl.where(neg, -1, 1)
        t = 0
        while t < tile_max:
            acc = tl.dot(tl.where(mag > t, sgn, 0).to(tl.int8), b, acc, out_dtype=tl.int32)
            t += 1
    elif PLANES == 2:  # bits of |c|: plane t is +-2**t where bit t of |c| is set
        t = 0
        while (tile_max >> t) > 0:
            bit = mag & (1 << t)
            acc = tl.dot(tl.where(neg, -bit, bit).to(tl.int8), b, acc, out_dtype=tl.int32)
            t += 1
    else:  # two's complement: bits 0..T-2 weigh 2**t, the sign bit weighs -2**(T-1)
        t = 0
        while (tile_max >> t) > 0:
            acc = tl.dot((a & (1 << t)).to(tl.int8), b, acc, out_dtype=tl.int32)
            t += 1
        sign_plane = -(((a >> t) & 1) << t)  # bit t: the sign bit of a t+1-bit window
        acc = tl.dot(sign_plane.to(tl.int8), b, acc, out_dtype=tl.int32)
    return acc


@triton.jit
def _digits_dot(q, b):
    """Exact ``q @ b`` for float32 integer counts ``|q| < 2**21`` through base-128 digits."""
    r1 = round_half_even(q * (1.0 / 128.0))
    d0 = (q - r1 * 128.0).to(tl.int8)
    r2 = round_half_even(r1 * (1.0 / 128.0))
    d1 = (r1 - r2 * 128.0).to(tl.int8)
    acc = tl.dot(d0, b, out_dtype=tl.int32)
    acc += tl.dot(d1, b, out_dtype=tl.int32) * 128
    acc += tl.dot(r2.to(tl.int8), b, out_dtype=tl.int32) * 16384
    return acc


@triton.jit
def _small_int_to_float(v):
    """Exact int32 -> float32 for ``|v| < 2**22`` with an integer add and a float subtract
    (the bits of ``1.5 * 2**23 + v``), sparing the slow int-to-float conversion unit."""
    return (v + 0x4B400000).to(tl.float32, bitcast=True) - 12582912.0


@triton.jit
def _step(y, acc, part, s_ptr, acc_ptr, offs_m, offs_n, mn_ok, stride_sn, N, G, kt,
          ONE_GROUP: tl.constexpr, STORE_ACC: tl.constexpr, SMALL: tl.constexpr = False):
    """Fold one K step's int32 ``part`` in: into ``acc`` (one group) or, scaled, into ``y``.
    ``SMALL``: ``|part| < 2**22`` is guaranteed (int8 counts, K step <= 256)."""
    if ONE_GROUP:
        acc += part
    else:
        s = tl.load(s_ptr + offs_n * stride_sn + kt, mask=offs_n < N, other=0.0)
        if SMALL:
            y += _small_int_to_float(part) * s[None, :]
        else:
            y += part.to(tl.float32) * s[None, :]
        if STORE_ACC:
            tl.store(acc_ptr + (offs_m[:, None] * N + offs_n[None, :]) * G + kt, part,
                     mask=mn_ok)
    return y, acc


@triton.jit
def _tile_one(a_ptr, b_ptr, s_ptr, x_ptr, acc_ptr, offs_m, offs_n, m_ok, n_ok, vth, tile_max,
              K, N, G, stride_am, stride_bn, stride_sn, stride_xm, lo, hi,
              BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, ONE_GROUP: tl.constexpr,
              STORE_ACC: tl.constexpr, PLANES: tl.constexpr):
    """Float sum ``[BM, BN]`` (before ``Vth`` and bias) of one output tile, any mode."""
    offs_k = tl.arange(0, BK)
    mn_ok = m_ok[:, None] & n_ok[None, :]
    b_ptrs = b_ptr + offs_n[None, :] * stride_bn + offs_k[:, None]
    y = tl.zeros([BM, BN], dtype=tl.float32)
    acc = tl.zeros([BM, BN], dtype=tl.int32)
    if tile_max > 127:  # some token of this block has counts beyond int8: recompute from x
        vth_div = tl.where(vth == vth, vth, 1.0)
        x_ptrs = x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :]
        for kt in range(0, tl.cdiv(K, BK)):
            k_ok = offs_k + kt * BK < K
            b = tl.load(b_ptrs, mask=k_ok[:, None] & n_ok[None, :], other=0)
            xv = tl.load(x_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            q = round_half_even(tl.math.div_rn(xv.to(tl.float32), vth_div[:, None]))
            q = tl.minimum(tl.maximum(q, lo), hi)
            if PLANES == 0:
                part = _digits_dot(q, b)
            else:
                part = _planes_dot(q.to(tl.int32), b, tile_max, PLANES)
            y, acc = _step(y, acc, part, s_ptr, acc_ptr, offs_m, offs_n, mn_ok, stride_sn, N,
                           G, kt, ONE_GROUP, STORE_ACC)
            x_ptrs += BK
            b_ptrs += BK
    else:
        a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :]
        for kt in range(0, tl.cdiv(K, BK)):
            k_ok = offs_k + kt * BK < K
            b = tl.load(b_ptrs, mask=k_ok[:, None] & n_ok[None, :], other=0)
            a = tl.load(a_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0)
            if PLANES == 0 and ONE_GROUP:  # loop-carried accumulator: async MMA pipeline
                acc = tl.dot(a, b, acc, out_dtype=tl.int32)
            else:
                if PLANES == 0:
                    part = tl.dot(a, b, out_dtype=tl.int32)
                else:
                    part = _planes_dot_int8(a.to(tl.int32), b, tile_max, PLANES)
                # int8 counts x int8 codes over <= 256 columns: |part| <= 256 * 127 * 128 < 2**22
                y, acc = _step(y, acc, part, s_ptr, acc_ptr, offs_m, offs_n, mn_ok, stride_sn,
                               N, G, kt, ONE_GROUP, STORE_ACC, BK <= 256)
            a_ptrs += BK
            b_ptrs += BK
    if ONE_GROUP:
        s = tl.load(s_ptr + offs_n * stride_sn, mask=n_ok, other=0.0)
        y = acc.to(tl.float32) * s[None, :]
        if STORE_ACC:
            tl.store(acc_ptr + (offs_m[:, None] * N + offs_n[None, :]) * G, acc, mask=mn_ok)
    return y


@triton.jit
def _store_tile(y, out_ptr, bias_ptr, offs_m, offs_n, m_ok, n_ok, vth, stride_om,
                HAS_BIAS: tl.constexpr):
    y = y * vth[:, None]
    if HAS_BIAS:
        y += tl.load(bias_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :],
             y.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


@triton.jit
def _tile_order(M, N, BM: tl.constexpr, BN: tl.constexpr, GROUP_M: tl.constexpr):
    """``(pid_m, pid_n)`` of this program: ``GROUP_M`` row blocks share each column of weight
    tiles in turn, so those weights stay in L2 while they are reused."""
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BM)
    width = GROUP_M * tl.cdiv(N, BN)
    first_m = (pid // width) * GROUP_M
    rows = min(num_m - first_m, GROUP_M)
    return first_m + (pid % width) % rows, (pid % width) // rows


@triton.jit
def _w8a_kernel(a_ptr, b_ptr, s_ptr, vth_ptr, bias_ptr, out_ptr, absmax_ptr, x_ptr, acc_ptr,
                M, N, K, G, stride_am, stride_bn, stride_sn, stride_om, stride_xm, lo, hi,
                BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
                ONE_GROUP: tl.constexpr, HAS_BIAS: tl.constexpr, STORE_ACC: tl.constexpr,
                PLANES: tl.constexpr, SKIP_FAST: tl.constexpr):
    """Any mode, one ``[BM, BN]`` output tile per program. ``SKIP_FAST``: leave the blocks
    whose counts fit int8 to :func:`_w8a_pair_kernel` (they return at once)."""
    pid_m, pid_n = _tile_order(M, N, BM, BN, GROUP_M)
    offs_m = (pid_m * BM + tl.arange(0, BM)).to(tl.int64)
    offs_n = (pid_n * BN + tl.arange(0, BN)).to(tl.int64)
    m_ok = offs_m < M
    n_ok = offs_n < N
    tile_max = tl.max(tl.load(absmax_ptr + offs_m, mask=m_ok, other=0), axis=0)
    if not SKIP_FAST or tile_max > 127:
        vth = tl.load(vth_ptr + offs_m, mask=m_ok, other=1.0)
        y = _tile_one(a_ptr, b_ptr, s_ptr, x_ptr, acc_ptr, offs_m, offs_n, m_ok, n_ok, vth,
                      tile_max, K, N, G, stride_am, stride_bn, stride_sn, stride_xm, lo, hi,
                      BM, BN, BK, ONE_GROUP, STORE_ACC, PLANES)
        _store_tile(y, out_ptr, bias_ptr, offs_m, offs_n, m_ok, n_ok, vth, stride_om, HAS_BIAS)


@triton.jit
def _w8a_pair_kernel(a_ptr, b_ptr, s_ptr, vth_ptr, bias_ptr, out_ptr, absmax_ptr, M, N, K,
                     stride_am, stride_bn, stride_sn, stride_om, BM: tl.constexpr,
                     BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
                     HAS_BIAS: tl.constexpr, EVEN: tl.constexpr):
    """Count mode with group scales, blocks of tokens whose counts fit int8 (the others are
    left to :func:`_w8a_kernel` with ``SKIP_FAST``): each program computes two neighbouring
    ``[BM, BN]`` output tiles in one loop. Their tensor-core products are independent, so one
    tile's per-group float epilogue runs while the other's product is in flight."""
    pid_m, pid_n = _tile_order(M, N, BM, 2 * BN, GROUP_M)
    offs_m = (pid_m * BM + tl.arange(0, BM)).to(tl.int64)
    m_ok = offs_m < M
    tile_max = tl.max(tl.load(absmax_ptr + offs_m, mask=m_ok, other=0), axis=0)
    if tile_max <= 127:
        n0 = (pid_n * 2 * BN + tl.arange(0, BN)).to(tl.int64)
        n1 = n0 + BN
        offs_k = tl.arange(0, BK)
        a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :]
        b0_ptrs = b_ptr + n0[None, :] * stride_bn + offs_k[:, None]
        b1_ptrs = b_ptr + n1[None, :] * stride_bn + offs_k[:, None]
        y0 = tl.zeros([BM, BN], dtype=tl.float32)
        y1 = tl.zeros([BM, BN], dtype=tl.float32)
        for kt in range(0, tl.cdiv(K, BK)):
            if EVEN:
                a = tl.load(a_ptrs)
                b0 = tl.load(b0_ptrs)
                b1 = tl.load(b1_ptrs)
                s0 = tl.load(s_ptr + n0 * stride_sn + kt)
                s1 = tl.load(s_ptr + n1 * stride_sn + kt)
            else:
                k_ok = offs_k + kt * BK < K
                a = tl.load(a_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0)
                b0 = tl.load(b0_ptrs, mask=k_ok[:, None] & (n0 < N)[None, :], other=0)
                b1 = tl.load(b1_ptrs, mask=k_ok[:, None] & (n1 < N)[None, :], other=0)
                s0 = tl.load(s_ptr + n0 * stride_sn + kt, mask=n0 < N, other=0.0)
                s1 = tl.load(s_ptr + n1 * stride_sn + kt, mask=n1 < N, other=0.0)
            p0 = tl.dot(a, b0, out_dtype=tl.int32)
            p1 = tl.dot(a, b1, out_dtype=tl.int32)
            y0 += p0.to(tl.float32) * s0[None, :]
            y1 += p1.to(tl.float32) * s1[None, :]
            a_ptrs += BK
            b0_ptrs += BK
            b1_ptrs += BK
        vth = tl.load(vth_ptr + offs_m, mask=m_ok, other=1.0)
        _store_tile(y0, out_ptr, bias_ptr, offs_m, n0, m_ok, n0 < N, vth, stride_om, HAS_BIAS)
        _store_tile(y1, out_ptr, bias_ptr, offs_m, n1, m_ok, n1 < N, vth, stride_om, HAS_BIAS)


def _launch_config(M: int, N: int, K: int, block_k: int, planes: int) -> dict:
    """Tile shapes by problem size (tuned on an H100; the interpreter gets small tiles)."""
    if interpreting():
        return dict(BM=16, BN=16, GROUP_M=2, num_warps=4, num_stages=1)
    if M <= 16:
        return dict(BM=16, BN=32, GROUP_M=1, num_warps=4, num_stages=4)
    if M <= 64:
        return dict(BM=64, BN=64, GROUP_M=4, num_warps=4, num_stages=4)
    # swept on an H100 (benchmarks/tune_w8a.py): 128 x 128, 8 warps, 4 stages
    return dict(BM=128, BN=128, GROUP_M=8, num_warps=8, num_stages=4 if not planes else 3)


#: the two-tile kernel's tiles (benchmarks/tune_w8a.py --pair on an H100: 1.3-1.4x BF16 at 4k
#: tokens against 2.2-2.5x for one tile per program); the interpreter gets small tiles
_PAIR = dict(BM=128, BN=64, GROUP_M=8, num_warps=8, num_stages=4)
_PAIR_INTERPRETED = dict(BM=16, BN=16, GROUP_M=2, num_warps=4, num_stages=1)
_PAIR_MIN_TOKENS = 128


def _pair_config(M: int, N: int) -> dict:
    """Two-tile kernel shapes: half-height tiles where 128-row tiles would leave SMs idle."""
    if M * N < 128 * 128 * 2 * 132 * 2:  # fewer than two waves of 128 x 128 tile pairs
        return dict(_PAIR, BM=64, num_warps=4)
    return _PAIR


def w8a_gemm(x: torch.Tensor, t: ThresholdCounts, qdata: torch.Tensor, scale: torch.Tensor,
             bias: torch.Tensor | None, group_size: int, scheme: str | None = None,
             store_acc: bool = False, block_k: int | None = None,
             out_dtype: torch.dtype | None = None, config: dict | None = None,
             pair_config: dict | None = None, scale_t: torch.Tensor | None = None,
             hopper: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``y [M, N]`` (in ``out_dtype``, default ``x.dtype``) and, with ``store_acc``, the int32
    accumulators ``[M, N, G]``.

    Args:
        x: the layer input ``[M, K]`` (read only for tokens with counts beyond int8).
        t: :func:`~spikingbrain.kernels.threshold_triton.threshold_counts` of ``x``.
        qdata: int8 weight codes ``[N, K]``; ``scale [N, G]`` float32; ``bias [N]`` or None.
        group_size: input columns per scale; a power of two >= 16 when ``G > 1``.
        scheme: None for count mode, else the spike scheme (spike mode, see module doc).
        block_k: K step when ``G == 1`` (default 128).
        config / pair_config: tile shapes of the general / two-tile kernel (for tuning;
            ``config`` alone runs the general kernel on every block).
        scale_t: ``scale.t().contiguous()`` if the caller keeps it (the Hopper kernel reads
            the scales of one group contiguously; computed here when None).
        hopper: run the blocks whose counts fit int8 on the Hopper wgmma kernel
            (:mod:`~spikingbrain.kernels.w8a_wgmma_gluon`); None = wherever it applies
            (an sm_90 GPU, 128-column groups, at least 128 tokens, count mode), True = this
            kernel or a ValueError, False = never.
    """
    M, K = x.shape
    N, G = scale.shape
    if qdata.dtype != torch.int8 or qdata.shape != (N, K) or qdata.stride(-1) != 1:
        raise ValueError(f"qdata must be contiguous int8 [{N}, {K}], got {qdata.dtype} "
                         f"{tuple(qdata.shape)}")
    one_group = G == 1
    bk = (block_k or 128) if one_group else group_size
    if not one_group and (bk < 16 or bk & (bk - 1) or triton.cdiv(K, bk) != G):
        raise ValueError(f"group_size {group_size} must be a power of two >= 16 matching "
                         f"{G} groups of {K} columns")
    planes = SPIKE_PLANES[scheme or "count"]
    out = torch.empty(M, N, dtype=out_dtype or x.dtype, device=x.device)
    acc = torch.zeros(M, N, G, dtype=torch.int32, device=x.device) if store_acc else None
    if M == 0 or N == 0:
        return out, acc
    cfg = config or _launch_config(M, N, K, bk, planes)
    use_hopper = hopper is not False and config is None and not store_acc and _hopper_applies(
        x, M, K, G, group_size, planes)
    if hopper and not use_hopper:
        raise ValueError("hopper=True but the Hopper kernel does not apply here (it needs an "
                         "sm_90 GPU, 128-column groups, >= 128 tokens, count mode, no "
                         "config / store_acc): pass hopper=None to choose automatically")
    if use_hopper:
        from spikingbrain.kernels.w8a_wgmma_gluon import WGMMA_CONFIG, w8a_gemm_wgmma

        cfg = dict(cfg, BM=WGMMA_CONFIG["BM"])  # the same token blocks for both kernels
        w8a_gemm_wgmma(t.counts8, qdata, scale.t().contiguous() if scale_t is None else scale_t,
                       t.vth, t.absmax, bias, out)
        # the general kernel below takes the blocks with counts beyond int8 that the Hopper
        # kernel left alone (no host sync: its programs for the other blocks return at once)
        fast_done = True
    else:
        fast_done = _launch_pair(x, t, qdata, scale, bias, out, bk, one_group, store_acc,
                                 planes, config, pair_config)
    try:
        _launch(cfg, x, t, qdata, scale, bias, out, acc, bk, one_group, store_acc, planes,
                fast_done)
    except triton.runtime.errors.OutOfResources:
        # the block holding counts beyond int8 also stages x: fewer pipeline stages fit
        cfg = dict(cfg, num_stages=2, BN=min(cfg["BN"], 64))
        _launch(cfg, x, t, qdata, scale, bias, out, acc, bk, one_group, store_acc, planes,
                fast_done)
    return out, acc


def _launch_pair(x, t, qdata, scale, bias, out, bk, one_group, store_acc, planes, config,
                 pair_config) -> bool:
    """The two-tile kernel on the blocks whose counts fit int8, where it applies (True)."""
    M, K = x.shape
    N = scale.shape[0]
    pair = planes == 0 and not one_group and not store_acc and (
        config is None or pair_config is not None) and (M >= _PAIR_MIN_TOKENS or interpreting())
    if pair:  # blocks whose counts fit int8, two tiles per program; the rest below
        pc = pair_config or (_PAIR_INTERPRETED if interpreting() else _pair_config(M, N))
        even = M % pc["BM"] == 0 and N % (2 * pc["BN"]) == 0 and K % bk == 0
        _w8a_pair_kernel[(triton.cdiv(M, pc["BM"]) * triton.cdiv(N, 2 * pc["BN"]),)](
            t.counts8, qdata, scale, t.vth, bias if bias is not None else scale, out, t.absmax,
            M, N, K, t.counts8.stride(0), qdata.stride(0), scale.stride(0), out.stride(0),
            BM=pc["BM"], BN=pc["BN"], BK=bk, GROUP_M=pc["GROUP_M"], HAS_BIAS=bias is not None,
            EVEN=even, num_warps=pc["num_warps"], num_stages=pc["num_stages"])
    return pair


def _hopper_applies(x: torch.Tensor, M: int, K: int, G: int, group_size: int,
                    planes: int) -> bool:
    if planes != 0 or M < 128 or interpreting() or not x.is_cuda:
        return False
    try:
        from spikingbrain.kernels.w8a_wgmma_gluon import wgmma_supported
    except ImportError:  # a Triton without Gluon's Hopper API
        return False
    return wgmma_supported(x, K, 0, group_size, G)


def _launch(cfg, x, t, qdata, scale, bias, out, acc, bk, one_group, store_acc, planes,
            skip_fast):
    M, K = x.shape
    N, G = scale.shape
    grid = (triton.cdiv(M, cfg["BM"]) * triton.cdiv(N, cfg["BN"]),)
    _w8a_kernel[grid](
        t.counts8, qdata, scale, t.vth, bias if bias is not None else scale, out, t.absmax, x,
        acc if acc is not None else out, M, N, K, G, t.counts8.stride(0), qdata.stride(0),
        scale.stride(0), out.stride(0), x.stride(0), t.lo, t.hi,
        BM=cfg["BM"], BN=cfg["BN"], BK=bk, GROUP_M=cfg["GROUP_M"], ONE_GROUP=one_group,
        HAS_BIAS=bias is not None, STORE_ACC=store_acc, PLANES=planes, SKIP_FAST=skip_fast,
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
