"""Several estimators on the same workloads: a JSON-ready comparison, its tables and its plot.

:func:`compare` runs estimators (all registered ones by default) and keeps their results;
:func:`per_token_rows`, :func:`per_layer_rows` and :func:`constant_rows` format the tables the
reports and the ``spikingbrain energy`` command print; :func:`comparison_figure` draws grouped
bars (estimator x regime, energy per token).

>>> from spikingbrain.analysis.estimators import LayerWorkload
>>> ws = [LayerWorkload("fc", 128, 64, 128, 0, 1.13, 0.816, source="assumed")]
>>> cmp = compare(ws, ["horowitz", "lemaire"])
>>> head, rows = per_token_rows(cmp)
>>> head[:3], rows[0][:3]
(['estimator', 'regime', 'energy / token'], ['horowitz', 'fp16', '12.288 nJ'])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from spikingbrain.analysis.estimators.base import (
    EstimatorConfig,
    config_for,
    estimate,
    estimator_names,
)
from spikingbrain.analysis.estimators.workload import LayerWorkload

__all__ = ["compare", "comparison_figure", "constant_rows", "format_energy", "per_layer_rows",
           "per_token_rows"]


def format_energy(pj: float) -> str:
    """An energy in pJ with the unit its size needs (pJ, nJ, µJ, mJ, J).

    >>> format_energy(0.0339), format_energy(2.5e7), format_energy(3.2e12)
    ('0.0339 pJ', '25.000 µJ', '3.200 J')
    """
    if not math.isfinite(pj):
        return "n/a"
    for unit, div in (("J", 1e12), ("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= div:
            return f"{pj / div:.3f} {unit}"
    return f"{pj:.4f} pJ" if abs(pj) < 1 else f"{pj:.3f} pJ"


def compare(workloads: Sequence[LayerWorkload],
            configs: Sequence[str | EstimatorConfig] | None = None, *,
            record_errors: bool = False) -> dict[str, Any]:
    """Run every estimator of ``configs`` (names or configs; None: all registered, with
    their defaults) on ``workloads``.

    ``record_errors``: an estimator that raises ``ValueError`` (e.g. a layer it cannot map)
    is listed in ``errors`` (``{"estimator", "error"}``) instead of stopping the comparison
    (reports use this; the command line lets the error through).

    Returns a JSON-ready dict: ``results`` (each :meth:`EnergyEstimate.to_dict`),
    ``per_token`` (one row per estimator and regime: pJ per token and per dense MAC),
    ``dense_macs_per_token`` (of the model, routed experts weighted) and ``layers``.
    """
    workloads = list(workloads)
    if not workloads:
        raise ValueError("no layer workloads to compare (no spiking linear layer)")
    configs = list(estimator_names() if configs is None else configs)
    if not configs:
        raise ValueError("no estimators to compare")
    macs = math.fsum(w.dense_macs_per_token * w.active_fraction for w in workloads)
    results, per_token, errors = [], [], []
    for cfg in configs:
        try:
            est = estimate(workloads, config_for(cfg) if isinstance(cfg, str) else cfg)
        except ValueError as err:
            if not record_errors:
                raise
            errors.append({"estimator": cfg if isinstance(cfg, str) else cfg.name,
                           "error": str(err)})
            continue
        results.append(est.to_dict())
        for regime in est.regimes:
            e = est.total(regime)
            per_token.append({"estimator": est.estimator, "regime": regime,
                              "energy_pj_per_token": e, "energy_pj_per_mac": e / macs})
    return {"dense_macs_per_token": macs, "layers": [w.name for w in workloads],
            "workload_sources": sorted({w.source for w in workloads}),
            "per_token": per_token, "results": results, "errors": errors}


def per_token_rows(cmp: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: estimator, regime, energy per token, per dense MAC, vs the first
    regime of the first estimator (the baseline, e.g. Horowitz FP16)."""
    rows = cmp["per_token"]
    base = rows[0]["energy_pj_per_token"] if rows else 0.0
    label = f"vs {rows[0]['estimator']} {rows[0]['regime']}" if rows else "vs baseline"
    out = [[r["estimator"], r["regime"], format_energy(r["energy_pj_per_token"]),
            format_energy(r["energy_pj_per_mac"]),
            f"{r['energy_pj_per_token'] / base:.4f}x" if base else "n/a"] for r in rows]
    return ["estimator", "regime", "energy / token", "energy / MAC", label], out


def per_layer_rows(cmp: dict[str, Any], short_names: Sequence[str] | None = None
                   ) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per layer, one column per estimator and regime (energy per
    model token)."""
    cols = [(r["estimator"], r["regime"]) for r in cmp["per_token"]]
    table: dict[tuple[str, str, str], float] = {}
    for res in cmp["results"]:
        for x in res["layers"]:
            table[(res["estimator"], x["regime"], x["name"])] = x["energy_pj_per_token"]
    names = list(short_names) if short_names is not None else cmp["layers"]
    rows = [[short] + [format_energy(table.get((e, r, name), math.nan)) for e, r in cols]
            for short, name in zip(names, cmp["layers"])]
    return ["layer"] + [f"{e} {r}" for e, r in cols], rows


def constant_rows(cmp: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: every constant of every estimator, with its unit and source."""
    rows = [[res["estimator"], c["name"], f"{c['value']:g}", c["unit"], c["source"]]
            for res in cmp["results"] for c in res["constants"]]
    return ["estimator", "constant", "value", "unit", "source"], rows


def comparison_figure(cmp: dict[str, Any], title: str = "Energy per token by estimator") -> Any:
    """Grouped bars: one group per estimator, one bar per regime (energy per token, log
    scale), each bar labelled with its value."""
    from matplotlib.figure import Figure

    estimators = list(dict.fromkeys(r["estimator"] for r in cmp["per_token"]))
    regimes = list(dict.fromkeys(r["regime"] for r in cmp["per_token"]))
    if not estimators:
        raise ValueError("nothing to plot: the comparison has no results")
    val = {(r["estimator"], r["regime"]): r["energy_pj_per_token"] for r in cmp["per_token"]}
    fig = Figure(figsize=(max(6.0, 1.6 * len(estimators) * max(1, len(regimes)) / 2), 4.2),
                 layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(regimes)
    colors = ["#7f8c9b", "#3b7dd8", "#e07b39", "#2ca25f", "#9b59b6", "#c0392b", "#16a085"]
    for j, regime in enumerate(regimes):
        xs = [i + (j - (len(regimes) - 1) / 2) * width for i in range(len(estimators))]
        ys = [val.get((e, regime), 0.0) / 1e3 for e in estimators]
        bars = ax.bar(xs, ys, width=width * 0.95, label=regime, color=colors[j % len(colors)])
        for b, y in zip(bars, ys):
            if y > 0:
                ax.annotate(format_energy(y * 1e3), (b.get_x() + b.get_width() / 2, y),
                            ha="center", va="bottom", fontsize=6, rotation=90,
                            xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(estimators)), estimators)
    ax.set_yscale("log")
    top = max((v / 1e3 for v in val.values() if v > 0), default=1.0)
    ax.set_ylim(top=top * 40)  # head room (log scale) for the rotated labels and the legend
    ax.set_ylabel("energy per token (nJ, log scale)")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=8, title="regime", title_fontsize=8, ncols=min(4, len(regimes)))
    ax.set_title(title)
    return fig
