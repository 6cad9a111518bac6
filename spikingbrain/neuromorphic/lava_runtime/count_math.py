"""Count arithmetic shared by the toolkit and the Lava runner (numpy only).

The spike coding of integer counts, the float64 finishing of a layer's output from its integer
accumulators, the adaptive-threshold encoder between chained layers and the integer
accumulator reference. Standard library + numpy: importable under any Python, with or without
the spikingbrain package (the Lava environment runs it from this folder).

>>> value_range("bitwise_bidirectional", 3)
(-7, 7)
>>> expand_spikes(np.array([5, -2]), "bitwise_bidirectional", 3)[:, 0].tolist()
[1, 0, 1]
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SCHEMES", "VTH_MAX", "VTH_MIN", "chain_reference", "count_limits", "encode_counts",
           "expand_spikes", "finish_output", "group_bounds", "integer_accumulators", "scheme_name",
           "to_rails", "value_range"]

VTH_MIN, VTH_MAX = 1e-5, 1e4

#: scheme name -> (signed, bitwise, twos_complement)
SCHEMES = {
    "binary": (False, False, False),
    "ternary": (True, False, False),
    "bitwise": (False, True, False),
    "bitwise_bidirectional": (True, True, False),
    "bitwise_twos_complement": (True, True, True),
}


def value_range(scheme: str, T: int) -> tuple[int, int]:
    """Smallest and largest count a window of ``T`` steps holds for ``scheme``."""
    signed, bitwise, twos = SCHEMES[scheme]
    if not bitwise:
        return (-T if signed else 0, T)
    if twos:
        return (-(1 << (T - 1)), (1 << (T - 1)) - 1)
    top = (1 << T) - 1
    return (-top if signed else 0, top)


def count_limits(scheme: str, T: int) -> tuple[int, int]:
    """Range of counts a layer carries in a window of ``T`` steps: the scheme's range, made
    symmetric for unsigned schemes (negative counts ride on a negative-polarity train)."""
    lo, hi = value_range(scheme, T)
    return (-hi, hi) if not SCHEMES[scheme][0] else (lo, hi)


def expand_spikes(counts: np.ndarray, scheme: str, T: int) -> np.ndarray:
    """Spike train ``[T, *shape]`` (int8) of integer ``counts`` (most significant bit first).

    Same definition as ``spikingbrain.coding.encode``. For the unsigned schemes (binary,
    bitwise) a negative count is the scheme's train of ``|count|`` with polarity -1 (the
    converter's second, negative-polarity train), so entries are in {-1, 0, 1}.
    Counts must fit :func:`count_limits`.
    """
    c = np.asarray(counts, dtype=np.int64)
    signed, bitwise, twos = SCHEMES[scheme]
    lo, hi = count_limits(scheme, T)
    if not signed:
        signed = True
    if c.size and (c.min() < lo or c.max() > hi):
        raise ValueError(f"counts in [{c.min()}, {c.max()}] do not fit {scheme} with T={T}")
    steps = np.arange(T, dtype=np.int64).reshape((T,) + (1,) * c.ndim)
    if not bitwise:
        fires = steps < np.abs(c)[None]
        return np.where(fires, np.sign(c)[None], 0).astype(np.int8)
    shifts = (T - 1 - steps)
    if twos:
        return ((c[None] >> shifts) & 1).astype(np.int8)
    bits = (np.abs(c)[None] >> shifts) & 1
    return (bits * (np.sign(c)[None] if signed else 1)).astype(np.int8)


def finish_output(acc: np.ndarray, vth: np.ndarray, scale: np.ndarray,
                  bias: np.ndarray | None) -> np.ndarray:
    """Float64 layer output ``y [n, out] = vth * sum_g scale[o, g] * acc[n, o, g] + bias``.

    Groups are added sequentially in ascending order; every operation is an elementwise IEEE
    float64 operation, so the result is the same on every machine and numpy version.
    """
    acc = np.asarray(acc)
    scale = np.asarray(scale, dtype=np.float64)
    s = np.zeros(acc.shape[:-1], dtype=np.float64)
    for g in range(acc.shape[-1]):
        s = s + scale[:, g] * acc[..., g].astype(np.float64)
    y = np.asarray(vth, dtype=np.float64).reshape(-1, *([1] * (s.ndim - 1))) * s
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y


def encode_counts(y: np.ndarray, k: float, max_count: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Adaptive-threshold encoder in float64: ``(counts int64 [n, d], vth float64 [n], n_sat)``.

    ``Vth = clamp(fsum(|y|) / d / k, 1e-5, 1e4)`` per row (``math.fsum`` is correctly rounded,
    so the mean does not depend on summation order), ``counts = round_half_even(y / Vth)``,
    clamped to ``[-max_count, max_count]`` when ``max_count`` is set.
    """
    y = np.asarray(y, dtype=np.float64)
    n, d = y.shape
    vth = np.empty(n, dtype=np.float64)
    for r in range(n):
        mean = math.fsum(np.abs(y[r]).tolist()) / d
        vth[r] = min(max(mean / k, VTH_MIN), VTH_MAX)
    q = np.rint(y / vth[:, None])
    n_sat = 0
    if max_count is not None:
        n_sat = int((np.abs(q) > max_count).sum())
        q = np.clip(q, -max_count, max_count)
    return q.astype(np.int64), vth, n_sat


