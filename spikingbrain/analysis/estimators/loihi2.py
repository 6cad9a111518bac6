"""A Loihi-2-class mapping: spiking layers placed onto neuro-cores, chips, events, time and
energy per token, for binary spike trains and for graded spikes (one event per non-zero count).

Placement of a linear layer ``in -> out`` (``in x out`` synapses of the workload's
``weight_bits``, 8 for W8ASpike) under per-core limits (neurons, synapses, fan-in). Synapses
per core come from the per-core synaptic memory: ``8 x synaptic_memory_per_core_bytes //
weight_bits`` (128 KiB: 131,072 INT8 synapses; the chip's published "120M synapses" holds only
at 1 bit per synapse):

- a core holds an ``in_slice x out_slice`` block of the weight matrix:
  ``in_slice = min(in, fan_in_per_core)``, ``out_slice = min(out, neurons_per_core,
  synapses_per_core // in_slice)`` (and ``in_slice`` shrinks if one output column alone
  would not fit);
- ``ceil(in / in_slice) x ceil(out / out_slice)`` synapse cores; when the fan-in is split,
  each output's partial sums travel as graded events to ``ceil(out / neurons_per_core)``
  combine cores (one more event per partial and output per time step);
- layers are packed onto chips in order: ``chips = ceil(total cores / cores_per_chip)``
  (every routed expert of a MoE model is placed; only its ``active_fraction`` of tokens fire).

Per token (a token reaching the layer; routed experts weighted by ``active_fraction``):

- binary: ``spikes_per_channel x in`` spike events over ``steps`` time steps, graded:
  ``nonzero_per_channel x in`` events carrying the count as payload, in one step;
- each event is sent to every core holding part of its input row (``ceil(out / out_slice)``
  deliveries) and performs one synaptic operation per output of the row;
- output neurons update once per time step;
- time: the busiest core's synaptic operations and neuron updates at the per-operation
  times, layer after layer (a token's layers run in sequence); energy: synaptic operations,
  neuron updates and event deliveries at the per-operation energies. The chips' power times
  that time is reported beside it (``chip_power_bound_pj``) as the bound a whole-chip power
  figure gives.

Published Loihi 2 figures give chip capacities, not per-operation energies or times: those
are Loihi 1's measured figures (Davies et al., IEEE Micro 2018), divided by Loihi 2's stated
speed-up for times. Every constant is a :class:`Constant` with its source; a TOML file
overrides any of them (:meth:`Loihi2Config.from_toml`).

>>> from spikingbrain.analysis.estimators import LayerWorkload, estimate
>>> w = LayerWorkload("fc", 3584, 18944, 128, 0, 1.13, 0.816, steps=3, source="assumed")
>>> e = estimate([w], "loihi2")
>>> int(e.layer("fc", "loihi2_binary").extra["cores"])   # 36 outputs x 3584 inputs per core
527
>>> round(e.total("loihi2_graded") / e.total("loihi2_binary"), 2)  # graded: fewer events
0.72
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikingbrain.analysis.estimators.base import (
    Constant,
    EnergyEstimate,
    EstimatorConfig,
    LayerEstimate,
    constant_field,
    register_estimator,
)
from spikingbrain.analysis.estimators.workload import LayerWorkload

__all__ = ["Loihi2Config", "LayerPlacement", "place_layer", "loihi2_estimate", "chips_needed"]

_BRIEF = "Intel, Loihi 2 technology brief (2021); Orchard et al., IEEE SiPS 2021"
_DAVIES = "Davies et al., 'Loihi', IEEE Micro 38(1), 2018, Table 2 (Loihi 1, 14 nm)"
_HALA = "Intel, Hala Point announcement (April 2024)"
_SYNMEM = (
    "Loihi 1: 16 MB of synaptic memory on 128 cores = 128 KiB per core (Davies et al., IEEE "
    "Micro 2018; nengo-loihi's per-core limit: 1,048,576 synapse bits); Loihi 2 keeps 128 KB "
    "of SRAM per neuro-core, now flexibly partitioned (Intel's Loihi 2 launch, Sept 2021, as "
    "reported by the press, e.g. fbhtechinfo.com 'Intel's new Loihi-2 chip uses 1 million "
    "neurons'); consistent with the brief's 'up to 120M synapses' per chip at 1 bit per "
    "synapse (120M / 128 = 937,500 <= 1,048,576 bits). An upper bound: neuron state and "
    "routing tables share the memory")


@dataclass(frozen=True)
class Loihi2Config(EstimatorConfig):
    """Loihi 2 chip and core figures (each a :class:`Constant` with its source).

    Synapses per core are derived from the per-core synaptic memory and a layer's weight bits
    (:meth:`synapses_per_core`): ``8 x synaptic_memory_per_core_bytes // weight_bits``, 131,072
    INT8 synapses per core. The chip figure "up to 120M synapses" holds at 1 bit per synapse
    and is not used for placement.
    """

    name = "loihi2"
    cores_per_chip: Constant = constant_field("cores_per_chip", 128, "cores", _BRIEF)
    neurons_per_chip: Constant = constant_field("neurons_per_chip", 1_048_576, "neurons",
                                                _BRIEF + " ('up to 1M neurons')")
    synaptic_memory_per_core_bytes: Constant = constant_field(
        "synaptic_memory_per_core_bytes", 131_072, "bytes", _SYNMEM)
    fan_in_per_core: Constant = constant_field(
        "fan_in_per_core", 8192, "inputs", "assumed: not published for Loihi 2 (Loihi 1: 4096 "
        "axons per core, Davies 2018); a TOML file can set it")
    chip_power_w: Constant = constant_field("chip_power_w", 1.0, "W", _BRIEF + " ('~1 W')")
    e_synop_pj: Constant = constant_field("e_synop_pj", 23.6, "pJ",
                                          _DAVIES + ": energy per synaptic spike op (min)")
    e_neuron_update_pj: Constant = constant_field("e_neuron_update_pj", 52.0, "pJ",
                                                  _DAVIES + ": energy per active neuron update")
    e_event_pj: Constant = constant_field(
        "e_event_pj", 3.0, "pJ", _DAVIES + ": energy per tile hop, east-west 3.0 pJ "
        "(north-south 4.0 pJ); one east-west hop per delivery assumed, a lower bound")
    t_synop_ns: Constant = constant_field("t_synop_ns", 3.5, "ns",
                                          _DAVIES + ": time per synaptic spike op (max)")
    t_neuron_update_ns: Constant = constant_field("t_neuron_update_ns", 5.3, "ns",
                                                  _DAVIES + ": active neuron update time")
    speedup_vs_loihi1: Constant = constant_field(
        "speedup_vs_loihi1", 10.0, "x", _BRIEF + " ('up to 10x faster processing'); divides "
        "Loihi 1's operation times")
    hala_point_chips: Constant = constant_field("hala_point_chips", 1152, "chips", _HALA)
    hala_point_power_w: Constant = constant_field("hala_point_power_w", 2600, "W",
                                                  _HALA + " (maximum)")

    #: Constants that count things (cores, neurons, inputs, chips): whole numbers >= 1.
    COUNTS = ("cores_per_chip", "neurons_per_chip", "synaptic_memory_per_core_bytes",
              "fan_in_per_core", "hala_point_chips")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, Constant):
                raise TypeError(f"Loihi2Config.{f.name} must be a Constant, got "
                                f"{type(v).__name__}")
            if not math.isfinite(v.value) or v.value <= 0:
                raise ValueError(f"Loihi2Config.{f.name} must be a finite number > 0, got "
                                 f"{v.value!r}")
            if f.name in self.COUNTS and (v.value < 1 or v.value != int(v.value)):
                raise ValueError(f"Loihi2Config.{f.name} counts {v.unit}: it must be a whole "
                                 f"number >= 1, got {v.value!r}")
        if self.neurons_per_chip.value < self.cores_per_chip.value:
            raise ValueError(f"Loihi2Config: neurons_per_chip ({self.neurons_per_chip.value:g}) "
                             f"is below cores_per_chip ({self.cores_per_chip.value:g}): every "
                             f"core must hold at least one neuron")

    @property
    def neurons_per_core(self) -> int:
        """Chip neurons spread over its cores (per-core figures are not published)."""
        return int(self.neurons_per_chip.value // self.cores_per_chip.value)

    def synapses_per_core(self, weight_bits: int = 8) -> int:
        """Synapses of ``weight_bits`` bits one core's synaptic memory holds (dense format, no
        per-synapse index bits: a lower bound on the cores a layer needs).

        >>> Loihi2Config().synapses_per_core(8), Loihi2Config().synapses_per_core(1)
        (131072, 1048576)
        """
        if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or weight_bits < 1:
            raise ValueError(f"weight_bits must be a positive int, got {weight_bits!r}")
        n = int(self.synaptic_memory_per_core_bytes.value) * 8 // weight_bits
        if n < 1:
            mem = self.synaptic_memory_per_core_bytes.value
            raise ValueError(f"a core's synaptic memory ({mem:g} bytes) holds no "
                             f"{weight_bits}-bit synapse; raise synaptic_memory_per_core_bytes")
        return n

    def synapses_per_chip(self, weight_bits: int = 8) -> int:
        """Synapses of ``weight_bits`` bits per chip (every core's synaptic memory).

        >>> Loihi2Config().synapses_per_chip(8)
        16777216
        """
        return self.synapses_per_core(weight_bits) * int(self.cores_per_chip.value)

    @classmethod
    def from_toml(cls, path: str | Path) -> Loihi2Config:
        """Defaults overridden by a TOML file of ``name = value`` pairs, either all at the top
        level or all under a ``[loihi2]`` table; an overridden constant's source becomes the
        file.

        Raises ValueError for unknown keys, keys outside a ``[loihi2]`` table (they would be
        ignored), non-numbers, values the config rejects (<= 0; counts that are not whole
        numbers >= 1) and unreadable or malformed files.
        """
        import tomllib

        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the Loihi 2 constants file {path}: {e}") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path} is not valid TOML: {e}") from None
        if "loihi2" in data:
            outside = sorted(k for k in data if k != "loihi2")
            if outside:
                raise ValueError(
                    f"{path}: key(s) {outside} sit outside the [loihi2] table and would be "
                    f"ignored; put every constant under [loihi2] (or leave the table out). "
                    f"In TOML, top-level keys must come before the first [table] header")
            data = data["loihi2"]
            if not isinstance(data, dict):
                raise ValueError(f"{path}: loihi2 must be a table of name = value pairs, got "
                                 f"{data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            hint = (" (synapses per core now come from synaptic_memory_per_core_bytes and the "
                    "weight bits)" if "synapses_per_chip" in unknown else "")
            raise ValueError(f"{path}: unknown Loihi 2 constant(s) {unknown}{hint}; known: "
                             f"{sorted(known)}")
        base = cls()
        changes = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{path}: {key} must be a number, got {value!r}")
            changes[key] = getattr(base, key).with_value(float(value), f"user file {path}")
        try:
            return dataclasses.replace(base, **changes)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


@dataclass(frozen=True)
class LayerPlacement:
    """How one layer sits on cores: slices, synapse cores and combine cores."""

    in_slice: int
    out_slice: int
    in_splits: int
    out_splits: int
    combine_cores: int

    @property
    def cores(self) -> int:
        return self.in_splits * self.out_splits + self.combine_cores


def place_layer(in_features: int, out_features: int, cfg: Loihi2Config,
                weight_bits: int = 8) -> LayerPlacement:
    """Cut an ``in x out`` weight matrix of ``weight_bits``-bit synapses into per-core blocks
    (see the module doc).

    >>> p = place_layer(18944, 3584, Loihi2Config())            # INT8: 131,072 per core
    >>> (p.in_slice, p.out_slice, p.in_splits, p.out_splits, p.combine_cores, p.cores)
    (8192, 16, 3, 224, 1, 673)
    >>> place_layer(18944, 3584, Loihi2Config(), weight_bits=1).out_slice
    128
    """
    n_core, s_core = cfg.neurons_per_core, cfg.synapses_per_core(weight_bits)
    in_slice = int(min(in_features, cfg.fan_in_per_core.value, s_core))
    out_slice = int(min(out_features, n_core, s_core // in_slice))
    in_splits = -(-in_features // in_slice)
    out_splits = -(-out_features // out_slice)
    combine = -(-out_features // n_core) if in_splits > 1 else 0
    return LayerPlacement(in_slice, out_slice, in_splits, out_splits, combine)


def _layer_estimates(w: LayerWorkload, cfg: Loihi2Config) -> list[LayerEstimate]:
    p = place_layer(w.in_features, w.out_features, cfg, w.weight_bits)
    af = w.active_fraction
    speed = cfg.speedup_vs_loihi1.value
    out = []
    for regime, events, steps in (
            ("loihi2_binary", w.binary_events_per_token, max(w.steps, 1.0)),
            ("loihi2_graded", w.graded_events_per_token, 1.0)):
        synops = events * w.out_features
        deliveries = events * p.out_splits
        partial_events = (p.in_splits * w.out_features * steps) if p.in_splits > 1 else 0.0
        updates = w.out_features * steps
        # busiest core: its share of the events (by input slice) times its outputs
        core_synops = events * (p.in_slice / w.in_features) * p.out_slice
        time_s = (core_synops * cfg.t_synop_ns.value
                  + p.out_slice * steps * cfg.t_neuron_update_ns.value) * 1e-9 / speed
        parts = {
            "synaptic_ops": synops * cfg.e_synop_pj.value * af,
            "neuron_updates": updates * cfg.e_neuron_update_pj.value * af,
            "event_deliveries": (deliveries + partial_events) * cfg.e_event_pj.value * af,
        }
        total = math.fsum(parts.values())
        out.append(LayerEstimate(w.name, regime, total, parts, {
            "cores": float(p.cores), "in_splits": float(p.in_splits),
            "out_splits": float(p.out_splits), "weight_bits": float(w.weight_bits),
            "synapses_per_core": float(cfg.synapses_per_core(w.weight_bits)),
            "events_per_token": events * af,
            "deliveries_per_token": (deliveries + partial_events) * af,
            "synaptic_ops_per_token": synops * af, "time_s_per_token": time_s * af,
            "active_fraction": af}))
    return out


def chips_needed(workloads: list[LayerWorkload], cfg: Loihi2Config | None = None) -> int:
    """Chips holding every layer (layers packed onto cores in order)."""
    cfg = Loihi2Config() if cfg is None else cfg
    cores = sum(place_layer(w.in_features, w.out_features, cfg, w.weight_bits).cores
                for w in workloads)
    return -(-cores // int(cfg.cores_per_chip.value))


def loihi2_estimate(cfg: Loihi2Config):
    """Factory registered as ``"loihi2"``: placement, events, time and energy per token."""

    def run(workloads: list[LayerWorkload]) -> EnergyEstimate:
        layers = [e for w in workloads for e in _layer_estimates(w, cfg)]
        cores = sum(e.extra["cores"] for e in layers if e.regime == "loihi2_binary")
        chips = chips_needed(workloads, cfg)
        bits = sorted({w.weight_bits for w in workloads})
        mem = int(cfg.synaptic_memory_per_core_bytes.value)
        notes = [
            f"placement: {int(cores)} cores on {chips} Loihi 2 chips "
            f"({chips / cfg.hala_point_chips.value:.1%} of Hala Point's "
            f"{int(cfg.hala_point_chips.value)} chips)",
            "capacity: " + "; ".join(
                f"{mem:,} bytes of synaptic memory per core / {b}-bit weights = "
                f"{cfg.synapses_per_core(b):,} synapses per core" for b in bits)
            + " (the published 120M synapses per chip hold at 1 bit per synapse)",
            "per-operation energies and times are Loihi 1's measured figures (Davies 2018); "
            "times divided by Loihi 2's stated speed-up",
            "graded: one event per non-zero count with the count as payload, one time step; "
            "binary: the scheme's spikes over its time steps",
            "time per token: the busiest core of each layer, layers in sequence; energy: "
            "synaptic operations, neuron updates and event deliveries (no static power; "
            "the chip power bound is chips x chip power x time)",
        ]
        for regime in ("loihi2_binary", "loihi2_graded"):
            t = math.fsum(e.extra["time_s_per_token"] for e in layers if e.regime == regime)
            notes.append(f"{regime}: {t * 1e3:.3f} ms per token; chip power bound "
                         f"{chips * cfg.chip_power_w.value * t * 1e12:.4g} pJ per token")
        return EnergyEstimate(cfg.name, layers, cfg.constants(), notes)

    return run


def summary(est: EnergyEstimate, workloads: list[LayerWorkload],
            cfg: Loihi2Config | None = None) -> dict[str, Any]:
    """Model totals per regime: cores, chips, events, synaptic ops, time and energy per token,
    and the chip power bound.

    >>> from spikingbrain.analysis.estimators import LayerWorkload, estimate
    >>> ws = [LayerWorkload("fc", 512, 512, 128, 0, 1.0, 0.8, steps=3, source="assumed")]
    >>> s = summary(estimate(ws, "loihi2"), ws)
    >>> s["chips"], s["cores"], s["loihi2_binary"]["events_per_token"]
    (1, 2, 512.0)
    """
    cfg = Loihi2Config() if cfg is None else cfg
    chips = chips_needed(workloads, cfg)
    out: dict[str, Any] = {"chips": chips, "cores": int(sum(
        e.extra["cores"] for e in est.layers if e.regime == "loihi2_binary")),
        "hala_point_fraction": chips / cfg.hala_point_chips.value,
        "synapses_per_core": {b: cfg.synapses_per_core(b)
                              for b in sorted({w.weight_bits for w in workloads})}}
    for regime in ("loihi2_binary", "loihi2_graded"):
        ls = [e for e in est.layers if e.regime == regime]
        t = math.fsum(e.extra["time_s_per_token"] for e in ls)
        out[regime] = {
            "events_per_token": math.fsum(e.extra["events_per_token"] for e in ls),
            "deliveries_per_token": math.fsum(e.extra["deliveries_per_token"] for e in ls),
            "synaptic_ops_per_token": math.fsum(e.extra["synaptic_ops_per_token"] for e in ls),
            "time_s_per_token": t,
            "energy_pj_per_token": est.total(regime),
            "chip_power_bound_pj_per_token": chips * cfg.chip_power_w.value * t * 1e12,
        }
    return out


register_estimator(Loihi2Config, loihi2_estimate)
