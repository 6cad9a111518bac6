"""The SpikingBrain report's per-MAC energy model as a registered estimator (``"horowitz"``).

Per token of a layer with fan-in ``n``, fan-out ``m``, ``s`` spikes per input channel and
``G`` weight groups per output (report section 5.5, Horowitz ISSCC 2014 at 45 nm):

- ``fp16``: ``n m`` FP16 MACs;
- ``int8``: ``n m`` INT8 MACs plus the group-scale epilogue ``G m`` float MACs;
- ``spiking``: ``s n m`` INT8 additions (one per spike and output) plus the same epilogue.

With a memory level, the weights are fetched once per token (FP16: 2 bytes per weight, INT8: 1;
the spiking layer only the rows of its non-zero input channels). Every figure is scaled by the
layer's ``active_fraction`` (routed experts). The numbers equal
:func:`spikingbrain.analysis.energy.layer_energy` for a measured layer.

>>> from spikingbrain.analysis.estimators import LayerWorkload, estimate
>>> w = LayerWorkload("fc", 128, 10, 128, 0, 1.13, 0.816, source="assumed")
>>> est = estimate([w], "horowitz")
>>> [round(est.total(r), 3) for r in ("fp16", "int8", "spiking")]
[1920.0, 340.4, 89.392]
>>> round(est.total("spiking") / w.dense_macs_per_token, 4)  # 1.13 x 0.03 + 4.6 / 128
0.0698
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spikingbrain.analysis.energy import REPORT_TABLE, EnergyTable, load_table
from spikingbrain.analysis.estimators.base import (
    Constant,
    EnergyEstimate,
    EstimatorConfig,
    LayerEstimate,
    constant_field,
    register_estimator,
)
from spikingbrain.analysis.estimators.workload import LayerWorkload

__all__ = ["HorowitzConfig", "horowitz_estimator"]

_HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm, 0.9 V"


@dataclass(frozen=True)
class HorowitzConfig(EstimatorConfig):
    """Per-operation energies of the report's model, each a :class:`Constant` with its source.

    Attributes:
        fp16_mac, int8_mac, int8_add: energy per FP16 MAC, INT8 MAC, INT8 addition (pJ).
        epilogue_mac: energy of one float multiply-add of the group-scale epilogue (pJ).
        read_pj_per_byte: weight-fetch energy per byte; None leaves fetches out.
        epilogue: count the group-scale epilogue (False for layers without weight scales,
            the definition of spikingjelly's ``estimate_simple_energy``).
        table_name: the energy table the constants were taken from.
    """

    name = "horowitz"
    fp16_mac: Constant = constant_field("fp16_mac", REPORT_TABLE.fp16_mac, "pJ",
                                        f"SpikingBrain report sec. 5.5 citing {_HOROWITZ}")
    int8_mac: Constant = constant_field("int8_mac", REPORT_TABLE.int8_mac, "pJ",
                                        f"SpikingBrain report sec. 5.5 citing {_HOROWITZ}")
    int8_add: Constant = constant_field("int8_add", REPORT_TABLE.int8_add, "pJ",
                                        f"SpikingBrain report sec. 5.5 citing {_HOROWITZ}")
    epilogue_mac: Constant = constant_field("epilogue_mac", REPORT_TABLE.epilogue_mac, "pJ",
                                            f"FP32 MAC of {_HOROWITZ}")
    read_pj_per_byte: Constant | None = None
    epilogue: bool = True
    table_name: str = REPORT_TABLE.name

    def __post_init__(self) -> None:
        for key in ("fp16_mac", "int8_mac", "int8_add", "epilogue_mac", "read_pj_per_byte"):
            c = getattr(self, key)
            if c is None and key == "read_pj_per_byte":
                continue
            if not isinstance(c, Constant):
                raise TypeError(f"HorowitzConfig.{key} must be a Constant (value with its "
                                f"source), got {type(c).__name__}; use HorowitzConfig."
                                f"from_table for an energy table")
            if c.value < 0:
                raise ValueError(f"HorowitzConfig.{key} must be >= 0 pJ, got {c.value}")
        if not isinstance(self.epilogue, bool):
            raise TypeError(f"HorowitzConfig.epilogue must be a bool, got {self.epilogue!r}")

    @classmethod
    def from_table(cls, table: str | EnergyTable = REPORT_TABLE, memory: str | None = None,
                   **overrides: Any) -> HorowitzConfig:
        """The config of an energy table (name, file or :class:`EnergyTable`), with weight
        fetches from memory level ``memory`` of that table.

        >>> HorowitzConfig.from_table("horowitz-45nm", memory="sram_32kb").read_pj_per_byte.value
        2.5
        """
        t = load_table(table)
        src = t.source
        epi = "fp32_mac" if t.fp32_mac is not None else "fp16_mac"
        if t == REPORT_TABLE:  # the defaults: the same values, each with its own citation
            d = cls()
            fields: dict[str, Any] = dict(fp16_mac=d.fp16_mac, int8_mac=d.int8_mac,
                                          int8_add=d.int8_add, epilogue_mac=d.epilogue_mac)
        else:
            fields = dict(
                fp16_mac=Constant("fp16_mac", t.fp16_mac, "pJ", src),
                int8_mac=Constant("int8_mac", t.int8_mac, "pJ", src),
                int8_add=Constant("int8_add", t.int8_add, "pJ", src),
                epilogue_mac=Constant("epilogue_mac", t.epilogue_mac, "pJ", f"{epi} of {src}"))
        fields["table_name"] = t.name
        if memory is not None:
            fields["read_pj_per_byte"] = Constant(
                f"read_{memory}", t.read_pj_per_byte(memory), "pJ/byte",
                f"64-bit {memory} read / 8 bytes, {src}")
        return cls(**(fields | overrides))


def _layer(cfg: HorowitzConfig, w: LayerWorkload) -> list[LayerEstimate]:
    f = w.active_fraction
    dense = w.dense_macs_per_token
    epi = w.groups_per_output * w.out_features * cfg.epilogue_mac.value if cfg.epilogue else 0.0
    counts = {"dense_macs": dense * f, "synaptic_ops": w.synaptic_ops_per_token * f,
              "epilogue_macs": (w.groups_per_output * w.out_features if cfg.epilogue else 0) * f}
    parts = {
        "fp16": {"macs": dense * cfg.fp16_mac.value},
        "int8": {"macs": dense * cfg.int8_mac.value, "epilogue": epi},
        "spiking": {"synaptic": w.synaptic_ops_per_token * cfg.int8_add.value, "epilogue": epi},
    }
    if cfg.read_pj_per_byte is not None:
        per_byte = cfg.read_pj_per_byte.value
        parts["fp16"]["weight_reads"] = 2 * dense * per_byte
        parts["int8"]["weight_reads"] = dense * per_byte
        parts["spiking"]["weight_reads"] = w.active_synapses_per_token * per_byte
    out = []
    for regime, p in parts.items():
        p = {k: v * f for k, v in p.items()}
        out.append(LayerEstimate(w.name, regime, sum(p.values()), p, dict(counts)))
    return out


def horowitz_estimator(cfg: HorowitzConfig):
    """Factory of the registry: ``workloads -> EnergyEstimate`` (regimes fp16, int8, spiking)."""

    def run(workloads: list[LayerWorkload]) -> EnergyEstimate:
        layers = [e for w in workloads for e in _layer(cfg, w)]
        notes = [
            f"Constants of the energy table {cfg.table_name!r}.",
            "fp16 / int8: in x out MACs per token; spiking: spikes x fan-out INT8 additions "
            "(SpikingBrain report sec. 5.5).",
            "Epilogue: " + ("weight groups per output x fan-out float MACs, in int8 and "
                            "spiking alike." if cfg.epilogue else "not counted."),
            "Not counted: neuron dynamics (threshold, rounding), bias adds, activations and "
            "KV-cache traffic, layers that are not converted (report Appendix C.2).",
        ]
        if cfg.read_pj_per_byte is None:
            notes.append("Weight fetches not counted (no memory level chosen).")
        return EnergyEstimate(cfg.name, layers, cfg.constants(), notes)

    return run


register_estimator(HorowitzConfig, horowitz_estimator)
