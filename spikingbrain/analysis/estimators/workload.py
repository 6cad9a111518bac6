"""What an energy estimator consumes: one :class:`LayerWorkload` per spiking linear layer.

A workload holds the layer's shape (fan-in ``in_features``, fan-out ``out_features``, weight
groups) and its per-token spike activity: mean spikes per input channel (binary events, the
report's 1.13 for SpikingBrain-7B) and the fraction of channels with a non-zero count (graded
events, ``1 - silent fraction``). Workloads come from a measured run
(:func:`workloads_from_model_stats`) or from the shapes of a model with an assumed activity
(:func:`workloads_from_shapes`, full-size models built on the meta device).

Per-token figures of a workload are per token *reaching the layer*; ``active_fraction`` is the
share of the model's tokens that do (1 for dense layers, ``top_k / n_experts`` for a routed
expert), so an estimator's per-token energy of the model is
``sum(layer figure x active_fraction)``.

>>> w = LayerWorkload("fc", in_features=4, out_features=3, group_size=2, tokens_measured=0,
...                   spikes_per_channel=1.5, nonzero_per_channel=0.75, source="assumed")
>>> w.dense_macs_per_token, w.synaptic_ops_per_token, w.binary_events_per_token
(12, 18.0, 6.0)
>>> w.graded_events_per_token, w.weight_count, w.groups_per_output
(3.0, 12, 2)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["NON_SPIKING_SOURCE", "LayerWorkload", "workloads_from_model_stats",
           "workloads_from_shapes"]

#: ``source`` of a layer observed with analog (non-spike) input: its "spikes per channel" is
#: the inputs' mean magnitude, which may be below the non-zero fraction.
NON_SPIKING_SOURCE = "observed: non-spiking input"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class LayerWorkload:
    """Shape and per-token spike activity of one spiking linear layer.

    Attributes:
        name: the layer's dotted module name.
        in_features: fan-in (input channels); out_features: fan-out (outputs per input).
        group_size: input columns per weight scale (None: one scale per output row).
        tokens_measured: tokens behind the rates (0 when they are an assumption).
        spikes_per_channel: mean spikes per input channel per token under ``scheme`` (binary
            events per channel).
        nonzero_per_channel: fraction of input channels with a non-zero count per token
            (graded events per channel, ``1 - silent fraction``), in [0, 1] and at most
            ``spikes_per_channel`` (a non-zero count sends at least one spike; not checked
            for a layer observed with analog input, ``source`` :data:`NON_SPIKING_SOURCE`).
        scheme: the spike coding scheme (:func:`spikingbrain.coding.get_scheme` names).
        steps: mean time steps T per token (window); 0 when unknown.
        weight_bits: bits per synaptic weight (8 for W8ASpike).
        has_bias: whether the layer adds a bias per output.
        source: ``"measured"`` or the text of the assumption behind the rates.
        active_fraction: share of the model's tokens that reach the layer, in (0, 1].
        trains: spike trains per count (2 for an unsigned scheme in a converted layer: the
            positive and the negative part run as two trains).
        n_groups: weight groups per output when known exactly (a measured layer); None
            derives it from ``group_size`` (``ceil(in / group_size)``, 1 without groups).
    """

    name: str
    in_features: int
    out_features: int
    group_size: int | None
    tokens_measured: int
    spikes_per_channel: float
    nonzero_per_channel: float
    scheme: str = "bitwise_bidirectional"
    steps: float = 0.0
    weight_bits: int = 8
    has_bias: bool = False
    source: str = "measured"
    active_fraction: float = 1.0
    trains: int = 1
    n_groups: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"LayerWorkload.name must be a non-empty string, got {self.name!r}")
        where = f"layer {self.name!r}"
        for key in ("in_features", "out_features"):
            v = getattr(self, key)
            if not _is_int(v) or v < 1:
                raise ValueError(f"{where}: {key} must be a positive int, got {v!r}")
        for key in ("group_size", "n_groups"):
            v = getattr(self, key)
            if v is not None and (not _is_int(v) or v < 1):
                raise ValueError(f"{where}: {key} must be a positive int or None, got {v!r}")
        if not _is_int(self.tokens_measured) or self.tokens_measured < 0:
            raise ValueError(f"{where}: tokens_measured must be an int >= 0, got "
                             f"{self.tokens_measured!r} (0 for assumed rates)")
        for key in ("spikes_per_channel", "steps"):
            v = getattr(self, key)
            if not _is_real(v) or v < 0:
                raise ValueError(f"{where}: {key} must be a finite number >= 0, got {v!r}")
        nz = self.nonzero_per_channel
        if not _is_real(nz) or not 0 <= nz <= 1:
            raise ValueError(f"{where}: nonzero_per_channel must be a fraction in [0, 1] "
                             f"(1 - silent fraction), got {nz!r}")
        if self.spikes_per_channel < nz * (1 - 1e-9) and \
                not self.source.startswith(NON_SPIKING_SOURCE):
            raise ValueError(
                f"{where}: spikes_per_channel ({self.spikes_per_channel!r}) is below "
                f"nonzero_per_channel ({nz!r}): every channel with a non-zero count sends at "
                f"least one spike, so the spikes per channel cannot be fewer than the non-zero "
                f"fraction (1 - silent fraction); check the spike rate (--spikes-per-channel or "
                f"--mean-spikes) against --silent-fraction")
        af = self.active_fraction
        if not _is_real(af) or not 0 < af <= 1:
            raise ValueError(f"{where}: active_fraction must be in (0, 1] (top_k / n_experts "
                             f"for a routed expert, 1 for a dense layer), got {af!r}")
        if not _is_int(self.weight_bits) or not 1 <= self.weight_bits <= 64:
            raise ValueError(f"{where}: weight_bits must be an int in [1, 64], got "
                             f"{self.weight_bits!r}")
        if self.trains not in (1, 2) or isinstance(self.trains, bool):
            raise ValueError(f"{where}: trains must be 1 or 2, got {self.trains!r}")
        if not isinstance(self.has_bias, bool):
            raise TypeError(f"{where}: has_bias must be a bool, got {self.has_bias!r}")
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"{where}: source must be 'measured' or the assumption's text")
        from spikingbrain.coding import get_scheme

        get_scheme(self.scheme)  # ValueError naming the valid schemes

    # ---- derived figures (per token reaching the layer) -------------------------------
    @property
    def weight_count(self) -> int:
        """Synapses (weights) of the layer: ``in x out``."""
        return self.in_features * self.out_features

    @property
    def dense_macs_per_token(self) -> int:
        """Multiply-accumulates of the dense float / INT8 layer per token: ``in x out``."""
        return self.in_features * self.out_features

    @property
    def synaptic_ops_per_token(self) -> float:
        """Event-driven accumulates per token: every spike adds one weight into each output
        (``spikes_per_channel x in x out``)."""
        return self.spikes_per_channel * self.in_features * self.out_features

    @property
    def binary_events_per_token(self) -> float:
        """Binary spike events entering the layer per token: ``spikes_per_channel x in``."""
        return self.spikes_per_channel * self.in_features

    @property
    def graded_events_per_token(self) -> float:
        """Graded events (one per non-zero count, integer payload) per token:
        ``nonzero_per_channel x in``."""
        return self.nonzero_per_channel * self.in_features

    @property
    def active_synapses_per_token(self) -> float:
        """Weights touched per token (rows of non-zero input channels):
        ``nonzero_per_channel x in x out``."""
        return self.nonzero_per_channel * self.in_features * self.out_features

    @property
    def groups_per_output(self) -> int:
        """Weight groups per output (float multiply-adds of the group-scale epilogue)."""
        if self.n_groups is not None:
            return self.n_groups
        if self.group_size is None:
            return 1
        return -(-self.in_features // self.group_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus the derived figures."""
        d = asdict(self)
        for key in ("weight_count", "dense_macs_per_token", "synaptic_ops_per_token",
                    "binary_events_per_token", "graded_events_per_token",
                    "active_synapses_per_token", "groups_per_output"):
            d[key] = getattr(self, key)
        return d

    @classmethod
    def from_stats(cls, stats: Any, in_features: int | None = None,
                   out_features: int | None = None, group_size: int | None = None, *,
                   active_fraction: float = 1.0, has_bias: bool = False) -> LayerWorkload:
        """The workload of a measured layer (:class:`~spikingbrain.analysis.stats.LayerStats`).

        ``in_features`` / ``out_features`` default to the statistics' ``channels`` /
        ``fan_out``; the exact weight groups per output are taken from ``stats.groups``.

        >>> from spikingbrain.analysis.stats import LayerStats
        >>> st = LayerStats(name="l", scheme="ternary", channels=4, fan_out=10, tokens=2,
        ...                 elements=8, spikes=6, hist=[0] * 4096 + [2] + [0] * 4096)
        >>> w = LayerWorkload.from_stats(st)
        >>> w.spikes_per_channel, w.nonzero_per_channel, w.synaptic_ops_per_token
        (0.75, 0.75, 30.0)
        """
        fin = stats.channels if in_features is None else in_features
        fout = stats.fan_out if out_features is None else out_features
        if not fin or not fout:
            raise ValueError(f"layer {stats.name!r} has no known fan-in/fan-out (channels="
                             f"{stats.channels}, fan_out={stats.fan_out}); pass in_features "
                             f"and out_features")
        if not stats.tokens:
            raise ValueError(f"layer {stats.name!r} saw no tokens: nothing to estimate")
        return cls(
            name=stats.name, in_features=int(fin), out_features=int(fout),
            group_size=group_size, tokens_measured=int(stats.tokens),
            spikes_per_channel=float(stats.mean_spikes_per_channel),
            nonzero_per_channel=float(1.0 - stats.silent_fraction), scheme=stats.scheme,
            steps=float(stats.mean_window), has_bias=has_bias, source="measured",
            active_fraction=float(active_fraction), trains=int(stats.trains),
            n_groups=int(stats.groups) if stats.groups else None,
        )


