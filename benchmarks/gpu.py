"""SpikingLinear on the GPU: the Triton kernels against BF16, the public fake-quant
formulation and the unfused torch path, SpikingBrain-7B projection shapes, one process.

    python benchmarks/gpu.py --section layers          # prefill 1k/4k/16k, decode 1 and 8
    python benchmarks/gpu.py --section layers --quick  # 4k prefill and batch-1 decode only
    python benchmarks/gpu.py --section int16           # int16-code layers vs all-int8 ones

``int16``: the same layer with all-int8 codes and with 1 % of its codes moved beyond int8
(+-128..383, random places, stored int16 as public W8ASpike checkpoints load), count mode,
time of the int16-code layer over the int8 one (the issue's bound: 1.15x on an H100), and
both over BF16; the outputs are checked against each other's integer arithmetic first.

Every time is the median of ``triton.testing.do_bench`` (prefill) or of
``do_bench_cudagraph`` (decode, M <= 8: kernels replayed from a CUDA graph, for BF16 and for
ours alike, since launch overhead dominates there). Ratios are times over the BF16
``F.linear`` time in the same process (< 1: faster than BF16).

Columns: ``count``: our count mode (threshold kernel + fused INT8 GEMM); ``spike``: spike mode
(bit planes of the sign-magnitude trains) and ``T x int8``: its time over T times one
``torch._int_mm`` of the same shape (the must-show bound is 1.5); ``public``: the public
W8ASpike formulation (weights fake-quantised per call, inputs spiked one time step at a time,
float GEMM); ``torch``: our previous count mode (torch ``_int_mm`` per group, unfused epilogue).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

SHAPES = {"q_proj/o_proj": (3584, 3584), "k_proj/v_proj": (3584, 512),
          "gate/up_proj": (3584, 18944), "down_proj": (18944, 3584)}


def public_fake_quant(x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor,
                      group: int = 128, k: float = 3.0) -> torch.Tensor:
    """The public W8ASpike QuantLinear forward, as its code does it: fake-quantised fp32
    weights (rounded per call, not clipped), bitwise sign-magnitude spikes of ``x`` emitted
    and summed one time step at a time in float32, then a float GEMM."""
    n, kk = weight.shape
    w = (torch.round(weight.view(n, kk // group, group) / scales) * scales).view(n, kk)
    xf = x.float()
    vth = (xf.abs().mean(-1, keepdim=True) / k).clamp(1e-5, 1e4)
    c = torch.round(xf / vth)
    T = max(int(c.abs().max()).bit_length(), 1)
    sign, rest, acc = torch.sign(c), c.abs(), torch.zeros_like(c)
    for t in range(T):
        wt = 2.0 ** (T - 1 - t)
        s = (rest >= wt).float()
        rest = rest - s * wt
        acc = acc + wt * s * sign
    return F.linear((acc * vth).to(x.dtype), w.to(x.dtype))


def _bench(fn, graph: bool) -> float:
    import triton.testing as tt

    return (tt.do_bench_cudagraph(fn, rep=50) if graph else tt.do_bench(fn, rep=100))


def _layers(tokens_list, shapes, want_public: bool = True):
    from spikingbrain.converter import SpikeConfig, SpikingLinear

    rows = []
    for m in tokens_list:
        for name, (k, n) in shapes.items():
            torch.manual_seed(0)
            lin = nn.Linear(k, n, bias=False, device="cuda", dtype=torch.bfloat16)
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            layers = {mode: SpikingLinear.from_linear(lin, SpikeConfig(
                mode=mode, kernel=kern, check_finite=False))
                for mode, kern in (("count", "triton"), ("spike", "triton"))}
            torch_count = SpikingLinear.from_linear(lin, SpikeConfig(kernel="torch"))
            graph = m <= 16
            t_bf16 = _bench(lambda: lin(x), graph)
            t_count = _bench(lambda: layers["count"](x), graph)
            t_spike = _bench(lambda: layers["spike"](x), graph)
            c = torch.round(x.float() / (x.float().abs().mean(-1, keepdim=True) / 3))
            T = int(c.abs().max()).bit_length()
            row = dict(tokens=m, layer=name, shape=f"{k}->{n}", bf16_ms=t_bf16,
                       count=t_count / t_bf16, spike=t_spike / t_bf16, T=T)
            if m > 16:
                a8 = c.clamp(-127, 127).to(torch.int8)
                t_mm = _bench(lambda: torch._int_mm(a8, layers["count"].qdata.t()), False)
                row["spike_vs_T_int8"] = t_spike / (T * t_mm)
                row["int_mm"] = t_mm / t_bf16
            if want_public:
                w = lin.weight.float()
                scales = layers["count"].scale.view(n, -1, 1)
                t_pub = _bench(lambda: public_fake_quant(x, w, scales), False)
                row["public"] = t_pub / t_bf16
                row["count_vs_public_speedup"] = t_pub / t_count
            if m <= 4096:
                row["torch"] = _bench(lambda: torch_count(x), False) / t_bf16
            rows.append(row)
            print(_fmt(row), flush=True)
            torch.cuda.empty_cache()
    return rows


def with_int16_codes(layer, frac: float = 0.01, seed: int = 0):
    """A copy of ``layer`` with ``frac`` of its codes moved beyond int8 (int16 ``qdata``)."""
    import copy

    g = torch.Generator(device=layer.qdata.device).manual_seed(seed)
    out = copy.deepcopy(layer)
    q = out.qdata.to(torch.int16)
    big = torch.rand(q.shape, generator=g, device=q.device) < frac
    n = int(big.sum())
    mag = torch.randint(128, 384, (n,), generator=g, device=q.device, dtype=torch.int16)
    sign = torch.where(torch.rand(n, generator=g, device=q.device) < 0.5, -1, 1)
    q[big] = mag * sign.to(torch.int16)
    out.qdata = q
    return out


def _int16_rows(tokens_list, shapes, frac: float):
    from spikingbrain.converter import SpikeConfig, SpikingLinear
    from spikingbrain.kernels.spiking_linear_triton import unsupported_reason

    rows = []
    for m in tokens_list:
        for name, (k, n) in shapes.items():
            torch.manual_seed(0)
            lin = nn.Linear(k, n, bias=False, device="cuda", dtype=torch.bfloat16)
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            l8 = SpikingLinear.from_linear(lin, SpikeConfig(kernel="triton", check_finite=False))
            l16 = with_int16_codes(l8, frac)
            if unsupported_reason(l16, x) is not None:
                raise SystemExit(f"int16 layer not on the kernels: {unsupported_reason(l16, x)}")
            # exactness first: the int16 layer against the torch path on a few tokens
            ref = SpikingLinear.from_linear(lin, SpikeConfig(kernel="torch"))
            ref.qdata = l16.qdata
            xs = x[:64]
            err = float((l16(xs).float() - ref(xs).float()).abs().max()
                        / ref(xs).float().abs().max())
            graph = m <= 16
            t_bf16 = _bench(lambda: lin(x), graph)
            t8 = _bench(lambda: l8(x), graph)
            t16 = _bench(lambda: l16(x), graph)
            row = dict(tokens=m, layer=name, shape=f"{k}->{n}", bf16_us=t_bf16 * 1e3,
                       int8=t8 / t_bf16, int16=t16 / t_bf16, int16_vs_int8=t16 / t8,
                       frac=float((l16.qdata.abs() > 127).float().mean()), rel_err=err)
            rows.append(row)
            print(f"{m:>6} {name:<14} {row['shape']:<12} bf16 {row['bf16_us']:8.1f} us  "
                  f"int8 codes {row['int8']:.2f}x  int16 codes ({100 * row['frac']:.2f} % "
                  f"beyond int8) {row['int16']:.2f}x  int16/int8 {row['int16_vs_int8']:.2f}"
                  f"  (vs torch path: max rel diff {err:.1e})", flush=True)
            torch.cuda.empty_cache()
    return rows


def _fmt(row: dict) -> str:
    parts = [f"{row['tokens']:>6}", f"{row['layer']:<14}", f"{row['shape']:<12}",
             f"bf16 {row['bf16_ms'] * 1e3:8.1f} us", f"count {row['count']:.2f}x",
             f"spike {row['spike']:.2f}x (T={row['T']})"]
    if "spike_vs_T_int8" in row:
        parts.append(f"spike/(T x int8) {row['spike_vs_T_int8']:.2f}")
    if "public" in row:
        parts.append(f"public {row['public']:.1f}x  count is {row['count_vs_public_speedup']:.0f}x"
                     f" faster than public")
    if "torch" in row:
        parts.append(f"old torch count {row['torch']:.1f}x")
    return "  ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--section", default="layers", choices=["layers", "int16"])
    ap.add_argument("--frac", type=float, default=0.01,
                    help="int16 section: fraction of codes beyond int8")
    ap.add_argument("--quick", action="store_true", help="4k prefill and batch-1 decode only")
    ap.add_argument("--tokens", default=None, help="comma-separated token counts")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA device (run it on the GPU machine)")
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    tokens = [int(t) for t in args.tokens.split(",")] if args.tokens else (
        [4096, 1] if args.quick else [1, 8, 1024, 4096, 16384])
    print("ratios: time / BF16 F.linear time (prefill do_bench; decode M<=16 CUDA graphs)")
    if args.section == "int16":
        _int16_rows(tokens, SHAPES, args.frac)
        return
    _layers(tokens, SHAPES)


if __name__ == "__main__":
    main()
