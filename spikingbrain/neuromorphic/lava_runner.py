"""Standalone Lava runner: simulate a spikingbrain Lava bundle on Lava's Loihi 2 simulator.

This file is executed by path in the Python 3.10 Lava environment (``.venv-lava``):

    python lava_runner.py BUNDLE.npz --out RESULTS.npz [--tags floating_pt,fixed_pt]

It imports only the standard library, numpy and (inside functions) ``lava``; it never imports
torch or spikingbrain. Its code lives in the folder ``lava_runtime/`` beside it, one concept a
module, importable from that folder without the package: ``count_math`` (spike coding, float
finishing, the chain encoder, the accumulator reference), ``bundle_format`` (schema, validation,
atomic writing), ``lava_network`` (schedule, weights, build, run), ``lava_processes`` (the Lava
processes and models), ``bundle_run`` (agreement, results file, command line). This file
re-exports their public names. The bundle schema (docs/lava.md) is its only contract with the toolkit.
The pure-numpy parts (bundle reading and validation, the adaptive-threshold encoder between
chained layers, spike expansion, host-side float finishing, agreement) are importable under any
Python; the toolkit uses the very same functions to compute its chain reference, so both sides
follow one definition.

Network built for a chain of ``L`` spiking linear layers (``G`` groups of input columns each):

    SpikeSource ─► Dense(W+) ─┐                      (graded ±1 spikes when the scheme is signed)
                └► Dense(-W-) ─┴► Accumulator_1 ─► Encoder_2 ─► Dense(W+)/Dense(-W-) ─► Accumulator_2 ...

- Dense weights are block-expanded per group: row ``o*G + g`` holds ``W[o, i]`` for the
  columns ``i`` of group ``g`` (zero elsewhere), so each accumulator keeps
  ``acc[o, g] = sum_{i in g} W[o, i] * counts[i]`` separately.
- Mixed-sign weights are split into an excitatory and an inhibitory Dense feeding the same
  accumulator port: in fixed point Lava drops the least significant bit of mixed-sign weights.
- Dense delays by one step; token ``j`` of layer ``l`` occupies steps
  ``base_l + j*P + t`` (``t < T_l``) at its spike source, its accumulator receives them one step
  later; the next encoder starts at ``base_{l+1} = base_l + T_l + 1``. Tokens are pipelined with
  period ``P = max_l T_l``.
- Accumulators sum (binary, ternary) or shift-and-add most significant bit first (bitwise;
  two's complement: the first step is subtracted).
- The encoder finishes layer ``l`` on the fly (``y = vth * sum_g scale*acc + bias``, float64,
  groups added in ascending order), computes ``Vth = clamp(fsum|y|/n/k, 1e-5, 1e4)`` and
  ``counts = round_half_even(y / Vth)`` in float64, then expands the counts into spikes.
"""

from __future__ import annotations

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0]) == _HERE:
    # run by path: our folder holds a module named lava.py (the toolkit side), which must not
    # shadow the lava-nc package
    sys.path.pop(0)

if not __package__:  # run by path (or runpy): the runtime modules are imported from their folder
    sys.path.insert(0, os.path.join(_HERE, "lava_runtime"))

#: the runtime modules whose public names this entry point re-exports
RUNTIME_MODULES = ("count_math", "bundle_format", "lava_network", "bundle_run")
__all__: list[str] = []
for _name in RUNTIME_MODULES:
    _mod = (importlib.import_module(f".lava_runtime.{_name}", __package__) if __package__
            else importlib.import_module(_name))
    __all__ += _mod.__all__
    globals().update({key: getattr(_mod, key) for key in _mod.__all__})

if __name__ == "__main__":  # pragma: no cover - executed in the Lava environment
    sys.exit(main())  # noqa: F821 - re-exported from lava_runtime/bundle_run.py
