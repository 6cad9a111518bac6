"""Encode+decode throughput of every scheme against the naive per-time-step float32 loop.

Counts come from the adaptive-threshold neuron (k=3) applied to heavy-tailed synthetic
activations, so they are distributed like real spike counts (mostly |c| <= 15, a thin tail).
The baseline is spikingbrain.coding.reference (one Python step per time step over float32
tensors with an allclose integrality check, as the public reference works); both run in this
process on the same counts, and the printed figure is the ratio.

    python benchmarks/coding.py                 # 16M counts on CPU
    python benchmarks/coding.py --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse

import torch
from _timing import measure

from spikingbrain.coding import decode, encode, get_scheme, min_steps, scheme_names
from spikingbrain.coding.reference import reference_decode, reference_encode
from spikingbrain.neurons import adaptive_threshold


def realistic_counts(n: int, hidden: int, device: str, seed: int = 0) -> torch.Tensor:
    """Counts of the k=3 neuron on Student-t (df=4) activations: heavy-tailed like LLM states."""
    torch.manual_seed(seed)  # StudentT samples from the global generator
    g = torch.Generator(device="cpu").manual_seed(seed)
    tokens = max(n // hidden, 1)
    x = torch.distributions.StudentT(4.0).sample((tokens, hidden))
    x = x * (1 + torch.rand(tokens, 1, generator=g))  # token-to-token scale differences
    counts, _ = adaptive_threshold(x.to(device), k=3.0)
    return counts.to(torch.int32).flatten()[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=16 * 2**20, help="number of counts (default 16M)")
    ap.add_argument("--hidden", type=int, default=3584, help="hidden size per token")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-repeats", type=int, default=1)
    ap.add_argument("--baseline-memory", type=int, default=4 << 30,
                    help="bytes the float32 baseline may hold at once (default 4 GiB); it is "
                    "split into chunks of elements only when it would need more")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--skip-dtypes", action="store_true",
                    help="skip the int8 / int32 / int64 cases at 4M and 16M counts")
    ap.add_argument("--dtypes-only", action="store_true",
                    help="run only the int8 / int32 / int64 cases")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.dtypes_only:
        return dtype_cases(args)
    signed = realistic_counts(args.n, args.hidden, args.device)
    a = signed.abs()
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(
        f"{signed.numel():,} counts: |c|<=7 {(a <= 7).float().mean():.3f}, |c|<=15 "
        f"{(a <= 15).float().mean():.3f}, |c|>16 {(a > 16).float().mean():.4f}, "
        f"max |c| {int(a.max())}, mean |c| {a.float().mean():.2f}"
    )
    header = f"{'scheme':<25} {'T':>3} {'baseline chunks':>15} {'ours Mcounts/s':>15} {'loop Mcounts/s':>15} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for scheme in scheme_names():
        counts = signed if get_scheme(scheme).signed else a
        T = min_steps(counts, scheme)

        def ours(counts=counts, scheme=scheme, T=T):
            out = decode(encode(counts, scheme, T=T), scheme)
            assert out.shape == counts.shape

        # the reference works on the whole tensor, as the public code does; only where its
        # float32 trains (list + stacked copy) would not fit the memory budget is it chunked
        chunk = max(args.baseline_memory // (8 * max(T, 1)), 1 << 16)

        def loop(counts=counts, scheme=scheme, T=T, chunk=chunk):
            for part in counts.split(chunk):
                reference_decode(reference_encode(part, scheme, T), scheme)

        ours()  # warm-up
        assert torch.equal(decode(encode(counts, scheme, T=T), scheme), counts.to(torch.int32))
        t_ours = measure(ours, args.device, args.repeats, warmup=False)
        t_loop = measure(loop, args.device, args.baseline_repeats, warmup=False)
        n = counts.numel() / 1e6
        chunks = -(-counts.numel() // chunk)
        print(f"{scheme:<25} {T:>3} {chunks:>15} {n / t_ours:>15.1f} {n / t_loop:>15.1f} {t_loop / t_ours:>6.1f}x")
    if not args.skip_dtypes:
        dtype_cases(args)


def dtype_cases(args) -> None:
    """bitwise_bidirectional encode + decode of counts uniform within +-60 held in int8, int32
    and int64, 4M and 16M counts: ratio to the reference loop (best of the repeats)."""
    print(f"\nbitwise_bidirectional, counts uniform in [-60, 60], by input dtype "
          f"(best of {args.repeats}; reference best of {args.baseline_repeats})")
    print(f"{'counts':>8} {'dtype':<6} {'ours ms':>8} {'loop ms':>8} {'ratio':>7}")
    g = torch.Generator().manual_seed(1)
    for n in (4 * 2**20, 16 * 2**20):
        base = torch.randint(-60, 61, (n,), generator=g).to(args.device)
        for dtype in (torch.int8, torch.int32, torch.int64):
            c = base.to(dtype)
            T = min_steps(c, "bitwise_bidirectional")
            assert torch.equal(decode(encode(c, "bitwise_bidirectional"), "bitwise_bidirectional"),
                               c.to(torch.int32))
            t_ours = measure(lambda: decode(encode(c, "bitwise_bidirectional"),  # noqa: B023
                                            "bitwise_bidirectional"), args.device,
                             args.repeats, reduce=min)
            t_loop = measure(lambda: reference_decode(reference_encode(  # noqa: B023
                c, "bitwise_bidirectional", T), "bitwise_bidirectional"), args.device,
                args.baseline_repeats, reduce=min)
            print(f"{n // 2**20:>7}M {str(dtype)[6:]:<6} {t_ours * 1e3:>8.1f} "
                  f"{t_loop * 1e3:>8.1f} {t_loop / t_ours:>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
