"""Classic neurons: multi-step LIF throughput against baselines run in the same process.

Prints, for forward and forward+backward over ``xs [T, batch, features]``, the time of
``lif_multistep`` and its ratio against (a) looping the public ``lif_step`` (the same math, one
validated call per step) and (b) spikingjelly's ``LIFNode(step_mode="m")`` (torch backend), when
installed. Usage: ``python benchmarks/neurons.py [--T 64 --batch 32 --features 1024 --device cpu]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from _timing import measure

from spikingbrain.neurons.functional import lif_multistep, lif_step
from spikingbrain.neurons.params import LIFParams


def timeit(fn: Callable[[], object], device: str, repeat: int = 5) -> float:
    return measure(fn, device, repeat, reduce=min)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--features", type=int, default=1024)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dev = args.device
    xs = torch.rand(args.T, args.batch, args.features, device=dev) * 2.5
    p = LIFParams(tau_mem=3.0)

    def ours(backward: bool) -> Callable[[], object]:
        def run() -> None:
            x = xs.clone().requires_grad_(backward)
            s, _ = lif_multistep(x, None, p)
            if backward:
                s.sum().backward()

        return run

    def looped(backward: bool) -> Callable[[], object]:
        def run() -> None:
            x = xs.clone().requires_grad_(backward)
            st, out = None, []
            for x_t in x.unbind(0):
                s, st = lif_step(x_t, st, p)
                out.append(s)
            if backward:
                torch.stack(out).sum().backward()

        return run

    baselines: dict[str, Callable[[bool], Callable[[], object]]] = {"looped lif_step": looped}
    try:
        from spikingjelly.activation_based import neuron, surrogate

        node = neuron.LIFNode(
            tau=3.0, v_reset=None, surrogate_function=surrogate.ATan(), step_mode="m"
        ).to(dev)

        def sj(backward: bool) -> Callable[[], object]:
            def run() -> None:
                node.reset()
                x = xs.clone().requires_grad_(backward)
                s = node(x)
                if backward:
                    s.sum().backward()

            return run

        baselines["spikingjelly LIFNode"] = sj
    except ImportError:
        print("spikingjelly not installed: skipping that baseline")

    shape = f"T={args.T}, batch={args.batch}, features={args.features}, device={dev}"
    print(f"LIF multi-step, soft reset, atan surrogate; {shape}")
    for backward in (False, True):
        what = "forward+backward" if backward else "forward"
        t_ours = timeit(ours(backward), dev)
        line = f"{what:>17}: lif_multistep {t_ours * 1e3:8.2f} ms"
        for name, make in baselines.items():
            t = timeit(make(backward), dev)
            line += f" | {name} {t * 1e3:8.2f} ms ({t / t_ours:.2f}x)"
        print(line)


if __name__ == "__main__":
    main()
