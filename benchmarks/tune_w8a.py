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
BIG = [(128, 128, 8, 3), (128, 128, 4, 4), (128, 256, 8, 3), (256, 128, 8, 3), (64, 256, 4, 4),
       (128, 64, 4, 4), (128, 128, 8, 4)]
SMALL = [(16, 16, 4, 4), (16, 32, 4, 4), (16, 64, 4, 4), (16, 16, 2, 6), (16, 32, 4, 6),
         (16, 128, 4, 4)]


def main() -> None:
    from spikingbrain.kernels.threshold_triton import threshold_counts
    from spikingbrain.kernels.w8a_gemm_triton import w8a_gemm

    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="4096,1")
    ap.add_argument("--spike", action="store_true")
    args = ap.parse_args()
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
                    tg = bench(lambda: w8a_gemm(x, t, layer.qdata, layer.scale, None, 128,
                                                "bitwise_bidirectional" if args.spike else None,
                                                config=cfg))
                    res.append((tg / t_bf, f"{bm}x{bn} w{w} s{st}"))
                except Exception as e:  # noqa: BLE001 - out of shared memory etc.
                    res.append((float("inf"), f"{bm}x{bn} w{w} s{st} FAILED {type(e).__name__}"))
            res.sort()
            print(f"M={m:5d} {name:8s} bf16 {t_bf * 1e3:7.1f} us  threshold {t_thr / t_bf:.2f}x  "
                  + "  ".join(f"{r:.2f}x[{c}]" for r, c in res[:4]), flush=True)


if __name__ == "__main__":
    main()
