"""Spike analysis: streaming statistics, energy per MAC and per token, plots and reports.

- :func:`monitor` / :class:`SpikeMonitor`: hook every spiking layer and accumulate exact
  statistics without storing activations (reduced over ranks under ``torch.distributed``).
- :func:`count_statistics`: the same statistics from stored count tensors (the reference).
- :mod:`~spikingbrain.analysis.energy`: energy tables (Horowitz 45 nm, the SpikingBrain
  report's figures, user JSON/TOML files) and per-MAC / per-token estimates.
- :mod:`~spikingbrain.analysis.plots`: :func:`raster` and report figures.
- :mod:`~spikingbrain.analysis.report`: JSON / Markdown / HTML reports.
- :func:`analyze`, :func:`sweep_k`, :func:`demo_report`: end-to-end runs on real text.

>>> import torch
>>> from spikingbrain.neurons import AdaptiveThreshold
>>> neuron = AdaptiveThreshold(k=3.0)
>>> with monitor(neuron) as m:
...     _ = neuron(torch.tensor([[0.3, -0.9, 0.0, 1.8]]))
>>> st = m.stats().total
>>> st.mean_spikes_per_channel, st.silent_fraction
(1.25, 0.25)
>>> round(per_mac_energy(1.13, "spikingbrain-report", precision=3).reduction_vs_int8, 3)
0.852
"""

from spikingbrain.analysis.energy import (
    HOROWITZ_45NM,
    REPORT_TABLE,
    TABLES,
    EnergyTable,
    LayerEnergy,
    PerMacEnergy,
    layer_energy,
    load_table,
    model_energy,
    per_mac_energy,
)
from spikingbrain.analysis.monitor import SpikeMonitor, model_footprint, monitor
from spikingbrain.analysis.stats import (
    DEFINITIONS,
    LayerStats,
    ModelStats,
    count_statistics,
    spikes_per_count,
)

__all__ = [
    "DEFINITIONS",
    "HOROWITZ_45NM",
    "REPORT_TABLE",
    "TABLES",
    "EnergyTable",
    "LayerEnergy",
    "LayerStats",
    "ModelStats",
    "PerMacEnergy",
    "SpikeMonitor",
    "analyze",
    "build_report",
    "count_statistics",
    "demo_report",
    "layer_energy",
    "load_table",
    "model_energy",
    "model_footprint",
    "monitor",
    "per_mac_energy",
    "raster",
    "spikes_per_count",
    "sweep_k",
    "write_report",
]


def raster(spikes, ax=None, **kwargs):
    """Time x neuron raster of ``spikes [T, neurons]`` (see :func:`.plots.raster`)."""
    from spikingbrain.analysis.plots import raster as _raster

    return _raster(spikes, ax=ax, **kwargs)


def build_report(*args, **kwargs):
    """See :func:`spikingbrain.analysis.report.build_report`."""
    from spikingbrain.analysis.report import build_report as _f

    return _f(*args, **kwargs)


def write_report(*args, **kwargs):
    """See :func:`spikingbrain.analysis.report.write_report`."""
    from spikingbrain.analysis.report import write_report as _f

    return _f(*args, **kwargs)


def analyze(*args, **kwargs):
    """See :func:`spikingbrain.analysis.pipeline.analyze`."""
    from spikingbrain.analysis.pipeline import analyze as _f

    return _f(*args, **kwargs)


def sweep_k(*args, **kwargs):
    """See :func:`spikingbrain.analysis.pipeline.sweep_k`."""
    from spikingbrain.analysis.pipeline import sweep_k as _f

    return _f(*args, **kwargs)


def demo_report(out_dir="report", **kwargs):
    """Write the demo report of the embedded MiniLM into ``out_dir`` (see
    :func:`spikingbrain.analysis.pipeline.demo_report`)."""
    from spikingbrain.analysis.pipeline import demo_report as _f

    return _f(out_dir, **kwargs)
