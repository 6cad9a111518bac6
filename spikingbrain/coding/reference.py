"""Naive reference coders: one Python step per time step over float32 tensors.

This mirrors how the public SpikingBrain reference (BICLab ``Int2Spike``) works: it emits
float32 spike tensors one time step at a time and checks integrality with ``allclose`` on every
call. It is kept as the ground truth for tests and the baseline for ``benchmarks/coding.py``;
use :func:`spikingbrain.coding.encode` / :func:`~spikingbrain.coding.decode` in real code.

>>> x = torch.tensor([5.0, -3.0])
>>> s = reference_encode(x, "bitwise_bidirectional", T=3)
>>> s.tolist()
[[1.0, -0.0], [0.0, -1.0], [1.0, -1.0]]
>>> reference_decode(s, "bitwise_bidirectional").tolist()
[5.0, -3.0]
"""

from __future__ import annotations

import torch

from spikingbrain.coding.schemes import get_scheme

__all__ = ["reference_encode", "reference_decode"]


def _check_integral(x: torch.Tensor) -> None:
    if not torch.allclose(x, torch.round(x)):
        raise ValueError("reference coder expects integer-valued counts")


def reference_encode(counts: torch.Tensor, scheme: str, T: int) -> torch.Tensor:
    """Float32 spike train ``[T, *shape]`` built one time step at a time."""
    spec = get_scheme(scheme)
    x = counts.to(torch.float32)
    _check_integral(x)
    steps = []
    if not spec.bitwise:
        rest = x.clone()
        for _ in range(T):
            s = torch.sign(rest) * (rest.abs() >= 1).float()
            if not spec.signed:
                s = (rest >= 1).float()
            steps.append(s)
            rest = rest - s
    elif spec.twos_complement:
        neg = (x < 0).float()
        rest = x + neg * 2.0 ** (T - 1)
        steps.append(neg)
        for t in range(1, T):
            w = 2.0 ** (T - 1 - t)
            s = (rest >= w).float()
            steps.append(s)
            rest = rest - s * w
    else:
        sign = torch.sign(x)
        rest = x.abs()
        for t in range(T):
            w = 2.0 ** (T - 1 - t)
            s = (rest >= w).float()
            steps.append(s * sign if spec.signed else s)
            rest = rest - s * w
    return torch.stack(steps) if steps else x.new_zeros((0, *x.shape))


def reference_decode(spikes: torch.Tensor, scheme: str) -> torch.Tensor:
    """Float32 counts from a ``[T, *shape]`` train, accumulated one time step at a time."""
    spec = get_scheme(scheme)
    T = spikes.shape[0]
    weights = spec.time_weights(T).tolist()
    out = torch.zeros(spikes.shape[1:], dtype=torch.float32, device=spikes.device)
    for t in range(T):
        s = spikes[t].to(torch.float32)
        _check_integral(s)
        out = out + weights[t] * s
    return out
