"""Energy model: per-MAC and per-token energy of FP16, INT8 and event-driven spiking layers.

Spiking energy per MAC = mean spikes per channel x INT8 add (SpikingBrain report section 5.5):
every spike adds one INT8 weight into each output, so a layer with ``n`` input channels and
``m`` outputs costs ``spikes x m`` additions against ``n x m`` multiply-accumulates.

The report's figure leaves out the epilogue: with group-wise INT8 weight scales every output
takes one float multiply-add per weight group (``G = n / group_size``: 28 for 3584 inputs in
groups of 128), i.e. ``1 / group_size`` float MACs per MAC. We count it as its own entry
(``epilogue_pj``, in the compute precision, FP32 by default), for the spiking and for the INT8
layer alike (both apply the same group scales); the FP16 layer has none.

The same model is the ``"horowitz"`` estimator of :mod:`spikingbrain.analysis.estimators`
(:class:`~spikingbrain.analysis.estimators.horowitz.HorowitzConfig`, built from any table here
with ``HorowitzConfig.from_table``), beside the others (``"lemaire"``, ...); its figures equal
:func:`layer_energy` and :func:`model_energy`.

>>> e = per_mac_energy(1.13, REPORT_TABLE)
>>> round(e.spiking_pj, 4), round(100 * e.reduction_vs_fp16, 1), round(100 * e.reduction_vs_int8, 1)
(0.0339, 97.7, 85.3)
>>> e = per_mac_energy(1.13, REPORT_TABLE, precision=3)   # the report's rounding
>>> e.spiking_pj, round(100 * e.reduction_vs_int8, 1), round(e.energy_ratio_int8_to_spiking, 2)
(0.034, 85.2, 6.76)
>>> g = per_mac_energy(1.13, REPORT_TABLE, group_size=128)  # with the group-scale epilogue
>>> round(g.epilogue_pj, 4), round(g.spiking_total_pj, 4), round(100 * g.reduction_vs_int8, 1)
(0.0359, 0.0698, 73.7)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ASSUMPTIONS",
    "HOROWITZ_45NM",
    "OMISSIONS",
    "REPORT_TABLE",
    "TABLES",
    "EnergyTable",
    "LayerEnergy",
    "PerMacEnergy",
    "layer_energy",
    "load_table",
    "model_energy",
    "per_mac_energy",
]

#: What every energy estimate assumes (written into reports).
ASSUMPTIONS = [
    "Only the linear projections that were converted to spiking layers are counted; each "
    "input channel feeds fan-out = out_features outputs.",
    "A dense layer costs in x out multiply-accumulates (MACs) per token, FP16 or INT8.",
    "An event-driven spiking layer costs one INT8 addition per spike and output: energy per "
    "MAC = mean spikes per channel x E(INT8 add) (SpikingBrain report, section 5.5).",
    "Bitwise time weights 2^t are applied as free shifts (or folded into the accumulator).",
    "Epilogue: with group-wise weight scales every output takes one float multiply-add per "
    "weight group (G = in / group_size), in the compute precision (FP32 MAC by default, FP16 "
    "MAC when the table has no FP32 entry), for the spiking and the INT8 layer alike; "
    "counted as its own entry.",
    "Unsigned schemes (binary, bitwise) run two polarity trains in the converter (positive "
    "and negative parts): both count in the sparsity and firing-rate slots.",
    "Optional weight fetch: INT8 weights (FP16: 2 bytes) read once per token from the chosen "
    "memory level; the spiking layer fetches only the weight rows of active (non-zero) "
    "input channels, the dense layers fetch all of them.",
    "Energies per operation are those of the selected table (process node, voltage) and scale "
    "with it; ratios are more robust than absolute values.",
]

#: What the estimate leaves out (SpikingBrain report, Appendix C.2, and our own list).
OMISSIONS = [
    "Asynchronous control, routing and spike-event communication overhead of event-driven "
    "hardware (report Appendix C.2).",
    "Block-granular memory fetches: real memories read whole blocks/rows, so skipping single "
    "inactive channels saves less than the per-channel fetch model suggests (Appendix C.2).",
    "Input-dependent sparsity: the figures hold for the measured text only; other inputs give "
    "other spike counts (Appendix C.2).",
    "Computing the threshold Vth = mean(|x|)/k and the rounding to counts (per input "
    "channel), the final multiply by Vth and the bias add (one each per output) are not "
    "counted; the group-scale multiply-adds of the epilogue are (epilogue_pj).",
    "Attention score and value products, softmax, normalisation, embeddings and the output "
    "head (layers that are not converted) are not counted.",
    "Activation and KV-cache memory traffic and leakage/static power are not counted.",
]


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation in picojoules, with the source it is taken from.

    Attributes:
        name: short identifier.
        source: citation of the figures.
        fp16_mac, int8_mac, int8_add: energy per operation (pJ).
        fp32_mac, fp32_add, fp16_add: optional further entries (pJ).
        memory_read_64bit: energy of one 64-bit read per memory level (pJ), e.g.
            ``{"sram_8kb": 10.0, "dram": 1300.0}``.
    """

    name: str
    source: str
    fp16_mac: float
    int8_mac: float
    int8_add: float
    fp32_mac: float | None = None
    fp32_add: float | None = None
    fp16_add: float | None = None
    memory_read_64bit: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("fp16_mac", "int8_mac", "int8_add", "fp32_mac", "fp32_add", "fp16_add"):
            v = getattr(self, key)
            if v is None and key in ("fp32_mac", "fp32_add", "fp16_add"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0:
                raise ValueError(f"energy table '{self.name}': {key} must be a number >= 0 (pJ), "
                                 f"got {v!r}")
        for k, v in self.memory_read_64bit.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"energy table '{self.name}': memory_read_64bit[{k!r}] must be "
                                 f"a number >= 0 (pJ), got {v!r}")

    @property
    def epilogue_mac(self) -> float:
        """Energy of one float multiply-add of the epilogue: FP32 MAC, else FP16 MAC."""
        return self.fp32_mac if self.fp32_mac is not None else self.fp16_mac

    def read_pj_per_byte(self, level: str) -> float:
        """Energy of reading one byte from memory ``level`` (64-bit read energy / 8)."""
        if level not in self.memory_read_64bit:
            raise ValueError(
                f"energy table '{self.name}' has no memory level {level!r}; levels: "
                f"{sorted(self.memory_read_64bit) or 'none (add memory_read_64bit to the table)'}"
            )
        return self.memory_read_64bit[level] / 8.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm,
