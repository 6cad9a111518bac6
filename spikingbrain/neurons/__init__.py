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
from spikingbrain.neurons.classic import ALIF, IF, LIF, reset_states
from spikingbrain.neurons.emitter import ObserverHandle, SpikeEmitter, SpikeRecord
from spikingbrain.neurons.functional import (
    ALIFState,
    IFState,
    LIFState,
    alif_multistep,
    alif_step,
    if_multistep,
    if_step,
    lif_multistep,
    lif_step,
)
from spikingbrain.neurons.multistep import (
    AdaptiveThresholdMultiStep,
    adaptive_threshold_multistep,
    if_soft_reset_multistep,
)
from spikingbrain.neurons.params import ALIFParams, IFParams, LIFParams
from spikingbrain.neurons.surrogate import SURROGATES, spike_fn

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
    "IF",
    "LIF",
    "ALIF",
    "reset_states",
    "IFParams",
    "LIFParams",
    "ALIFParams",
    "IFState",
    "LIFState",
    "ALIFState",
    "if_step",
    "lif_step",
    "alif_step",
    "if_multistep",
    "lif_multistep",
    "alif_multistep",
    "spike_fn",
    "SURROGATES",
]
