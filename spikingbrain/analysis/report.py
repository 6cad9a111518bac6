"""Reports: a versioned JSON document, a Markdown page and one self-contained HTML page.

:func:`build_report` turns :class:`~.stats.ModelStats` (plus optional fidelity figures and a
k sweep) into a JSON-able dict with the definitions, the energy model's assumptions and
omissions; :func:`write_report` writes ``report.json``, ``report.md``, ``index.html`` (plots
embedded as base64 PNG) and ``plots/*.png`` into a folder, all or nothing.

>>> from spikingbrain.analysis.stats import count_statistics, ModelStats
>>> import torch
>>> st = count_statistics([torch.tensor([[0, 1, -3, 9]])], "bitwise_bidirectional", fan_out=8)
>>> rep = build_report(ModelStats([st]), title="toy")
>>> rep["schema"], rep["schema_version"], rep["summary"]["mean_spikes_per_channel"]
('spikingbrain.analysis.report', 1, 1.25)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spikingbrain.analysis.energy import (
    ASSUMPTIONS,
    HOROWITZ_45NM,
    OMISSIONS,
    EnergyTable,
    load_table,
    model_energy,
    per_mac_energy,
)
from spikingbrain.analysis.report_render import (
    Figure,
    render_html,
    render_markdown,
    sweep_table_rows,
)
from spikingbrain.analysis.stats import DEFINITIONS, ModelStats
from spikingbrain.utils.atomic import atomic_folder

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "Figure",
    "build_report",
    "estimator_comparison",
    "render_html",
    "render_markdown",
    "report_figures",
    "sweep_table_rows",
    "write_report",
]

SCHEMA = "spikingbrain.analysis.report"
SCHEMA_VERSION = 1

SWEEP_DEFINITIONS = {
    "cosine": "Mean over sentences of the cosine similarity between the converted and the "
    "float model's mean-pooled last hidden states (sentence embeddings).",
    "energy_per_token_pj": "Spiking energy per token of all converted layers (stored in pJ, "
    "shown in pJ / nJ / µJ as the size needs): spikes x fan-out x E(INT8 add) plus the "
    "group-scale epilogue, summed over layers; compare with the FP16 figure of the same row.",
}


def _version() -> str:
    try:
        from spikingbrain import __version__

        return __version__
    except Exception:  # pragma: no cover
        return "unknown"


def build_report(
    stats: ModelStats,
    *,
    title: str = "Spike analysis",
    model: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    window: int | None = 3,
    table: str | EnergyTable = HOROWITZ_45NM,
    memory: str | None = None,
    fidelity: dict[str, Any] | None = None,
    sweep: Sequence[dict[str, Any]] | None = None,
    estimators: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The report as a JSON-able dict (schema ``spikingbrain.analysis.report``, version 1).

    Args:
        stats: monitor (or reference) statistics.
        title: page title.
        model, data, settings: free-form descriptions (name, path, config; text source,
            sentences, tokens; the analysis options).
        window: fixed window for ``sparsity_at_window`` (None to omit).
        table: energy table (name, file or :class:`EnergyTable`).
        memory: optional memory level for weight-fetch energy (e.g. ``"sram_32kb"``).
        fidelity: optional similarity figures against the float model.
        sweep: optional k-sweep rows (see :func:`spikingbrain.analysis.pipeline.sweep_k`).
        estimators: estimator names or configs for the ``estimators`` comparison (default:
            every registered estimator; ``horowitz`` takes ``table`` and ``memory``); ``()``
            leaves the section out.
    """
    t = load_table(table)
    total = stats.total
    layer_e, model_e = model_energy(stats, t, memory)
    per_mac = per_mac_energy(model_e.mean_spikes if model_e else total.mean_spikes_per_channel, t)
    if model_e is not None and model_e.dense_macs_per_token:
        # the epilogue's float multiply-adds per MAC, from the layers' own group counts
        per_mac = dataclasses.replace(
            per_mac, epilogue_pj=model_e.epilogue_pj / model_e.dense_macs_per_token)
    summary = {
        "layers": len(stats.layers),
        "tokens": total.tokens,
        "elements": total.elements,
        "mean_spikes_per_channel": total.mean_spikes_per_channel,
        "mac_weighted_mean_spikes": model_e.mean_spikes if model_e else None,
        "fraction_le_7": total.fraction_le_7 if total.elements else None,
        "fraction_gt_16": total.fraction_gt_16 if total.elements else None,
        "silent_fraction": total.silent_fraction,
        "sparsity": total.sparsity,
        "sparsity_at_window": total.sparsity_at(window) if window and total.elements else None,
        "firing_rate": total.firing_rate,
        "mean_window": total.mean_window,
        "max_window": total.window_max,
        "saturated": total.saturated,
        "footprint_bytes": stats.footprint_bytes,
        "n_parameters": stats.n_parameters,
    }
    rep: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "title": title,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "spikingbrain_version": _version(),
        "model": model or {},
        "data": data or {},
        "settings": {"window": window, "energy_table": t.name, "memory": memory,
                     "hist_range": stats.layers[0].hist_range if stats.layers else None}
        | (settings or {}),
        "summary": summary,
        "neurobench": {
            "activation_sparsity": total.sparsity,
            "synaptic_operations": stats.synops,
            "footprint_bytes": stats.footprint_bytes,
        },
        "energy": {
            "table": t.to_dict(),
            "per_mac": per_mac.to_dict(),
            "per_token": model_e.to_dict() if model_e else None,
            "layers": [e.to_dict() for e in layer_e],
            "assumptions": list(ASSUMPTIONS),
            "omissions": list(OMISSIONS),
        },
        "estimators": estimator_comparison(stats, t, memory, estimators),
        "fidelity": fidelity,
        "sweep": list(sweep) if sweep else None,
        "layers": [s.to_dict(window) for s in stats.layers],
        "definitions": DEFINITIONS | (SWEEP_DEFINITIONS if sweep or fidelity else {}),
    }
    return rep


