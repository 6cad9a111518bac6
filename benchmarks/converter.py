"""SpikingLinear forward time as ratios against nn.Linear and fake mode, same process.

Run: .venv/bin/python benchmarks/converter.py [--tokens 512] [--repeats 10] [--gemm-only]
Shapes: MiniLM-like (384 -> 1536) and a 7B-like slice (3584 -> 1024), per-channel and
group-128 weights. Prints median times and ratios; no absolute-time assertion anywhere.

A second table compares the CPU count-mode GEMMs at the demo's MiniLM shapes: the exact fp32
float path and ``torch._int_mm`` (both through ``count_accumulators``) against fp32
``F.linear``. Emulate a CPU without VNNI with ``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from spikingbrain.converter import SpikeConfig, SpikingLinear


def _best_ms(fns: dict, repeats: int) -> dict:
    """Minimum time of each function over interleaved rounds (robust on a shared machine)."""
    times: dict = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: min(v) * 1e3 for k, v in times.items()}


def gemm_table(tokens: int, repeats: int):
    """float path / int path / raw ``_int_mm`` / fp32 F.linear at MiniLM's projection shapes
    (one group per row, counts |c| <= 15 as the k = 3 neuron gives them, int8 codes). The int
    path avoids ``_int_mm`` where it would be inexact (then it is an fp64 GEMM)."""
    import os

    import torch.nn.functional as F
    from rich.table import Table

    from spikingbrain.converter.kernels import (
        CPU_GEMM_ENV,
        count_accumulators,
        cpu_gemm_backend,
        reference_accumulators,
    )

    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL")
    old = os.environ.get(CPU_GEMM_ENV)
    table = Table(title=f"CPU count-mode GEMM, {tokens} tokens, "
                        f"ATen {torch.backends.cpu.get_cpu_capability()}, oneDNN ISA {isa}, "
                        f"auto -> {cpu_gemm_backend()} (best of {repeats} interleaved rounds)")
    for col in ("shape", "F.linear ms", "float ms", "int ms", "raw _int_mm ms",
                "float / F.linear", "int / F.linear", "raw _int_mm / float", "_int_mm exact"):
        table.add_column(col, justify="right")
    g = torch.Generator().manual_seed(0)
    try:
        for inp, out in ((384, 384), (384, 1536), (1536, 384)):
            c = torch.randint(-15, 16, (tokens, inp), generator=g).float()
            q = torch.randint(-127, 128, (out, inp), generator=g, dtype=torch.int8)
            wf = q.float()
            col = c.abs().amax(0)

            def run(backend, c=c, q=q, col=col, inp=inp):
                os.environ[CPU_GEMM_ENV] = backend
                return count_accumulators(c, q, inp, col_absmax=col, code_absmax=127)

            ref = reference_accumulators(c, q, inp)
            for backend in ("float", "int"):
                assert torch.equal(run(backend).long(), ref)
            c8 = c.to(torch.int8)
            raw_exact = torch.equal(torch._int_mm(c8, q.t()).long(), ref[..., 0])
            with torch.no_grad():
                t = _best_ms({"linear": lambda c=c, wf=wf: F.linear(c, wf),
                              "float": lambda run=run: run("float"),
                              "int": lambda run=run: run("int"),
                              "raw": lambda c8=c8, q=q: torch._int_mm(c8, q.t())}, repeats)
            table.add_row(f"{tokens}x{inp} @ {inp}x{out}", f"{t['linear']:.2f}",
                          f"{t['float']:.2f}", f"{t['int']:.2f}", f"{t['raw']:.2f}",
                          f"{t['float'] / t['linear']:.2f}x", f"{t['int'] / t['linear']:.2f}x",
                          f"{t['raw'] / t['float']:.2f}x", "yes" if raw_exact else "NO")
    finally:
        if old is None:
            os.environ.pop(CPU_GEMM_ENV, None)
        else:
            os.environ[CPU_GEMM_ENV] = old
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--gemm-only", action="store_true",
                   help="only the CPU GEMM table (float path vs _int_mm vs F.linear)")
    a = p.parse_args()
    from rich.console import Console
    from rich.table import Table

    if a.gemm_only:
        Console(width=150).print(gemm_table(a.tokens, a.repeats))
        return

    torch.manual_seed(0)
    table = Table(title=f"SpikingLinear forward, {a.tokens} tokens, "
                        f"{torch.get_num_threads()} threads (best of {a.repeats} interleaved rounds)")
    for col in ("shape", "weights", "float ms", "fake / float", "count / float",
                "spike / float", "count / fake", "spike / fake", "spike T"):
        table.add_column(col, justify="right")
    for inp, out in ((384, 1536), (3584, 1024)):
        lin = nn.Linear(inp, out)
        x = torch.randn(a.tokens, inp)
        for gran in ("channel", "group"):
            cfg = SpikeConfig(granularity=gran)
            layers = {m: SpikingLinear.from_linear(lin, cfg.replace(mode=m))
                      for m in ("fake", "count", "spike")}
            with torch.no_grad():
                fns = {"float": lambda lin=lin, x=x: lin(x)}
                fns.update({m: (lambda m=m, ls=layers, x=x: ls[m](x)) for m in layers})
                t = _best_ms(fns, a.repeats)
                t_float = t["float"]
                assert torch.equal(layers["count"](x), layers["spike"](x))
            counts, _, _ = layers["count"].spike_counts(x)
            T = int(counts.abs().max()).bit_length()
            table.add_row(f"{inp}->{out}", gran if gran == "channel" else "group 128",
                          f"{t_float:.2f}", f"{t['fake'] / t_float:.2f}x",
                          f"{t['count'] / t_float:.2f}x", f"{t['spike'] / t_float:.2f}x",
                          f"{t['count'] / t['fake']:.2f}x", f"{t['spike'] / t['fake']:.2f}x",
                          str(T))
    Console(width=150).print(table)
    Console(width=150).print(gemm_table(a.tokens, a.repeats))


if __name__ == "__main__":
    main()
