import copy

import pytest
import torch

from spikingbrain.analysis import monitor


@pytest.fixture(scope="session")
def minilm_converted():
    """The embedded MiniLM converted with the default SpikeConfig (loaded once)."""
    from spikingbrain.converter import SpikeConfig, convert
    from spikingbrain.data import load_minilm

    model, tok = load_minilm()
    return convert(copy.deepcopy(model), SpikeConfig()).eval(), tok


@pytest.fixture(scope="session")
def toy_stats():
    """Statistics and samples of a tiny converted two-layer network."""
    from torch import nn

    from spikingbrain.converter import SpikeConfig, convert

    torch.manual_seed(0)
    net = convert(nn.Sequential(nn.Linear(16, 12), nn.GELU(), nn.Linear(12, 4)),
                  SpikeConfig(group_size=8))
    with monitor(net, sample={"0": (4, 8)}) as m:
        net(torch.randn(6, 16))
    return m.stats(), m.samples()
