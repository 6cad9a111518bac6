"""CUDA: flash-linear-attention's GLA kernels against our reference, and the 7B on the GPU
equal to itself on the CPU (selected with `make test-gpu` on a CUDA machine)."""

import importlib.util

import pytest
import torch

from spikingbrain.models.ops.gla import gla, gla_chunked

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.skipif(importlib.util.find_spec("fla") is None, reason="needs fla-core")
@pytest.mark.parametrize("L", [1, 64, 300])
def test_fla_kernels_agree_with_the_chunked_reference(L):
    """Outputs and final states within 1e-2 relative to their largest value (fla's kernels
    compute in reduced precision inside; our reference in float32)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, L, 64, device="cuda") * 0.3 for _ in range(3))
    log_g = torch.nn.functional.logsigmoid(torch.randn(2, 4, L, 64, device="cuda")) / 16
    h0 = torch.randn(2, 4, 64, 64, device="cuda") * 0.1
    o1, s1 = gla(q, k, v, log_g, initial_state=h0, output_final_state=True, backend="fla")
    o2, s2 = gla_chunked(q, k, v, log_g, initial_state=h0, output_final_state=True)
    for a, b in ((o1, o2), (s1, s2)):
        assert float((a.float() - b).abs().max()) <= 1e-2 * float(b.abs().max())


def test_tiny_7b_on_cuda_matches_cpu():
    from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM

    torch.manual_seed(0)
    cfg = GLAswaConfig(vocab_size=96, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=96, sliding_window=8,
                       bos_token_id=1, eos_token_id=2, gla_backend="chunked")
    cpu = GLAswaForCausalLM(cfg).eval()
    gpu = GLAswaForCausalLM(cfg).eval().cuda()
    gpu.load_state_dict(cpu.state_dict())
    ids = torch.randint(3, 96, (2, 20))
    with torch.no_grad():
        a = cpu(input_ids=ids).logits
        b = gpu(input_ids=ids.cuda()).logits.cpu()
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spiking", [False, True])
def test_cuda_graph_decode_equals_eager_decode(spiking):
    """The captured static step gives the eager cached generation's greedy tokens (bf16 float
    model; W8ASpike count mode on the Triton kernels), and it really is a graph replay."""
    from spikingbrain.converter import SpikeConfig, convert
    from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM
    from spikingbrain.models.static_decode import StaticDecoder

    torch.manual_seed(0)
    cfg = GLAswaConfig(vocab_size=96, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=96, sliding_window=8,
                       bos_token_id=1, eos_token_id=2, attention_quant="w8aspike")
    model = GLAswaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    if spiking:
        model = convert(model, SpikeConfig(k=3, group_size=32, mode="count")).eval()
    model = model.cuda().to(torch.float32 if spiking else torch.bfloat16)
    ids = torch.randint(3, 96, (2, 13), device="cuda")
    want = model.generate(ids, max_new_tokens=20, do_sample=False, use_static=False,
                          eos_token_id=None)
    dec = StaticDecoder(model, batch=2)
    got = dec.generate(ids, max_new_tokens=20, eos_token_id=None)
    assert dec._graph is not None
    assert torch.equal(got, want)
    assert torch.equal(model.generate(ids, max_new_tokens=20, do_sample=False,
                                      eos_token_id=None), want)  # generate() takes it on CUDA
