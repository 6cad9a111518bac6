"""Whole-model prefill of the full-size SpikingBrain-7B on one GPU, one process: a public-layout
W8ASpike folder loaded with its exact codes (int16 where ~1 % lie beyond int8), the same model
with every code clamped into int8 (the all-int8 model), and a BF16 model of the same shape.

    python benchmarks/prefill_gpu.py --folder PUBLIC_W8ASPIKE_FOLDER --tokens 4096
    python benchmarks/prefill_gpu.py --synthetic --tokens 4096   # no folder: 1 % of the codes
                                                                 # of a random model moved out

Prints the time of each (median of ``--reps`` CUDA-synchronised prefills after a warm-up) and
the ratios the issues ask for: int16-code model / all-int8 model, and W8ASpike / BF16.
Random weights: speed only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def prefill_time(model, tokens: int, reps: int) -> float:
    ids = torch.randint(10, 30000, (1, tokens), device="cuda",
                        generator=torch.Generator("cuda").manual_seed(0))
    with torch.no_grad():
        model(input_ids=ids[:, :512], use_cache=True, logits_to_keep=1)  # warm-up
        model(input_ids=ids, use_cache=True, logits_to_keep=1)
        times = []
        for _ in range(reps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def clamp_codes_to_int8(model) -> int:
    """Every int16 code layer -> int8 codes (clamped); returns how many layers changed."""
    from spikingbrain.converter import SpikingLinear

    n = 0
    for m in model.modules():
        if isinstance(m, SpikingLinear) and m.qdata.dtype != torch.int8:
            m.qdata = m.qdata.clamp(-128, 127).to(torch.int8)
            n += 1
    return n


def codes_beyond_int8(model, frac: float = 0.01, seed: int = 0) -> int:
    """Move ``frac`` of every spiking layer's codes beyond int8 (to +-128..383, random places,
    stored int16 as public checkpoints load); returns the layers changed."""
    from spikingbrain.converter import SpikingLinear

    g = torch.Generator(device="cuda").manual_seed(seed)
    n = 0
    for m in model.modules():
        if isinstance(m, SpikingLinear):
            q = m.qdata.to(torch.int16)
            pick = torch.rand(q.shape, device=q.device, generator=g) < frac
            mag = torch.randint(128, 384, q.shape, device=q.device, generator=g,
                                dtype=torch.int16)
            q = torch.where(pick, torch.where(q >= 0, mag, -mag), q)
            m.qdata = q
            n += 1
    return n


def main() -> None:
    from spikingbrain.converter import SpikeConfig
    from spikingbrain.models.build import random_model
    from spikingbrain.models.checkpoint import load_w8aspike_folder
    from spikingbrain.models.gla_swa import GLAswaConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", default=None)
    ap.add_argument("--synthetic", action="store_true",
                    help="no folder: a random full-size W8ASpike model, 1 %% of its codes "
                         "moved beyond int8")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    if args.synthetic:
        from spikingbrain.models.build import random_w8aspike_model

        model = random_w8aspike_model(GLAswaConfig(), SpikeConfig(mode="count"), device="cuda",
                                      dtype=torch.bfloat16)
        codes_beyond_int8(model)
    elif args.folder:
        model = load_w8aspike_folder(args.folder, SpikeConfig(mode="count"), device="cuda",
                                     dtype=torch.bfloat16)
    else:
        raise SystemExit("give --folder PUBLIC_W8ASPIKE_FOLDER or --synthetic")
    torch.cuda.synchronize()
    n16 = sum(1 for m in model.modules() if getattr(m, "qdata", None) is not None
              and m.qdata.dtype == torch.int16)
    print(f"loaded in {time.perf_counter() - t0:.0f} s: {n16} layers keep int16 codes", flush=True)
    r = {"tokens": args.tokens}
    r["w8aspike_int16_codes_s"] = prefill_time(model, args.tokens, args.reps)
    print(json.dumps(r), flush=True)
    r["layers_clamped"] = clamp_codes_to_int8(model)
    r["w8aspike_all_int8_s"] = prefill_time(model, args.tokens, args.reps)
    print(json.dumps(r), flush=True)
    del model
    torch.cuda.empty_cache()
    bf16 = random_model(GLAswaConfig(), dtype=torch.bfloat16, device="cuda").eval()
    r["bf16_s"] = prefill_time(bf16, args.tokens, args.reps)
    r["int16_over_int8"] = r["w8aspike_int16_codes_s"] / r["w8aspike_all_int8_s"]
    r["all_int8_over_bf16"] = r["w8aspike_all_int8_s"] / r["bf16_s"]
    r["int16_over_bf16"] = r["w8aspike_int16_codes_s"] / r["bf16_s"]
    print("RESULT " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