def estimator_comparison(stats: ModelStats, table: str | EnergyTable = HOROWITZ_45NM,
                         memory: str | None = None, estimators: Sequence[Any] | None = None
                         ) -> dict[str, Any] | None:
    """The estimators' comparison (:func:`spikingbrain.analysis.estimators.compare.compare`)
    on the measured workloads, per layer and per token; None without a layer to estimate.

    ``horowitz`` runs with the report's energy table and memory level, so its figures are the
    ``energy`` section's.
    """
    from spikingbrain.analysis.estimators import estimator_names, workloads_from_model_stats
    from spikingbrain.analysis.estimators.compare import compare
    from spikingbrain.analysis.estimators.horowitz import HorowitzConfig

    workloads = workloads_from_model_stats(stats)
    names = list(estimator_names() if estimators is None else estimators)
    if not workloads or not names:
        return None
    configs = [HorowitzConfig.from_table(table, memory) if c == "horowitz" else c for c in names]
    return compare(workloads, configs, record_errors=True)


def report_figures(
    stats: ModelStats,
    *,
    window: int | None = 3,
    table: str | EnergyTable = HOROWITZ_45NM,
    memory: str | None = None,
    samples: dict[str, Any] | None = None,
    sweep: Sequence[dict[str, Any]] | None = None,
    estimators: dict[str, Any] | None = None,
) -> list[Figure]:
    """Render the standard plots of a report as :class:`Figure` objects (PNG bytes).

    ``estimators``: the report's ``estimators`` section; adds the grouped-bar comparison
    (estimator x regime, energy per token) as ``plots/estimators.png``.
    """
    from spikingbrain.analysis import plots

    t = load_table(table)
    figs: list[Figure] = []

    def add(name: str, title: str, caption: str, fig: Any) -> None:
        figs.append(Figure(name, title, caption, plots.figure_png(fig)))

    for layer, counts in (samples or {}).items():
        scheme = next((s.scheme for s in stats.layers if s.name == layer), None)
        schemes = ["binary", "ternary", "bitwise_bidirectional", "bitwise_twos_complement"]
        if scheme and scheme not in schemes:
            schemes.append(scheme)
        add("raster", f"Spike raster of {layer}",
            "The same counts (first tokens and channels of the first batch) expanded with each "
            "coding scheme; blue = +1 spike, red = -1 spike. Unsigned schemes (binary) show |c|.",
            plots.scheme_raster_figure(counts, schemes, layer=layer))
        break
    if any(s.elements for s in stats.layers):
        add("histograms", "Spike-count histograms",
            "Fraction of counts per value and layer (log scale), like Figure 9 of the report.",
            plots.count_histograms(stats))
        add("sparsity", "Spikes and sparsity per layer",
            "Mean spikes per channel; sparsity with each call's own window and with the fixed "
            f"{window}-step window; ticks mark the fraction of silent (zero) counts.",
            plots.layer_bars(stats, window))
    layer_e, _ = model_energy(stats, t, memory)
    if layer_e:
        add("energy", "Energy per token per layer",
            f"Energy per token of each converted layer under the {t.name} table"
            + (f", including weight fetches from {memory}" if memory else "") + ".",
            plots.energy_bars(layer_e, t.name))
    if estimators:
        from spikingbrain.analysis.estimators.compare import comparison_figure

        add("estimators", "Energy per token by estimator",
            "Energy per token of all estimated layers under each estimator and regime (log "
            "scale); constants and definitions in the estimator section.",
            comparison_figure(estimators))
    if sweep:
        add("k_sweep", "k sweep", "Fidelity and sparsity as the threshold divisor k varies.",
            plots.k_sweep_figure(sweep))
    return figs


