"""Neurons: the SpikingBrain adaptive-threshold neuron and classic IF / LIF / ALIF models.

>>> import torch
>>> from spikingbrain.neurons import adaptive_threshold
>>> counts, vth = adaptive_threshold(torch.tensor([[0.4, -1.0, 1.6]]), k=3.0)
>>> counts.tolist()
[[1.0, -3.0, 5.0]]
"""

from spikingbrain.neurons.adaptive import (
    VTH_MAX,
    VTH_MIN,
    AdaptiveThreshold,
    ThresholdOutput,
    adaptive_threshold,
)
from spikingbrain.neurons.emitter import ObserverHandle, SpikeEmitter, SpikeRecord
from spikingbrain.neurons.multistep import (
    AdaptiveThresholdMultiStep,
    adaptive_threshold_multistep,
    if_soft_reset_multistep,
)

__all__ = [
    "adaptive_threshold",
    "AdaptiveThreshold",
    "ThresholdOutput",
    "VTH_MIN",
    "VTH_MAX",
    "SpikeEmitter",
    "SpikeRecord",
    "ObserverHandle",
    "adaptive_threshold_multistep",
    "AdaptiveThresholdMultiStep",
    "if_soft_reset_multistep",
]
