"""Full-size SpikingBrain models on a GPU: flash-linear-attention against our GLA reference,
the 7B (random weights) prefill + decode in BF16 and as W8ASpike, the 76B as W8ASpike on one
GPU and in BF16 across GPUs (accelerate device_map).

    python benchmarks/models_gpu.py --stage fla,7b          # one H100 / H200
    python benchmarks/models_gpu.py --stage 76b-int8        # one H200 (INT8 weights)
    python benchmarks/models_gpu.py --stage 76b-bf16        # two H200 (device_map="auto")

Each stage prints as it finishes (times from CUDA-synchronised wall clocks, peak memory from
torch.cuda.max_memory_allocated, energy from NVML's total-energy counter where available) and
catches its own failure so later stages still run. Weights are random: the figures measure
speed and memory, not quality.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback

import torch


def _sync() -> None:
    for i in range(torch.cuda.device_count()):
        torch.cuda.synchronize(i)


class _Energy:
    """NVML total-energy counter (mJ) summed over the visible GPUs; None without NVML."""

    def __init__(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            n = torch.cuda.device_count()
            self.h = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]
            self.nv = pynvml
        except Exception:  # noqa: BLE001 - any NVML problem: no energy column
            self.h = None

    def read(self) -> float | None:
        if not self.h:
            return None
        return sum(self.nv.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.h) / 1000.0


def _timed(fn, energy: _Energy):
    _sync()
    e0, t0 = energy.read(), time.perf_counter()
    out = fn()
    _sync()
    t, e1 = time.perf_counter() - t0, energy.read()
    return out, t, (e1 - e0) if e0 is not None and e1 is not None else None


def stage_fla() -> dict:
    from spikingbrain.models.ops.gla import gla, gla_chunked

    torch.manual_seed(0)
    B, H, L, D = 1, 4, 512, 128
    q, k, v = (torch.randn(B, H, L, D, device="cuda") * 0.3 for _ in range(3))
    log_g = torch.nn.functional.logsigmoid(torch.randn(B, H, L, D, device="cuda")) / 16
    h0 = torch.randn(B, H, D, D, device="cuda") * 0.1
    res = {}
    leaves = [t.clone().requires_grad_() for t in (q, k, v, log_g, h0)]
    outs = {}
    for name, fn in (("reference", lambda *a, **kw: gla_chunked(*a, chunk_size=64, **kw)),
                     ("fla_chunk", lambda *a, **kw: gla(*a, backend="fla", **kw))):
        for t in leaves:
            t.grad = None
        o, s = fn(*leaves[:4], initial_state=leaves[4], output_final_state=True)
        (o.float().square().sum() + s.float().square().sum()).backward()
        outs[name] = (o.detach().float(), s.detach().float(), [t.grad.float() for t in leaves])
    ref, got = outs["reference"], outs["fla_chunk"]

    def rel(a, b):
        return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))

    res["out_rel_err"] = rel(got[0], ref[0])
    res["state_rel_err"] = rel(got[1], ref[1])
    res["grad_rel_err"] = max(rel(a, b) for a, b in zip(got[2], ref[2]))
    o1, _ = gla(q[:, :, :1], k[:, :, :1], v[:, :, :1], log_g[:, :, :1], initial_state=h0,
                backend="fla")
    o2, _ = gla(q[:, :, :1], k[:, :, :1], v[:, :, :1], log_g[:, :, :1], initial_state=h0,
                backend="recurrent")
    res["fused_recurrent_rel_err"] = rel(o1.float(), o2.float())
    return res


def _run_model(model, name: str, prompt: int, decode: int, energy: _Energy,
               max_decode_s: float) -> dict:
    torch.cuda.reset_peak_memory_stats()
    dev = next(model.parameters()).device
    ids = torch.randint(10, 1000, (1, prompt), device=dev)
    with torch.no_grad():
        model(input_ids=ids[:, :128], use_cache=True)  # warm-up (kernels, autotuning)
        out, t_pre, e_pre = _timed(lambda: model(input_ids=ids, use_cache=True), energy)
        cache = out.past_key_values
        nxt = out.logits[:, -1:].argmax(-1)
        steps, t0 = 0, time.perf_counter()
        e0 = energy.read()
        _sync()
        while steps < decode and time.perf_counter() - t0 < max_decode_s:
            o = model(input_ids=nxt, past_key_values=cache, use_cache=True)
            cache, nxt = o.past_key_values, o.logits[:, -1:].argmax(-1)
            steps += 1
        _sync()
        t_dec = time.perf_counter() - t0
        e_dec = energy.read() - e0 if e0 is not None else None
    r = {"model": name, "prompt_tokens": prompt, "prefill_s": t_pre,
         "prefill_tok_per_s": prompt / t_pre, "decoded_tokens": steps,
         "decode_s_per_token": t_dec / max(steps, 1),
         "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
         "prefill_j_per_token": e_pre / prompt if e_pre is not None else None,
         "decode_j_per_token": e_dec / max(steps, 1) if e_dec is not None else None}
    print(json.dumps(r), flush=True)
    return r


def stage_7b(args, variants=("bf16", "w8aspike")) -> list:
    from spikingbrain.converter import SpikeConfig
    from spikingbrain.models.build import random_model, random_w8aspike_model
    from spikingbrain.models.gla_swa import GLAswaConfig

    cfg = GLAswaConfig()
    rows = []
    energy = _Energy()
    if "bf16" in variants:
        t0 = time.perf_counter()
        m = random_model(cfg, dtype=torch.bfloat16, device="cuda")
        _sync()
        n = sum(p.numel() for p in m.parameters())
        print(f"7B bf16 built in {time.perf_counter() - t0:.1f} s: {n / 1e9:.2f} B parameters, "
              f"{torch.cuda.memory_allocated() / 2**30:.1f} GiB", flush=True)
        rows.append(_run_model(m, "7B bf16", args.prompt, args.decode, energy,
                               args.max_decode_s))
        del m
        torch.cuda.empty_cache()
    if "w8aspike" not in variants:
        return rows
    m = random_w8aspike_model(cfg, SpikeConfig(mode="count"), device="cuda",
                              dtype=torch.bfloat16)
    print(f"7B W8ASpike built: {torch.cuda.memory_allocated() / 2**30:.1f} GiB", flush=True)
    rows.append(_run_model(m, "7B W8ASpike count", args.prompt, args.decode, energy,
                           args.max_decode_s))
    return rows


def stage_76b_int8(args) -> dict:
    from spikingbrain.converter import SpikeConfig
    from spikingbrain.models.build import random_w8aspike_model
    from spikingbrain.models.hybrid import SpikingBrainMoEConfig

    cfg = SpikingBrainMoEConfig()
    t0 = time.perf_counter()
    m = random_w8aspike_model(cfg, SpikeConfig(mode="count"), device="cuda", dtype=torch.bfloat16)
    _sync()
    built = time.perf_counter() - t0
    print(f"76B W8ASpike built on one GPU in {built:.0f} s: "
          f"{torch.cuda.memory_allocated() / 2**30:.1f} GiB", flush=True)
    ids = torch.randint(10, 1000, (1, args.prompt_76b), device="cuda")
    energy = _Energy()
    with torch.no_grad():
        out, t, e = _timed(lambda: m(input_ids=ids, use_cache=False), energy)
    r = {"model": "76B W8ASpike count (1 GPU)", "tokens": args.prompt_76b, "forward_s": t,
         "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
         "finite": bool(torch.isfinite(out.logits).all()),
         "j_per_token": e / args.prompt_76b if e is not None else None}
    print(json.dumps(r), flush=True)
    return r


def stage_76b_bf16(args) -> dict:
    from spikingbrain.models.build import random_model
    from spikingbrain.models.hybrid import SpikingBrainMoEConfig

    cfg = SpikingBrainMoEConfig()
    n_gpu = torch.cuda.device_count()
    t0 = time.perf_counter()
    m = random_model(cfg, dtype=torch.bfloat16, device_map="auto",
                     max_memory={i: "130GiB" for i in range(n_gpu)})
    _sync()
    used = [torch.cuda.memory_allocated(i) / 2**30 for i in range(n_gpu)]
    print(f"76B bf16 dispatched over {n_gpu} GPUs in {time.perf_counter() - t0:.0f} s: "
          f"{[round(u, 1) for u in used]} GiB", flush=True)
    ids = torch.randint(10, 1000, (1, args.prompt_76b), device="cuda:0")
    energy = _Energy()
    with torch.no_grad():
        out, t, e = _timed(lambda: m(input_ids=ids, use_cache=False), energy)
    r = {"model": f"76B bf16 device_map=auto ({n_gpu} GPUs)", "tokens": args.prompt_76b,
         "forward_s": t, "finite": bool(torch.isfinite(out.logits).all()),
         "peak_mem_gib_per_gpu": [torch.cuda.max_memory_allocated(i) / 2**30
                                  for i in range(n_gpu)],
         "j_per_token": e / args.prompt_76b if e is not None else None}
    print(json.dumps(r), flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", default="fla,7b")
    ap.add_argument("--prompt", type=int, default=4096)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--max-decode-s", type=float, default=90.0)
    ap.add_argument("--prompt-76b", type=int, default=512)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)} x "
          f"{torch.cuda.device_count()}", flush=True)
    stages = {"fla": lambda: stage_fla(), "7b": lambda: stage_7b(args),
              "7b-w8": lambda: stage_7b(args, ("w8aspike",)),
              "76b-int8": lambda: stage_76b_int8(args), "76b-bf16": lambda: stage_76b_bf16(args)}
    for name in args.stage.split(","):
        print(f"== {name}", flush=True)
        try:
            res = stages[name]()
            print(f"RESULT {name}: {json.dumps(res)}", flush=True)
        except Exception:  # noqa: BLE001 - report and go on with the next stage
            traceback.print_exc()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
