"""Time to first token at long context: SpikingBrain-7B (GLA + sliding-window attention,
flash-linear-attention kernels) against a Qwen2.5-7B-shaped Transformer (transformers' Qwen2,
SDPA attention), both BF16 with random weights, one GPU, one process.

    python benchmarks/long_context.py --lengths 8192,32768,131072 --out OUT_DIR

TTFT is one CUDA-synchronised forward over the whole prompt with a KV / state cache and only
the last token's logits (``logits_to_keep=1``), after a warm-up. Prints a table and, with
``--out``, writes ``long_context.json`` and ``long_context.png`` (time and ratio vs length).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def _ttft(model, length: int, vocab: int) -> float:
    ids = torch.randint(10, vocab - 10, (1, length), device="cuda")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
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
            torch.cuda.reset_peak_memory_stats()
            try:
                t = _ttft(model, n, 150000)
                rows[n][name + "_s"] = t
                rows[n][name + "_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            except torch.OutOfMemoryError:
                rows[n][name + "_s"] = None
                torch.cuda.empty_cache()
            print(json.dumps({"model": name, **rows[n]}), flush=True)
        del model
        torch.cuda.empty_cache()
    print(f"{'tokens':>8} {'SpikingBrain-7B s':>18} {'Qwen2-7B s':>11} {'Qwen2 / SB':>10}")
    for n, r in rows.items():
        a, b = r.get("spikingbrain_7b_s"), r.get("qwen2_7b_s")
        r["ratio_qwen2_over_spikingbrain"] = b / a if a and b else None
        print(f"{n:>8} {a if a else float('nan'):>18.3f} {b if b else float('nan'):>11.3f} "
              f"{r['ratio_qwen2_over_spikingbrain'] or float('nan'):>10.2f}")
    if args.out:
        _save(list(rows.values()), Path(args.out))


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
