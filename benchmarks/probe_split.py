"""Probe: does splitting each output tile into two independent tensor-core products let the
per-group float epilogue of one half overlap the product of the other? (fast path only:
int8 counts, group scales; compares with the package kernel, same process)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl
import triton.testing as tt
from torch import nn

from spikingbrain.converter import SpikeConfig, SpikingLinear
from spikingbrain.kernels.threshold_triton import threshold_counts
from spikingbrain.kernels.w8a_gemm_triton import w8a_gemm


@triton.jit
def _split_kernel(a_ptr, b_ptr, s_ptr, vth_ptr, out_ptr, M, N, K, stride_am, stride_bn,
                  stride_sn, stride_om, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                  GROUP_M: tl.constexpr):
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BM)
    num_n = tl.cdiv(N, 2 * BN)
    width = GROUP_M * num_n
    first_m = (pid // width) * GROUP_M
    rows = min(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % rows
    pid_n = (pid % width) // rows
    offs_m = (pid_m * BM + tl.arange(0, BM)).to(tl.int64)
    n0 = (pid_n * 2 * BN + tl.arange(0, BN)).to(tl.int64)
    n1 = n0 + BN
    offs_k = tl.arange(0, BK)
    a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :]
    b0_ptrs = b_ptr + n0[None, :] * stride_bn + offs_k[:, None]
    b1_ptrs = b_ptr + n1[None, :] * stride_bn + offs_k[:, None]
    y0 = tl.zeros([BM, BN], dtype=tl.float32)
    y1 = tl.zeros([BM, BN], dtype=tl.float32)
    for kt in range(0, tl.cdiv(K, BK)):
        a = tl.load(a_ptrs)
        b0 = tl.load(b0_ptrs)
        b1 = tl.load(b1_ptrs)
        p0 = tl.dot(a, b0, out_dtype=tl.int32)
        p1 = tl.dot(a, b1, out_dtype=tl.int32)
        s0 = tl.load(s_ptr + n0 * stride_sn + kt)
        s1 = tl.load(s_ptr + n1 * stride_sn + kt)
        y0 += p0.to(tl.float32) * s0[None, :]
        y1 += p1.to(tl.float32) * s1[None, :]
        a_ptrs += BK
        b0_ptrs += BK
        b1_ptrs += BK
    vth = tl.load(vth_ptr + offs_m)
    tl.store(out_ptr + offs_m[:, None] * stride_om + n0[None, :], (y0 * vth[:, None]).to(tl.bfloat16))
    tl.store(out_ptr + offs_m[:, None] * stride_om + n1[None, :], (y1 * vth[:, None]).to(tl.bfloat16))


def main() -> None:
    for k, n in ((3584, 18944), (18944, 3584), (3584, 3584)):
        lin = nn.Linear(k, n, bias=False, device="cuda", dtype=torch.bfloat16)
        layer = SpikingLinear.from_linear(lin, SpikeConfig())
        x = torch.randn(4096, k, device="cuda", dtype=torch.bfloat16)
        t = threshold_counts(x, 3.0)
        t_bf = tt.do_bench(lambda: lin(x), rep=60)
        ref, _ = w8a_gemm(x, t, layer.qdata, layer.scale, None, 128)
        t_pkg = tt.do_bench(lambda: w8a_gemm(x, t, layer.qdata, layer.scale, None, 128), rep=60)
        out = torch.empty(4096, n, device="cuda", dtype=torch.bfloat16)
        res = []
        for bm, bn, w, st in ((128, 64, 8, 4), (128, 64, 8, 3), (128, 128, 8, 3),
                              (64, 128, 4, 4), (128, 64, 4, 4)):
            def f():
                grid = (triton.cdiv(4096, bm) * triton.cdiv(n, 2 * bn),)
                _split_kernel[grid](t.counts8, layer.qdata, layer.scale, t.vth, out, 4096, n, k,
                                    t.counts8.stride(0), layer.qdata.stride(0),
                                    layer.scale.stride(0), out.stride(0), BM=bm, BN=bn, BK=128,
                                    GROUP_M=8, num_warps=w, num_stages=st)
            try:
                f()
                ok = torch.allclose(out.float(), ref.float(), rtol=1e-2, atol=1e-2)
                res.append(f"{bm}x2x{bn} w{w} s{st}: {tt.do_bench(f, rep=60) / t_bf:.2f}x ok={ok}")
            except Exception as e:  # noqa: BLE001
                res.append(f"{bm}x2x{bn} w{w} s{st}: {type(e).__name__}")
        print(f"{k}->{n}: package {t_pkg / t_bf:.2f}x  " + "  ".join(res), flush=True)


if __name__ == "__main__":
    main()
