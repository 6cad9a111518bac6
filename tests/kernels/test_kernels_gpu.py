"""The compiled Triton kernels on CUDA against the CPU count mode (run on the GPU machine:
``make test-gpu``). Accumulators bit for bit; outputs within float32 rounding."""

import pytest
import torch
from torch import nn

from spikingbrain.converter import SpikeConfig, SpikingLinear
from spikingbrain.converter.kernels import count_accumulators

pytestmark = pytest.mark.gpu

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _threshold_from_cpu(x_cpu, layer):
    from spikingbrain.kernels.threshold_triton import ThresholdCounts

    counts, vth, sat, _ = layer._threshold(x_cpu)
    c = counts.to(torch.int64)
    t = ThresholdCounts(c.clamp(-128, 127).to(torch.int8), vth.flatten().float(),
                        c.abs().amax(1).to(torch.int32), torch.zeros(len(c), dtype=torch.int32),
                        -float(2**31), float(2**31))
    return counts, t


@cuda
@pytest.mark.parametrize("shape", [(64, 3584, 512), (300, 1024, 2048), (1, 3584, 1024),
                                   (8, 18944, 256)])
@pytest.mark.parametrize("scheme", [None, "bitwise_bidirectional", "bitwise_twos_complement"])
def test_cuda_accumulators_equal_cpu_count_mode(shape, scheme):
    from spikingbrain.kernels.w8a_gemm_triton import GemmWeights, w8a_gemm_tuning

    m, k, n = shape
    torch.manual_seed(m + k + n)
    layer = SpikingLinear.from_linear(nn.Linear(k, n), SpikeConfig())
    x = torch.randn(m, k)
    x[0, 7] = 400.0  # a massive activation: counts beyond int8 on token 0
    counts, t = _threshold_from_cpu(x, layer)
    ref = count_accumulators(counts, layer.qdata, layer.group_size)
    tg = type(t)(*(v.cuda() if torch.is_tensor(v) else v for v in vars(t).values()))
    lg = layer.cuda()
    y, acc = w8a_gemm_tuning(x.cuda(), tg, GemmWeights.of(lg), scheme, store_acc=True,
                             out_dtype=torch.float32)
    assert torch.equal(acc.cpu(), ref)
    layer_cpu = layer.cpu()
    y_cpu = layer_cpu(x)
    torch.testing.assert_close(y.cpu(), y_cpu, rtol=2e-6, atol=2e-5)


@cuda
@pytest.mark.parametrize("mode", ["count", "spike"])
def test_cuda_layer_matches_cpu_layer(mode):
    torch.manual_seed(0)
    lin = nn.Linear(3584, 512).to(torch.bfloat16)
    layer = SpikingLinear.from_linear(lin, SpikeConfig(mode=mode))
    x = torch.randn(2, 40, 3584, dtype=torch.bfloat16)
    y_cpu = layer(x)
    y_gpu = layer.cuda()(x.cuda())
    torch.testing.assert_close(y_gpu.cpu().float(), y_cpu.float(), rtol=1e-2, atol=1e-3)
    from spikingbrain.kernels.spiking_linear_triton import unsupported_reason
    assert unsupported_reason(layer, x.cuda()) is None


@cuda
@pytest.mark.parametrize("scheme", ["binary", "ternary", "bitwise", "bitwise_bidirectional",
                                    "bitwise_twos_complement"])
def test_cuda_coders_equal_cpu_on_16m_counts(scheme):
    from spikingbrain.coding import decode, encode
    from spikingbrain.coding.schemes import get_scheme

    c = torch.randint(-60, 61, (1 << 24,), dtype=torch.int32)
    if not get_scheme(scheme).signed:
        c = c.abs()
    s_cpu = encode(c, scheme)
    s_gpu = encode(c.cuda(), scheme)
    assert torch.equal(s_gpu.cpu(), s_cpu)
    assert torch.equal(decode(s_gpu, scheme).cpu(), decode(s_cpu, scheme))


@cuda
def test_cuda_decode_rejects_mixed_signs():
    from spikingbrain.coding import decode

    s = torch.tensor([[1, 0], [-1, 1]], dtype=torch.int8, device="cuda")
    with pytest.raises(ValueError, match="one sign per element"):
        decode(s, "bitwise_bidirectional")


