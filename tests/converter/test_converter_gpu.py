"""CUDA: SpikingLinear's integer accumulators and outputs equal the CPU's.

Selected with ``make test-gpu`` (``pytest -m gpu``) on a machine with a CUDA device.
"""

import pytest
import torch
from torch import nn

from spikingbrain.coding import scheme_names
from spikingbrain.converter import SpikeConfig, SpikingLinear

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("scheme", scheme_names())
@pytest.mark.parametrize("granularity", ["channel", "group"])
@pytest.mark.parametrize("tokens", [5, 64])  # below and above _int_mm's m > 16 rule on CUDA
def test_cuda_counts_and_accumulators_equal_cpu_exactly_outputs_within_1e_5(
        scheme, granularity, tokens):
    """Counts and int32 accumulators: bit for bit. Float outputs: rtol 1e-5, atol 1e-4 (the
    epilogue's float32 products and sums may round differently on the GPU)."""
    torch.manual_seed(0)
    lin = nn.Linear(384, 1536)
    x = torch.randn(tokens, 384)
    x[:, 7] *= 60  # outlier channel: counts beyond int8
    cfg = SpikeConfig(k=3.0, scheme=scheme, granularity=granularity)
    cpu = SpikingLinear.from_linear(lin, cfg)
    gpu = SpikingLinear.from_linear(lin, cfg).cuda()
    counts, vth = cpu.spike_counts(x)[:2]
    counts_gpu, vth_gpu = gpu.spike_counts(x.cuda())[:2]
    assert torch.equal(counts_gpu.cpu(), counts)
    torch.testing.assert_close(vth_gpu.cpu(), vth, rtol=1e-6, atol=0)
    acc_cpu = cpu.integer_accumulators(counts)
    acc_gpu = gpu.integer_accumulators(counts.cuda())
    assert torch.equal(acc_gpu.cpu(), acc_cpu)
    assert torch.equal(gpu.integer_accumulators(counts.cuda(), mode="spike").cpu(), acc_cpu)
    y_cpu, y_gpu = cpu(x), gpu(x.cuda()).cpu()
    torch.testing.assert_close(y_gpu, y_cpu, rtol=1e-5, atol=1e-4)
