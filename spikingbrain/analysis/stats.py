"""Spike statistics: the metric definitions, as pure functions and plain result dataclasses.

A spiking layer sees integer counts ``c`` (one per token and input channel). Under a coding
scheme (binary, ternary, bitwise, sign-magnitude or two's complement bitwise) a count becomes a
spike train of ``T`` time steps. Everything the analysis reports is derived from a few exact
integer totals per layer, held in :class:`LayerStats`; the streaming monitor
(:mod:`spikingbrain.analysis.monitor`) accumulates the same totals on the fly, and
:func:`count_statistics` computes them from stored count tensors (the reference the monitor is
tested against).

>>> import torch
>>> st = count_statistics([torch.tensor([[0, 1, -3, 9]])], "bitwise_bidirectional", window=3)
>>> st.spikes, st.elements, st.silent_fraction
(5, 4, 0.25)
>>> round(st.sparsity_at(3), 4)  # 9 saturates to 7 = 0b111 in a 3-step window
0.5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from spikingbrain.analysis.spike_counts import popcount, spikes_per_count, window_for
from spikingbrain.coding import encode, get_scheme, min_steps

__all__ = [
    "DEFAULT_HIST_RANGE",
    "DEFINITIONS",
    "LayerStats",
    "ModelStats",
    "count_statistics",
    "popcount",
    "spikes_per_count",
    "window_for",
]

#: Counts are histogrammed exactly in ``[-H, H]``; values beyond fall in the edge bins.
DEFAULT_HIST_RANGE = 4096

#: Definitions written into every report (key -> sentence).
DEFINITIONS: dict[str, str] = {
    "count": "Integer spike count c = round(x / Vth) of one input channel for one token "
    "(Vth = mean(|x|)/k per token, SpikingBrain report eq. 19-21).",
    "tokens": "Real tokens only: padding is left out (by the token mask, or by the model itself "
    "for the SpikingBrain models), and so are SpikingBrain-76B's sink tokens, which are "
    "input-independent and belong to no token (they are computed once per sequence but never "
    "counted). An MoE expert counts the tokens routed to it.",
    "elements": "Number of (token, channel) counts seen; padding tokens are excluded when a "
    "token mask is given.",
    "spikes_per_count": "Non-zero spikes of the expanded train of one count: |c| for binary and "
    "ternary; popcount(|c|) for bitwise and sign-magnitude bitwise (bitwise_bidirectional); "
    "popcount of the T-bit two's complement word of c for bitwise_twos_complement.",
    "window": "Time steps T of a layer call: the configured window if the layer has one, else "
    "the minimal window of that call's counts (binary/ternary: max|c|; bitwise: "
    "ceil(log2(max|c|+1)); two's complement: one more bit, at least 2).",
    "mean_spikes_per_channel": "Total spikes / elements, spikes counted under the layer's "
    "scheme and window (the report's 1.13 for SpikingBrain-7B).",
    "fraction_le_7": "Fraction of counts with |c| <= 7 (fits a 3-step bitwise train).",
    "fraction_gt_16": "Fraction of counts with |c| > 16.",
    "silent_fraction": "Fraction of counts equal to 0 (a channel silent for that token).",
    "dead_channel_fraction": "Fraction of input channels whose count was 0 for every token seen.",
    "trains": "Spike trains a count is carried on: 1, or 2 for an unsigned scheme (binary, "
    "bitwise) in a converted layer, which runs the positive and the negative part of the "
    "counts as two trains of T steps each.",
    "firing_rate": "Spikes / (trains x T x elements) with each call's window T: the "
    "probability that a (train, channel, time step) slot carries a spike.",
    "sparsity": "Element sparsity of the expanded trains with each call's own window: "
    "zeros / (trains x T x elements) = 1 - firing_rate (NeuroBench activation sparsity of "
    "the spike trains).",
    "sparsity_at_window": "Element sparsity of the trains expanded with one fixed window W for "
    "every layer: zeros / (trains x W x elements); counts that do not fit W steps saturate "
    "to the window's range (as encode(..., overflow='saturate')).",
    "groups": "Weight groups per output of a converted layer (in / group_size): the float "
    "multiply-adds per output of its epilogue.",
    "saturated": "Counts clamped by the neuron's max_count (reported by the layer).",
    "dense_macs": "NeuroBench dense synaptic operations of the single-step (count) view: "
    "elements x fan-out, the MACs of the original float layer.",
    "effective_macs": "NeuroBench effective MACs: non-zero inputs x fan-out, for layer calls "
    "whose input is not a spike tensor (some |c| > 1).",
    "effective_acs": "NeuroBench effective ACs: non-zero inputs x fan-out, for layer calls whose "
    "input is a spike tensor (every value in {-1, 0, 1}).",
    "event_acs": "Accumulate operations of the event-driven (expanded) view: spikes x fan-out; "
    "every spike adds one INT8 weight per output.",
    "footprint_bytes": "NeuroBench footprint: bytes of all parameters and buffers of the model.",
}


@dataclass
class LayerStats:
    """Exact integer totals of one spiking layer (or of a whole model), plus derived metrics.

    Attributes are raw totals over all calls; the derived metrics are properties, see
    :data:`DEFINITIONS`. ``hist[i]`` counts the value ``i - hist_range`` (the two end bins
    also hold everything beyond ``±hist_range``).
    """

    name: str
    scheme: str
    kind: str = ""
    T_config: int | None = None
    max_count: int | None = None
    channels: int = 0
    fan_out: int | None = None
    trains: int = 1
    groups: int | None = None
    calls: int = 0
    tokens: int = 0
    elements: int = 0
    spikes: int = 0
    slots: int = 0
    window_sum: int = 0
    window_max: int = 0
    saturated: int = 0
    beyond_hist: int = 0
    negative_unsigned: int = 0
    spike_calls_nonzero: int = 0
    count_calls_nonzero: int = 0
    hist_range: int = DEFAULT_HIST_RANGE
    hist: list[int] = field(default_factory=list)
    channel_nonzero: list[int] = field(default_factory=list)

    # ---- derived metrics -------------------------------------------------------------
    def _frac(self, n: int) -> float:
        return n / self.elements if self.elements else 0.0

    def _hist_t(self) -> torch.Tensor:
        if not self.hist:
            return torch.zeros(2 * self.hist_range + 1, dtype=torch.int64)
        return torch.tensor(self.hist, dtype=torch.int64)

    def _values(self) -> torch.Tensor:
        return torch.arange(-self.hist_range, self.hist_range + 1, dtype=torch.int64)

    @property
    def zeros(self) -> int:
        """Counts equal to 0."""
        return self.hist[self.hist_range] if self.hist else 0

    @property
    def nonzero(self) -> int:
        """Counts different from 0 (active (token, channel) pairs)."""
        return self.elements - self.zeros

    def fraction_abs_le(self, n: int) -> float:
        """Fraction of counts with ``|c| <= n`` (``n < hist_range``)."""
        if not 0 <= n < self.hist_range:
            raise ValueError(f"n must be in [0, {self.hist_range}), got {n}")
        v = self._values()
        return self._frac(int(self._hist_t()[v.abs() <= n].sum()))

    @property
    def fraction_le_7(self) -> float:
        return self.fraction_abs_le(7)

    @property
    def fraction_gt_16(self) -> float:
        return 1.0 - self.fraction_abs_le(16) if self.elements else 0.0

    @property
    def mean_spikes_per_channel(self) -> float:
        return self._frac(self.spikes)

    @property
    def silent_fraction(self) -> float:
        return self._frac(self.zeros)

    @property
    def dead_channel_fraction(self) -> float:
        if not self.channel_nonzero:
            return 0.0
        return sum(1 for v in self.channel_nonzero if v == 0) / len(self.channel_nonzero)

    @property
    def firing_rate(self) -> float:
        return self.spikes / self.slots if self.slots else 0.0

    @property
    def sparsity(self) -> float:
        return 1.0 - self.firing_rate if self.slots else 1.0

    @property
    def mean_window(self) -> float:
        return self.window_sum / self.calls if self.calls else 0.0

    def sparsity_at(self, window: int) -> float:
        """Element sparsity of the trains expanded with a fixed ``window`` (saturating)."""
        spec = get_scheme(self.scheme)
        spec.check_window(window)
        lo, hi = spec.value_range(window)
        if max(abs(lo), hi) > self.hist_range:
            raise ValueError(
                f"window {window} spans counts up to {max(abs(lo), hi)}, beyond the histogram "
                f"range ±{self.hist_range}; monitor with a larger hist_range"
            )
        if not self.elements or window == 0:
            return 1.0
        v = self._values()
        if not spec.signed:
            v = v.abs()
        spk = spikes_per_count(v.clamp(lo, hi), spec.name, window)
        return 1.0 - int((spk * self._hist_t()).sum()) / (self.trains * window * self.elements)

    # ---- synaptic operations ----------------------------------------------------------
    @property
    def dense_macs(self) -> int:
        return self.elements * (self.fan_out or 0)

    @property
    def effective_macs(self) -> int:
        return self.count_calls_nonzero * (self.fan_out or 0)

    @property
    def effective_acs(self) -> int:
        return self.spike_calls_nonzero * (self.fan_out or 0)

    @property
    def event_acs(self) -> int:
        return self.spikes * (self.fan_out or 0)

    def metrics(self, window: int | None = None) -> dict[str, Any]:
        """The derived metrics as a flat dict (what reports and tables show)."""
        out: dict[str, Any] = {
            "fraction_le_7": self.fraction_le_7,
            "fraction_gt_16": self.fraction_gt_16,
            "mean_spikes_per_channel": self.mean_spikes_per_channel,
            "silent_fraction": self.silent_fraction,
            "dead_channel_fraction": self.dead_channel_fraction,
            "firing_rate": self.firing_rate,
            "sparsity": self.sparsity,
            "mean_window": self.mean_window,
            "max_window": self.window_max,
            "saturated": self.saturated,
            "dense_macs": self.dense_macs,
            "effective_macs": self.effective_macs,
            "effective_acs": self.effective_acs,
            "event_acs": self.event_acs,
        }
        if window is not None:
            out["sparsity_at_window"] = self.sparsity_at(window)
        return out

    def to_dict(self, window: int | None = None) -> dict[str, Any]:
        """Raw totals and derived metrics (JSON-able).

        The histogram is trimmed to its non-zero span: ``hist[i]`` counts the value
        ``hist_min + i``.
        """
        d = asdict(self)
        nz = [i for i, v in enumerate(self.hist) if v]
        lo, hi = (nz[0], nz[-1]) if nz else (self.hist_range, self.hist_range)
        d["hist"] = list(self.hist[lo : hi + 1]) if self.hist else []
        d["hist_min"] = lo - self.hist_range
        d["metrics"] = self.metrics(window)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerStats:
        """Inverse of :meth:`to_dict` (derived metrics are recomputed)."""
        keys = {f for f in cls.__dataclass_fields__}
        st = cls(**{k: v for k, v in d.items() if k in keys})
        if "hist_min" in d and st.hist:
            full = [0] * (2 * st.hist_range + 1)
            off = d["hist_min"] + st.hist_range
            full[off : off + len(st.hist)] = st.hist
            st.hist = full
        return st

    def merged(self, other: LayerStats, name: str | None = None) -> LayerStats:
        """Totals of two layers summed (histograms must share their range)."""
        if self.hist and other.hist and self.hist_range != other.hist_range:
            raise ValueError("cannot merge statistics with different histogram ranges")
        h = [a + b for a, b in zip(self.hist, other.hist)] if self.hist and other.hist else (
            list(self.hist or other.hist))
        # an empty side (e.g. the start of a total) takes the other side's range
        hist_range = self.hist_range if self.hist else other.hist_range
        return LayerStats(
            name=name or self.name,
            scheme=self.scheme if self.scheme == other.scheme else "mixed",
            kind="model",
            channels=self.channels + other.channels,
            fan_out=None,
            trains=max(self.trains, other.trains),
            groups=None,
            calls=self.calls + other.calls,
            tokens=max(self.tokens, other.tokens),
            elements=self.elements + other.elements,
            spikes=self.spikes + other.spikes,
            slots=self.slots + other.slots,
            window_sum=self.window_sum + other.window_sum,
            window_max=max(self.window_max, other.window_max),
            saturated=self.saturated + other.saturated,
            beyond_hist=self.beyond_hist + other.beyond_hist,
            negative_unsigned=self.negative_unsigned + other.negative_unsigned,
            spike_calls_nonzero=self.spike_calls_nonzero + other.spike_calls_nonzero,
            count_calls_nonzero=self.count_calls_nonzero + other.count_calls_nonzero,
            hist_range=hist_range,
            hist=h,
            channel_nonzero=list(self.channel_nonzero) + list(other.channel_nonzero),
        )


@dataclass
class ModelStats:
    """Per-layer statistics of a model plus the whole-model totals and footprint."""

    layers: list[LayerStats]
    footprint_bytes: int = 0
    n_parameters: int = 0

    @property
    def total(self) -> LayerStats:
        """Whole-model totals: sums over layers (tokens = most tokens seen by one layer).

        Synaptic operations of the total are the sums of the layers' (stored in
        :attr:`synops`), since fan-outs differ between layers.
        """
        first = self.layers[0] if self.layers else None
        out = LayerStats(name="model", scheme=first.scheme if first else "",
                         hist_range=first.hist_range if first else DEFAULT_HIST_RANGE)
        for layer in self.layers:
            out = out.merged(layer, name="model")
        return out

    @property
    def synops(self) -> dict[str, int]:
        """Model totals of the NeuroBench synaptic operations and the event-driven ACs."""
        keys = ("dense_macs", "effective_macs", "effective_acs", "event_acs")
        return {k: sum(getattr(layer, k) for layer in self.layers) for k in keys}

    def layer(self, name: str) -> LayerStats:
        """Statistics of the layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no spiking layer named {name!r}; layers: {[x.name for x in self.layers]}")

    def to_dict(self, window: int | None = None) -> dict[str, Any]:
        total = self.total
        return {
            "footprint_bytes": self.footprint_bytes,
            "n_parameters": self.n_parameters,
            "total": total.to_dict(window) | {"synops": self.synops},
            "layers": [layer.to_dict(window) for layer in self.layers],
        }


