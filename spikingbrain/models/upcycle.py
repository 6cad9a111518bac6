"""MoE upcycling (SpikingBrain report section 3): a dense model's SwiGLU FFNs become MoE FFNs.

Every routed and shared expert starts as a copy of the dense FFN whose three projections
(``gate_proj``, ``up_proj``, ``down_proj``) are multiplied by ``alpha = (S + k/N) ** (-1/3)``
(0.98 for S = 1, k = 1, N = 16), and the router is random (normal, std ``router_std``, from
``seed``). This is our reading of the report's eq. 18 (section 3.2): the expert *weights* are
rescaled once, at initialisation, and the cube root spreads the factor ``1 / (S + k/N)`` over
the three matrices of a SwiGLU expert, whose output is of degree about 3 in a common weight
scale (exactly 3 for the up/down path, about 1 through SiLU for small gate values). The MoE
forward then applies no scale of its own (``alpha = 1``), so a trained checkpoint is never
scaled twice. Right after upcycling, the MoE output over the dense output is about
``alpha ** 3 * (S + k/N) = 1`` (measured in ``tests/models/test_models_upcycle.py`` and
docs/models.md).

>>> import torch
>>> from torch import nn
>>> from spikingbrain.models.ops.moe import SwiGLUMLP
>>> net = nn.ModuleDict({"mlp": SwiGLUMLP(8, 16)})
>>> report = upcycle(net, n_experts=4, top_k=1, n_shared=1, seed=0)
>>> type(net["mlp"]).__name__, report.layers
('MoEFeedForward', ['mlp'])
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from spikingbrain.models.ops.moe import MoEFeedForward, upcycling_alpha

_SWIGLU_NAMES = ("gate_proj", "up_proj", "down_proj")


@dataclass
class UpcycleReport:
    """What :func:`upcycle` did: the replaced FFN names (dotted) and the scale used."""

    layers: list[str] = field(default_factory=list)
    alpha: float = 1.0


def is_swiglu_mlp(module: nn.Module) -> bool:
    """True for a module with ``gate_proj``/``up_proj``/``down_proj`` linears (and no router)."""
    return (all(isinstance(getattr(module, n, None), nn.Linear) for n in _SWIGLU_NAMES)
            and not isinstance(module, MoEFeedForward))


def upcycle(dense_model_or_config: Any, n_experts: int = 16, top_k: int = 1, n_shared: int = 1,
            seed: int = 0, *, alpha: float | None = None, router_std: float = 0.02,
            mlp_name: str = "mlp", skip_layers: list[int] | None = None) -> Any:
    """Turn dense SwiGLU FFNs into upcycled MoE FFNs (in place for a model).

    Args:
        dense_model_or_config: an ``nn.Module`` whose FFNs are SwiGLU MLPs reachable as
            ``...<mlp_name>`` (SpikingBrain-7B, a dense SpikingBrain-76B, Qwen2/Llama...), or a
            SpikingBrain-76B config (a copy with the MoE fields set is returned).
        n_experts, top_k, n_shared: N routed experts, k per token, S shared experts.
        seed: seeds the random routers (reproducible).
        alpha: scale folded into each expert projection (default ``(S + k/N) ** (-1/3)``).
        router_std: standard deviation of the random router weights.
        mlp_name: attribute name of the FFN inside each block.
        skip_layers: block indices (0-based, the number in ``layers.<i>.``) that stay dense;
            default: the model config's ``dense_ffn_layers`` if it has one, else none.

    Returns:
        For a model: an :class:`UpcycleReport` (the model is changed in place; a model with a
        ``config`` carrying ``n_routed_experts`` gets its MoE fields updated). For a config:
        the upcycled config copy.

    Raises:
        ValueError: no dense SwiGLU FFN found, or bad N/k/S. TypeError: unsupported input.
    """
    scale = upcycling_alpha(n_shared, top_k, n_experts) if alpha is None else float(alpha)
    if not isinstance(dense_model_or_config, nn.Module):
        return _upcycle_config(dense_model_or_config, n_experts, top_k, n_shared, scale)
    model = dense_model_or_config
    config = getattr(model, "config", None)
    if skip_layers is None:
        skip_layers = list(getattr(config, "dense_ffn_layers", None) or [])
    targets = [(name, module) for name, module in model.named_modules()
               if name.split(".")[-1] == mlp_name and is_swiglu_mlp(module)
               and _layer_index(name) not in set(skip_layers)]
    if not targets:
        raise ValueError(f"no dense SwiGLU FFN named '{mlp_name}' (with gate_proj, up_proj, "
                         "down_proj linears) found; pass mlp_name= for your model")
    generator = torch.Generator().manual_seed(seed)
    for name, dense in targets:
        moe = _moe_from_dense(dense, n_experts, top_k, n_shared, scale, router_std, generator)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, moe)
    if config is not None and hasattr(config, "moe_layers"):  # SpikingBrain-7B
        _set_moe_fields(config, n_experts, top_k, n_shared)
        config.moe_layers = sorted({*config.moe_layers,
                                    *(_layer_index(name) for name, _ in targets)})
    elif config is not None and hasattr(config, "n_routed_experts"):  # SpikingBrain-76B
        _set_moe_fields(config, n_experts, top_k, n_shared)
        config.dense_ffn_layers = sorted(skip_layers)
    elif config is not None:
        warnings.warn(f"{type(config).__name__} has no MoE fields: save_pretrained will not "
                      "record the upcycled FFNs (only SpikingBrain configs can)", stacklevel=2)
    return UpcycleReport(layers=[name for name, _ in targets], alpha=scale)


def _layer_index(name: str) -> int | None:
    parts = name.split(".")
    for before, part in zip(parts, parts[1:], strict=False):
        if before == "layers" and part.isdigit():
            return int(part)
    return None


def _moe_from_dense(dense: nn.Module, n_experts: int, top_k: int, n_shared: int, scale: float,
                    router_std: float, generator: torch.Generator) -> MoEFeedForward:
    gate = dense.gate_proj
    hidden, inter = gate.in_features, gate.out_features
    weight = gate.weight
    with torch.device("meta"):
        moe = MoEFeedForward(hidden, inter, n_experts=n_experts, top_k=top_k, n_shared=n_shared)
    scaled = copy.deepcopy(dense)
    with torch.no_grad():
        for name in _SWIGLU_NAMES:
            getattr(scaled, name).weight.mul_(scale)
    moe.experts = nn.ModuleList(copy.deepcopy(scaled) for _ in range(n_experts))
    moe.shared_experts = nn.ModuleList(copy.deepcopy(scaled) for _ in range(n_shared))
    router = torch.randn(n_experts, hidden, generator=generator) * router_std
    moe.router = nn.Linear(hidden, n_experts, bias=False, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        moe.router.weight.copy_(router.to(weight.dtype))
    return moe


def _set_moe_fields(config: Any, n_experts: int, top_k: int, n_shared: int) -> None:
    config.n_routed_experts, config.num_experts_per_tok = n_experts, top_k
    config.n_shared_experts, config.moe_alpha = n_shared, 1.0  # the scale is in the weights


def _upcycle_config(config: Any, n_experts: int, top_k: int, n_shared: int, scale: float) -> Any:
    if not hasattr(config, "n_routed_experts"):
        raise TypeError(f"upcycle takes an nn.Module or a SpikingBrain-76B config, got "
                        f"{type(config).__name__}; pass the model to upcycle its FFNs")
    new = copy.deepcopy(config)
    _set_moe_fields(new, n_experts, top_k, n_shared)
    return new