#: 0.9 V; DRAM uses the low end of the quoted 1.3-2.6 nJ per 64 bits.
HOROWITZ_45NM = EnergyTable(
    name="horowitz-45nm",
    source="M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
    "ISSCC 2014, 45 nm, 0.9 V",
    fp16_mac=1.5,  # FP16 mult 1.1 + add 0.4
    int8_mac=0.23,  # INT8 mult 0.2 + add 0.03
    int8_add=0.03,
    fp32_mac=4.6,  # FP32 mult 3.7 + add 0.9
    fp32_add=0.9,
    fp16_add=0.4,
    memory_read_64bit={"sram_8kb": 10.0, "sram_32kb": 20.0, "sram_1mb": 100.0, "dram": 1300.0},
)

#: The figures the SpikingBrain report uses in its energy estimate (section 5.5).
REPORT_TABLE = EnergyTable(
    name="spikingbrain-report",
    source="SpikingBrain technical report (arXiv 2509.05276), section 5.5, citing Horowitz "
    "ISSCC 2014 (45 nm): FP16 MAC 1.5 pJ, INT8 MAC 0.23 pJ, INT8 add 0.03 pJ; the FP32 MAC "
    "of the epilogue (4.6 pJ) is Horowitz's figure, which the report does not use",
    fp16_mac=1.5,
    int8_mac=0.23,
    int8_add=0.03,
    fp32_mac=4.6,
)

TABLES: dict[str, EnergyTable] = {t.name: t for t in (HOROWITZ_45NM, REPORT_TABLE)}


