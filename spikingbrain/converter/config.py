"""``SpikeConfig``: every choice of a W8ASpike conversion, validated once, JSON-serialisable.

>>> cfg = SpikeConfig(k=3, granularity="channel")
>>> cfg.k, cfg.group_size_for(384)
(3.0, 384)
>>> SpikeConfig.from_dict(cfg.to_dict()) == cfg
True
>>> SpikeConfig(mode="fast")
Traceback (most recent call last):
...
ValueError: mode must be one of ('count', 'spike', 'fake'), got 'fast'
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from spikingbrain.coding.schemes import get_scheme
from spikingbrain.utils.dtypes import FLOAT_DTYPES

__all__ = ["GRANULARITIES", "MODES", "REMAINDERS", "SpikeConfig"]

KERNELS = ("auto", "torch", "triton")
MODES = ("count", "spike", "fake")
GRANULARITIES = ("group", "channel")
REMAINDERS = ("partial", "error")
_DTYPES = FLOAT_DTYPES


def _dtype_name(dtype: torch.dtype) -> str:
    for name, dt in _DTYPES.items():
        if dt == dtype:
            return name
    raise ValueError(f"compute_dtype must be one of {tuple(_DTYPES)}, got {dtype}")


@dataclass(frozen=True)
class SpikeConfig:
    """Configuration of :func:`spikingbrain.converter.convert` and :class:`SpikingLinear`.

    Attributes:
        k: threshold divisor of the adaptive-threshold neuron, ``Vth = mean(|x|) / k`` (> 0).
        scheme: spike coding scheme (:func:`spikingbrain.coding.scheme_names`). Unsigned schemes
            (``binary``, ``bitwise``) carry negative counts on a second, negative-polarity train.
        T: fixed time window, or ``None`` for the minimal window of each call. With a fixed
            ``T`` counts outside the window's range are clamped (reported as saturated) in
            every mode, so all modes see the same counts.
        max_count: optional clamp ``|count| <= max_count`` (reported as saturated).
        granularity: ``"group"`` (one weight scale per output row and group of ``group_size``
            input columns, as in the public W8ASpike code) or ``"channel"`` (one per row).
        group_size: input columns per weight group (granularity ``"group"``).
        remainder: what to do when ``group_size`` does not divide ``in_features``:
            ``"partial"`` (the last group is shorter) or ``"error"``.
        mode: ``"count"`` (exact int32 accumulation of counts x int8 weights), ``"spike"``
            (event-driven: spike trains accumulated step by step, identical to ``"count"``) or
            ``"fake"`` (float simulation ``linear(Vth * counts, dequantised W)``).
        compute_dtype: float dtype of the epilogue (scales, ``Vth``, bias) and of ``"fake"``.
        clip_weights: when importing public W8ASpike weights, clip codes outside [-128, 127]
            to int8 (with a warning giving their count) instead of keeping them exact in int16.
        kernel: ``"auto"`` (the fused Triton kernels for count and spike mode on CUDA tensors
            where they apply, else torch), ``"torch"`` (always the torch path) or
            ``"triton"`` (the Triton kernels, an error where they do not apply). Same
            integers either way; see docs/gpu.md.
        check_finite: raise ValueError on NaN/Inf activations (on a GPU this reads one flag
            back per layer call, a device sync). ``False`` skips the check (needed for CUDA
            graph capture): a token with NaN/Inf then gives NaN outputs, like ``nn.Linear``.
    """

    k: float = 3.0
    scheme: str = "bitwise_bidirectional"
    T: int | None = None
    max_count: int | None = None
    granularity: str = "group"
    group_size: int = 128
    mode: str = "count"
    compute_dtype: torch.dtype = torch.float32
    clip_weights: bool = False
    remainder: str = "partial"
    kernel: str = "auto"
    check_finite: bool = True

    def __post_init__(self) -> None:
        k = self.k
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k <= 0:
            raise ValueError(f"k must be a positive finite number, got {k!r}")
        object.__setattr__(self, "k", float(k))
        spec = get_scheme(self.scheme)  # raises on an unknown name
        if self.T is not None:
            spec.check_window(self.T)
            if self.T < 1:
                raise ValueError(f"T must be >= 1 (or None for the minimal window), got {self.T}")
        mc = self.max_count
        if mc is not None and (isinstance(mc, bool) or not isinstance(mc, int) or mc < 1):
            raise ValueError(f"max_count must be a positive int or None, got {mc!r}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"granularity must be one of {GRANULARITIES}, got {self.granularity!r}"
            )
        gs = self.group_size
        if isinstance(gs, bool) or not isinstance(gs, int) or gs < 1:
            raise ValueError(f"group_size must be a positive int, got {gs!r}")
        if self.remainder not in REMAINDERS:
            raise ValueError(f"remainder must be one of {REMAINDERS}, got {self.remainder!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not isinstance(self.compute_dtype, torch.dtype):
            raise TypeError(
                f"compute_dtype must be a torch.dtype such as torch.float32, "
                f"got {type(self.compute_dtype).__name__}"
            )
        _dtype_name(self.compute_dtype)
        for name in ("clip_weights", "check_finite"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")

    # ----------------------------------------------------------------- derived values
    def group_size_for(self, in_features: int) -> int:
        """Group size used for a layer with ``in_features`` inputs.

        ``in_features`` for granularity ``"channel"`` (and when ``group_size >= in_features``).
        Raises ValueError when the group size does not divide ``in_features`` and
        ``remainder="error"``.

        >>> SpikeConfig(group_size=128).group_size_for(300)
        128
        >>> SpikeConfig(group_size=128, remainder="error").group_size_for(300)
        Traceback (most recent call last):
        ...
        ValueError: group_size 128 does not divide in_features 300 and remainder='error'; use remainder='partial' (the last group is shorter), a group_size dividing 300, or granularity='channel'
        """
        if self.granularity == "channel" or self.group_size >= in_features:
            return int(in_features)
        if in_features % self.group_size and self.remainder == "error":
            raise ValueError(
                f"group_size {self.group_size} does not divide in_features {in_features} and "
                f"remainder='error'; use remainder='partial' (the last group is shorter), a "
                f"group_size dividing {in_features}, or granularity='channel'"
            )
        return self.group_size

    def count_limits(self) -> tuple[int | None, int | None]:
        """Smallest and largest count allowed by ``T`` and ``max_count`` (None = unbounded).

        >>> SpikeConfig(T=3).count_limits()
        (-7, 7)
        >>> SpikeConfig(scheme="bitwise_twos_complement", T=4, max_count=5).count_limits()
        (-5, 5)
        >>> SpikeConfig(scheme="binary", T=4).count_limits()
        (-4, 4)
        """
        lo: int | None = None
        hi: int | None = None
        if self.T is not None:
            spec = get_scheme(self.scheme)
            rlo, rhi = spec.value_range(self.T)
            if not spec.signed:  # negative counts ride on a second train of the same scheme
                rlo = -rhi
            lo, hi = rlo, rhi
        if self.max_count is not None:
            lo = -self.max_count if lo is None else max(lo, -self.max_count)
            hi = self.max_count if hi is None else min(hi, self.max_count)
        return lo, hi

    def replace(self, **changes: Any) -> SpikeConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (``compute_dtype`` as its name, e.g. ``"float32"``)."""
        d = dataclasses.asdict(self)
        d["compute_dtype"] = _dtype_name(self.compute_dtype)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpikeConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        if not isinstance(d, dict):
            raise TypeError(f"SpikeConfig.from_dict needs a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"unknown SpikeConfig field(s) {unknown}; known fields: {sorted(names)} "
                f"(was the file written by a newer spikingbrain?)"
            )
        d = dict(d)
        if isinstance(d.get("compute_dtype"), str):
            name = d["compute_dtype"].removeprefix("torch.")
            if name not in _DTYPES:
                raise ValueError(
                    f"compute_dtype must be one of {tuple(_DTYPES)}, got {d['compute_dtype']!r}"
                )
            d["compute_dtype"] = _DTYPES[name]
        return cls(**d)
