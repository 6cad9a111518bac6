"""Multi-step form of the adaptive-threshold neuron: an IF neuron with soft reset.

The single-step neuron emits the integer count ``round(x / Vth)`` at once. The multi-step view
(report section 3.3.1) integrates the activation into the membrane and lets an integrate-and-fire
neuron with soft reset emit it over ``T`` steps: at step ``t`` the neuron fires a spike of time
weight ``w_t`` (1 for binary/ternary, ``2**(T-1-t)`` for the bitwise schemes, most significant bit
first) when its membrane reaches the step's threshold, and the reset subtracts what the spike
carried, ``v_{t+1} = v_t - w_t * s_t``. Summed (time-weighted) spikes equal the single-step count,
so ``spikes == coding.encode(counts, scheme, T)`` exactly.

The membrane is expressed in units of ``Vth`` (``v_0 = x / Vth``) and the firing threshold of a
step of weight ``w`` sits at ``w - 1/2`` (the rounding offset of ``round``); a membrane exactly on
that threshold fires when this keeps the running count even, so the neuron reproduces
``torch.round``'s round-half-to-even. Threshold comparisons are done in float64 against integer
partial sums, so they are exact. Unsigned schemes (binary, bitwise) rectify: a negative membrane
never fires. With a fixed ``T`` that is too short, the neuron saturates at the window's range
(the same as ``encode(..., overflow="saturate")``).
"""

from __future__ import annotations

import torch

from spikingbrain.coding.codec import count_range
from spikingbrain.coding.schemes import SchemeSpec, get_scheme
from spikingbrain.neurons.adaptive import _check_activations, adaptive_threshold

__all__ = ["if_soft_reset_multistep", "adaptive_threshold_multistep", "AdaptiveThresholdMultiStep"]


def _fires(u: torch.Tensor, acc: torch.Tensor, w: int, sign: torch.Tensor | None) -> torch.Tensor:
    """Whether a spike of weight ``w`` (times ``sign``) fires, given membrane ``u - acc``."""
    if sign is None:  # unsigned: compare u - acc against w - 1/2
        margin = u - (acc.to(torch.float64) + (w - 0.5))
        tie_ok = torch.remainder(acc + w, 2) == 0
    else:  # sign-magnitude: the same on |u - acc| in the direction of the membrane's sign
        margin = sign * (u - acc.to(torch.float64)) - (w - 0.5)
        tie_ok = torch.remainder(acc + sign.to(acc.dtype) * w, 2) == 0
    return (margin > 0) | ((margin == 0) & tie_ok)


def if_soft_reset_multistep(u: torch.Tensor, scheme: str | SchemeSpec, T: int) -> torch.Tensor:
    """Run the IF neuron with soft reset for ``T`` steps on a membrane ``u`` in units of Vth.

    Args:
        u: initial membrane ``[*shape]`` (``x / Vth``), floating point and finite.
        scheme: coding scheme (sets the time weights and the spike alphabet).
        T: number of time steps.

    Returns:
        int8 spikes ``[T, *shape]`` equal to ``encode(round(u), scheme, T, overflow="saturate")``
        (``round(u)`` rectified to 0 for the unsigned schemes).

    >>> u = torch.tensor([2.5, 3.5, -1.2, 0.4])
    >>> if_soft_reset_multistep(u, "ternary", 4).sum(0).tolist()
    [2, 4, -1, 0]
    >>> if_soft_reset_multistep(torch.tensor([5.2]), "bitwise", 3).flatten().tolist()
    [1, 0, 1]
    """
    spec = get_scheme(scheme)
    spec.check_window(T)
    if not u.is_floating_point():
        raise TypeError(f"u must be a floating-point membrane tensor, got {u.dtype}")
    u64 = u.detach().to(torch.float64)
    weights = spec.time_weights(T).tolist()
    acc = torch.zeros(u.shape, dtype=torch.int64, device=u.device)
    out = torch.zeros((T, *u.shape), dtype=torch.int8, device=u.device)
    start = 0
    if spec.twos_complement:
        # the sign neuron fires once, at step 0, when the rounded membrane is negative
        neg = u64 < -0.5
        out[0] = neg.to(torch.int8)
        acc = torch.where(neg, weights[0], acc)
        start = 1
    sign = torch.sign(u64) if spec.signed and not spec.twos_complement else None
    for t in range(start, T):
        w = weights[t]
        s = _fires(u64, acc, w, sign)
        if sign is None:
            out[t] = s.to(torch.int8)
            acc = acc + s.to(torch.int64) * w
        else:
            step = s.to(torch.int64) * sign.to(torch.int64)
            out[t] = step.to(torch.int8)
            acc = acc + step * w
    return out


def adaptive_threshold_multistep(
    x: torch.Tensor,
    scheme: str | SchemeSpec = "bitwise_bidirectional",
    T: int | None = None,
    k: float = 3.0,
    max_count: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spike trains of the adaptive-threshold neuron run as an IF neuron over ``T`` steps.

    Args:
        x: activations ``[..., hidden]``.
        scheme: coding scheme of the emitted spikes.
        T: number of steps; ``None`` takes the minimal window of the single-step counts.
        k: threshold divisor (``Vth = mean|x| / k``).
        max_count: optional clamp of the membrane to ``[-max_count, max_count]`` (in Vth units).

    Returns:
        ``(spikes [T, ..., hidden] int8, vth [..., 1])`` with
        ``decode(spikes, scheme) == adaptive_threshold(x, k, max_count).counts`` whenever the
        counts fit ``T`` (and are non-negative for the unsigned schemes).

    >>> x = torch.tensor([[0.4, -1.0, 1.6]])
    >>> spikes, vth = adaptive_threshold_multistep(x, "ternary")
    >>> spikes.sum(0).tolist()
    [[1, -3, 5]]
    """
    spec = get_scheme(scheme)
    _check_activations(x, k, max_count)
    counts, vth = adaptive_threshold(x.detach(), k, max_count)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    u = x.detach() / vth
    if max_count is not None:
        u = u.clamp(-max_count, max_count)
    if T is None:
        lo, hi = count_range(counts)
        if not spec.signed:
            lo, hi = 0, max(hi, 0)
        T = spec.min_steps(lo, hi)
    return if_soft_reset_multistep(u, spec, T), vth


class AdaptiveThresholdMultiStep(torch.nn.Module):
    """Module form of :func:`adaptive_threshold_multistep`: ``x -> (spikes [T, ...], vth)``.

    >>> neuron = AdaptiveThresholdMultiStep(scheme="bitwise", T=4)
    >>> spikes, _ = neuron(torch.tensor([0.5, 1.0, 1.5]))
    >>> spikes.shape
    torch.Size([4, 3])
    """

    def __init__(
        self,
        scheme: str = "bitwise_bidirectional",
        T: int | None = None,
        k: float = 3.0,
        max_count: int | None = None,
    ) -> None:
        super().__init__()
        spec = get_scheme(scheme)
        if T is not None:
            spec.check_window(T)
        _check_activations(torch.zeros(1), k, max_count)
        self.scheme, self.T, self.k, self.max_count = spec.name, T, float(k), max_count

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return adaptive_threshold_multistep(x, self.scheme, self.T, self.k, self.max_count)

    def extra_repr(self) -> str:
        return f"scheme={self.scheme!r}, T={self.T}, k={self.k}, max_count={self.max_count}"
