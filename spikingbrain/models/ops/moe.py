"""Mixture-of-experts FFN (SpikingBrain-76B): top-k routing, shared experts, grouped dispatch.

Grouped dispatch: the ``T * k`` (token, expert) assignments are sorted by expert, so each
expert's tokens form one contiguous block; every expert runs ONE batched SwiGLU over its block
(a loop over experts, never over tokens), the weighted results are scattered back with one
``index_add_``. :func:`moe_naive` is the reference (a Python loop over tokens) for tests.

Every projection is an ``nn.Linear`` (``gate_proj``/``up_proj``/``down_proj``, ``router``), so
:func:`spikingbrain.converter.convert` turns the experts into SpikingLinear layers and the spike
monitor sees each expert's projections under its own name (``...experts.3.up_proj``).

>>> import torch
>>> moe = MoEFeedForward(hidden_size=8, intermediate_size=16, n_experts=4, top_k=1, n_shared=1)
>>> x = torch.randn(2, 5, 8)
>>> torch.allclose(moe(x), moe_naive(moe, x), atol=1e-6)
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spikingbrain.neurons.emitter import current_token_rows, token_rows


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float32, or float64 for float64 inputs."""
    return torch.promote_types(dtype, torch.float32)


def upcycling_alpha(n_shared: int, top_k: int, n_experts: int) -> float:
    """Expert weight scale of MoE upcycling: ``alpha = (S + k/N) ** (-1/3)``, applied to each of
    an expert's three projections (so its output scales by about ``alpha ** 3 = 1 / (S + k/N)``,
    see docs/models.md).

    >>> round(upcycling_alpha(1, 1, 16), 4)
    0.9800
    """
    if n_experts < 1 or not 1 <= top_k <= n_experts or n_shared < 0:
        raise ValueError(f"need n_experts >= 1, 1 <= top_k <= n_experts, n_shared >= 0; got "
                         f"S={n_shared}, k={top_k}, N={n_experts}")
    return float((n_shared + top_k / n_experts) ** (-1.0 / 3.0))


