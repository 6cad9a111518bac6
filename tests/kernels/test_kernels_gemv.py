"""The decode-sized split-K kernel (at most 16 tokens) against the CPU reference under the
interpreter: int8 and int16 weight codes, counts within and beyond int8, with and without a
bias. The accumulators are exact (the reference's integers); the float sum over groups is
split into partials, so outputs are compared to 2e-6 relative of the largest output."""

import pytest
import torch
from torch import nn

from spikingbrain.converter import SpikeConfig, SpikingLinear
from spikingbrain.converter.kernels import epilogue, reference_accumulators
from spikingbrain.kernels.threshold_triton import exact_counts, threshold_counts
from spikingbrain.kernels.w8a_gemv_triton import gemv_applies, w8a_gemv


def _case(m, k, n, int16, outliers, bias, seed=0):
    torch.manual_seed(seed)
    layer = SpikingLinear.from_linear(nn.Linear(k, n, bias=bias), SpikeConfig(group_size=16))
    qdata = layer.qdata
    if int16:  # 1 % of the codes beyond int8, as public checkpoints carry
        qdata = qdata.to(torch.int16)
        pick = torch.rand(qdata.shape) < 0.01
        qdata[pick] += torch.where(qdata[pick] >= 0, 200, -200).to(torch.int16)
    x = torch.randn(m, k)
    if outliers:
        x[0, 5] = 300.0  # counts beyond int8 for token 0
    return x, qdata, layer


@pytest.mark.parametrize("m", [1, 5, 16])
@pytest.mark.parametrize("int16", [False, True])
@pytest.mark.parametrize("outliers", [False, True])
def test_decode_kernel_equals_the_integer_reference(m, int16, outliers):
    x, qdata, layer = _case(m, 96, 40, int16, outliers, bias=m != 5)
    t = threshold_counts(x, 3.0)
    counts = exact_counts(x, t)
    if outliers:
        assert int(t.absmax.max()) > 127
    y = w8a_gemv(x, t, qdata, layer.scale, layer.bias, 16, out_dtype=torch.float32)
    acc = reference_accumulators(counts, qdata, 16)
    ref = epilogue(acc.to(torch.float64), layer.scale.double(), t.vth.double()[:, None],
                   None if layer.bias is None else layer.bias.double(), torch.float64)
    err = float((y.double() - ref).abs().max() / ref.abs().max())
    assert err <= 2e-6, err


def test_larger_batches_and_spike_mode_keep_the_general_kernel():
    assert gemv_applies(1, 148, 0, False, 18944)  # down_proj at decode: split
    assert not gemv_applies(1, 28, 0, False, 3584)  # q/o_proj: the extra launch costs more
    assert not gemv_applies(17, 4, 0, False)
    assert not gemv_applies(4, 4, 2, False)  # spike planes
    assert not gemv_applies(4, 1, 0, False)  # one scale per row
    assert not gemv_applies(4, 4, 0, True)   # accumulators asked for
