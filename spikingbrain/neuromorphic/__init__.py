"""Neuromorphic backends: NIR graphs and Intel Lava simulation, exact against torch.

- NIR (:mod:`.nir_export`, :mod:`.nir_import`, :mod:`.nir_events`): spiking linear layers,
  chains and IF/LIF/ALIF networks as NIR graphs, event streams as NIR event data.
- Lava (:mod:`.bundle`, :mod:`.lava`, ``lava_runner.py``): self-contained bundles simulated on
  Lava's Loihi 2 simulator in floating and fixed point, in-process or in a Python 3.10
  environment, compared with torch's integer accumulators.

Everything here is imported lazily (``nir`` and ``lava`` are optional).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "to_nir": "nir_export",
    "layers_to_nir": "nir_export",
    "write_nir": "nir_export",
    "export_nir": "nir_export",
    "from_nir": "nir_import",
    "read_nir": "nir_import",
    "read_nir_data": "nir_import",
    "write_bundle": "bundle",
    "read_bundle": "bundle",
    "simulate_bundle": "lava",
    "demo_agreement": "lava",
    "find_lava_environment": "lava",
    "LavaEnvironmentError": "lava",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'spikingbrain.neuromorphic' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"spikingbrain.neuromorphic.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