def group_bounds(in_features: int, group_size: int) -> list[tuple[int, int]]:
    """Column ranges ``[start, stop)`` of the weight groups (the last one may be shorter)."""
    return [(a, min(a + group_size, in_features)) for a in range(0, in_features, group_size)]


def integer_accumulators(qdata: np.ndarray, counts: np.ndarray, group_size: int) -> np.ndarray:
    """Numpy reference ``acc [n, out, G]`` (int64): ``sum_{i in g} qdata[o, i] * counts[n, i]``."""
    q = np.asarray(qdata, dtype=np.int64)
    c = np.asarray(counts, dtype=np.int64)
    parts = [c[:, a:b] @ q[:, a:b].T for a, b in group_bounds(q.shape[1], group_size)]
    return np.stack(parts, axis=-1)


def chain_reference(layers: list[dict], counts0: np.ndarray, vth0: np.ndarray) -> list[dict]:
    """Exact chain semantics: per layer the input counts, input Vth and integer accumulators.

    Layer ``l+1``'s input is the float64 encoder (:func:`encode_counts`) applied to layer ``l``'s
    float64 output (:func:`finish_output`). ``layers`` hold ``qdata``, ``scale``, ``bias``,
    ``group_size``, ``k``, ``max_count``.
    """
    out, counts, vth = [], np.asarray(counts0, dtype=np.int64), np.asarray(vth0, np.float64)
    for li, L in enumerate(layers):
        n_sat = 0
        if li > 0:
            prev = out[-1]
            y = finish_output(prev["acc"], prev["vth"], layers[li - 1]["scale"],
                              layers[li - 1]["bias"])
            counts, vth, n_sat = encode_counts(y, L["k"], L["max_count"])
        acc = integer_accumulators(L["qdata"], counts, L["group_size"])
        out.append({"counts": counts, "vth": vth, "acc": acc, "n_saturated": n_sat})
    return out


def scheme_name(signed: bool, bitwise: bool, twos: bool) -> str:
    for name, flags in SCHEMES.items():
        if flags == (signed, bitwise, twos):
            return name
    raise ValueError("no such scheme")


def to_rails(spikes: np.ndarray, scheme: str) -> np.ndarray:
    """Spikes ``[d, ...]`` as sent into Dense: unchanged for signed schemes (graded ±1 or
    {0, 1}); for unsigned schemes two binary rails ``[2d, ...]`` (positive, then negative)."""
    if SCHEMES[scheme][0]:
        return spikes
    return np.concatenate([spikes > 0, spikes < 0]).astype(spikes.dtype)
