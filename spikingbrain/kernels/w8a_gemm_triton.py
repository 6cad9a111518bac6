"""INT8 weights x integer spike counts on the GPU, exact per weight group, fused epilogue.

``y[m, n] = Vth[m] * sum_g scale[n, g] * acc[m, n, g] + bias[n]`` with
``acc[m, n, g] = sum_{k in group g} counts[m, k] * qdata[n, k]`` accumulated exactly in int32
on the INT8 tensor cores, one weight group (``BLOCK_K`` = group size) per K step, the float
epilogue applied in registers. The group order of the float sum is the CPU's (g = 0, 1, ...).

CPU reference: :func:`spikingbrain.converter.kernels.count_accumulators` and
:func:`~spikingbrain.converter.kernels.epilogue` (``SpikingLinear`` with ``kernel="torch"``);
the tests compare the accumulators with
:func:`~spikingbrain.converter.kernels.reference_accumulators` bit for bit.

Counts beyond int8 (a token whose ``max |count|`` exceeds 127): the kernel recomputes that
block of tokens from ``x`` with the threshold kernel's formula and splits the counts into
balanced base-128 digits, ``q = d0 + 128 d1 + 16384 d2``, one int8 GEMM per digit, so the
accumulators stay exact for ``|count| <= MAX_EXACT_COUNT`` (< 2**21; the threshold kernel
marks tokens beyond it with ``Vth = NaN``).

Weight codes beyond int8 (int16 ``qdata``, imported public checkpoints): each weight tile is
split in registers into two int8 digits, ``w = lo + 256 hi`` with ``lo`` in [-128, 127] (``hi``
is 0 for codes within int8, +-1 up to +-383); the group's accumulator is
``dot(counts, lo) + 256 dot(counts, hi)`` in int32, before the float epilogue, so the result
is the integer one bit for bit (codes in [-32896, 32639]).

Spike mode computes the same accumulators from the spike trains: each time step of the
scheme is a plane of spikes in {-1, 0, 1} expanded in registers from the counts, multiplied
on the tensor cores and added with its time weight. Steps that are silent for a whole block of
tokens (beyond its largest count) are skipped: they add zero.

:func:`w8a_gemm` is the call the layer makes; :func:`w8a_gemm_tuning` takes the tile shapes,
the kernel choice and the accumulators (tuning scripts and tests).

>>> import torch
>>> from spikingbrain.kernels.threshold_triton import threshold_counts
>>> from spikingbrain.kernels.w8a_gemm_triton import GemmWeights, w8a_gemm, w8a_gemm_tuning
>>> x = torch.tensor([[0.3, -0.9, 0.0, 1.8]] * 16)
>>> q = torch.tensor([[1, 2, 3, 4], [-5, 6, -7, 300]] * 8, dtype=torch.int16)
>>> w = GemmWeights(q, torch.ones(16, 1), None, group_size=4)
>>> t = threshold_counts(x, 3.0)
>>> acc = w8a_gemm_tuning(x, t, w, store_acc=True)[1]
>>> acc[0, :2, 0].tolist()   # [1, -4, 0, 7] . q rows
[21, 2071]
>>> float(w8a_gemm(x, t, w)[0, 1]) == 2071 * float(t.vth[0])
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikingbrain.kernels.threshold_triton import (
    MAX_EXACT_COUNT,
    ThresholdCounts,
    round_half_even,
)
from spikingbrain.kernels.triton_support import import_triton, interpreting

triton, tl = import_triton()

__all__ = ["GemmWeights", "w8a_gemm", "w8a_gemm_tuning", "SPIKE_PLANES", "MAX_EXACT_COUNT",
           "CODE_RANGE"]

#: spike-plane kinds of spike mode (0 = count mode): unary trains (binary, ternary), bits of
#: the magnitude (bitwise unsigned, sign-magnitude), two's complement bits
SPIKE_PLANES = {"count": 0, "binary": 1, "ternary": 1, "bitwise_unsigned": 2,
                "bitwise_bidirectional": 2, "bitwise_twos_complement": 3}
#: int16 weight codes the kernels split exactly into two int8 digits ``lo + 256 hi``
CODE_RANGE = (-128 - 256 * 128, 127 + 256 * 127)


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
def _split_codes(b):
    """int16 codes ``b`` -> int8 digits ``(lo, hi)`` with ``b = lo + 256 hi``,
    ``lo`` in [-128, 127]."""
    w = b.to(tl.int32)
    lo = ((w + 128) & 255) - 128
    hi = (w - lo) // 256  # an exact multiple of 256
    return lo.to(tl.int8), hi.to(tl.int8)


@triton.jit
def _int8_counts_dot(a, b, tile_max, PLANES: tl.constexpr):
    """Exact ``a @ b`` for int8 counts ``a`` and int8 codes ``b``, any mode."""
    if PLANES == 0:
        return tl.dot(a, b, out_dtype=tl.int32)
    else:
        return _planes_dot_int8(a.to(tl.int32), b, tile_max, PLANES)


@triton.jit
def _wide_counts_dot(q, b, tile_max, PLANES: tl.constexpr):
    """Exact ``q @ b`` for float32 integer counts ``|q| <= MAX_EXACT_COUNT``, any mode."""
    if PLANES == 0:
        return _digits_dot(q, b)
    else:
        return _planes_dot(q.to(tl.int32), b, tile_max, PLANES)


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
              STORE_ACC: tl.constexpr, PLANES: tl.constexpr, HAS_HI: tl.constexpr):
    """Float sum ``[BM, BN]`` (before ``Vth`` and bias) of one output tile, any mode.
    ``HAS_HI``: int16 codes, split into two int8 digits per K step."""
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
            if HAS_HI:
                lo8, hi8 = _split_codes(b)
                part = _wide_counts_dot(q, lo8, tile_max, PLANES)
                part += _wide_counts_dot(q, hi8, tile_max, PLANES) * 256
            else:
                part = _wide_counts_dot(q, b, tile_max, PLANES)
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
            if HAS_HI:
                lo8, hi8 = _split_codes(b)
                part = _int8_counts_dot(a, lo8, tile_max, PLANES)
                part += _int8_counts_dot(a, hi8, tile_max, PLANES) * 256
                y, acc = _step(y, acc, part, s_ptr, acc_ptr, offs_m, offs_n, mn_ok, stride_sn,
                               N, G, kt, ONE_GROUP, STORE_ACC)
            elif PLANES == 0 and ONE_GROUP:  # loop-carried accumulator: async MMA pipeline
                acc = tl.dot(a, b, acc, out_dtype=tl.int32)
            else:
                part = _int8_counts_dot(a, b, tile_max, PLANES)
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
                PLANES: tl.constexpr, SKIP_FAST: tl.constexpr, HAS_HI: tl.constexpr):
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
                      BM, BN, BK, ONE_GROUP, STORE_ACC, PLANES, HAS_HI)
        _store_tile(y, out_ptr, bias_ptr, offs_m, offs_n, m_ok, n_ok, vth, stride_om, HAS_BIAS)


@triton.jit
def _w8a_pair_kernel(a_ptr, b_ptr, s_ptr, vth_ptr, bias_ptr, out_ptr, absmax_ptr, M, N, K,
                     stride_am, stride_bn, stride_sn, stride_om, BM: tl.constexpr,
                     BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
                     HAS_BIAS: tl.constexpr, EVEN: tl.constexpr, HAS_HI: tl.constexpr):
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
            if HAS_HI:  # int16 codes: two int8 digits, recombined in int32
                lo0, hi0 = _split_codes(b0)
                lo1, hi1 = _split_codes(b1)
                p0 = tl.dot(a, lo0, out_dtype=tl.int32) + tl.dot(a, hi0, out_dtype=tl.int32) * 256
                p1 = tl.dot(a, lo1, out_dtype=tl.int32) + tl.dot(a, hi1, out_dtype=tl.int32) * 256
            else:
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
    """Tile shapes by problem size (chosen with benchmarks/tune_w8a.py, see docs/gpu.md;
    the interpreter gets small tiles)."""
    if interpreting():
        return dict(BM=16, BN=16, GROUP_M=2, num_warps=4, num_stages=1)
    if M <= 16:
        return dict(BM=16, BN=32, GROUP_M=1, num_warps=4, num_stages=4)
    if M <= 64:
        return dict(BM=64, BN=64, GROUP_M=4, num_warps=4, num_stages=4)
    return dict(BM=128, BN=128, GROUP_M=8, num_warps=8, num_stages=4 if not planes else 3)


#: the two-tile kernel's tiles (``benchmarks/tune_w8a.py --pair``; measurements in
#: docs/gpu.md); the interpreter gets small tiles
_PAIR = dict(BM=128, BN=64, GROUP_M=8, num_warps=8, num_stages=4)
_PAIR_INTERPRETED = dict(BM=16, BN=16, GROUP_M=2, num_warps=4, num_stages=1)
_PAIR_MIN_TOKENS = 128


def _pair_config(M: int, N: int) -> dict:
    """Two-tile kernel shapes: half-height tiles where 128-row tiles would leave SMs idle."""
    if M * N < 128 * 128 * 2 * 132 * 2:  # fewer than two waves of 128 x 128 tile pairs
        return dict(_PAIR, BM=64, num_warps=4)
    return _PAIR


@dataclass(frozen=True)
class GemmWeights:
    """A layer's weights as the GEMM reads them.

    Args:
        qdata: weight codes ``[N, K]``, int8, or int16 with codes in :data:`CODE_RANGE`
            (contiguous last dimension).
        scale: float32 scales ``[N, G]``; ``bias``: ``[N]`` or None.
        group_size: input columns per scale; a power of two >= 16 when ``G > 1``.
        scale_t: ``scale.t()`` as a contiguous ``[G, N]`` tensor if the caller has it (the
            Hopper kernel's layout; made per call when None).
    """

    qdata: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None
    group_size: int
    scale_t: torch.Tensor | None = None

    @classmethod
    def of(cls, layer) -> GemmWeights:
        """The weights of a :class:`~spikingbrain.converter.SpikingLinear`."""
        return cls(layer.qdata, layer.scale, layer.bias, layer.group_size)


def w8a_gemm(x: torch.Tensor, t: ThresholdCounts, weights: GemmWeights,
             scheme: str | None = None, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``y [M, N]`` (in ``out_dtype``, default ``x.dtype``) for ``x [M, K]``.

    Args:
        x: the layer input (read only for tokens with counts beyond int8).
        t: :func:`~spikingbrain.kernels.threshold_triton.threshold_counts` of ``x``.
        weights: :class:`GemmWeights`.
        scheme: None for count mode, else the spike scheme (spike mode, see module doc).

    Tile shapes and the kernel are chosen by problem size and GPU; see
    :func:`w8a_gemm_tuning` to set them.
    """
    return w8a_gemm_tuning(x, t, weights, scheme, out_dtype=out_dtype)[0]


def w8a_gemm_tuning(x: torch.Tensor, t: ThresholdCounts, weights: GemmWeights,
                    scheme: str | None = None, *, out_dtype: torch.dtype | None = None,
                    store_acc: bool = False, block_k: int | None = None,
                    config: dict | None = None, pair_config: dict | None = None,
                    hopper: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`w8a_gemm` with the knobs of tuning and testing: ``(y, acc)``, ``acc`` the int32
    accumulators ``[M, N, G]`` with ``store_acc`` (else None).

    Args:
        block_k: K step when ``G == 1`` (default 128).
        config: tile shape of the general kernel (``BM, BN, GROUP_M, num_warps,
            num_stages``); alone, it runs the general kernel on every block of tokens.
        pair_config: tile shape of the two-tile kernel (count mode with group scales) for
            the blocks whose counts fit int8; the general kernel then takes the other blocks
            with the same ``BM``, so every row is written once.
        hopper: run the blocks whose counts fit int8 on the Hopper wgmma kernel
            (:mod:`~spikingbrain.kernels.w8a_wgmma_gluon`); None = wherever it applies
            (an sm_90 GPU, int8 codes, 128-column groups, at least 128 tokens, count mode),
            True = this kernel or a ValueError, False = never.
    """
    qdata, scale, bias = weights.qdata, weights.scale, weights.bias
    group_size = weights.group_size
    M, K = x.shape
    N, G = scale.shape
    if qdata.dtype not in (torch.int8, torch.int16) or qdata.shape != (N, K) \
            or qdata.stride(-1) != 1:
        raise ValueError(f"qdata must be int8 or int16 [{N}, {K}] with a contiguous last "
                         f"dimension, got {qdata.dtype} {tuple(qdata.shape)}")
    one_group = G == 1
    bk = (block_k or 128) if one_group else group_size
    if not one_group and (bk < 16 or bk & (bk - 1) or triton.cdiv(K, bk) != G):
        raise ValueError(f"group_size {group_size} must be a power of two >= 16 matching "
                         f"{G} groups of {K} columns")
    for name, c in (("config", config), ("pair_config", pair_config)):
        missing = {"BM", "BN", "GROUP_M", "num_warps", "num_stages"} - set(c or {})
        if c is not None and missing:
            raise ValueError(f"{name} lacks {sorted(missing)}")
    planes = SPIKE_PLANES[scheme or "count"]
    out = torch.empty(M, N, dtype=out_dtype or x.dtype, device=x.device)
    acc = torch.zeros(M, N, G, dtype=torch.int32, device=x.device) if store_acc else None
    if M == 0 or N == 0:
        return out, acc
    if config is None and pair_config is None and not hopper:
        from spikingbrain.kernels.w8a_gemv_triton import gemv_applies, w8a_gemv

        if gemv_applies(M, G, planes, store_acc, K):  # decode sizes, long K: split K too
            return w8a_gemv(x, t, qdata, scale, bias, group_size, out.dtype), acc
    cfg = config or _launch_config(M, N, K, bk, planes)
    use_hopper = hopper is not False and config is None and not store_acc and \
        qdata.dtype == torch.int8 and _hopper_applies(x, M, K, G, group_size, planes)
    if hopper and not use_hopper:
        raise ValueError("hopper=True but the Hopper kernel does not apply here (it needs an "
                         "sm_90 GPU, int8 codes, 128-column groups, >= 128 tokens, count "
                         "mode, no config / store_acc): pass hopper=None to choose "
                         "automatically")
    if use_hopper:
        from spikingbrain.kernels.w8a_wgmma_gluon import WGMMA_CONFIG, w8a_gemm_wgmma

        scale_t = weights.scale_t if weights.scale_t is not None else scale.t().contiguous()
        w8a_gemm_wgmma(t.counts8, qdata, scale_t, t.vth, t.absmax, bias, out)
        # the general kernel below takes the blocks with counts beyond int8 that the Hopper
        # kernel left alone, on the same token blocks (no host sync: its programs for the
        # other blocks return at once)
        fast_bm = WGMMA_CONFIG["BM"]
    else:
        fast_bm = _launch_pair(x, t, qdata, scale, bias, out, bk, one_group, store_acc,
                               planes, config, pair_config)
    if fast_bm is not None:
        cfg = dict(cfg, BM=fast_bm)
    try:
        _launch(cfg, x, t, qdata, scale, bias, out, acc, bk, one_group, store_acc, planes,
                fast_bm is not None)
    except triton.runtime.errors.OutOfResources:
        # the block holding counts beyond int8 also stages x: fewer pipeline stages fit
        cfg = dict(cfg, num_stages=2, BN=min(cfg["BN"], 64))
        _launch(cfg, x, t, qdata, scale, bias, out, acc, bk, one_group, store_acc, planes,
                fast_bm is not None)
    return out, acc


def _launch_pair(x, t, qdata, scale, bias, out, bk, one_group, store_acc, planes, config,
                 pair_config) -> int | None:
    """The two-tile kernel on the blocks whose counts fit int8, where it applies; returns the
    row block ``BM`` it used (None when it did not run)."""
    M, K = x.shape
    N = scale.shape[0]
    pair = planes == 0 and not one_group and not store_acc and (
        config is None or pair_config is not None) and (M >= _PAIR_MIN_TOKENS or interpreting())
    if not pair:
        return None
    pc = pair_config or (_PAIR_INTERPRETED if interpreting() else _pair_config(M, N))
    even = M % pc["BM"] == 0 and N % (2 * pc["BN"]) == 0 and K % bk == 0
    stages = pc["num_stages"]
    while True:
        try:
            _w8a_pair_kernel[(triton.cdiv(M, pc["BM"]) * triton.cdiv(N, 2 * pc["BN"]),)](
                t.counts8, qdata, scale, t.vth, bias if bias is not None else scale, out,
                t.absmax, M, N, K, t.counts8.stride(0), qdata.stride(0), scale.stride(0),
                out.stride(0), BM=pc["BM"], BN=pc["BN"], BK=bk, GROUP_M=pc["GROUP_M"],
                HAS_BIAS=bias is not None, EVEN=even, HAS_HI=qdata.dtype == torch.int16,
                num_warps=pc["num_warps"], num_stages=stages)
            return pc["BM"]
        except triton.runtime.errors.OutOfResources:
            if stages <= 2:  # int16 code tiles take twice the shared memory of int8 ones
                raise
            stages -= 1


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
        HAS_HI=qdata.dtype == torch.int16, num_warps=cfg["num_warps"],
        num_stages=cfg["num_stages"])
