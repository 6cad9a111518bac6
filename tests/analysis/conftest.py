import copy

import pytest


@pytest.fixture(scope="session")
def minilm_converted():
    """The embedded MiniLM converted with the default SpikeConfig (loaded once)."""
    from spikingbrain.converter import SpikeConfig, convert
    from spikingbrain.data import load_minilm

    model, tok = load_minilm()
    return convert(copy.deepcopy(model), SpikeConfig()).eval(), tok