hopper = pytest.mark.skipif(not torch.cuda.is_available()
                            or torch.cuda.get_device_capability()[0] != 9,
                            reason="needs a Hopper (sm_90) GPU")


@hopper
@pytest.mark.parametrize("shape", [(300, 3584, 512), (4096, 3584, 1000), (256, 18944, 384)])
def test_hopper_wgmma_count_mode_equals_cpu(shape):
    """The Gluon wgmma kernel (dispatched by ``w8a_gemm`` on Hopper) on the int8 blocks, the
    general kernel on the block with a massive activation: the CPU layer's output within
    float32 rounding, and the general kernel's output on every block."""
    from spikingbrain.kernels.w8a_gemm_triton import GemmWeights, w8a_gemm_tuning

    m, k, n = shape
    torch.manual_seed(m + n)
    layer = SpikingLinear.from_linear(nn.Linear(k, n), SpikeConfig())
    x = torch.randn(m, k)
    x[130, 7] = 400.0  # token block 1 has counts beyond int8
    _, t = _threshold_from_cpu(x, layer)
    y_cpu = layer(x)
    tg = type(t)(*(v.cuda() if torch.is_tensor(v) else v for v in vars(t).values()))
    lg = layer.cuda()
    args = (x.cuda(), tg, GemmWeights.of(lg))
    y_hop, _ = w8a_gemm_tuning(*args, out_dtype=torch.float32, hopper=True)
    y_gen, _ = w8a_gemm_tuning(*args, out_dtype=torch.float32, hopper=False)
    assert not torch.isnan(y_hop).any()
    torch.testing.assert_close(y_hop.cpu(), y_cpu, rtol=2e-6, atol=2e-5)
    torch.testing.assert_close(y_hop, y_gen, rtol=1e-6, atol=1e-6)
    layer.cpu()


def _with_int16_codes(layer, frac=0.01, seed=0):
    """``layer`` with ``frac`` of its codes moved beyond int8 (+-128..383, random places), as
    in public W8ASpike checkpoints (about 1 % there)."""
    g = torch.Generator().manual_seed(seed)
    q = layer.qdata.cpu().to(torch.int16)
    big = torch.rand(q.shape, generator=g) < frac
    n = int(big.sum())
    q[big] = torch.randint(128, 384, (n,), generator=g, dtype=torch.int16) * torch.where(
        torch.rand(n, generator=g) < 0.5, -1, 1).to(torch.int16)
    layer.qdata = q.to(layer.qdata.device)
    return layer


@cuda
@pytest.mark.parametrize("mode", ["count", "spike"])
@pytest.mark.parametrize("m", [8, 300])  # decode-sized; prefill-sized (two-tile kernel)
def test_cuda_int16_code_layer_equals_cpu(mode, m):
    """int16 codes (1 % beyond int8) on the kernels: the accumulators of the integer
    reference bit for bit, the layer output within float32 rounding, and no fall-back."""
    from spikingbrain.converter.kernels import reference_accumulators
    from spikingbrain.kernels.spiking_linear_triton import unsupported_reason
    from spikingbrain.kernels.w8a_gemm_triton import GemmWeights, w8a_gemm_tuning

    torch.manual_seed(m)
    layer = _with_int16_codes(SpikingLinear.from_linear(nn.Linear(3584, 512),
                                                        SpikeConfig(mode=mode)))
    assert layer.qdata.dtype == torch.int16
    x = torch.randn(m, 3584)
    x[m // 2, 7] = 400.0  # counts beyond int8 in one block: the digit path too
    counts, t = _threshold_from_cpu(x, layer)
    ref = reference_accumulators(counts, layer.qdata, layer.group_size)
    y_cpu = layer(x)
    lg = layer.cuda()
    tg = type(t)(*(v.cuda() if torch.is_tensor(v) else v for v in vars(t).values()))
    scheme = "bitwise_bidirectional" if mode == "spike" else None
    _, acc = w8a_gemm_tuning(x.cuda(), tg, GemmWeights.of(lg), scheme, store_acc=True)
    assert torch.equal(acc.cpu().long(), ref)
    assert unsupported_reason(lg, x.cuda()) is None
    torch.testing.assert_close(lg(x.cuda()).cpu(), y_cpu, rtol=2e-6, atol=2e-5)
    layer.cpu()
