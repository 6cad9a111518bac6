"""W8ASpike conversion: INT8 weights and spiking inputs for any PyTorch / Hugging Face model.

- :class:`SpikeConfig` - every choice of a conversion (k, scheme, T, granularity, mode...).
- :class:`SpikingLinear` - the converted layer (int8 ``qdata`` + float32 ``scale`` + bias).
- :func:`convert` - swap linear projections in place (output head excluded by default).
- :func:`calibrate` - convert with weight clipping chosen on calibration activations.
- :func:`save_converted` / :func:`load_converted` - safetensors + JSON, bit-exact round trip.

>>> import torch
>>> from torch import nn
>>> from spikingbrain.converter import SpikeConfig, convert
>>> net = convert(nn.Sequential(nn.Linear(32, 16), nn.GELU(), nn.Linear(16, 4)),
...               SpikeConfig(k=3, group_size=16))
>>> net(torch.randn(5, 32)).shape
torch.Size([5, 4])
"""

from spikingbrain.converter.calibrate import calibrate
from spikingbrain.converter.config import SpikeConfig
from spikingbrain.converter.convert import (
    MemorySummary,
    convert,
    is_convertible,
    memory_summary,
    output_head_names,
    set_mode,
    spiking_layers,
)
from spikingbrain.converter.layer import SpikingLinear
from spikingbrain.converter.serialize import SCHEMA_VERSION, load_converted, save_converted

__all__ = [
    "SCHEMA_VERSION",
    "MemorySummary",
    "SpikeConfig",
    "SpikingLinear",
    "calibrate",
    "convert",
    "demo_summary",
    "is_convertible",
    "load_converted",
    "memory_summary",
    "output_head_names",
    "save_converted",
    "set_mode",
    "spiking_layers",
]


def demo_summary(*args, **kwargs):
    """Convert the embedded MiniLM and report similarity and memory (see
    :func:`spikingbrain.converter.evaluate.demo_summary`)."""
    from spikingbrain.converter.evaluate import demo_summary as _demo

    return _demo(*args, **kwargs)
