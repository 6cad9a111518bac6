"""Spikes of a count under each coding scheme, and minimal windows, as exact integer functions
on tensors (no host synchronisation): the primitives of the spike statistics.
"""

from __future__ import annotations

import torch

from spikingbrain.coding import get_scheme

__all__ = ["popcount", "spikes_per_count", "window_for"]


def popcount(x: torch.Tensor) -> torch.Tensor:
    """Number of set bits of each element of a non-negative int64 tensor (SWAR, exact).

    >>> popcount(torch.tensor([0, 1, 7, 8, 255, 2**40 + 3])).tolist()
    [0, 1, 3, 1, 8, 3]
    """
    if x.dtype != torch.int64:
        x = x.to(torch.int64)
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    x = x + (x >> 8)
    x = x + (x >> 16)
    x = x + (x >> 32)
    return x & 0x7F


def spikes_per_count(
    counts: torch.Tensor, scheme: str, T: int | torch.Tensor | None = None
) -> torch.Tensor:
    """Non-zero spikes in the expanded train of each count (int64, same shape).

    ``T`` is needed for ``bitwise_twos_complement`` only (the word length); unsigned schemes
    count a (invalid) negative count by its magnitude.

    >>> c = torch.tensor([0, 3, -3, 6])
    >>> spikes_per_count(c, "ternary").tolist()
    [0, 3, 3, 6]
    >>> spikes_per_count(c, "bitwise_bidirectional").tolist()
    [0, 2, 2, 2]
    >>> spikes_per_count(c, "bitwise_twos_complement", T=4).tolist()  # -3 = 0b1101
    [0, 2, 3, 2]
    """
    spec = get_scheme(scheme)
    c = counts.to(torch.int64)
    if not spec.bitwise:
        return c.abs()
    if spec.twos_complement:
        if T is None:
            raise ValueError("bitwise_twos_complement needs the window T to count spikes")
        one = torch.ones((), dtype=torch.int64, device=c.device)
        mask = torch.bitwise_left_shift(one, torch.as_tensor(T, device=c.device)) - 1
        return popcount(c & mask)
    return popcount(c.abs())


def _bit_length(x: torch.Tensor) -> torch.Tensor:
    """``int.bit_length`` of a non-negative int64 tensor (exact below 2**53)."""
    return torch.frexp(x.to(torch.float64)).exponent.to(torch.int64)


def window_for(lo: torch.Tensor, hi: torch.Tensor, scheme: str) -> torch.Tensor:
    """Minimal window (0-dim int64 tensor) of counts in ``[lo, hi]``; no host synchronisation.

    Matches :func:`spikingbrain.coding.min_steps` (unsigned schemes use ``max|c|``).

    >>> window_for(torch.tensor(-3), torch.tensor(5), "bitwise_twos_complement").item()
    4
    """
    spec = get_scheme(scheme)
    lo, hi = lo.to(torch.int64), hi.to(torch.int64)
    amax = torch.maximum(lo.abs(), hi.abs())
    if not spec.bitwise:
        T = amax
    elif spec.twos_complement:
        neg = torch.clamp(-lo - 1, min=0)
        T = 1 + torch.maximum(_bit_length(neg), _bit_length(hi.clamp(min=0)))
    else:
        T = _bit_length(amax)
    return torch.clamp(T, min=spec.min_window)
