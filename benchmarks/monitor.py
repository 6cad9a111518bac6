"""Overhead of the streaming spike monitor on a converted model's forward pass.

Converts the embedded all-MiniLM-L6-v2 (W8ASpike, default SpikeConfig), then times the same
batch of standard-library sentences with and without ``spikingbrain.analysis.monitor``
attached, interleaving the two in one process; prints the medians and their ratio.

    .venv/bin/python benchmarks/monitor.py [--sentences 32] [--repeats 9]

Target (issue 4): overhead <= 10 % of the converted forward time.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=32, help="batch size (sentences)")
    ap.add_argument("--max-length", type=int, default=128, help="max tokens per sentence")
    ap.add_argument("--repeats", type=int, default=9, help="timed repeats of each variant")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from spikingbrain.analysis import SpikeMonitor
    from spikingbrain.converter import SpikeConfig, convert
    from spikingbrain.data import load_minilm, stdlib_sentences

    float_model, tok = load_minilm()
    model = convert(copy.deepcopy(float_model), SpikeConfig()).eval()
    batch = tok(stdlib_sentences(args.sentences), padding=True, truncation=True,
                max_length=args.max_length, return_tensors="pt")
    mask = batch["attention_mask"].bool()
    mon = SpikeMonitor(model)

    def plain() -> float:
        t0 = time.perf_counter()
        model(**batch)
        return time.perf_counter() - t0

    def monitored() -> float:
        mon.attach()
        try:
            t0 = time.perf_counter()
            with mon.token_mask(mask):
                model(**batch)
            return time.perf_counter() - t0
        finally:
            mon.detach()

    with torch.no_grad():
        plain(), monitored()  # warm-up
        t_plain, t_mon = [], []
        for _ in range(args.repeats):
            t_plain.append(plain())
            t_mon.append(monitored())
        t_floats = []
        for _ in range(3):
            t0 = time.perf_counter()
            float_model(**batch)
            t_floats.append(time.perf_counter() - t0)
        t_float = statistics.median(t_floats)
    stats = mon.stats()
    mp, mm = statistics.median(t_plain), statistics.median(t_mon)
    n_layers, n_tok = len(stats.layers), int(mask.sum())
    print(f"model: all-MiniLM-L6-v2 converted ({n_layers} SpikingLinear layers), batch "
          f"{tuple(batch['input_ids'].shape)}, {n_tok} real tokens, torch threads "
          f"{torch.get_num_threads()}")
    print(f"float forward (reference)     : {1e3 * t_float:8.1f} ms (median of 3)")
    print(f"converted forward             : {1e3 * mp:8.1f} ms (median of {args.repeats})")
    print(f"converted forward + monitor   : {1e3 * mm:8.1f} ms (median of {args.repeats})")
    print(f"monitor overhead ratio        : {mm / mp:8.3f}  ({100 * (mm / mp - 1):+.1f} % of the "
          f"converted forward; target <= +10 %)")


if __name__ == "__main__":
    main()
