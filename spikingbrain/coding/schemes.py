"""Spike coding schemes: alphabets, time weights, value ranges and minimal window lengths.

A scheme turns an integer spike count ``c`` into ``T`` spikes ``s_t`` with ``c = sum_t w_t * s_t``
(SpikingBrain report, section 3.3.2). Time step 0 comes first; for the bitwise schemes it
carries the most significant bit.

=========================== ============ ==================================== ==========================
scheme                      spike values time weight ``w_t``                  range for a window ``T``
=========================== ============ ==================================== ==========================
``binary``                  {0, 1}       1                                    ``[0, T]``
``ternary``                 {-1, 0, 1}   1                                    ``[-T, T]``
``bitwise``                 {0, 1}       ``2**(T-1-t)``                       ``[0, 2**T - 1]``
``bitwise_bidirectional``   {-1, 0, 1}   ``2**(T-1-t)`` (sign-magnitude)      ``[-(2**T - 1), 2**T - 1]``
``bitwise_twos_complement`` {0, 1}       ``-2**(T-1)`` at t=0, then as above  ``[-2**(T-1), 2**(T-1) - 1]``
=========================== ============ ==================================== ==========================

Example:
    >>> from spikingbrain.coding.schemes import get_scheme
    >>> s = get_scheme("bitwise_twos_complement")
    >>> s.time_weights(4).tolist()
    [-8, 4, 2, 1]
    >>> s.value_range(4)
    (-8, 7)
    >>> s.min_steps(-8, 7)
    4
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["SCHEMES", "SchemeSpec", "get_scheme", "scheme_names", "MAX_BITWISE_STEPS"]

#: Largest window for the bitwise schemes: counts are held in int64.
MAX_BITWISE_STEPS = 62


@dataclass(frozen=True)
class SchemeSpec:
    """Static description of one coding scheme.

    Attributes:
        name: the scheme's name as accepted by :func:`spikingbrain.coding.encode`.
        signed: whether negative counts can be represented.
        bitwise: whether time steps carry powers of two (most significant bit first).
        twos_complement: whether step 0 is a sign bit of weight ``-2**(T-1)``.
        alphabet: the spike values a train of this scheme may contain.
        min_window: the smallest window the scheme chooses by default.
        unsigned_alternative: for unsigned schemes, the signed scheme to suggest.
    """

    name: str
    signed: bool
    bitwise: bool
    twos_complement: bool
    alphabet: tuple[int, ...]
    min_window: int = 0
    unsigned_alternative: str | None = None

    def time_weights(self, T: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Weights ``w_t`` (int64, shape ``[T]``) such that ``count = sum_t w_t * s_t``."""
        self.check_window(T)
        if not self.bitwise:
            return torch.ones(T, dtype=torch.int64, device=device)
        w = torch.pow(2, torch.arange(T - 1, -1, -1, dtype=torch.int64, device=device))
        if self.twos_complement and T > 0:
            w[0] = -w[0]
        return w

    def value_range(self, T: int) -> tuple[int, int]:
        """Smallest and largest count representable in a window of ``T`` steps."""
        self.check_window(T)
        if not self.bitwise:
            return (-T if self.signed else 0, T)
        if self.twos_complement:
            return (-(1 << (T - 1)), (1 << (T - 1)) - 1)
        top = (1 << T) - 1
        return (-top if self.signed else 0, top)

    def min_steps(self, lo: int, hi: int) -> int:
        """Minimal window ``T`` that holds every count in ``[lo, hi]`` (at least ``min_window``).

        ``lo``/``hi`` are the smallest and largest count (use 0, 0 for an empty tensor).
        """
        lo, hi = int(lo), int(hi)
        if lo < 0 and not self.signed:
            raise ValueError(self.negative_message(lo))
        if not self.bitwise:
            T = max(abs(lo), abs(hi))
        elif self.twos_complement:
            # need -2**(T-1) <= lo and hi <= 2**(T-1) - 1
            T = 1 + max((-lo - 1).bit_length() if lo < 0 else 0, max(hi, 0).bit_length())
        else:
            T = max(abs(lo), abs(hi)).bit_length()
        return max(T, self.min_window)

    def check_window(self, T: int) -> None:
        """Raise a clear error if ``T`` is not a valid window for this scheme."""
        if isinstance(T, bool) or not isinstance(T, int):
            raise TypeError(f"T must be a Python int, got {type(T).__name__}")
        low = 1 if self.twos_complement else 0
        if T < low:
            raise ValueError(f"T={T} is too small for scheme '{self.name}': use T >= {low}")
        if self.bitwise and T > MAX_BITWISE_STEPS:
            raise ValueError(
                f"T={T} is too large for scheme '{self.name}': counts are int64, "
                f"so bitwise windows are limited to {MAX_BITWISE_STEPS} steps"
            )

    def negative_message(self, lo: int) -> str:
        return (
            f"scheme '{self.name}' is unsigned but the counts contain negative values "
            f"(minimum {lo}); use scheme '{self.unsigned_alternative}' for signed counts, "
            f"or pass non-negative counts"
        )


SCHEMES: dict[str, SchemeSpec] = {
    s.name: s
    for s in (
        SchemeSpec("binary", False, False, False, (0, 1), unsigned_alternative="ternary"),
        SchemeSpec("ternary", True, False, False, (-1, 0, 1)),
        SchemeSpec(
            "bitwise", False, True, False, (0, 1), unsigned_alternative="bitwise_bidirectional"
        ),
        SchemeSpec("bitwise_bidirectional", True, True, False, (-1, 0, 1)),
        SchemeSpec("bitwise_twos_complement", True, True, True, (0, 1), min_window=2),
    )
}


def scheme_names() -> list[str]:
    """Names of all coding schemes, in a stable order.

    >>> scheme_names()
    ['binary', 'ternary', 'bitwise', 'bitwise_bidirectional', 'bitwise_twos_complement']
    """
    return list(SCHEMES)


def get_scheme(scheme: str | SchemeSpec) -> SchemeSpec:
    """Look a scheme up by name (a :class:`SchemeSpec` passes through).

    >>> get_scheme("ternary").signed
    True
    >>> get_scheme("bits")
    Traceback (most recent call last):
    ...
    ValueError: unknown spike coding scheme 'bits'; choose one of: binary, ternary, bitwise, bitwise_bidirectional, bitwise_twos_complement
    """
    if isinstance(scheme, SchemeSpec):
        return scheme
    if not isinstance(scheme, str):
        raise TypeError(f"scheme must be a string, got {type(scheme).__name__}")
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise ValueError(
            f"unknown spike coding scheme '{scheme}'; choose one of: {', '.join(SCHEMES)}"
        ) from None