class SwiGLUMLP(nn.Module):
    """SwiGLU FFN ``down(silu(gate(x)) * up(x))`` (no biases), the dense FFN and one expert.

    >>> SwiGLUMLP(4, 8)(torch.zeros(3, 4)).shape
    torch.Size([3, 4])
    """

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def route(logits: torch.Tensor, top_k: int, normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k routing: softmax over all experts (float32), keep the k largest.

    Args:
        logits: ``[T, N]`` router logits.
        top_k: experts per token.
        normalize: renormalise the kept probabilities to sum to 1 (else they keep their
            softmax value, Qwen-MoE style, and sum to less than 1).

    Returns:
        ``(weights [T, k] in float32 or float64, experts [T, k] int64)``.

    >>> w, e = route(torch.tensor([[0.0, 2.0, 1.0]]), 1, normalize=False)
    >>> e.tolist(), round(w.item(), 3)
    ([[1]], 0.665)
    """
    probs = torch.softmax(logits.to(_acc_dtype(logits.dtype)), dim=-1)
    weights, experts = torch.topk(probs, top_k, dim=-1)
    if normalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, experts


class MoEFeedForward(nn.Module):
    """Routed experts (top-k of N) plus always-on shared experts, outputs scaled by ``alpha``.

    ``y = alpha * (sum_s shared_s(x) + sum_{e in topk(x)} w_e(x) * expert_e(x))``.

    Args:
        hidden_size, intermediate_size: sizes of every expert (each a SwiGLU MLP).
        n_experts: routed experts N; top_k: experts per token k; n_shared: shared experts S.
        alpha: output scale (default 1.0: :func:`spikingbrain.models.upcycle` folds the
            upcycling scale into the expert weights instead, see docs/models.md).
        normalize_topk: renormalise the k routing weights to sum to 1 (default False).

    Input ``[..., hidden]``; output the same shape and dtype.
    """

    def __init__(self, hidden_size: int, intermediate_size: int, n_experts: int = 16,
                 top_k: int = 1, n_shared: int = 1, alpha: float | None = None,
                 normalize_topk: bool = False) -> None:
        super().__init__()
        upcycling_alpha(n_shared, top_k, n_experts)  # validates S, k, N
        self.hidden_size, self.n_experts, self.top_k = hidden_size, n_experts, top_k
        self.n_shared, self.normalize_topk = n_shared, normalize_topk
        self.alpha = 1.0 if alpha is None else float(alpha)
        self.router = nn.Linear(hidden_size, n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLUMLP(hidden_size, intermediate_size)
                                     for _ in range(n_experts))
        self.shared_experts = nn.ModuleList(SwiGLUMLP(hidden_size, intermediate_size)
                                            for _ in range(n_shared))

    def extra_repr(self) -> str:
        return (f"n_experts={self.n_experts}, top_k={self.top_k}, n_shared={self.n_shared}, "
                f"alpha={self.alpha:.4f}")

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """``x [..., hidden]``; ``valid`` (shaped like ``x[..., 0]``): False rows (padding)
        are not routed (their routed part is 0), so no expert computes or reports them."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        rows = current_token_rows()
        if rows is not None and rows.numel() != flat.shape[0]:
            rows = None
        if valid is None:
            weights, experts = route(self.router(flat), self.top_k, self.normalize_topk)
            out = grouped_expert_sum(flat, weights, experts, self.experts, rows)
        else:
            keep = valid.reshape(-1).to(flat.device).nonzero().squeeze(1)
            sub = flat.index_select(0, keep)
            weights, experts = route(self.router(sub), self.top_k, self.normalize_topk)
            part = grouped_expert_sum(sub, weights, experts, self.experts,
                                      None if rows is None else rows[keep.to(rows.device)])
            out = part.new_zeros(flat.shape[0], shape[-1]).index_copy_(0, keep, part)
        for shared in self.shared_experts:
            out = out + shared(flat).to(out.dtype)
        if self.alpha != 1.0:
            out = self.alpha * out
        return out.to(x.dtype).reshape(shape)


def grouped_expert_sum(x: torch.Tensor, weights: torch.Tensor, experts: torch.Tensor,
                       modules: nn.ModuleList, rows: torch.Tensor | None = None) -> torch.Tensor:
    """``out[t] = sum_j weights[t, j] * modules[experts[t, j]](x[t])`` by grouped dispatch.

    Args:
        x: ``[T, D]`` tokens; weights: ``[T, k]``; experts: ``[T, k]`` int64 expert ids.
        modules: the N expert modules.
        rows: ``[T]`` bool, which tokens observers count (see
            :func:`spikingbrain.neurons.emitter.token_rows`); each expert's gathered block
            carries its own part of it.

    Returns:
        ``[T, D]`` in float32 (float64 for float64 inputs).
    """
    n_tokens, top_k = experts.shape
    acc = _acc_dtype(x.dtype)
    flat_experts = experts.reshape(-1)
    order = torch.argsort(flat_experts, stable=True)
    token_of = order // top_k
    counts = torch.bincount(flat_experts, minlength=len(modules)).tolist()
    x_sorted = x.index_select(0, token_of)
    w_sorted = weights.reshape(-1).index_select(0, order).unsqueeze(-1)
    blocks = []
    row_blocks = (torch.split(rows.index_select(0, token_of.to(rows.device)), counts)
                  if rows is not None else [None] * len(counts))
    for expert, block, r in zip(modules, torch.split(x_sorted, counts), row_blocks,
                                strict=True):
        if block.shape[0]:
            with token_rows(r):
                blocks.append(expert(block).to(acc))
    out = torch.zeros(n_tokens, x.shape[-1], dtype=acc, device=x.device)
    if blocks:
        out.index_add_(0, token_of, torch.cat(blocks) * w_sorted)
    return out


def moe_naive(moe: MoEFeedForward, x: torch.Tensor) -> torch.Tensor:
    """Reference: the same MoE output computed token by token (slow; tests only)."""
    flat = x.reshape(-1, x.shape[-1])
    rows = []
    for t in range(flat.shape[0]):
        token = flat[t : t + 1]
        acc_dtype = _acc_dtype(x.dtype)
        probs = torch.softmax(moe.router(token).to(acc_dtype), dim=-1)[0]
        weights, experts = torch.topk(probs, moe.top_k)
        if moe.normalize_topk:
            weights = weights / weights.sum()
        acc = torch.zeros(1, flat.shape[-1], dtype=acc_dtype, device=x.device)
        for w, e in zip(weights, experts.tolist(), strict=True):
            acc = acc + w * moe.experts[e](token).to(acc_dtype)
        for shared in moe.shared_experts:
            acc = acc + shared(token).to(acc_dtype)
        rows.append(moe.alpha * acc)
    return torch.cat(rows).to(x.dtype).reshape(x.shape)
