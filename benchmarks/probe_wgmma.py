"""Probe of the Hopper Gluon GEMM (``spikingbrain.kernels.w8a_wgmma_gluon``) against the Triton
kernels, BF16 and cuBLAS ``_int_mm``: exactness first, then time / BF16 time per tile config.

    python benchmarks/probe_wgmma.py [--tokens 4096,16384] [--quick]

Exactness: the Gluon output (float32) is compared with the Triton kernel's on the same counts
(bit for bit where the float operations are the same, else the largest difference) and with
the CPU layer on a slice of tokens; a token with counts beyond int8 checks that its block is
left to the general kernel.
"""

from __future__ import annotations

import argparse
import time

import torch
import triton.testing as tt
from torch import nn

from spikingbrain.converter import SpikeConfig, SpikingLinear

SHAPES = {"q/o": (3584, 3584), "k/v": (3584, 512), "gate/up": (3584, 18944),
          "down": (18944, 3584)}
CONFIGS = [dict(BM=128, BN=128, STAGES=4, GROUP_M=8, num_warps=8, MAGIC=True),
           dict(BM=128, BN=128, STAGES=4, GROUP_M=8, num_warps=8, MAGIC=False),
           dict(BM=128, BN=64, STAGES=4, GROUP_M=8, num_warps=4, MAGIC=True),
           dict(BM=128, BN=64, STAGES=4, GROUP_M=8, num_warps=4, MAGIC=False),
           dict(BM=128, BN=64, STAGES=3, GROUP_M=8, num_warps=4, MAGIC=False),
           dict(BM=128, BN=64, STAGES=5, GROUP_M=8, num_warps=4, MAGIC=False),
           dict(BM=128, BN=64, STAGES=4, GROUP_M=4, num_warps=4, MAGIC=False),
           dict(BM=128, BN=64, STAGES=4, GROUP_M=8, num_warps=8, MAGIC=False),
           dict(BM=64, BN=128, STAGES=4, GROUP_M=8, num_warps=4, MAGIC=False)]

def _host_us(f, n: int = 50) -> float:
    """Microseconds of CPU per call of ``f`` (Python and launches; the GPU runs behind)."""
    f()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    host = (time.perf_counter() - t0) / n * 1e6
    torch.cuda.synchronize()
    return host


def _name(cfg) -> str:
    return (f"{cfg['BM']}x{cfg['BN']} s{cfg['STAGES']} g{cfg['GROUP_M']} w{cfg['num_warps']}"
            f"{' magic' if cfg['MAGIC'] else ''}")


def _guarded(f):
    """``f()``, or the error's first line (a config that does not compile or run)."""
    try:
        return f()
    except Exception as e:  # noqa: BLE001 - a probe reports and goes on
        return f"FAILED {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"


def _check(layer, x, t, scale_t, config: dict | None = None) -> str:
    from spikingbrain.kernels.w8a_gemm_triton import GemmWeights, w8a_gemm_tuning
    from spikingbrain.kernels.w8a_wgmma_gluon import w8a_gemm_wgmma

    ref, _ = w8a_gemm_tuning(x, t, GemmWeights.of(layer),
                             out_dtype=torch.float32, config=dict(BM=128, BN=128, GROUP_M=8,
                                                           num_warps=8, num_stages=3))
    out = torch.full_like(ref, float("nan"))
    w8a_gemm_wgmma(t.counts8, layer.qdata, scale_t, t.vth, t.absmax, layer.bias, out,
                   config=config)
    fast = (t.absmax.view(-1, 128) <= 127).all(1).repeat_interleave(128)[: len(out)]
    unwritten = int(torch.isnan(out[fast]).any(1).sum())
    d = (out[fast] - ref[fast]).abs()
    rel = float(d.max() / ref[fast].abs().max())
    same = float((out[fast] == ref[fast]).float().mean())
    skipped_ok = bool(torch.isnan(out[~fast]).all()) if (~fast).any() else True
    return (f"unwritten rows {unwritten}, bit-equal {same:.4f}, max rel diff {rel:.2e}, "
            f"blocks beyond int8 left alone: {skipped_ok}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", default="4096,16384")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    from spikingbrain.kernels.threshold_triton import threshold_counts
    from spikingbrain.kernels.w8a_gemm_triton import GemmWeights, w8a_gemm, w8a_gemm_tuning
    from spikingbrain.kernels.w8a_wgmma_gluon import WGMMA_CONFIG, w8a_gemm_wgmma

    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    for m in [int(v) for v in args.tokens.split(",")]:
        for name, (k, n) in SHAPES.items():
            torch.manual_seed(0)
            lin = nn.Linear(k, n, bias=True, device="cuda", dtype=torch.bfloat16)
            layer = SpikingLinear.from_linear(lin, SpikeConfig(kernel="triton",
                                                               check_finite=False))
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            x[200, 3] = 300.0  # counts beyond int8 in block 1
            t = threshold_counts(x, 3.0)
            scale_t = layer.scale.t().contiguous()
            if m == 4096:
                print(f"  check {name}: {_check(layer, x, t, scale_t)}", flush=True)
                for cfg in [c for c in CONFIGS if c != WGMMA_CONFIG] if not args.quick else []:
                    print(f"  check {name} {_name(cfg)}: "
                          f"{_guarded(lambda: _check(layer, x, t, scale_t, config=cfg))}", flush=True)
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            t = threshold_counts(x, 3.0)
            out = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
            t_bf = tt.do_bench(lambda: lin(x), rep=80)
            w = GemmWeights.of(layer)
            w_t = GemmWeights(layer.qdata, layer.scale, layer.bias, 128, scale_t=scale_t)
            t_tri = tt.do_bench(lambda: w8a_gemm_tuning(x, t, w, hopper=False), rep=80)
            t_disp = tt.do_bench(lambda: w8a_gemm(x, t, w_t), rep=80)
            t_layer = tt.do_bench(lambda: layer(x), rep=80)
            a8 = t.counts8
            t_mm = tt.do_bench(lambda: torch._int_mm(a8, layer.qdata.t()), rep=80)
            res = [f"triton {t_tri / t_bf:.2f}x", f"dispatched {t_disp / t_bf:.2f}x",
                   f"layer {t_layer / t_bf:.2f}x", f"_int_mm {t_mm / t_bf:.2f}x"]
            for cfg in [WGMMA_CONFIG] if args.quick else CONFIGS:
                f = lambda: w8a_gemm_wgmma(t.counts8, layer.qdata, scale_t, t.vth,  # noqa: E731
                                           t.absmax, layer.bias, out, config=cfg)
                res.append(f"{_name(cfg)} {_guarded(lambda: f'{tt.do_bench(f, rep=80) / t_bf:.2f}x')}")
            spike = SpikingLinear.from_linear(lin, SpikeConfig(mode="spike", kernel="triton",
                                                               check_finite=False))
            T = int(t.absmax.max()).bit_length()
            t_sp = tt.do_bench(lambda: spike(x), rep=40)
            res.append(f"spike(T={T}) {t_sp / t_bf:.1f}x = {t_sp / (T * t_mm):.2f} T*int_mm")
            res.append(f"host {_host_us(lambda: layer(x)):.0f} us/call")
            print(f"M={m} {name:8s} bf16 {t_bf * 1e3:7.1f} us  " + "  ".join(res), flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
