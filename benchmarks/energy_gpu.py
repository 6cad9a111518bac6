"""Measured GPU energy of the full-size SpikingBrain-7B (random weights) in BF16 and as
W8ASpike (count mode, Triton kernels), next to every estimator's figure for the same run.

    python benchmarks/energy_gpu.py [--prompt 4096 --decode 16]

Energy comes from NVML (spikingbrain.analysis.power: the driver's energy counter, and board
power sampled every 5 ms and integrated, both printed) around a CUDA-synchronised prefill of
``--prompt`` tokens and ``--decode`` single-token steps. The W8ASpike prefill is then run once
more with observers on every SpikingLinear to measure the spike rates of this run (spikes per
channel under bitwise sign-magnitude, non-zero fraction, window), which feed the estimators.
Estimators are chip models: they leave out the GPU's idle power, the attention and GLA
products, embeddings and the output head, which the measurement includes.
"""

from __future__ import annotations

import argparse
import json

import torch


def _measure(model, ids, decode: int) -> dict:
    from spikingbrain.analysis.power import measure_energy

    sync = torch.cuda.synchronize
    state = {}

    def prefill():
        with torch.no_grad():
            state["out"] = model(input_ids=ids, use_cache=True, logits_to_keep=1)

    pre = measure_energy(prefill, ids.shape[1], synchronize=sync)

    def steps():
        out = state["out"]
        cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        with torch.no_grad():
            for _ in range(decode):
                o = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                cache, nxt = o.past_key_values, o.logits[:, -1:].argmax(-1)

    dec = measure_energy(steps, decode, synchronize=sync)
    return {"prefill": pre.to_dict(), "decode": dec.to_dict()}


def _measured_workloads(model, ids) -> list:
    """LayerWorkloads with the spike rates of one monitored prefill (bitwise sign-magnitude:
    a count c emits popcount(|c|) spikes)."""
    from spikingbrain.analysis.estimators import LayerWorkload
    from spikingbrain.converter import SpikingLinear

    acc: dict[str, list] = {}
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, SpikingLinear):
            acc[name] = [0, 0, 0, 0, mod]  # tokens, spikes, nonzero, window sum

            def obs(m, rec, name=name):
                c = rec.counts.reshape(-1, rec.counts.shape[-1]).abs().to(torch.int32)
                bits = torch.zeros_like(c)
                for b in range(16):
                    bits += (c >> b) & 1
                a = acc[name]
                a[0] += c.shape[0]
                a[1] += int(bits.sum())
                a[2] += int((c > 0).sum())
                a[3] += int(c.amax(1).clamp_min(1).float().log2().floor().add(1).sum())
            handles.append(mod.add_spike_observer(obs))
    with torch.no_grad():
        model(input_ids=ids, use_cache=False, logits_to_keep=1)
    for h in handles:
        h.remove()
    out = []
    for name, (tok, spikes, nz, win, mod) in acc.items():
        if not tok:
            continue
        out.append(LayerWorkload(
            name, mod.in_features, mod.out_features, mod.group_size, tok,
            spikes / (tok * mod.in_features), nz / (tok * mod.in_features),
            steps=win / tok, has_bias=mod.bias is not None, source="measured"))
    return out


def main() -> None:
    from spikingbrain.analysis.estimators import estimate, estimator_names
    from spikingbrain.converter import SpikeConfig
    from spikingbrain.models.build import random_model, random_w8aspike_model
    from spikingbrain.models.gla_swa import GLAswaConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt", type=int, default=4096)
    ap.add_argument("--decode", type=int, default=16)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/energy_gpu.py needs a CUDA GPU with NVML")
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}", flush=True)
    cfg = GLAswaConfig()
    ids = torch.randint(10, 150000, (1, args.prompt), device="cuda")
    res = {}
    m = random_model(cfg, dtype=torch.bfloat16, device="cuda")
    with torch.no_grad():
        m(input_ids=ids[:, :256], use_cache=True)  # warm-up
    res["bf16"] = _measure(m, ids, args.decode)
    del m
    torch.cuda.empty_cache()
    m = random_w8aspike_model(cfg, SpikeConfig(mode="count"), device="cuda")
    with torch.no_grad():
        m(input_ids=ids[:, :256], use_cache=True)
    res["w8aspike"] = _measure(m, ids, args.decode)
    ws = _measured_workloads(m, ids)
    rates = {"spikes_per_channel": sum(w.spikes_per_channel * w.dense_macs_per_token for w in ws)
             / sum(w.dense_macs_per_token for w in ws),
             "nonzero_per_channel": sum(w.nonzero_per_channel for w in ws) / len(ws)}
    print(json.dumps({"measured": res, "measured_rates_mac_weighted": rates}), flush=True)
    print("\n| what | J per token (prefill) | J per token (decode) |")
    print("|---|---|---|")
    for key, label in (("bf16", "measured: H100, BF16"),
                       ("w8aspike", "measured: H100, W8ASpike count mode (Triton)")):
        r = res[key]
        print(f"| {label} | {r['prefill']['joules_per_token']:.4g} (sampled "
              f"{r['prefill']['joules_sampled'] / args.prompt:.4g}) | "
              f"{r['decode']['joules_per_token']:.4g} (sampled "
              f"{r['decode']['joules_sampled'] / args.decode:.4g}) |")
    for name in estimator_names():
        est = estimate(ws, name)
        for regime in est.regimes:
            print(f"| estimator {name}, {regime} (rates of this run) | "
                  f"{est.total(regime) * 1e-12:.4g} | same per token |")


if __name__ == "__main__":
    main()
