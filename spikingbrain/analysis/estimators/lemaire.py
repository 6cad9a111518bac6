"""Memory-aware analytical energy after Lemaire et al. 2022 (``"lemaire"``).

E. Lemaire, L. Cordone, A. Castagnetti, P.-E. Novac, J. Courtois, B. Miramond, "An analytical
estimation of spiking neural networks energy efficiency", ICONIP 2022 (arXiv 2210.13107).
The model counts operations *and* memory accesses, each access priced by the size of the
memory it hits (a local SRAM per layer and data kind). Per token of a layer with fan-in ``n``,
fan-out ``m``, ``S`` input spikes (``spikes_per_channel x n``), ``T`` steps, ``w`` bytes per
word (32-bit words in the paper):

*ANN* (the float model, regime ``ann``): ``n m`` MACs (``E_mul + E_add`` each), ``m`` bias
adds, ``n + m`` address additions; reads of ``n`` inputs (buffer of the inputs), of ``n m``
weights and ``m`` biases (buffer of the parameters); writes of ``m`` outputs.

*SNN* (regime ``spiking``): ``S m`` synaptic additions and ``S m`` address additions; reads of
``S`` input events (a FIFO of ``fifo_capacity`` events), of ``S m`` weights, and a read and a
write of the potential of every output an event reaches (``S m`` each, buffer of ``m``
potentials). The neurons that emit the layer's input spikes (``n`` of them, ``T`` steps,
``trains`` trains) read and write their potential every step, add once per emitted spike
(reset), a LIF multiplies once per step (leak), and they write their ``S`` spikes to a FIFO.

Memory energy: bytes x ``cost(buffer size)``, a piecewise-linear interpolation of the energy per
byte between 0 (empty), 8 KB, 32 KB and 1 MB SRAM (10, 20, 100 pJ per 32-bit access, clamped
above 1 MB), as the paper prices its buffers.

>>> from spikingbrain.analysis.estimators import LayerWorkload, estimate
>>> w = LayerWorkload("fc", 64, 32, None, 0, 0.5, 0.4, steps=4, source="assumed")
>>> est = estimate([w], "lemaire")
>>> [round(est.total(r), 2) for r in ("ann", "spiking")]
[27068.2, 11240.5]
>>> est.layer("fc", "spiking").extra["synaptic_ops"]
1024.0
"""

from __future__ import annotations

from dataclasses import dataclass

from spikingbrain.analysis.estimators.base import (
    Constant,
    EnergyEstimate,
    EstimatorConfig,
    LayerEstimate,
    constant_field,
    register_estimator,
)
from spikingbrain.analysis.estimators.workload import LayerWorkload

__all__ = ["LemaireConfig", "lemaire_estimator", "sram_pj_per_byte"]

_PAPER = "Lemaire et al., ICONIP 2022 (arXiv 2210.13107)"
_SRAM = f"{_PAPER}, SRAM access energies after Horowitz ISSCC 2014 (45 nm), per 32-bit word"
_INPUT_NEURONS = ("all", "all_but_first", "none")


