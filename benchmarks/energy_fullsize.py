"""Full-size SpikingBrain-7B and -76B (shapes from the meta device, the report's spike rates
as a stated assumption) on Loihi 2 and under the per-MAC estimators: one Markdown table.

    python benchmarks/energy_fullsize.py [--spikes-per-channel 1.13 --silent-fraction 0.184]

Columns: Loihi 2 chips and cores, events per token (binary trains vs graded spikes), time and
energy per token on Loihi 2, and per token the FP16 / INT8 / spiking energies of the report's
per-MAC model (``horowitz``) and of Lemaire et al. 2022 (``lemaire``).
"""

from __future__ import annotations

import argparse


def main() -> None:
    from spikingbrain.analysis.energy_cli import _model_config
    from spikingbrain.analysis.estimators import estimate, workloads_from_shapes
    from spikingbrain.analysis.estimators.loihi2 import Loihi2Config, summary

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spikes-per-channel", type=float, default=1.13)
    ap.add_argument("--silent-fraction", type=float, default=0.184)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    cfg = Loihi2Config()
    print(f"rates (assumed, SpikingBrain report, 7B at k=3): {args.spikes_per_channel} spikes "
          f"per channel, {args.silent_fraction:.1%} silent channels, {args.steps} steps")
    print("| model | synapses | Loihi 2 chips (cores) | events / token binary / graded | "
          "Loihi 2 time / token binary / graded | Loihi 2 energy / token binary / graded | "
          "horowitz FP16 / INT8 / spiking | lemaire ANN / spiking |")
    print("|---|---|---|---|---|---|---|---|")
    for model in ("7b", "76b"):
        ws = workloads_from_shapes(_model_config(model), args.spikes_per_channel,
                                   args.silent_fraction, "bitwise_bidirectional", args.steps)
        s = summary(estimate(ws, cfg), ws, cfg)
        hz, le = estimate(ws, "horowitz"), estimate(ws, "lemaire")
        b, g = s["loihi2_binary"], s["loihi2_graded"]
        print(f"| SpikingBrain-{model.upper()} | {sum(w.weight_count for w in ws) / 1e9:.2f} B "
              f"| {s['chips']} ({s['cores']:,}) "
              f"| {b['events_per_token'] / 1e6:.2f} M / {g['events_per_token'] / 1e6:.2f} M "
              f"| {b['time_s_per_token'] * 1e3:.1f} ms / {g['time_s_per_token'] * 1e3:.1f} ms "
              f"| {b['energy_pj_per_token'] / 1e9:.1f} mJ / {g['energy_pj_per_token'] / 1e9:.1f} mJ "
              f"| {hz.total('fp16') / 1e9:.2f} / {hz.total('int8') / 1e9:.2f} / "
              f"{hz.total('spiking') / 1e9:.2f} mJ "
              f"| {le.total('ann') / 1e9:.0f} / {le.total('spiking') / 1e9:.0f} mJ |", flush=True)


if __name__ == "__main__":
    main()
