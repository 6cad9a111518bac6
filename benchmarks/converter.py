"""SpikingLinear forward time as ratios against nn.Linear and fake mode, same process.

Run: .venv/bin/python benchmarks/converter.py [--tokens 512] [--repeats 10]
Shapes: MiniLM-like (384 -> 1536) and a 7B-like slice (3584 -> 1024), per-channel and
group-128 weights. Prints median times and ratios; no absolute-time assertion anywhere.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--repeats", type=int, default=10)
    a = p.parse_args()
    from rich.console import Console
    from rich.table import Table

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


if __name__ == "__main__":
    main()
