"""Input checks shared by the coders: integer counts, finite values, spike alphabets."""

from __future__ import annotations

import torch

__all__ = ["as_integer_counts", "check_tensor"]


def check_tensor(x: object, what: str) -> torch.Tensor:
    """Raise TypeError unless ``x`` is a torch.Tensor."""
    if not isinstance(x, torch.Tensor):
        hint = " (convert it with torch.as_tensor)" if hasattr(x, "__array__") else ""
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}{hint}")
    return x


def as_integer_counts(counts: torch.Tensor, what: str = "counts") -> torch.Tensor:
    """Return ``counts`` as an integer tensor, checking that float input is finite and integral.

    Integer dtypes pass through unchanged; floating tensors must hold whole numbers and are
    converted to int64. bool and complex tensors are rejected.

    >>> as_integer_counts(torch.tensor([1.0, -2.0])).tolist()
    [1, -2]
    >>> as_integer_counts(torch.tensor([0.5]))
    Traceback (most recent call last):
    ...
    ValueError: counts must hold whole numbers, but 1 value(s) are not integers (e.g. 0.5); round them first (torch.round) or use spikingbrain.neurons.adaptive_threshold to make integer counts
    """
    check_tensor(counts, what)
    if counts.dtype == torch.bool or counts.is_complex():
        raise TypeError(
            f"{what} must be an integer (or integer-valued float) tensor, got dtype {counts.dtype}"
        )
    if not counts.is_floating_point():
        return counts
    finite = torch.isfinite(counts)
    if not bool(finite.all()):
        bad = counts[~finite]
        raise ValueError(
            f"{what} contain {bad.numel()} NaN/Inf value(s) (e.g. {bad[0].item()}); "
            f"check the activations that produced them"
        )
    frac = counts != torch.round(counts)
    if bool(frac.any()):
        bad = counts[frac]
        raise ValueError(
            f"{what} must hold whole numbers, but {bad.numel()} value(s) are not integers "
            f"(e.g. {bad[0].item():g}); round them first (torch.round) or use "
            f"spikingbrain.neurons.adaptive_threshold to make integer counts"
        )
    if counts.numel() and float(counts.abs().max()) >= 2**62:
        raise ValueError(f"{what} are too large for int64 (|count| >= 2**62)")
    return counts.to(torch.int64)
