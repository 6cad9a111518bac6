"""The fused decode kernel (threshold + counts + INT8 GEMV in one launch) against the CPU
layer, under the interpreter: counts beyond int8, window limits, spike planes, NaN tokens."""

import pytest
import torch
from torch import nn

from spikingbrain.converter import SpikeConfig, SpikingLinear
from spikingbrain.kernels.w8a_decode_triton import MAX_DECODE_TOKENS, w8a_decode


def _pair(in_f, out_f, **cfg):
    torch.manual_seed(in_f + out_f)
    lin = nn.Linear(in_f, out_f)
    return (SpikingLinear.from_linear(lin, SpikeConfig(kernel="torch", **cfg)),
            SpikingLinear.from_linear(lin, SpikeConfig(kernel="triton", **cfg)))


@pytest.mark.parametrize("tokens", [1, 3, MAX_DECODE_TOKENS])
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


def test_decode_vth_equals_neuron_on_exact_means():
    _, tri = _pair(32, 16, group_size=16)
    x = torch.randint(-40, 41, (2, 32)).float() / 8
    _, vth = w8a_decode(x, tri.qdata, tri.scale, None, 3.0, 16)
    assert torch.equal(vth, (x.abs().mean(-1) / 3.0).clamp(1e-5, 1e4))


def test_decode_nan_token():
    ref, tri = _pair(32, 8, group_size=16, check_finite=False)
    x = torch.randn(3, 32)
    x[1, 0] = float("inf")
    y = tri(x)
    assert torch.isnan(y[1]).all() and torch.isfinite(y[[0, 2]]).all()
    _, strict = _pair(32, 8, group_size=16)
    with pytest.raises(ValueError, match="NaN/Inf"):
        strict(x)


def test_decode_refuses_too_many_tokens():
    _, tri = _pair(32, 8, group_size=16)
    with pytest.raises(ValueError, match="at most 16 tokens"):
        w8a_decode(torch.randn(17, 32), tri.qdata, tri.scale, None, 3.0, 16)