def load_table(spec: str | Path | EnergyTable) -> EnergyTable:
    """A built-in table by name (``horowitz-45nm``, ``spikingbrain-report``, alias ``report``)
    or a user table from a JSON or TOML file with the fields of :class:`EnergyTable`.

    >>> load_table("report").int8_add
    0.03
    """
    if isinstance(spec, EnergyTable):
        return spec
    key = str(spec)
    if key in ("report", "horowitz"):
        key = {"report": "spikingbrain-report", "horowitz": "horowitz-45nm"}[key]
    if key in TABLES:
        return TABLES[key]
    path = Path(key)
    if not path.is_file():
        raise ValueError(
            f"unknown energy table {str(spec)!r}: use one of {sorted(TABLES)} or the path of a "
            f"JSON/TOML file with fields name, source, fp16_mac, int8_mac, int8_add (pJ)"
        )
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        import tomllib

        data = tomllib.loads(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err}); use .toml for a TOML table") \
                from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the energy table must be a mapping of field -> value")
    known = set(EnergyTable.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {sorted(unknown)}; allowed: {sorted(known)}")
    missing = {"fp16_mac", "int8_mac", "int8_add"} - set(data)
    if missing:
        raise ValueError(f"{path}: missing field(s) {sorted(missing)} (energy per op in pJ)")
    data.setdefault("name", path.stem)
    data.setdefault("source", f"user file {path}")
    return EnergyTable(**data)


@dataclass(frozen=True)
class PerMacEnergy:
    """Energy per MAC of FP16, INT8 and spiking layers, with reductions and energy ratios.

    ``spiking_pj`` is the report's figure (mean spikes x INT8 add); ``epilogue_pj`` the
    group-scale multiply-adds per MAC (0 without a group size), added to the spiking and the
    INT8 totals.
    """

    mean_spikes: float
    table: str
    fp16_pj: float
    int8_pj: float
    spiking_pj: float
    epilogue_pj: float = 0.0

    @property
    def int8_total_pj(self) -> float:
        return self.int8_pj + self.epilogue_pj

    @property
    def spiking_total_pj(self) -> float:
        return self.spiking_pj + self.epilogue_pj

    @property
    def reduction_vs_fp16(self) -> float:
        return 1.0 - self.spiking_total_pj / self.fp16_pj if self.fp16_pj else 0.0

    @property
    def reduction_vs_int8(self) -> float:
        return 1.0 - self.spiking_total_pj / self.int8_total_pj if self.int8_total_pj else 0.0

    @property
    def energy_ratio_fp16_to_spiking(self) -> float:
        """FP16 energy / spiking energy per MAC (an energy ratio, not a speed-up)."""
        return self.fp16_pj / self.spiking_total_pj if self.spiking_total_pj else math.inf

    @property
    def energy_ratio_int8_to_spiking(self) -> float:
        """INT8 energy / spiking energy per MAC (an energy ratio, not a speed-up)."""
        return self.int8_total_pj / self.spiking_total_pj if self.spiking_total_pj else math.inf

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(int8_total_pj=self.int8_total_pj, spiking_total_pj=self.spiking_total_pj,
                 reduction_vs_fp16=self.reduction_vs_fp16,
                 reduction_vs_int8=self.reduction_vs_int8,
                 energy_ratio_fp16_to_spiking=_finite_or_none(self.energy_ratio_fp16_to_spiking),
                 energy_ratio_int8_to_spiking=_finite_or_none(self.energy_ratio_int8_to_spiking))
        return d


def _finite_or_none(v: float) -> float | None:
    """JSON has no infinity: a ratio over zero spiking energy is reported as null."""
    return v if math.isfinite(v) else None


def per_mac_energy(
    mean_spikes: float, table: str | EnergyTable = HOROWITZ_45NM, precision: int | None = None,
    group_size: int | None = None,
) -> PerMacEnergy:
    """Energy per MAC: FP16 MAC, INT8 MAC and ``mean_spikes x INT8 add``, plus the epilogue.

    Args:
        mean_spikes: mean spikes per input channel (>= 0).
        table: energy table or its name / file.
        precision: round the spiking energy to this many decimals of pJ before ratios are
            taken (the report rounds 0.0339 to 0.034 pJ, giving 85.2 % vs INT8; unrounded it
            is 85.3 %). None keeps full precision.
        group_size: input columns per weight scale; adds ``epilogue_mac / group_size`` per MAC
            (one float multiply-add per group and output). None: no epilogue (the report's
            figure).
    """
    if isinstance(mean_spikes, bool) or not isinstance(mean_spikes, (int, float)) or \
            not math.isfinite(mean_spikes) or mean_spikes < 0:
        raise ValueError(f"mean_spikes must be a finite number >= 0, got {mean_spikes!r}")
    if group_size is not None and (isinstance(group_size, bool) or
                                   not isinstance(group_size, int) or group_size < 1):
        raise ValueError(f"group_size must be a positive int or None, got {group_size!r}")
    t = load_table(table)
    spk = mean_spikes * t.int8_add
    if precision is not None:
        spk = round(spk, precision)
    epi = t.epilogue_mac / group_size if group_size else 0.0
    return PerMacEnergy(float(mean_spikes), t.name, t.fp16_mac, t.int8_mac, spk, epi)


@dataclass(frozen=True)
class LayerEnergy:
    """Energy per token (pJ) of one layer (or the model) under the three regimes.

    ``epilogue_pj``: the group-scale multiply-adds (groups x fan-out x E(epilogue MAC)),
    part of the INT8 and the spiking totals. ``*_fetch_pj`` are the weight-fetch energies (0
    when no memory level was chosen).
    """

    name: str
    dense_macs_per_token: float
    spikes_per_token: float
    mean_spikes: float
    fp16_pj: float
    int8_pj: float
    spiking_pj: float
    epilogue_pj: float = 0.0
    fp16_fetch_pj: float = 0.0
    int8_fetch_pj: float = 0.0
    spiking_fetch_pj: float = 0.0

    @property
    def fp16_total_pj(self) -> float:
        return self.fp16_pj + self.fp16_fetch_pj

    @property
    def int8_total_pj(self) -> float:
        return self.int8_pj + self.epilogue_pj + self.int8_fetch_pj

    @property
    def spiking_total_pj(self) -> float:
        return self.spiking_pj + self.epilogue_pj + self.spiking_fetch_pj

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(fp16_total_pj=self.fp16_total_pj, int8_total_pj=self.int8_total_pj,
                 spiking_total_pj=self.spiking_total_pj,
                 reduction_vs_fp16=1 - self.spiking_total_pj / self.fp16_total_pj
                 if self.fp16_total_pj else 0.0,
                 reduction_vs_int8=1 - self.spiking_total_pj / self.int8_total_pj
                 if self.int8_total_pj else 0.0)
        return d


def layer_energy(stats, table: str | EnergyTable = HOROWITZ_45NM,
                 memory: str | None = None) -> LayerEnergy | None:
    """Energy per token of one :class:`~spikingbrain.analysis.stats.LayerStats`.

    Returns None for layers without a fan-out (a bare neuron feeds no known synapses) or
    without tokens. ``memory`` adds weight fetches from that level of the table.

    >>> from spikingbrain.analysis.stats import LayerStats
    >>> st = LayerStats(name="l", scheme="ternary", fan_out=10, tokens=2, elements=8,
    ...                 spikes=6, hist=[])
    >>> e = layer_energy(st, REPORT_TABLE)
    >>> e.dense_macs_per_token, e.fp16_pj, round(e.spiking_pj, 3), e.epilogue_pj  # 1 group
    (40.0, 60.0, 0.9, 46.0)
    """
    t = load_table(table)
    if not stats.fan_out or not stats.tokens:
        return None
    dense = stats.elements * stats.fan_out / stats.tokens
    spikes = stats.spikes / stats.tokens
    e = dict(
        name=stats.name, dense_macs_per_token=dense, spikes_per_token=spikes,
        mean_spikes=stats.mean_spikes_per_channel, fp16_pj=dense * t.fp16_mac,
        int8_pj=dense * t.int8_mac, spiking_pj=spikes * stats.fan_out * t.int8_add,
        epilogue_pj=(stats.groups or 1) * stats.fan_out * t.epilogue_mac,
    )
    if memory is not None:
        per_byte = t.read_pj_per_byte(memory)
        active = (stats.elements - stats.zeros) * stats.fan_out / stats.tokens
        e.update(fp16_fetch_pj=2 * dense * per_byte, int8_fetch_pj=dense * per_byte,
                 spiking_fetch_pj=active * per_byte)
    return LayerEnergy(**e)


def model_energy(model_stats, table: str | EnergyTable = HOROWITZ_45NM,
                 memory: str | None = None) -> tuple[list[LayerEnergy], LayerEnergy | None]:
    """Per-layer energies and their sum (the model's energy per token).

    The model's ``mean_spikes`` is MAC-weighted: total spiking ACs / total dense MACs, so
    the model's energy per MAC is ``mean_spikes x E(INT8 add)``.
    """
    layers = [e for e in (layer_energy(s, table, memory) for s in model_stats.layers) if e]
    if not layers:
        return [], None
    keys = ("dense_macs_per_token", "spikes_per_token", "fp16_pj", "int8_pj", "spiking_pj",
            "epilogue_pj", "fp16_fetch_pj", "int8_fetch_pj", "spiking_fetch_pj")
    tot = {k: sum(getattr(e, k) for e in layers) for k in keys}
    t = load_table(table)
    tot["mean_spikes"] = tot["spiking_pj"] / (tot["dense_macs_per_token"] * t.int8_add) \
        if tot["dense_macs_per_token"] and t.int8_add else 0.0
    return layers, LayerEnergy(name="model", **tot)
