"""CUDA: the coders give the CPU's trains and counts bit for bit at realistic sizes.

Selected with ``make test-gpu`` (``pytest -m gpu``) on a machine with a CUDA device.
"""

import pytest
import torch

from spikingbrain.coding import decode, encode, get_scheme, min_steps, scheme_names

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("scheme", scheme_names())
@pytest.mark.parametrize("numel", [3584 * 64, 3584 * 64 + 3])  # fast path and portable path
def test_cuda_equals_cpu(scheme, numel):
    g = torch.Generator().manual_seed(numel)
    counts = (torch.randn(numel, generator=g) * 4).round().to(torch.int32)
    counts[:5] = torch.tensor([300, -300, 127, -128, 0])
    if not get_scheme(scheme).signed:
        counts = counts.abs()
    T = min_steps(counts, scheme)
    cpu = encode(counts, scheme, T)
    gpu = encode(counts.cuda(), scheme, T)
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)
    back = decode(gpu, scheme)
    assert back.is_cuda and torch.equal(back.cpu(), counts)
    assert torch.equal(encode(counts.cuda(), scheme, T, fast=False).cpu(), cpu)