def count_statistics(
    counts: list[torch.Tensor],
    scheme: str,
    T: int | None = None,
    window: int | None = None,
    fan_out: int | None = None,
    masks: list[torch.Tensor | None] | None = None,
    name: str = "layer",
    hist_range: int = DEFAULT_HIST_RANGE,
    saturated: int = 0,
    trains: int = 1,
    groups: int | None = None,
) -> LayerStats:
    """Reference statistics of one layer from stored count tensors (one tensor per call).

    Each call's counts are expanded with :func:`spikingbrain.coding.encode` (its configured
    window ``T``, or the minimal window of that call) and the spikes and zeros are counted on
    the trains. Slow and memory-hungry by design: it is the reference for the streaming
    monitor, which must give identical totals.

    Args:
        counts: list of integer(-valued) tensors ``[..., channels]``.
        scheme: coding scheme name.
        T: configured window, or None for the minimal window per call.
        window: fixed window for :meth:`LayerStats.sparsity_at` (only validated here).
        fan_out: outputs fed by each input channel (``out_features`` of a linear layer).
        masks: optional boolean token masks, True = keep; a mask applies only when its
            shape equals ``counts[i].shape[:-1]`` (as in the monitor).
        name: the layer's name.
        hist_range: histogram range ``H``.
        saturated: saturation total reported by the layer.
        trains: 2 for an unsigned scheme in a converted layer (positive and negative trains).
        groups: weight groups per output (epilogue multiply-adds).

    >>> st = count_statistics([torch.tensor([[2, 0], [1, -1]])], "ternary", fan_out=3)
    >>> st.spikes, st.slots, st.effective_macs, st.effective_acs
    (4, 8, 9, 0)
    """
    spec = get_scheme(scheme)
    st = LayerStats(name=name, scheme=spec.name, kind="reference", T_config=T, fan_out=fan_out,
                    hist_range=hist_range, trains=trains, groups=groups)
    hist = torch.zeros(2 * hist_range + 1, dtype=torch.int64)
    chan: torch.Tensor | None = None
    for i, c in enumerate(counts):
        c = c.detach().to(torch.int64).cpu()
        C = c.shape[-1]
        m = masks[i] if masks is not None else None
        if m is not None and tuple(m.shape) != tuple(c.shape[:-1]):
            m = None  # as the monitor: a mask applies to records of its leading shape only
        c = c.reshape(-1, C)
        if m is not None:
            c = c[m.reshape(-1).bool().cpu()]
        st.channels = C
        st.calls += 1
        st.tokens += c.shape[0]
        st.elements += c.numel()
        cc = c.abs() if not spec.signed else c
        st.negative_unsigned += int((c < 0).sum()) if not spec.signed else 0
        Tc = T if T is not None else min_steps(cc, spec)
        train = encode(cc, spec, Tc, overflow="saturate")
        st.spikes += int((train != 0).sum())
        st.slots += trains * Tc * c.numel()
        st.window_sum += Tc
        st.window_max = max(st.window_max, Tc)
        st.beyond_hist += int((c.abs() > hist_range).sum())
        hist += torch.bincount(c.clamp(-hist_range, hist_range).reshape(-1) + hist_range,
                               minlength=2 * hist_range + 1)
        nz = int((c != 0).sum())
        if c.numel() and int(c.abs().max()) <= 1:
            st.spike_calls_nonzero += nz
        else:
            st.count_calls_nonzero += nz
        col = (c != 0).sum(0)
        chan = col if chan is None else chan + col
    st.hist = hist.tolist()
    st.channel_nonzero = chan.tolist() if chan is not None else []
    st.saturated = int(saturated)
    if window is not None:
        st.sparsity_at(window)
    return st
