"""Hopper (sm_90) INT8 GEMM with group scales whose float epilogue overlaps the tensor cores.

Same arithmetic as :mod:`spikingbrain.kernels.w8a_gemm_triton` for the blocks of tokens whose
counts fit int8: ``y[m, n] = Vth[m] * sum_g scale[n, g] * acc[m, n, g] + bias[n]`` with
``acc[m, n, g]`` the exact int32 product of group ``g`` (``BK`` = group size columns) on the INT8
tensor cores, the float sum taken in the CPU's group order (g = 0, 1, ...).

Why a second kernel: in Triton's ``tl.dot`` a product that is not a loop-carried accumulator is
waited for as soon as it is issued, so each group's scale-and-add runs while the tensor cores
idle (docs/gpu.md has the measurements). This kernel is written in Gluon, Triton's
explicit-layout dialect, with ``warpgroup_mma(is_async=True)``: the product of group ``g + 1``
is issued before the product of group ``g`` is waited for (``warpgroup_mma_wait(1)``), so the
CUDA cores scale and add group ``g`` while the tensor cores multiply group ``g + 1``. Tiles come
through a ring of ``STAGES`` shared-memory buffers filled by the TMA engine (one mbarrier per
stage); a stage is refilled as soon as the product that read it has completed.

The int32 -> float32 conversion of each group's accumulator is exact either way (``|acc| <=
128 * 127 * 128 < 2**22``); ``MAGIC`` selects the integer-add / float-subtract form instead of
the conversion instruction.

Int8 weight codes only: ``w8a_gemm`` sends layers with int16 codes to the Triton kernels.

CPU reference: :func:`spikingbrain.converter.kernels.count_accumulators` and
:func:`~spikingbrain.converter.kernels.epilogue` (``SpikingLinear`` with ``kernel="torch"``).
Gluon kernels compile for Hopper only: Triton's interpreter does not run them, so CI checks them
by compiling them for sm_90a (tests/kernels/test_kernels_wgmma_gluon.py) and the GPU tests
compare them with the CPU count mode on a Hopper GPU (``make test-gpu``).
"""

from __future__ import annotations

import torch

from spikingbrain.kernels.triton_support import import_triton

triton, tl = import_triton()

