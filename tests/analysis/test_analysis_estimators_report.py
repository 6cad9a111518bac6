"""The estimator comparison in the JSON / Markdown / HTML report and its plot."""

from __future__ import annotations

import json
import math

from spikingbrain.analysis.estimators import estimator_names
from spikingbrain.analysis.estimators.compare import (
    comparison_figure,
    constant_rows,
    per_layer_rows,
    per_token_rows,
)
from spikingbrain.analysis.report import build_report, report_figures, write_report


def test_report_holds_the_estimator_comparison(tmp_path, toy_stats):
    stats, samples = toy_stats
    rep = build_report(stats, title="toy", window=3, table="horowitz-45nm", memory="sram_32kb")
    cmp = rep["estimators"]
    assert [r["estimator"] for r in cmp["results"]] == estimator_names()
    assert cmp["layers"] == [s.name for s in stats.layers]
    # horowitz in the comparison is the energy section's model: same per-token totals
    pt = {(r["estimator"], r["regime"]): r["energy_pj_per_token"] for r in cmp["per_token"]}
    tok = rep["energy"]["per_token"]
    for regime in ("fp16", "int8", "spiking"):
        assert math.isclose(pt[("horowitz", regime)], tok[f"{regime}_total_pj"], rel_tol=1e-12)
    assert math.isclose(cmp["dense_macs_per_token"], tok["dense_macs_per_token"], rel_tol=1e-12)
    figs = report_figures(stats, window=3, samples=samples, estimators=cmp)
    assert "estimators" in {f.name for f in figs}
    paths = write_report(tmp_path, rep, figs)
    assert (tmp_path / "plots" / "estimators.png").read_bytes()[:4] == b"\x89PNG"
    doc = json.loads(paths["json"].read_text())
    assert doc["estimators"]["per_token"] == json.loads(json.dumps(cmp["per_token"]))
    md = paths["markdown"].read_text()
    html = paths["html"].read_text()
    for text in ("Energy by estimator", "Energy per token per layer and estimator",
                 "Constants and their sources", "arXiv 2210.13107", "lemaire", "horowitz"):
        assert text in md and text in html, text
    assert "![Energy per token by estimator](plots/estimators.png)" in md
    assert "href='#estimators'" in html


def test_report_without_estimators(toy_stats):
    rep = build_report(toy_stats[0], estimators=())
    assert rep["estimators"] is None
    assert "estimators" not in {f.name for f in report_figures(toy_stats[0])}


def test_comparison_tables_and_figure(toy_stats):
    cmp = build_report(toy_stats[0], estimators=["lemaire", "horowitz"])["estimators"]
    head, rows = per_token_rows(cmp)
    assert head[-1] == "vs lemaire ann" and rows[0][-1] == "1.0000x"
    assert len(rows) == 2 + 3  # lemaire ann, spiking; horowitz fp16, int8, spiking
    head, rows = per_layer_rows(cmp)
    assert len(head) == 1 + 5 and [r[0] for r in rows] == cmp["layers"]
    head, rows = constant_rows(cmp)
    assert all(r[4] for r in rows) and {r[0] for r in rows} == {"lemaire", "horowitz"}
    fig = comparison_figure(cmp)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lemaire", "horowitz"]
    assert len(ax.patches) == 2 * 4  # every (estimator, regime) slot, missing ones at 0


def test_report_records_a_failing_estimator(toy_stats, monkeypatch):
    from dataclasses import dataclass

    import pytest

    from spikingbrain.analysis.estimators import EstimatorConfig, register_estimator
    from spikingbrain.analysis.estimators import base as base_mod
    from spikingbrain.analysis.report_render import render_markdown

    @dataclass(frozen=True)
    class Picky(EstimatorConfig):
        name = "picky_test"

    def factory(cfg):
        def run(workloads):
            raise ValueError("layer too large for one core")
        return run

    estimator_names()  # load the built-in estimators before the registry is copied
    monkeypatch.setattr(base_mod, "_REGISTRY", dict(base_mod._REGISTRY))
    register_estimator(Picky, factory)
    rep = build_report(toy_stats[0], estimators=["horowitz", "picky_test"])
    assert rep["estimators"]["errors"] == [{"estimator": "picky_test",
                                            "error": "layer too large for one core"}]
    assert "picky_test: not estimated: layer too large for one core" in render_markdown(rep)
    from spikingbrain.analysis.estimators import workloads_from_model_stats
    from spikingbrain.analysis.estimators.compare import compare

    with pytest.raises(ValueError, match="too large"):
        compare(workloads_from_model_stats(toy_stats[0]), ["picky_test"])
