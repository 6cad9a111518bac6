"""Decode-sized calls (1 to 16 tokens: one row tile) through the Triton path against the CPU
layer, under the interpreter: counts beyond int8, window limits, spike planes, NaN tokens."""

import pytest
import torch
from torch import nn

from spikingbrain.converter import SpikeConfig, SpikingLinear


def _pair(in_f, out_f, **cfg):
    torch.manual_seed(in_f + out_f)
    lin = nn.Linear(in_f, out_f)
    return (SpikingLinear.from_linear(lin, SpikeConfig(kernel="torch", **cfg)),
            SpikingLinear.from_linear(lin, SpikeConfig(kernel="triton", **cfg)))


@pytest.mark.parametrize("tokens", [1, 3, 16])
@pytest.mark.parametrize("cfg", [
    dict(group_size=16), dict(granularity="channel"), dict(group_size=32, k=100.0),
    dict(group_size=16, scheme="bitwise_twos_complement", T=5),
    dict(group_size=16, mode="spike", k=30.0),
    dict(group_size=16, mode="spike", scheme="ternary", T=6)])
def test_decode_kernel_matches_cpu_layer(tokens, cfg):
    ref, tri = _pair(64, 40, **cfg)
    g = torch.Generator().manual_seed(tokens)
    x = torch.randn(tokens, 64, generator=g)
    x[0, 5] = 80.0  # counts beyond int8 for k >= 30
    torch.testing.assert_close(tri(x), ref(x), rtol=1e-5, atol=1e-5)


def test_decode_nan_token():
    ref, tri = _pair(32, 8, group_size=16, check_finite=False)
    x = torch.randn(3, 32)
    x[1, 0] = float("inf")
    y = tri(x)
    assert torch.isnan(y[1]).all() and torch.isfinite(y[[0, 2]]).all()
    _, strict = _pair(32, 8, group_size=16)
    with pytest.raises(ValueError, match="NaN/Inf"):
        strict(x)