from triton.experimental import gluon  # noqa: E402
from triton.experimental.gluon import language as gl  # noqa: E402
from triton.experimental.gluon.language.nvidia.hopper import (  # noqa: E402
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

__all__ = ["w8a_gemm_wgmma", "wgmma_supported", "WGMMA_CONFIG"]

#: tile shape of the kernel (BM tokens x BN outputs per program, STAGES shared-memory buffers),
#: chosen with ``benchmarks/probe_wgmma.py`` (the comparison is in docs/gpu.md)
WGMMA_CONFIG = dict(BM=128, BN=64, STAGES=4, GROUP_M=4, num_warps=4, MAGIC=False)


@gluon.jit
def _to_float(p, MAGIC: gl.constexpr):
    """Exact int32 -> float32 of ``|p| < 2**22``."""
    if MAGIC:
        return (p + 0x4B400000).to(gl.float32, bitcast=True) - 12582912.0
    else:
        return p.to(gl.float32)


@gluon.jit
def _load_group(a_desc, b_desc, a_smem, b_smem, ready, off_m, off_n, g, G,
                BK: gl.constexpr, STAGES: gl.constexpr):
    """Start the TMA copies of group ``g`` (if it exists) into its ring stage."""
    if g < G:
        stage = g % STAGES
        mbarrier.expect(ready.index(stage), a_desc.block_type.nbytes + b_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(a_desc, [off_m, g * BK], ready.index(stage),
                                        a_smem.index(stage))
        tma.async_copy_global_to_shared(b_desc, [off_n, g * BK], ready.index(stage),
                                        b_smem.index(stage))


@gluon.jit
def _issue_group(a_smem, b_smem, ready, g, regs, STAGES: gl.constexpr):
    """Issue the product of group ``g`` once its tiles have landed; ``regs``: int32 registers
    whose value is not needed (``use_acc=False`` ignores it)."""
    stage = g % STAGES
    mbarrier.wait(ready.index(stage), (g // STAGES) & 1)
    return warpgroup_mma(a_smem.index(stage), b_smem.index(stage).permute((1, 0)), regs,
                         use_acc=False, is_async=True)


@gluon.jit
def _retire_group(token, y, g, G, st_ptr, N, offs_n, n_ok, a_desc, b_desc, a_smem, b_smem,
                  ready, off_m, off_n, OUTSTANDING: gl.constexpr, BK: gl.constexpr,
                  STAGES: gl.constexpr, MAGIC: gl.constexpr, EVEN_N: gl.constexpr):
    """Wait for the product of group ``g`` (``OUTSTANDING`` later products may still run),
    refill its stage with group ``g + STAGES`` and add ``scale[:, g] * acc`` into ``y``."""
    done = warpgroup_mma_wait(num_outstanding=OUTSTANDING, deps=(token,))
    _load_group(a_desc, b_desc, a_smem, b_smem, ready, off_m, off_n, g + STAGES, G, BK, STAGES)
    if EVEN_N:
        s = gl.load(st_ptr + g * N + offs_n)
    else:
        s = gl.load(st_ptr + g * N + offs_n, mask=n_ok, other=0.0)
    y += _to_float(done, MAGIC) * s[None, :]
    return y, done


@gluon.jit
def _w8a_wgmma_kernel(a_desc, b_desc, st_ptr, vth_ptr, bias_ptr, out_ptr, absmax_ptr,
                      M, N, G, stride_om,
                      BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr,
                      STAGES: gl.constexpr, GROUP_M: gl.constexpr, HAS_BIAS: gl.constexpr,
                      MAGIC: gl.constexpr, EVEN_N: gl.constexpr,
                      num_warps: gl.constexpr):
    # tile order: GROUP_M row blocks share each column of weight tiles (weights stay in L2)
    pid = gl.program_id(0)
    num_m = gl.cdiv(M, BM)
    width = GROUP_M * gl.cdiv(N, BN)
    first_m = (pid // width) * GROUP_M
    rows = gl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % rows
    pid_n = (pid % width) // rows
    off_m = pid_m * BM
    off_n = pid_n * BN

    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                                   instr_shape=[16, BN, 32])
    offs_m = off_m + gl.arange(0, BM, layout=gl.SliceLayout(1, mma))
    offs_n = off_n + gl.arange(0, BN, layout=gl.SliceLayout(0, mma))
    m_ok = offs_m < M
    n_ok = offs_n < N
    tile_max = gl.max(gl.load(absmax_ptr + offs_m, mask=m_ok, other=0), axis=0)
    if tile_max <= 127:  # blocks with counts beyond int8 are left to the general kernel
        a_smem = gl.allocate_shared_memory(gl.int8, [STAGES, BM, BK], a_desc.layout)
        b_smem = gl.allocate_shared_memory(gl.int8, [STAGES, BN, BK], b_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(ready.index(i), count=1)
        for i in gl.static_range(STAGES):
            _load_group(a_desc, b_desc, a_smem, b_smem, ready, off_m, off_n, i, G, BK, STAGES)

        y = gl.zeros([BM, BN], dtype=gl.float32, layout=mma)
        # Two accumulators alternate (no register copy of a product in flight, which would
        # make ptxas serialise the tensor cores): while the product of one group runs, the
        # other accumulator's group is scaled and added on the CUDA cores.
        spent = gl.zeros([BM, BN], dtype=gl.int32, layout=mma)
        acc_a = _issue_group(a_smem, b_smem, ready, 0, spent, STAGES)
        for j in range(0, (G - 1) // 2):
            g = 2 * j + 1
            acc_b = _issue_group(a_smem, b_smem, ready, g, spent, STAGES)
            y, done = _retire_group(acc_a, y, g - 1, G, st_ptr, N, offs_n, n_ok, a_desc,
                                    b_desc, a_smem, b_smem, ready, off_m, off_n, 1, BK,
                                    STAGES, MAGIC, EVEN_N)
            acc_a = _issue_group(a_smem, b_smem, ready, g + 1, done, STAGES)
            y, spent = _retire_group(acc_b, y, g, G, st_ptr, N, offs_n, n_ok, a_desc,
                                     b_desc, a_smem, b_smem, ready, off_m, off_n, 1, BK,
                                     STAGES, MAGIC, EVEN_N)
        if G % 2 == 0:  # one group left after the pairs
            acc_b = _issue_group(a_smem, b_smem, ready, G - 1, spent, STAGES)
            y, done = _retire_group(acc_a, y, G - 2, G, st_ptr, N, offs_n, n_ok, a_desc,
                                    b_desc, a_smem, b_smem, ready, off_m, off_n, 1, BK,
                                    STAGES, MAGIC, EVEN_N)
            y, done = _retire_group(acc_b, y, G - 1, G, st_ptr, N, offs_n, n_ok, a_desc,
                                    b_desc, a_smem, b_smem, ready, off_m, off_n, 0, BK,
                                    STAGES, MAGIC, EVEN_N)
        else:
            y, done = _retire_group(acc_a, y, G - 1, G, st_ptr, N, offs_n, n_ok, a_desc,
                                    b_desc, a_smem, b_smem, ready, off_m, off_n, 0, BK,
                                    STAGES, MAGIC, EVEN_N)
        for i in gl.static_range(STAGES):
            mbarrier.invalidate(ready.index(i))

        vth = gl.load(vth_ptr + offs_m, mask=m_ok, other=1.0)
        y = y * vth[:, None]
        if HAS_BIAS:
            y += gl.load(bias_ptr + offs_n, mask=n_ok, other=0.0).to(gl.float32)[None, :]
        out_ptrs = out_ptr + offs_m[:, None].to(gl.int64) * stride_om + offs_n[None, :]
        gl.store(out_ptrs, y.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def wgmma_supported(x: torch.Tensor, K: int, N: int, group_size: int, G: int) -> bool:
    """Whether this kernel can take the layer: a Hopper GPU, group scales with 128-column
    groups, TMA-aligned shapes (``K`` a multiple of 16)."""
    if not x.is_cuda or torch.cuda.get_device_capability(x.device)[0] != 9:
        return False
    return G > 1 and group_size == 128 and K % 128 == 0 and K == G * group_size


def w8a_gemm_wgmma(counts8: torch.Tensor, qdata: torch.Tensor, scale_t: torch.Tensor,
                   vth: torch.Tensor, absmax: torch.Tensor, bias: torch.Tensor | None,
                   out: torch.Tensor, config: dict | None = None) -> torch.Tensor:
    """Write ``out [M, N]`` for the token blocks whose counts fit int8 (the others untouched).

    Args:
        counts8: int8 counts ``[M, K]`` (contiguous); ``qdata``: int8 codes ``[N, K]``.
        scale_t: float32 group scales transposed, ``[G, N]`` contiguous (``scale.t()``).
        vth: ``[M]`` float32; ``absmax``: ``[M]`` int32 largest ``|count|`` per token.
        bias: ``[N]`` or None; out: ``[M, N]`` (any float dtype, row stride ``out.stride(0)``).
        config: tile shape overriding :data:`WGMMA_CONFIG` keys (for tuning).
    """
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    cfg = dict(WGMMA_CONFIG, **(config or {}))
    M, K = counts8.shape
    N = qdata.shape[0]
    G, BK = scale_t.shape[0], K // scale_t.shape[0]
    BM, BN = cfg["BM"], cfg["BN"]
    a_layout = gl.NVMMASharedLayout.get_default_for([BM, BK], gl.int8)
    b_layout = gl.NVMMASharedLayout.get_default_for([BN, BK], gl.int8)
    a_desc = TensorDescriptor.from_tensor(counts8, [BM, BK], a_layout)
    b_desc = TensorDescriptor.from_tensor(qdata, [BN, BK], b_layout)
    grid = (triton.cdiv(M, BM) * triton.cdiv(N, BN),)
    _w8a_wgmma_kernel[grid](
        a_desc, b_desc, scale_t, vth, bias if bias is not None else scale_t, out, absmax,
        M, N, G, out.stride(0), BM=BM, BN=BN, BK=BK, STAGES=cfg["STAGES"],
        GROUP_M=cfg["GROUP_M"], HAS_BIAS=bias is not None, MAGIC=cfg["MAGIC"], EVEN_N=N % BN == 0,
        num_warps=cfg["num_warps"])
    return out
