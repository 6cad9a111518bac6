"""CUDA: the streaming monitor gives the CPU's totals (its accelerator path avoids host syncs).

Selected with ``make test-gpu`` (``pytest -m gpu``) on a machine with a CUDA device.
"""

import copy

import pytest
import torch
from torch import nn

from spikingbrain.analysis import monitor
from spikingbrain.converter import SpikeConfig, convert

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("scheme", ["ternary", "bitwise_bidirectional", "bitwise_twos_complement"])
def test_cuda_monitor_equals_cpu(scheme):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 32))
    cpu = convert(copy.deepcopy(net), SpikeConfig(scheme=scheme, granularity="channel"))
    gpu = convert(copy.deepcopy(net), SpikeConfig(scheme=scheme, granularity="channel")).cuda()
    x = torch.randn(4, 20, 64)
    x[..., 3] *= 5000  # counts beyond the histogram range: the exact tail path
    mask = torch.ones(4, 20, dtype=torch.bool)
    mask[:, 15:] = False
    stats = []
    for model, dev in ((cpu, "cpu"), (gpu, "cuda")):
        with monitor(model) as m, m.token_mask(mask.to(dev)):
            model(x.to(dev))
        stats.append(m.stats().to_dict())
    assert stats[0] == stats[1]