def workloads_from_model_stats(model_stats: Any) -> list[LayerWorkload]:
    """Workloads of every measured layer with a fan-out and tokens (a measured run).

    ``active_fraction`` is the layer's tokens over the most tokens seen by any layer (1 for
    every layer of a dense model; the routed share for a mixture-of-experts expert).

    >>> import torch
    >>> from spikingbrain.analysis.stats import ModelStats, count_statistics
    >>> a = count_statistics([torch.tensor([[1, 0, 2]])], "binary", fan_out=2, name="a")
    >>> [(w.name, w.in_features, w.out_features) for w in workloads_from_model_stats(
    ...     ModelStats([a]))]
    [('a', 3, 2)]
    """
    layers = [s for s in model_stats.layers if s.fan_out and s.tokens]
    if not layers:
        return []
    most = max(s.tokens for s in layers)
    return [LayerWorkload.from_stats(s, active_fraction=s.tokens / most) for s in layers]


def _routed_expert_fractions(model: Any) -> dict[str, float]:
    """``{module prefix: top_k / n_experts}`` of every routed expert list of ``model``."""
    out: dict[str, float] = {}
    for name, mod in model.named_modules():
        n, k, experts = (getattr(mod, a, None) for a in ("n_experts", "top_k", "experts"))
        if _is_int(n) and _is_int(k) and n > 0 and experts is not None:
            out[f"{name}.experts." if name else "experts."] = k / n
    return out


