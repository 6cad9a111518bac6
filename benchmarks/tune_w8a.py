"""Tile-shape sweep of the Triton spiking-linear kernels on the GPU (chooses
``w8a_gemm_triton._launch_config``): threshold kernel and GEMM timed apart, as ratios to BF16.

    python benchmarks/tune_w8a.py [--tokens 4096,1] [--spike]
"""

from __future__ import annotations

import argparse

import torch
import triton.testing as tt
from torch import nn

from spikingbrain.converter import SpikeConfig, SpikingLinear

SHAPES = {"qo": (3584, 3584), "kv": (3584, 512), "gate/up": (3584, 18944), "down": (18944, 3584)}
# (BM, BN, warps, stages); every program computes two BM x BN tiles
BIG = [(128, 64, 8, 4), (128, 64, 8, 3), (128, 32, 8, 4), (128, 64, 8, 5), (64, 64, 4, 4),
       (256, 64, 16, 3), (128, 128, 8, 3)]
SMALL = [(16, 16, 4, 4), (16, 32, 4, 4), (16, 8, 4, 4), (16, 16, 2, 6), (16, 16, 4, 6),
         (16, 64, 4, 4)]


def probe() -> None:
    """Plain int8 dot (one scale per row: no per-group flush) against the group kernel, and
    whether the compiled kernel uses Hopper's wgmma instructions."""
    from spikingbrain.kernels.threshold_triton import threshold_counts
    from spikingbrain.kernels.w8a_gemm_triton import GemmWeights, _w8a_kernel, w8a_gemm_tuning

    for k, n in ((3584, 18944), (18944, 3584)):
        lin = nn.Linear(k, n, bias=False, device="cuda", dtype=torch.bfloat16)
        x = torch.randn(4096, k, device="cuda", dtype=torch.bfloat16)
        t = threshold_counts(x, 3.0)
        t_bf = tt.do_bench(lambda: lin(x), rep=60)
        for gran in ("group", "channel"):
            layer = SpikingLinear.from_linear(lin, SpikeConfig(granularity=gran))
            for bm, bn, w, st in ((128, 128, 8, 4), (128, 256, 8, 3), (128, 128, 4, 4)):
                cfg = dict(BM=bm, BN=bn, GROUP_M=8, num_warps=w, num_stages=st)
                w = GemmWeights(layer.qdata, layer.scale, None, layer.group_size)
                f = lambda: w8a_gemm_tuning(x, t, w, config=cfg)  # noqa: E731
                print(f"{k}->{n} {gran:7s} {bm}x{bn} w{w} s{st}: "
                      f"{tt.do_bench(f, rep=60) / t_bf:.2f}x bf16", flush=True)
    a = torch.randint(-3, 4, (4096, 3584), device="cuda", dtype=torch.int8)
    b = torch.randint(-3, 4, (18944, 3584), device="cuda", dtype=torch.int8)
    bf = a.to(torch.bfloat16)
    lin = nn.Linear(3584, 18944, bias=False, device="cuda", dtype=torch.bfloat16)
    print("torch._int_mm / bf16:", tt.do_bench(lambda: torch._int_mm(a, b.t()), rep=60)
          / tt.do_bench(lambda: lin(bf), rep=60))
    for key, kern in list(_w8a_kernel.device_caches[0][0].items())[:2]:
        ptx = kern.asm.get("ptx", "")
        print("compiled variant uses wgmma:", "wgmma" in ptx, " mma.sync:", "mma.sync" in ptx)


def pair_sweep(tokens: int) -> None:
    """Tile shapes of the two-tile kernel at one token count."""
    from spikingbrain.kernels.threshold_triton import threshold_counts
    from spikingbrain.kernels.w8a_gemm_triton import GemmWeights, w8a_gemm, w8a_gemm_tuning

    for name, (k, n) in SHAPES.items():
        lin = nn.Linear(k, n, bias=False, device="cuda", dtype=torch.bfloat16)
        layer = SpikingLinear.from_linear(lin, SpikeConfig())
        x = torch.randn(tokens, k, device="cuda", dtype=torch.bfloat16)
        t = threshold_counts(x, 3.0)
        t_bf = tt.do_bench(lambda: lin(x), rep=60)
        w = GemmWeights(layer.qdata, layer.scale, None, 128)
        res = [f"default {tt.do_bench(lambda: w8a_gemm(x, t, w), rep=60) / t_bf:.2f}x"]
        for bm, bn, w, st in ((64, 64, 4, 4), (64, 32, 4, 4), (64, 64, 4, 3), (128, 32, 8, 4),
                              (128, 64, 8, 4)):
            pc = dict(BM=bm, BN=bn, GROUP_M=8, num_warps=w, num_stages=st)
            f = lambda: w8a_gemm_tuning(x, t, w, config=dict(  # noqa: E731
                BM=128, BN=128, GROUP_M=8, num_warps=8, num_stages=4), pair_config=pc)
            res.append(f"{bm}x2x{bn} w{w} s{st}: {tt.do_bench(f, rep=60) / t_bf:.2f}x")
        print(f"M={tokens} {name:8s} bf16 {t_bf * 1e3:6.1f} us  " + "  ".join(res), flush=True)


def main() -> None:
    from spikingbrain.kernels.threshold_triton import threshold_counts
    from spikingbrain.kernels.w8a_gemm_triton import GemmWeights, w8a_gemm_tuning

    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="4096,1")
    ap.add_argument("--spike", action="store_true")
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--pair", action="store_true", help="sweep the two-tile kernel's tiles")
    args = ap.parse_args()
    if args.probe:
        return probe()
    if args.pair:
        for m in [int(v) for v in args.tokens.split(",")]:
            pair_sweep(m)
        return
    for m in [int(t) for t in args.tokens.split(",")]:
        graph = m <= 16
        bench = (lambda f: tt.do_bench_cudagraph(f, rep=30)) if graph else \
            (lambda f: tt.do_bench(f, rep=60))
        for name, (k, n) in SHAPES.items():
            lin = nn.Linear(k, n, bias=False, device="cuda", dtype=torch.bfloat16)
            layer = SpikingLinear.from_linear(lin, SpikeConfig())
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            t_bf = bench(lambda: lin(x))
            t = threshold_counts(x, 3.0)
            t_thr = bench(lambda: threshold_counts(x, 3.0))
            res = []
            for bm, bn, w, st in (SMALL if m <= 16 else BIG):
                cfg = dict(BM=bm, BN=bn, GROUP_M=8 if m > 16 else 1, num_warps=w, num_stages=st)
                try:
                    w = GemmWeights(layer.qdata, layer.scale, None, 128)
                    tg = bench(lambda: w8a_gemm_tuning(
                        x, t, w, "bitwise_bidirectional" if args.spike else None, config=cfg))
                    res.append((tg / t_bf, f"{bm}x2x{bn} w{w} s{st}"))
                except Exception as e:  # noqa: BLE001 - out of shared memory etc.
                    res.append((float("inf"), f"{bm}x{bn} w{w} s{st} FAILED {type(e).__name__}"))
            res.sort()
            print(f"M={m:5d} {name:8s} bf16 {t_bf * 1e3:7.1f} us  threshold {t_thr / t_bf:.2f}x  "
                  + "  ".join(f"{r:.2f}x[{c}]" for r, c in res[:4]), flush=True)


if __name__ == "__main__":
    main()
