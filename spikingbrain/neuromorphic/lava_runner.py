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

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0]) == _HERE:
    # run by path: our folder holds a module named lava.py (the toolkit side), which must not
    # shadow the lava-nc package
    sys.path.pop(0)

if __package__:  # inside the spikingbrain package
    from .lava_runtime.bundle_format import (
        BUNDLE_FORMAT,
        EXIT_BAD_INPUT,
        RESULTS_FORMAT,
        SCHEMA_VERSION,
        TAGS,
        Bundle,
        BundleError,
        load_bundle,
        required_arrays,
        save_npz_atomic,
        validate_meta,
    )
    from .lava_runtime.bundle_run import agreement, main, results_arrays, run_bundle
    from .lava_runtime.count_math import (
        SCHEMES,
        VTH_MAX,
        VTH_MIN,
        chain_reference,
        count_limits,
        encode_counts,
        expand_spikes,
        finish_output,
        group_bounds,
        integer_accumulators,
        to_rails,
        value_range,
    )
    from .lava_runtime.lava_network import (
        Schedule,
        expand_weights,
        lava_version,
        run_lava,
        source_schedule,
    )
else:  # run by path (or runpy): import the runtime modules from their folder
    sys.path.insert(0, os.path.join(_HERE, "lava_runtime"))
    from bundle_format import (  # type: ignore[no-redef]
        BUNDLE_FORMAT,
        EXIT_BAD_INPUT,
        RESULTS_FORMAT,
        SCHEMA_VERSION,
        TAGS,
        Bundle,
        BundleError,
        load_bundle,
        required_arrays,
        save_npz_atomic,
        validate_meta,
    )
    from bundle_run import agreement, main, results_arrays, run_bundle  # type: ignore[no-redef]
    from count_math import (  # type: ignore[no-redef]
        SCHEMES,
        VTH_MAX,
        VTH_MIN,
        chain_reference,
        count_limits,
        encode_counts,
        expand_spikes,
        finish_output,
        group_bounds,
        integer_accumulators,
        to_rails,
        value_range,
    )
    from lava_network import (  # type: ignore[no-redef]
        Schedule,
        expand_weights,
        lava_version,
        run_lava,
        source_schedule,
    )

__all__ = [
    "BUNDLE_FORMAT", "EXIT_BAD_INPUT", "RESULTS_FORMAT", "SCHEMA_VERSION", "SCHEMES", "TAGS",
    "VTH_MAX", "VTH_MIN", "Bundle", "BundleError", "Schedule", "agreement", "chain_reference",
    "count_limits", "encode_counts", "expand_spikes", "expand_weights", "finish_output",
    "group_bounds", "integer_accumulators", "lava_version", "load_bundle", "main",
    "required_arrays", "results_arrays", "run_bundle", "run_lava", "save_npz_atomic",
    "source_schedule", "to_rails", "validate_meta", "value_range",
]

if __name__ == "__main__":  # pragma: no cover - executed in the Lava environment
    sys.exit(main())