@dataclass(frozen=True)
class LemaireConfig(EstimatorConfig):
    """Constants and counting definitions of the Lemaire model.

    Constants: ``e_add`` / ``e_mul`` (32-bit integer add / multiply, pJ), ``word_bytes``
    (bytes per access), ``sram_8kb`` / ``sram_32kb`` / ``sram_1mb`` (pJ per word access of an
    SRAM of that size), ``fifo_capacity`` (events per spike FIFO).

    Definitions (defaults are ours; the spikingjelly 2.0 ``estimate_lemaire_energy`` values in
    brackets, see docs/energy.md):

    - ``input_neurons``: whose input neurons are counted: ``"all"`` (every converted layer's
      inputs are produced by a spiking neuron), ``"all_but_first"`` (the first layer is fed by
      data) [``"all_but_first"``], or ``"none"`` (synapses only; the peer's non-strict mode for
      neurons it does not know).
    - ``neuron``: ``"if"`` or ``"lif"`` (a LIF pays one MAC per neuron and step for the leak).
    - ``bias_per_step``: a bias is added (and read) every time step [True] instead of once per
      token (our converted layers add it once, after the time steps).
    - ``dense_first_layer``: in the spiking regime, the first layer takes non-spiking input
      and is counted like an ANN layer without output writes [True when the data are not
      binary].
    - ``ann_write_outputs``: ANN layers write their outputs [False inside a network with
      neurons].
    - ``buffer_tokens``: tokens whose activations and potentials share one buffer (the peer
      sizes those buffers by the whole batch) [batch size].
    - ``weight_reads``: ``"per_spike"`` (the paper: every event reads its weights) [the
      same] or ``"per_active_channel"`` (a channel's weight row is read once per token
      however many spikes it sends, e.g. bitwise trains with the shifts in the accumulator).
    """

    name = "lemaire"
    e_add: Constant = constant_field("e_add", 0.1, "pJ",
                                     f"{_PAPER}: 32-bit integer add, Horowitz ISSCC 2014")
    e_mul: Constant = constant_field("e_mul", 3.1, "pJ",
                                     f"{_PAPER}: 32-bit integer multiply, Horowitz ISSCC 2014")
    word_bytes: Constant = constant_field("word_bytes", 4.0, "byte", f"{_PAPER}: 32-bit words")
    sram_8kb: Constant = constant_field("sram_8kb", 10.0, "pJ/access", _SRAM)
    sram_32kb: Constant = constant_field("sram_32kb", 20.0, "pJ/access", _SRAM)
    sram_1mb: Constant = constant_field("sram_1mb", 100.0, "pJ/access", _SRAM)
    fifo_capacity: Constant = constant_field(
        "fifo_capacity", 1000.0, "events", f"{_PAPER}: spike FIFO depth of its experiments")
    input_neurons: str = "all"
    neuron: str = "if"
    bias_per_step: bool = False
    dense_first_layer: bool = False
    ann_write_outputs: bool = True
    buffer_tokens: int = 1
    weight_reads: str = "per_spike"

    def __post_init__(self) -> None:
        for c in self.constants():
            if c.value < 0:
                raise ValueError(f"LemaireConfig.{c.name} must be >= 0, got {c.value}")
        if self.word_bytes.value <= 0 or self.fifo_capacity.value <= 0:
            raise ValueError("LemaireConfig: word_bytes and fifo_capacity must be > 0")
        if self.input_neurons not in _INPUT_NEURONS:
            raise ValueError(f"LemaireConfig.input_neurons must be one of {_INPUT_NEURONS}, "
                             f"got {self.input_neurons!r}")
        if self.neuron not in ("if", "lif"):
            raise ValueError(f"LemaireConfig.neuron must be 'if' or 'lif', got {self.neuron!r}")
        for key in ("bias_per_step", "dense_first_layer", "ann_write_outputs"):
            if not isinstance(getattr(self, key), bool):
                raise TypeError(f"LemaireConfig.{key} must be a bool")
        if self.weight_reads not in ("per_spike", "per_active_channel"):
            raise ValueError(f"LemaireConfig.weight_reads must be 'per_spike' or "
                             f"'per_active_channel', got {self.weight_reads!r}")
        if isinstance(self.buffer_tokens, bool) or not isinstance(self.buffer_tokens, int) \
                or self.buffer_tokens < 1:
            raise ValueError(f"LemaireConfig.buffer_tokens must be a positive int, got "
                             f"{self.buffer_tokens!r}")

    @classmethod
    def spikingjelly(cls, neuron: str = "if", batch: int = 1, **overrides) -> LemaireConfig:
        """The definitions of spikingjelly 2.0's ``estimate_lemaire_energy`` for a stack of
        linear layers with spikingjelly IF / LIF neurons between them fed by binary data in
        batches of ``batch`` tokens (multi-step layers)."""
        return cls(**(dict(input_neurons="all_but_first", neuron=neuron, bias_per_step=True,
                           ann_write_outputs=False, buffer_tokens=batch) | overrides))


def sram_pj_per_byte(cfg: LemaireConfig, size_bytes: float) -> float:
    """Energy per byte of an access to an SRAM of ``size_bytes``: piecewise linear through
    (0, 0), (8 KB, e8), (32 KB, e32), (1 MB, e1M) per word, clamped above 1 MB.

    >>> cfg = LemaireConfig()
    >>> sram_pj_per_byte(cfg, 8192), sram_pj_per_byte(cfg, 20480), sram_pj_per_byte(cfg, 1e9)
    (2.5, 3.75, 25.0)
    """
    wb = cfg.word_bytes.value
    pts = [(0.0, 0.0), (8192.0, cfg.sram_8kb.value / wb), (32768.0, cfg.sram_32kb.value / wb),
           (1048576.0, cfg.sram_1mb.value / wb)]
    x = min(max(float(size_bytes), 0.0), pts[-1][0])
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x <= x1:
            return y0 + (y1 - y0) / (x1 - x0) * (x - x0)
    return pts[-1][1]  # pragma: no cover (x is clamped to the last point)


