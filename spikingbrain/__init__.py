"""spikingbrain: the spiking mechanisms of the SpikingBrain models, made real and measurable.

Stages (one subpackage each): ``neurons`` (adaptive-threshold and IF/LIF/ALIF neurons),
``coding`` (exact binary/ternary/bitwise spike coding and event streams), ``converter``
(W8ASpike: INT8 weights and spiking inputs for any PyTorch / Hugging Face model),
``analysis`` (spike statistics, energy, plots, reports) and ``neuromorphic`` (NIR, Intel Lava).

Heavy parts load on first use, so ``import spikingbrain`` stays light.

>>> import torch, spikingbrain
>>> counts, vth = spikingbrain.adaptive_threshold(torch.tensor([[0.4, -1.0, 1.6]]))
>>> spikes = spikingbrain.encode(counts, "bitwise_bidirectional")
>>> spikingbrain.decode(spikes, "bitwise_bidirectional").tolist()
[[1, -3, 5]]
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "adaptive_threshold": "spikingbrain.neurons",
    "AdaptiveThreshold": "spikingbrain.neurons",
    "IF": "spikingbrain.neurons",
    "LIF": "spikingbrain.neurons",
    "ALIF": "spikingbrain.neurons",
    "encode": "spikingbrain.coding",
    "decode": "spikingbrain.coding",
    "to_events": "spikingbrain.coding",
    "from_events": "spikingbrain.coding",
    "convert": "spikingbrain.converter",
    "calibrate": "spikingbrain.converter",
    "SpikeConfig": "spikingbrain.converter",
    "SpikingLinear": "spikingbrain.converter",
    "save_converted": "spikingbrain.converter",
    "load_converted": "spikingbrain.converter",
}
_SUBPACKAGES = ("neurons", "coding", "converter", "analysis", "neuromorphic", "data", "utils")

__all__ = ["__version__", *_LAZY, *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"spikingbrain.{name}")
    else:
        raise AttributeError(f"module 'spikingbrain' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
