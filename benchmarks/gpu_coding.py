"""GPU spike coders: encode + decode of 16M counts, achieved bandwidth against HBM, one process.

    python benchmarks/gpu_coding.py [--n 16777216]

Counts uniform within +-60 (the bitwise schemes' minimal window: T = 6 for the magnitude
schemes, 7 for two's complement), int8 and int32 inputs. Times are medians of
``triton.testing.do_bench`` through the public ``encode`` / ``decode`` (argument checks
included). Bandwidth counts the minimal traffic: encode reads the counts and writes the
train, decode reads the train and writes int32 counts; it is given as a fraction of a
same-process device copy (``clone`` of 1 GiB) and of the H100's 3.35 TB/s spec. ``torch path``:
the previous GPU coder (eight-lane torch ops), same process.
"""

from __future__ import annotations

import argparse

import torch
import triton.testing as tt

from spikingbrain.coding import codec, decode, encode
from spikingbrain.coding.schemes import get_scheme
from spikingbrain.kernels.coding_triton import decode_flat, encode_flat

SCHEMES = ("bitwise", "bitwise_bidirectional", "bitwise_twos_complement")


def _copy_bandwidth() -> float:
    """Bytes per second of a device-to-device ``clone`` of 1 GiB (read + write)."""
    big = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    return 2 * big.numel() / (tt.do_bench(lambda: big.clone(), rep=100) * 1e-3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1 << 24)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_coding.py needs a CUDA device")
    copy_bw = _copy_bandwidth()
    print(f"device: {torch.cuda.get_device_name()}  copy bandwidth {copy_bw / 1e12:.2f} TB/s")
    print(f"{'scheme':<24} {'input':<6} {'T':>2} {'encode us':>9} {'decode us':>9} "
          f"{'enc+dec TB/s':>12} {'of copy':>7} {'of 3.35':>7} {'torch path x':>12}")
    g = torch.Generator(device="cuda").manual_seed(0)
    for scheme in SCHEMES:
        spec = get_scheme(scheme)
        for dtype in (torch.int8, torch.int32):
            c = torch.randint(-60, 61, (args.n,), device="cuda", generator=g).to(dtype)
            if not spec.signed:
                c = c.abs()
            s = encode(c, scheme)
            assert torch.equal(decode(s, scheme).to(dtype), c)
            T = s.shape[0]
            t_enc = tt.do_bench(lambda: encode(c, scheme), rep=100)
            t_dec = tt.do_bench(lambda: decode(s, scheme), rep=100)
            nbytes = args.n * (c.element_size() + T) + args.n * (T + 4)
            bw = nbytes / ((t_enc + t_dec) * 1e-3)
            saved = list(codec._GPU_CODERS)
            codec._GPU_CODERS[:] = [None]  # the previous torch path
            try:
                t_old = tt.do_bench(lambda: decode(encode(c, scheme), scheme), rep=50)
            finally:
                codec._GPU_CODERS[:] = saved
            # the kernels alone (no argument checks, no read-back of min / max or error flag)
            flat = c.to(torch.int8) if dtype == torch.int8 else c
            t_ke = tt.do_bench(lambda: encode_flat(flat, spec, T), rep=100)
            t_kd = tt.do_bench(lambda: decode_flat(s, spec, torch.int32), rep=100)
            bw_k = nbytes / ((t_ke + t_kd) * 1e-3)
            print(f"{scheme:<24} {str(dtype)[6:]:<6} {T:>2} {t_enc * 1e3:>9.1f} "
                  f"{t_dec * 1e3:>9.1f} {bw / 1e12:>12.2f} {bw / copy_bw:>7.0%} "
                  f"{bw / 3.35e12:>7.0%} {t_old / (t_enc + t_dec):>11.1f}x   kernels only: "
                  f"{t_ke * 1e3:.1f} + {t_kd * 1e3:.1f} us, {bw_k / copy_bw:.0%} of copy",
                  flush=True)


if __name__ == "__main__":
    main()
