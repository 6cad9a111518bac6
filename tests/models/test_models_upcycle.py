"""MoE upcycling: every expert is the dense FFN with its three projections scaled by alpha, so at
initialisation the MoE gives (shared + router-weighted) scaled-dense outputs, about the dense
output itself; the forward applies no scale; an upcycled 7B survives save/load."""

import copy

import pytest
import torch
from torch import nn

from spikingbrain.models.ops.moe import MoEFeedForward, SwiGLUMLP, route
from spikingbrain.models.upcycle import upcycle


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = SwiGLUMLP(16, 24)


class _Dense(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(_Block() for _ in range(3))


@pytest.mark.parametrize("n_experts,top_k,n_shared", [(16, 1, 1), (4, 2, 0), (8, 2, 2)])
def test_upcycled_moe_equals_scaled_dense_at_init(n_experts, top_k, n_shared):
    torch.manual_seed(0)
    dense = _Dense().double()
    moe_model = copy.deepcopy(dense)
    report = upcycle(moe_model, n_experts=n_experts, top_k=top_k, n_shared=n_shared, seed=3,
                     router_std=0.5)
    alpha = (n_shared + top_k / n_experts) ** (-1 / 3)
    assert report.layers == ["layers.0.mlp", "layers.1.mlp", "layers.2.mlp"]
    assert report.alpha == pytest.approx(alpha)
    x = torch.randn(20, 16, dtype=torch.float64)
    for block_dense, block_moe in zip(dense.layers, moe_model.layers, strict=True):
        moe = block_moe.mlp
        assert isinstance(moe, MoEFeedForward) and len(moe.experts) == n_experts
        assert moe.alpha == 1.0  # nothing is scaled at forward time
        weights, _ = route(moe.router(x), top_k, normalize=False)
        assert weights.std() > 0  # the router really weights tokens differently
        torch.testing.assert_close(moe(x), (n_shared + weights.sum(-1, keepdim=True))
                                   * _scaled(block_dense.mlp, alpha)(x), rtol=1e-12, atol=1e-12)


def _scaled(mlp: SwiGLUMLP, alpha: float) -> SwiGLUMLP:
    out = copy.deepcopy(mlp)
    with torch.no_grad():
        for lin in (out.gate_proj, out.up_proj, out.down_proj):
            lin.weight.mul_(alpha)
    return out


def test_upcycled_output_is_about_the_dense_output():
    """The reading of eq. 18 we chose (weights scaled by (S + k/N)^(-1/3)): right after
    upcycling the MoE output over the dense output is about 1 (it was 1.041 when the output
    itself was scaled by alpha at every forward)."""
    torch.manual_seed(0)
    dense = _Dense()
    with torch.no_grad():
        for p in dense.parameters():
            p.normal_(0, 0.5)
    moe_model = copy.deepcopy(dense)
    upcycle(moe_model, n_experts=16, top_k=1, n_shared=1, seed=0)
    x = torch.randn(512, 16)
    with torch.no_grad():
        ratio = (moe_model.layers[1].mlp(x).norm() / dense.layers[1].mlp(x).norm()).item()
    print(f"MoE / dense output norm right after upcycling (S=1, k=1, N=16): {ratio:.4f}")
    assert abs(ratio - 1.0) < 0.02


def test_upcycle_alpha_value_and_seed_reproducible():
    a, b = _Dense(), _Dense()
    b.load_state_dict(a.state_dict())
    assert upcycle(a, seed=7).alpha == pytest.approx(0.98, abs=5e-3)
    upcycle(b, seed=7)
    torch.testing.assert_close(a.layers[1].mlp.router.weight, b.layers[1].mlp.router.weight)
    assert not torch.equal(a.layers[0].mlp.router.weight, a.layers[1].mlp.router.weight)


def test_upcycle_skip_layers_and_errors():
    model = _Dense()
    report = upcycle(model, n_experts=2, skip_layers=[0, 2])
    assert report.layers == ["layers.1.mlp"]
    assert isinstance(model.layers[0].mlp, SwiGLUMLP)
    with pytest.raises(ValueError, match="no dense SwiGLU FFN"):
        upcycle(nn.Linear(3, 3))
    with pytest.raises(TypeError, match="nn.Module or a SpikingBrain-76B config"):
        upcycle({"hidden_size": 3})
    with pytest.raises(ValueError, match="top_k"):
        upcycle(_Dense(), n_experts=2, top_k=3)


def test_upcycle_a_tiny_spikingbrain_7b():
    from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM

    torch.manual_seed(0)
    dense = GLAswaForCausalLM(GLAswaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2)
    ).double().eval()
    moe_model = copy.deepcopy(dense)
    report = upcycle(moe_model, n_experts=16, top_k=1, n_shared=1, seed=1, router_std=0.5)
    assert report.layers == ["model.layers.0.mlp", "model.layers.1.mlp"]
    x = torch.randn(6, 32, dtype=torch.float64)
    moe, ffn = moe_model.model.layers[1].mlp, dense.model.layers[1].mlp
    weights, _ = route(moe.router(x), 1, normalize=False)
    expected = (1 + weights) * _scaled(ffn, report.alpha)(x)
    torch.testing.assert_close(moe(x), expected, rtol=1e-12, atol=1e-12)
    assert report.alpha == pytest.approx(0.98, abs=5e-3)
    assert moe_model.config.moe_layers == [0, 1] and moe_model.config.moe_alpha == 1.0


def test_upcycled_7b_survives_save_and_load(tmp_path):
    from spikingbrain.models import register
    from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM

    register()
    torch.manual_seed(0)
    model = GLAswaForCausalLM(GLAswaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2)).eval()
    upcycle(model, n_experts=4, top_k=1, n_shared=1, seed=1, router_std=0.5, skip_layers=[0])
    model.save_pretrained(tmp_path)
    again = GLAswaForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(again.model.layers[1].mlp, MoEFeedForward)
    assert isinstance(again.model.layers[0].mlp, SwiGLUMLP)
    ids = torch.randint(3, 64, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits, rtol=0, atol=0)
