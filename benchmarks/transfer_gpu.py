"""Conversion by training on one GPU in one command: SmolLM2-135M (or any Qwen2/Llama causal
LM folder) -> SpikingBrain-7B-architecture hybrid, with the held-out perplexity before
transfer, after attention transfer and after distillation beside the teacher's, and the wall
time of each step, inside a time budget.

    python benchmarks/transfer_gpu.py [TEACHER] [--out DIR] [--max-minutes 12] [transfer options]

TEACHER defaults to the embedded ``smollm2``. Every other option is passed on to
``spikingbrain transfer`` (``--window``, ``--seq-len``, ``--lr-attn``, ``--distill-params`` ...;
see ``spikingbrain transfer --help``). The step counts default high (3000 each) so that the
budget decides them: after five timed steps each training step is cut to its share of what
is left. The summary (perplexities, ratios to the teacher, seconds, tokens, config) is also
written to ``DIR/transfer_summary.json`` and ``.md``, beside the saved student.
"""

from __future__ import annotations

import argparse
import platform
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("teacher", nargs="?", default="smollm2")
    ap.add_argument("--out", default="/tmp/spikingbrain_transfer")
    ap.add_argument("--max-minutes", type=float, default=12.0)
    ap.add_argument("--device", default="cuda")
    args, rest = ap.parse_known_args(argv)

    import torch

    from spikingbrain.cli import app
    from spikingbrain.models.ops.gla import _fla_available

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"device: {gpu}; torch {torch.__version__}; python {platform.python_version()}; "
          f"GLA backend on CUDA: {'fla' if _fla_available() else 'chunked (pure PyTorch)'}",
          flush=True)
    defaults = {"--steps-attn": "3000", "--steps-distill": "3000"}
    given = {a.split("=")[0] for a in rest if a.startswith("--")}
    extra = [x for k, v in defaults.items() if k not in given for x in (k, v)]
    cmd = ["transfer", args.teacher, args.out, "--device", args.device,
           "--max-minutes", str(args.max_minutes), *extra, *rest]
    print("spikingbrain " + " ".join(cmd), flush=True)
    try:
        rc = app(cmd, standalone_mode=False)
    except SystemExit as err:
        return int(err.code or 0)
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