def workloads_from_shapes(
    model_or_config: Any, spikes_per_channel: float = 1.13, silent_fraction: float = 0.184,
    scheme: str = "bitwise_bidirectional", steps: float = 3, *, spike_config: Any = None,
) -> list[LayerWorkload]:
    """Workloads of every projection of a model (built on the meta device from a config) with
    an assumed activity: the SpikingBrain report's 1.13 spikes per channel and 18.4 % silent
    channels (7B, k = 3, bitwise sign-magnitude, 3-step window) by default.

    Projections are every ``nn.Linear`` / ``SpikingLinear`` but the output head (the
    converter's default filter). Group sizes come from a SpikingLinear itself, else from
    ``spike_config`` (default :class:`~spikingbrain.converter.SpikeConfig`: groups of 128).
    Routed experts get ``active_fraction = top_k / n_experts``.

    >>> from spikingbrain.models.gla_swa import GLAswaConfig
    >>> cfg = GLAswaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1,
    ...                    num_attention_heads=4, num_key_value_heads=2, intermediate_size=48)
    >>> ws = workloads_from_shapes(cfg)
    >>> [(w.name.split('.')[-1], w.in_features, w.out_features) for w in ws][-3:]
    [('gate_proj', 32, 48), ('up_proj', 32, 48), ('down_proj', 48, 32)]
    """
    import torch
    from torch import nn

    from spikingbrain.coding import get_scheme
    from spikingbrain.converter import SpikeConfig, SpikingLinear
    from spikingbrain.converter.convert import output_head_names

    if not _is_real(silent_fraction) or not 0 <= silent_fraction <= 1:
        raise ValueError(f"silent_fraction must be in [0, 1], got {silent_fraction!r}")
    spec = get_scheme(scheme)
    spike_config = SpikeConfig() if spike_config is None else spike_config
    if isinstance(model_or_config, nn.Module):
        model = model_or_config
    else:
        from spikingbrain.models.checkpoint import skeleton

        model = skeleton(model_or_config, torch.bfloat16)
    heads = output_head_names(model)
    routed = _routed_expert_fractions(model)
    source = (f"assumed: {spikes_per_channel} spikes per channel, {silent_fraction} silent "
              f"fraction, {scheme}, {steps} steps")
    out = []
    for name, mod in model.named_modules():
        if not isinstance(mod, (nn.Linear, SpikingLinear)) or name in heads:
            continue
        frac = next((f for p, f in routed.items() if name.startswith(p)), 1.0)
        gs = mod.group_size if isinstance(mod, SpikingLinear) else \
            spike_config.group_size_for(mod.in_features)
        out.append(LayerWorkload(
            name=name, in_features=mod.in_features, out_features=mod.out_features,
            group_size=gs, tokens_measured=0, spikes_per_channel=float(spikes_per_channel),
            nonzero_per_channel=float(1.0 - silent_fraction), scheme=spec.name,
            steps=float(steps), has_bias=getattr(mod, "bias", None) is not None,
            source=source, active_fraction=frac, trains=1 if spec.signed else 2))
    return out
