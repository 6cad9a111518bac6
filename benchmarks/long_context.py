"""Time to first token at long context: SpikingBrain-7B (GLA + sliding-window attention,
flash-linear-attention kernels) against a Qwen2.5-7B-shaped Transformer (transformers' Qwen2,
SDPA attention), both BF16 with random weights, one GPU, one process.

    python benchmarks/long_context.py --lengths 8192,32768,131072 --out OUT_DIR
    python benchmarks/long_context.py --lengths 262144,524288,1048576 --qwen-max 524288  # H200

TTFT is one CUDA-synchronised prefill over the whole prompt with a KV / state cache and only
the last token's logits (``logits_to_keep=1``), after a warm-up. SpikingBrain-7B prefills in
chunks of ``prefill_chunk_tokens`` (8192) through its constant-size cache; the Transformer is
chunked too above ``--qwen-chunk-above`` tokens (its MLP activations of a 512k-token pass alone
would not fit one H200), ``--qwen-chunk`` tokens at a time through its KV cache. Lengths above
``--qwen-max`` are not run for the Transformer (its time grows quadratically: about 400 s at
1M tokens on an H100-class GPU); the table then gives a quadratic extrapolation from the two
longest measured lengths, marked as such. Prints a table and, with ``--out``, writes
``long_context.json`` and ``long_context.png`` (time and ratio vs length).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def _ttft(model, length: int, vocab: int, chunk: int = 0) -> float:
    ids = torch.randint(10, vocab - 10, (1, length), device="cuda")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
        if chunk and length > chunk:  # a Transformer's chunked prefill through its KV cache
            from transformers import DynamicCache

            cache = DynamicCache(config=model.config)
            for s in range(0, length, chunk):
                model(input_ids=ids[:, s:s + chunk], past_key_values=cache, use_cache=True,
                      logits_to_keep=1)
        else:
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def _qwen2_7b():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                      num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                      max_position_embeddings=262144, rope_theta=1e6, rms_norm_eps=1e-6,
                      tie_word_embeddings=False, torch_dtype=torch.bfloat16)
    cfg._attn_implementation = "sdpa"
    with torch.device("cuda"):
        torch.set_default_dtype(torch.bfloat16)
        try:
            m = Qwen2ForCausalLM(cfg).eval()
        finally:
            torch.set_default_dtype(torch.float32)
    return m


def main() -> None:
    from spikingbrain.models.build import random_model
    from spikingbrain.models.gla_swa import GLAswaConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="8192,32768,131072")
    ap.add_argument("--out", default=None)
    ap.add_argument("--qwen-max", type=int, default=1 << 30,
                    help="longest prompt run for the Transformer (longer: extrapolated)")
    ap.add_argument("--qwen-chunk", type=int, default=16384)
    ap.add_argument("--qwen-chunk-above", type=int, default=262144)
    args = ap.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}", flush=True)
    rows = {n: {"tokens": n} for n in lengths}
    sb_cfg = GLAswaConfig()
    # warm-up past two prefill chunks: the chunks after the first run kernels (state carried
    # in, window over the cache) that compile and autotune on first use
    warm = {"spikingbrain_7b": 2 * sb_cfg.prefill_chunk_tokens + 1024, "qwen2_7b": 4096}
    for name, build in (("spikingbrain_7b", lambda: random_model(
            sb_cfg, dtype=torch.bfloat16, device="cuda")), ("qwen2_7b", _qwen2_7b)):
        model = build().eval()
        _ttft(model, warm[name], 150000)
        for n in lengths:
            if name == "qwen2_7b" and n > args.qwen_max:
                continue
            torch.cuda.reset_peak_memory_stats()
            chunk = args.qwen_chunk if name == "qwen2_7b" and n > args.qwen_chunk_above else 0
            try:
                t = _ttft(model, n, 150000, chunk)
                rows[n][name + "_s"] = t
                rows[n][name + "_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            except torch.OutOfMemoryError:
                rows[n][name + "_s"] = None
                torch.cuda.empty_cache()
            print(json.dumps({"model": name, **rows[n]}), flush=True)
        del model
        torch.cuda.empty_cache()
    _extrapolate(rows)
    print(f"{'tokens':>8} {'SpikingBrain-7B s':>18} {'Qwen2-7B s':>11} {'Qwen2 / SB':>10}")
    for n, r in rows.items():
        a, b = r.get("spikingbrain_7b_s"), r.get("qwen2_7b_s")
        if b is None:
            b = r.get("qwen2_7b_s_extrapolated")
        r["ratio_qwen2_over_spikingbrain"] = b / a if a and b else None
        print(f"{n:>8} {a if a else float('nan'):>18.3f} {b if b else float('nan'):>11.3f} "
              f"{r['ratio_qwen2_over_spikingbrain'] or float('nan'):>10.2f}")
    if args.out:
        _save(list(rows.values()), Path(args.out))


def _extrapolate(rows: dict) -> None:
    """Transformer TTFT beyond the measured lengths: ``t = a n + b n^2`` through the two
    longest measured points (linear layers plus quadratic attention), stored as
    ``qwen2_7b_s_extrapolated``."""
    done = sorted(n for n, r in rows.items() if r.get("qwen2_7b_s"))
    if len(done) < 2:
        return
    (n1, n2) = done[-2:]
    t1, t2 = rows[n1]["qwen2_7b_s"], rows[n2]["qwen2_7b_s"]
    b = (t2 / n2 - t1 / n1) / (n2 - n1)
    a = t1 / n1 - b * n1
    for n, r in rows.items():
        if n > n2 and r.get("qwen2_7b_s") is None:
            r["qwen2_7b_s_extrapolated"] = a * n + b * n * n


def _save(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "long_context.json").write_text(json.dumps(rows, indent=2))
    n = [r["tokens"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("spikingbrain_7b_s", "SpikingBrain-7B (GLA + SWA)"),
                       ("qwen2_7b_s", "Qwen2.5-7B-shaped (SDPA)")):
        a1.plot(n, [r.get(key) for r in rows], "o-", label=label)
    extra = [(r["tokens"], r["qwen2_7b_s_extrapolated"]) for r in rows
             if r.get("qwen2_7b_s_extrapolated")]
    if extra:
        a1.plot(*zip(*extra), "x--", color="C1", label="Qwen2.5-7B-shaped, extrapolated")
    a1.set(xscale="log", yscale="log", xlabel="prompt tokens", ylabel="time to first token (s)",
           title="TTFT, BF16, one GPU")
    a1.legend()
    a2.plot(n, [r.get("ratio_qwen2_over_spikingbrain") for r in rows], "o-", color="C2")
    a2.set(xscale="log", xlabel="prompt tokens", ylabel="Qwen2 TTFT / SpikingBrain TTFT",
           title="speed-up of SpikingBrain-7B")
    a2.axhline(1, color="grey", lw=0.5)
    fig.tight_layout()
    fig.savefig(out / "long_context.png", dpi=120)


if __name__ == "__main__":
    main()