# ---- formatting --------------------------------------------------------------------------
#: The files a report folder holds: a folder of only these may be replaced by a new report.
REPORT_FILES = frozenset({"index.html", "report.json", "report.md", "plots", "sweep.json"})


def _is_report_folder(folder: Path) -> bool:
    return all(p.name in REPORT_FILES for p in folder.iterdir())


def write_report(out_dir: str | Path, rep: dict[str, Any],
                 figures: Sequence[Figure] = (),
                 extra_json: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``index.html``, ``plots/*.png`` (and
    ``extra_json`` files, e.g. ``{"sweep.json": rows}``) into ``out_dir``, all or nothing.

    The folder is built beside ``out_dir`` and swapped in whole
    (:func:`spikingbrain.utils.atomic.atomic_folder`): a failing write leaves the previous
    report untouched, never a mix of old and new files. A folder holding anything other than a
    report (:data:`REPORT_FILES`) is refused. Returns ``{kind: final path}``.
    """
    out = Path(out_dir)
    for name in extra_json or {}:
        if name not in REPORT_FILES:
            raise ValueError(f"extra report file {name!r} must be one of {sorted(REPORT_FILES)}")
    paths: dict[str, Path] = {}
    with atomic_folder(out, _is_report_folder) as tmp:
        (tmp / "plots").mkdir()
        for f in figures:
            (tmp / "plots" / f"{f.name}.png").write_bytes(f.png)
            paths[f"plot:{f.name}"] = out / "plots" / f"{f.name}.png"
        doc = dict(rep)
        doc["plots"] = [f"plots/{f.name}.png" for f in figures]
        (tmp / "report.json").write_text(json.dumps(doc, indent=1, default=str),
                                         encoding="utf-8")
        (tmp / "report.md").write_text(render_markdown(rep, figures), encoding="utf-8")
        (tmp / "index.html").write_text(render_html(rep, figures), encoding="utf-8")
        for name, data in (extra_json or {}).items():
            (tmp / name).write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
            paths[name] = out / name
    paths.update(json=out / "report.json", markdown=out / "report.md", html=out / "index.html")
    return paths
