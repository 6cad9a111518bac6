"""Decoding speed of the full-size SpikingBrain-7B on one GPU, batch 1: eager cached steps
against the static-buffer step replayed as a CUDA graph, in BF16 and as W8ASpike (count mode),
beside transformers' Qwen2 at Qwen2.5-7B shape with its static cache and a compiled step, and
the bandwidth floor (bytes read per token over the copy bandwidth measured in this process).

    python benchmarks/decode_gpu.py --prompt 1024 --new 128 [--models bf16,w8aspike,qwen2]

Random weights: the figures measure speed, not quality. Exactness: the greedy tokens of the
static step are compared with the eager cached generation of the same model (printed as the
fraction of equal tokens; random-weight logits can tie in bf16, where the two summation orders
may pick different tokens).
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def copy_bandwidth() -> float:
    """Bytes per second of a large device-to-device copy (bytes read + bytes written)."""
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    reps = 20
    for _ in range(reps):
        b.copy_(a)
    torch.cuda.synchronize()
    return 2 * n * reps / (time.perf_counter() - t0)


def bytes_per_token(model) -> int:
    """Weight bytes one decode step reads: every parameter and buffer except the embedding
    table (one row is read) -- and the fixed-size cache is added by the caller."""
    total = 0
    emb = model.get_input_embeddings().weight
    seen = set()
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        if t is emb:
            total += emb.shape[1] * emb.element_size()
        else:
            total += t.numel() * t.element_size()
    return total


def time_static(model, ids, new: int) -> dict:
    from spikingbrain.models.static_decode import StaticDecoder

    dec = StaticDecoder(model, batch=ids.shape[0])
    with torch.no_grad():
        dec.generate(ids, max_new_tokens=4, eos_token_id=None)  # capture + warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        dec.prefill(ids)
        torch.cuda.synchronize()
        prefill = time.perf_counter() - t0
        dec.tokens.fill_(11)
        for _ in range(5):
            dec.step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(new):
            dec.step()
        torch.cuda.synchronize()
        step = (time.perf_counter() - t0) / new
        out = dec.generate(ids, max_new_tokens=new, eos_token_id=None)
    return {"static_ms_per_token": step * 1e3, "prefill_s": prefill, "tokens": out}


def time_eager(model, ids, new: int) -> dict:
    with torch.no_grad():
        model.generate(ids, max_new_tokens=2, do_sample=False, use_static=False)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new, do_sample=False, use_static=False,
                             eos_token_id=None)
        torch.cuda.synchronize()
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        model(input_ids=ids, use_cache=True, logits_to_keep=1)
        torch.cuda.synchronize()
        pre = time.perf_counter() - t0
    return {"eager_ms_per_token": (total - pre) / max(new - 1, 1) * 1e3, "tokens": out}


def run_spikingbrain(kind: str, args, bw: float) -> dict:
    from spikingbrain.converter import SpikeConfig
    from spikingbrain.models.build import random_model, random_w8aspike_model
    from spikingbrain.models.gla_swa import GLAswaConfig

    cfg = GLAswaConfig()
    if kind == "bf16":
        model = random_model(cfg, dtype=torch.bfloat16, device="cuda")
    else:
        model = random_w8aspike_model(cfg, SpikeConfig(mode="count"), device="cuda",
                                      dtype=torch.bfloat16)
    model.eval()
    ids = torch.randint(10, 30000, (1, args.prompt), device="cuda",
                        generator=torch.Generator("cuda").manual_seed(0))
    st = time_static(model, ids, args.new)
    ea = time_eager(model, ids, args.eager_new)
    n = args.eager_new
    same = (st["tokens"][0, args.prompt:args.prompt + n] ==
            ea["tokens"][0, args.prompt:args.prompt + n]).float().mean().item()
    nbytes = bytes_per_token(model)
    r = {"model": f"SpikingBrain-7B {kind}", "static_ms_per_token": st["static_ms_per_token"],
         "eager_ms_per_token": ea["eager_ms_per_token"], "prefill_s": st["prefill_s"],
         "greedy_tokens_equal_to_eager": same, "weight_bytes_per_token": nbytes,
         "floor_ms_per_token": nbytes / bw * 1e3}
    del model
    torch.cuda.empty_cache()
    return r


def run_qwen2(args, bw: float) -> dict:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                      num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                      max_position_embeddings=32768, rope_theta=1e6, tie_word_embeddings=False)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16).eval()
    # transformers compiles the decode step itself for a static cache (its auto-compile),
    # with CUDA graphs; compiling forward by hand as well reuses graph outputs across steps
    model.generation_config.cache_implementation = "static"
    ids = torch.randint(10, 30000, (1, args.prompt), device="cuda")
    with torch.no_grad():
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=None)
        compile_s = time.perf_counter() - t0
        model.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=None)
        timings = []
        for new in (args.new // 4, args.new):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=new, do_sample=False, eos_token_id=None)
            torch.cuda.synchronize()
            timings.append((new, time.perf_counter() - t0))
    (n1, t1), (n2, t2) = timings
    per = (t2 - t1) / (n2 - n1)  # prefill cancels out
    nbytes = bytes_per_token(model)
    r = {"model": "Qwen2 (Qwen2.5-7B shape) bf16, static cache, compiled",
         "ms_per_token": per * 1e3, "compile_and_first_s": compile_s,
         "weight_bytes_per_token": nbytes, "floor_ms_per_token": nbytes / bw * 1e3}
    del model
    torch.cuda.empty_cache()
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompt", type=int, default=1024)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--eager-new", type=int, default=32)
    ap.add_argument("--models", default="bf16,w8aspike,qwen2")
    args = ap.parse_args()
    bw = copy_bandwidth()
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, copy bandwidth "
          f"{bw / 1e12:.2f} TB/s", flush=True)
    rows = []
    for kind in args.models.split(","):
        try:
            r = run_qwen2(args, bw) if kind == "qwen2" else run_spikingbrain(kind, args, bw)
        except Exception as err:  # noqa: BLE001 - report and go on
            import traceback

            traceback.print_exc()
            r = {"model": kind, "error": repr(err)}
        print("RESULT " + json.dumps(r), flush=True)
        rows.append(r)
    print("\n| model | static graph ms/token | eager ms/token | floor ms/token |")
    print("|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | error | | |")
            continue
        st = r.get("static_ms_per_token", r.get("ms_per_token"))
        print(f"| {r['model']} | {st:.2f} | {r.get('eager_ms_per_token', float('nan')):.2f} | "
              f"{r['floor_ms_per_token']:.2f} |")


if __name__ == "__main__":
    main()