def _counts(cfg: LemaireConfig, w: LayerWorkload, regime: str, first: bool) -> dict:
    """Operation counts and ``(bytes, buffer bytes)`` accesses per token reaching the layer."""
    n, m, wb, bt = w.in_features, w.out_features, cfg.word_bytes.value, cfg.buffer_tokens
    steps = max(w.steps, 1.0)
    params_cap = (n * m + (m if w.has_bias else 0)) * wb
    dense = regime == "ann" or (first and cfg.dense_first_layer)
    if dense:  # an ANN layer, or the first SNN layer fed by analog data every step
        r = 1.0 if regime == "ann" else steps
        bias = m * r if w.has_bias else 0
        c = {"mac": n * m * r, "ac": bias, "acc_addr": (n + m) * r, "synaptic_ops": 0.0,
             "inputs": [(n * wb * r, bt * n * wb * r)],
             "weights": [((n * m * r + bias) * wb, params_cap)], "potentials": []}
        if regime == "ann" and cfg.ann_write_outputs:
            c["inputs"].append((m * wb, bt * m * wb))
        return c
    spikes = w.binary_events_per_token
    syn = w.synaptic_ops_per_token
    bias = (m * (steps if cfg.bias_per_step else 1)) if w.has_bias else 0
    reads = syn if cfg.weight_reads == "per_spike" else w.active_synapses_per_token
    c = {"mac": 0.0, "ac": syn + bias, "acc_addr": syn, "synaptic_ops": syn,
         "inputs": [(spikes * wb, cfg.fifo_capacity.value * wb)],
         "weights": [((reads + bias) * wb, params_cap)],
         "potentials": [(syn * wb, bt * m * wb), (syn * wb, bt * m * wb)]}
    if cfg.input_neurons == "all" or (cfg.input_neurons == "all_but_first" and not first):
        updates = n * steps * w.trains
        c["ac"] += spikes
        if cfg.neuron == "lif":
            c["mac"] += updates
        c["potentials"] += [(updates * wb, bt * n * wb)] * 2
        c["inputs"].append((spikes * wb, cfg.fifo_capacity.value * wb))
    return c


def _layer(cfg: LemaireConfig, w: LayerWorkload, regime: str, first: bool) -> LayerEstimate:
    c = _counts(cfg, w, regime, first)
    add, mul = cfg.e_add.value, cfg.e_mul.value
    parts = {"ops": c["ac"] * add + c["mac"] * (mul + add), "addressing": c["acc_addr"] * add}
    for kind in ("inputs", "weights", "potentials"):
        parts[kind] = sum(b * sram_pj_per_byte(cfg, cap) for b, cap in c[kind])
    f = w.active_fraction
    parts = {k: v * f for k, v in parts.items()}
    extra = {"macs": c["mac"] * f, "acs": c["ac"] * f, "address_adds": c["acc_addr"] * f,
             "synaptic_ops": c["synaptic_ops"] * f}
    for kind in ("inputs", "weights", "potentials"):
        extra[f"{kind}_bytes"] = sum(b for b, _ in c[kind]) * f
    return LayerEstimate(w.name, regime, sum(parts.values()), parts, extra)


def lemaire_estimator(cfg: LemaireConfig):
    """Factory of the registry: ``workloads -> EnergyEstimate`` (regimes ann, spiking)."""

    def run(workloads: list[LayerWorkload]) -> EnergyEstimate:
        layers = [_layer(cfg, w, regime, i == 0) for regime in ("ann", "spiking")
                  for i, w in enumerate(workloads)]
        notes = [
            f"After {_PAPER}: operations plus memory accesses priced by buffer size.",
            f"Input neurons counted: {cfg.input_neurons} ({cfg.neuron.upper()}); bias "
            f"{'every time step' if cfg.bias_per_step else 'once per token'}; buffers sized "
            f"for {cfg.buffer_tokens} token(s); weights read {cfg.weight_reads.replace('_', ' ')}.",
            "Workload order is network order ('first' layer = the first workload).",
            "Not counted: neurons whose spikes feed no linear layer (a network's output "
            "neurons), the group-scale epilogue, attention products, normalisation, routing.",
        ]
        return EnergyEstimate(cfg.name, layers, cfg.constants(), notes)

    return run


register_estimator(LemaireConfig, lemaire_estimator)
