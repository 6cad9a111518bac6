"""MoE FFN: grouped dispatch equals the token-by-token reference (outputs and gradients)."""

import pytest
import torch

from spikingbrain.models.ops.moe import (
    MoEFeedForward,
    grouped_expert_sum,
    moe_naive,
    route,
    upcycling_alpha,
)


def _grads(moe, loss):
    moe.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in moe.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("top_k,n_shared,normalize", [(1, 1, False), (2, 0, True), (3, 2, False)])
def test_moe_grouped_equals_naive_outputs_and_grads(top_k, n_shared, normalize):
    torch.manual_seed(top_k)
    moe = MoEFeedForward(12, 20, n_experts=5, top_k=top_k, n_shared=n_shared,
                         normalize_topk=normalize).double()
    x = torch.randn(3, 7, 12, dtype=torch.float64, requires_grad=True)
    target = torch.randn(3, 7, 12, dtype=torch.float64)
    fast = moe(x)
    g_fast = _grads(moe, ((fast - target) ** 2).sum())
    gx_fast = x.grad.clone()
    x.grad = None
    ref = moe_naive(moe, x)
    g_ref = _grads(moe, ((ref - target) ** 2).sum())
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx_fast, x.grad, rtol=1e-10, atol=1e-10)
    assert g_fast.keys() == g_ref.keys() and "router.weight" in g_fast
    for name in g_fast:
        torch.testing.assert_close(g_fast[name], g_ref[name], rtol=1e-10, atol=1e-10)


def test_moe_experts_left_empty_and_float32_path():
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 16, n_experts=6, top_k=1, n_shared=1)
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[2] = 1.0  # every positive-sum token goes to expert 2
    x = torch.randn(10, 8).abs()
    _, experts = route(moe.router(x), 1, normalize=False)
    assert set(experts.flatten().tolist()) == {2}
    torch.testing.assert_close(moe(x), moe_naive(moe, x), rtol=1e-5, atol=1e-6)


def test_grouped_expert_sum_matches_dense_loop():
    torch.manual_seed(1)
    moe = MoEFeedForward(4, 8, n_experts=3, top_k=2, n_shared=0)
    x = torch.randn(9, 4)
    weights = torch.rand(9, 2)
    experts = torch.stack([torch.randint(0, 3, (9,)), torch.randint(0, 3, (9,))], dim=1)
    expected = sum(weights[:, j : j + 1] * torch.stack(
        [moe.experts[int(experts[t, j])](x[t]) for t in range(9)]) for j in range(2))
    torch.testing.assert_close(grouped_expert_sum(x, weights, experts, moe.experts), expected)


def test_alpha_and_bad_arguments():
    assert upcycling_alpha(1, 1, 16) == pytest.approx(0.98, abs=5e-3)
    assert upcycling_alpha(0, 2, 2) == 1.0
    assert MoEFeedForward(4, 8, n_experts=16).alpha == 1.0  # upcycling scales the weights
    with pytest.raises(ValueError, match="top_k"):
        MoEFeedForward(4, 8, n_experts=2, top_k=3)
