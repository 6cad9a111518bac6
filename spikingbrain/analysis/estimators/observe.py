"""Workloads observed on any network: the spike inputs of every ``nn.Linear`` during a run.

For networks whose neurons do not report spike statistics to our monitor (spikingjelly IF / LIF
stacks, our neurons through the spikingjelly adapter), :func:`observe_linear_workloads` runs
the network once and records, for every linear layer in call order, the spikes entering it.
Inputs are spike tensors (values in {-1, 0, 1}) shaped ``[T, tokens..., in]`` for a multi-step
run (``steps = T``) or ``[tokens..., in]`` for a single step.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
>>> x = torch.tensor([[[1., 0, 0, 1]], [[0., 0, 0, 1]]])      # T = 2 steps, 1 token
>>> ws = observe_linear_workloads(net, x, steps=2)
>>> w = ws[0]
>>> w.spikes_per_channel, w.nonzero_per_channel, w.steps, w.tokens_measured
(0.75, 0.5, 2.0, 1)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikingbrain.analysis.estimators.workload import NON_SPIKING_SOURCE, LayerWorkload

__all__ = ["observe_linear_workloads"]


def observe_linear_workloads(model: nn.Module, inputs: Any, steps: int = 1,
                             scheme: str = "binary") -> list[LayerWorkload]:
    """Run ``model(inputs)`` once and return one workload per ``nn.Linear`` that was called.

    Args:
        model: the network; every ``nn.Linear`` submodule is observed.
        inputs: the model's input (a tuple is unpacked).
        steps: time steps T; > 1 means every linear input is ``[T, tokens..., in]``.
        scheme: the coding scheme the spikes follow (``"binary"`` for {0, 1} spikes).

    Layers whose input is not a spike tensor are still recorded (their rates are those of
    the values' magnitudes) and named in ``source`` as ``"observed: non-spiking input"``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    seen: dict[str, dict[str, Any]] = {}
    names = {id(m): n for n, m in model.named_modules()}

    def hook(mod: nn.Module, args: tuple) -> None:
        x = args[0].detach()
        if steps > 1:
            if x.dim() < 3 or x.shape[0] != steps:
                raise ValueError(f"layer {names[id(mod)]!r}: a multi-step input must be "
                                 f"[T={steps}, tokens..., in], got {tuple(x.shape)}")
            counts = x.reshape(steps, -1, x.shape[-1])
        else:
            counts = x.reshape(1, -1, x.shape[-1])
        rec = seen.setdefault(names[id(mod)], dict(mod=mod, tokens=0, spikes=0.0, nonzero=0,
                                                   spiking=True))
        rec["tokens"] += counts.shape[1]
        rec["spikes"] += float(counts.abs().sum(dtype=torch.float64))
        rec["nonzero"] += int((counts != 0).any(0).sum())
        rec["spiking"] &= bool(((counts == 0) | (counts.abs() == 1)).all())

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    finally:
        for h in handles:
            h.remove()
    out = []
    for name, r in seen.items():
        mod, n = r["mod"], r["mod"].in_features
        out.append(LayerWorkload(
            name=name or type(mod).__name__, in_features=n, out_features=mod.out_features,
            group_size=None, tokens_measured=r["tokens"],
            spikes_per_channel=r["spikes"] / (r["tokens"] * n),
            nonzero_per_channel=r["nonzero"] / (r["tokens"] * n), scheme=scheme,
            steps=float(steps), has_bias=mod.bias is not None,
            source="measured" if r["spiking"] else NON_SPIKING_SOURCE))
    return out
