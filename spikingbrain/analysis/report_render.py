"""Rendering of a report dict: Markdown and self-contained HTML (plots embedded as base64 PNG),
and the tables both share. :mod:`spikingbrain.analysis.report` builds the dict and writes the
files.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Figure", "render_html", "render_markdown", "sweep_table_rows"]


@dataclass
class Figure:
    """One plot of a report: file stem, title, caption and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes = field(repr=False, default=b"")


def _pct(v: Any, digits: int = 1) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}f} %"


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}f}"


def _eng(v: float) -> str:
    """Engineering format for large integers (operations)."""
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.2f} {unit}"
    return f"{v:g}"


def _energy_unit(pj: float) -> str:
    if pj >= 1e6:
        return f"{pj / 1e6:.3f} µJ"
    if pj >= 1e3:
        return f"{pj / 1e3:.3f} nJ"
    return f"{pj:.3f} pJ"


def sweep_table_rows(sweep: Sequence[dict[str, Any]], window: int | None = None
                     ) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of a k-sweep table (``window``: the fixed window W of the
    'sparsity at W steps' column)."""
    head = ["k", "|c| ≤ 7", "|c| > 16", "mean spikes / channel", "sparsity (own window)",
            f"sparsity ({window}-step)" if window else "sparsity (fixed window)",
            "silent channels", "spiking energy / token",
            "FP16 energy / token", "cosine vs float"]
    rows = []
    for r in sweep:
        rows.append([
            f"{r['k']:g}", _pct(r["fraction_le_7"]), _pct(r.get("fraction_gt_16"), 2),
            _num(r["mean_spikes_per_channel"]), _pct(r["sparsity"]),
            _pct(r.get("sparsity_at_window")), _pct(r["silent_fraction"]),
            _energy_unit(r["energy_per_token_pj"]), _energy_unit(r["fp16_energy_per_token_pj"]),
            _num(r.get("cosine"), 4),
        ])
    return head, rows


def _summary_rows(rep: dict[str, Any]) -> list[tuple[str, str]]:
    s = rep["summary"]
    w = rep["settings"].get("window")
    rows = [
        ("spiking layers", str(s["layers"])),
        ("tokens analysed", _num(s["tokens"])),
        ("counts (token x channel)", _num(s["elements"])),
        ("mean spikes per channel", _num(s["mean_spikes_per_channel"])),
        ("MAC-weighted mean spikes", _num(s["mac_weighted_mean_spikes"])),
        ("counts with |c| ≤ 7", _pct(s["fraction_le_7"])),
        ("counts with |c| > 16", _pct(s["fraction_gt_16"], 2)),
        ("silent channels (c = 0)", _pct(s["silent_fraction"])),
        ("sparsity (each call's own window)", _pct(s["sparsity"])),
    ]
    if w:
        rows.append((f"sparsity ({w}-step window, saturating)", _pct(s["sparsity_at_window"])))
    rows += [
        ("firing rate", _pct(s["firing_rate"], 2)),
        ("window T: mean / max", f"{s['mean_window']:.2f} / {s['max_window']}"),
        ("saturated counts", _num(s["saturated"])),
        ("footprint", f"{s['footprint_bytes'] / 2**20:.2f} MiB ({_num(s['n_parameters'])} "
                      f"parameters and buffer values)"),
    ]
    return rows


def _energy_rows(rep: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    e = rep["energy"]
    pm = e["per_mac"]
    pt = e["per_token"]
    head = ["regime", "energy per MAC", "energy per token", "reduction by spiking"]
    rows = [
        ["FP16 MAC", f"{pm['fp16_pj']:.3f} pJ",
         _energy_unit(pt["fp16_total_pj"]) if pt else "n/a", _pct(pm["reduction_vs_fp16"])],
        ["INT8 MAC + epilogue", f"{pm['int8_total_pj']:.4f} pJ",
         _energy_unit(pt["int8_total_pj"]) if pt else "n/a", _pct(pm["reduction_vs_int8"])],
        ["spiking adds (mean spikes x INT8 add)", f"{pm['spiking_pj']:.4f} pJ",
         _energy_unit(pt["spiking_pj"]) if pt else "n/a", "—"],
        ["epilogue (group-scale float multiply-adds)", f"{pm['epilogue_pj']:.4f} pJ",
         _energy_unit(pt["epilogue_pj"]) if pt else "n/a", "—"],
        ["spiking total", f"{pm['spiking_total_pj']:.4f} pJ",
         _energy_unit(pt["spiking_total_pj"]) if pt else "n/a", "—"],
    ]
    return head, rows


def _layer_rows(rep: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    from spikingbrain.analysis.plots import short_layer_names

    w = rep["settings"].get("window")
    names = short_layer_names([x["name"] for x in rep["layers"]])
    energy = {x["name"]: x for x in rep["energy"]["layers"]}
    head = ["layer", "block", "in x out", "scheme", "mean spikes", "|c| ≤ 7", "silent", "sparsity",
            f"sparsity ({w}-step)" if w else "", "mean / max T", "spiking energy / token",
            "vs FP16"]
    rows = []
    for short, x in zip(names, rep["layers"]):
        m = x["metrics"]
        e = energy.get(x["name"])
        rows.append([
            short, x.get("role", ""), f"{x['channels']} x {x['fan_out'] if x['fan_out'] else '-'}", x["scheme"],
            _num(m["mean_spikes_per_channel"]), _pct(m["fraction_le_7"]),
            _pct(m["silent_fraction"]), _pct(m["sparsity"]),
            _pct(m.get("sparsity_at_window")) if w else "",
            f"{m['mean_window']:.1f} / {m['max_window']}",
            _energy_unit(e["spiking_total_pj"]) if e else "n/a",
            _pct(e["reduction_vs_fp16"]) if e else "n/a",
        ])
    if not w:
        head = [h for h in head if h]
        rows = [[c for i, c in enumerate(r) if i != 8] for r in rows]
    return head, rows


def _estimator_tables(rep: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, head, rows) of the estimator comparison: per token, per layer, constants."""
    from spikingbrain.analysis.estimators.compare import (
        constant_rows,
        per_layer_rows,
        per_token_rows,
    )
    from spikingbrain.analysis.plots import short_layer_names

    cmp = rep.get("estimators")
    if not cmp:
        return []
    return [("Energy per token by estimator", *per_token_rows(cmp)),
            ("Energy per token per layer and estimator",
             *per_layer_rows(cmp, short_layer_names(cmp["layers"]))),
            ("Constants and their sources", *constant_rows(cmp))]


def _estimator_notes(rep: dict[str, Any]) -> list[str]:
    cmp = rep.get("estimators") or {}
    return [f"{r['estimator']}: {n}" for r in cmp.get("results", []) for n in r["notes"]] + [
        f"{e['estimator']}: not estimated: {e['error']}" for e in cmp.get("errors", [])]


def _neurobench_rows(rep: dict[str, Any]) -> list[tuple[str, str]]:
    nb = rep["neurobench"]
    so = nb["synaptic_operations"]
    return [
        ("activation sparsity", _pct(nb["activation_sparsity"], 2)),
        ("dense synaptic operations (MACs)", _eng(so["dense_macs"])),
        ("effective MACs", _eng(so["effective_macs"])),
        ("effective ACs", _eng(so["effective_acs"])),
        ("event-driven ACs (spikes x fan-out)", _eng(so["event_acs"])),
        ("footprint", f"{nb['footprint_bytes']:,} bytes"),
    ]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _describe(d: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        out.append((k, str(v)))
    return out


def render_markdown(rep: dict[str, Any], figures: Sequence[Figure] = ()) -> str:
    """The report as Markdown (images referenced as ``plots/<name>.png``)."""
    md = [f"# {rep['title']}", "",
          f"Generated {rep['created']} by spikingbrain {rep['spikingbrain_version']} "
          f"(report schema {rep['schema']} v{rep['schema_version']}).", ""]
    if rep["model"]:
        md += ["## Model", "", _md_table(["", ""], [list(r) for r in _describe(rep["model"])]), ""]
    if rep["data"]:
        md += ["## Data", "", _md_table(["", ""], [list(r) for r in _describe(rep["data"])]), ""]
    md += ["## Summary", "", _md_table(["metric", "value"], [list(r) for r in _summary_rows(rep)]),
           ""]
    if rep.get("fidelity"):
        md += ["## Fidelity", "", _md_table(["metric", "value"],
                                            [[k, _num(v, 4) if isinstance(v, float) else str(v)]
                                             for k, v in rep["fidelity"].items()]), ""]
    e = rep["energy"]
    md += ["## Energy", "", f"Table: **{e['table']['name']}** — {e['table']['source']}.", "",
           _md_table(*_energy_rows(rep)), ""]
    if rep.get("estimators"):
        md += ["## Energy by estimator", "", "Workloads: "
               + ", ".join(rep["estimators"]["workload_sources"]) + ".", ""]
        for title, head, rows in _estimator_tables(rep):
            md += [f"### {title}", "", _md_table(head, rows), ""]
        md += [f"- {n}" for n in _estimator_notes(rep)] + [""]
    if rep.get("sweep"):
        md += ["## k sweep", "", _md_table(*sweep_table_rows(rep["sweep"], rep["settings"].get("window"))), ""]
    md += ["## NeuroBench metrics", "",
           _md_table(["metric", "value"], [list(r) for r in _neurobench_rows(rep)]), ""]
    md += ["## Layers", "", _md_table(*_layer_rows(rep)), ""]
    if figures:
        md += ["## Plots", ""]
        for f in figures:
            md += [f"### {f.title}", "", f"![{f.title}](plots/{f.name}.png)", "", f.caption, ""]
    md += ["## Definitions", ""] + [f"- **{k}**: {v}" for k, v in rep["definitions"].items()]
    md += ["", "## Assumptions of the energy estimate", ""] + [f"- {a}" for a in e["assumptions"]]
    md += ["", "## What the estimate leaves out", ""] + [f"- {a}" for a in e["omissions"]]
    md += ["", "## Settings", "", _md_table(["", ""], [list(r) for r in _describe(rep["settings"])])]
    return "\n".join(md) + "\n"


_CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;
background:#f6f7f9;color:#1d2330;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:19px;margin:34px 0 10px;
border-bottom:2px solid #dde2ea;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#5b6575;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin:18px 0}
.card{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:12px 14px}
.card .v{font-size:22px;font-weight:600;color:#1f5fbf}.card .l{font-size:12px;color:#5b6575}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:6px 0 10px}
th,td{border:1px solid #dde2ea;padding:4px 9px;text-align:right;white-space:nowrap}
th{background:#eef1f6;text-align:center}td:first-child,th:first-child{text-align:left}
table.kv td:last-child{text-align:left;white-space:normal}
.scroll{overflow-x:auto}
figure{background:#fff;border:1px solid #dde2ea;border-radius:8px;margin:14px 0;padding:10px}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:13px;color:#444;margin-top:6px}
dl{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:10px 16px;font-size:13px}
dt{font-weight:600;margin-top:6px}dd{margin:0 0 0 16px}
ul{font-size:14px}.note{font-size:13px;color:#5b6575}
nav a{margin-right:14px;font-size:13px;color:#1f5fbf;text-decoration:none}
"""


def _html_table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    c = f' class="{cls}"' if cls else ""
    return f'<div class="scroll"><table{c}><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table></div>'


def _kv_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def render_html(rep: dict[str, Any], figures: Sequence[Figure] = ()) -> str:
    """The report as one self-contained HTML page (inline CSS, plots as base64 PNG)."""
    esc = html.escape
    s = rep["summary"]
    e = rep["energy"]
    pm = e["per_mac"]
    w = rep["settings"].get("window")
    cards = [
        (_num(s["mean_spikes_per_channel"]), "mean spikes per channel"),
        (_pct(s["sparsity_at_window"] if w else s["sparsity"]),
         f"sparsity ({w}-step window)" if w else "sparsity"),
        (_pct(s["silent_fraction"]), "silent channels"),
        (_pct(s["fraction_le_7"]), "counts with |c| ≤ 7"),
        (f"{pm['spiking_pj']:.4f} pJ", "spiking energy per MAC"),
        (_pct(pm["reduction_vs_fp16"]), "energy reduction vs FP16 MAC"),
        (_pct(pm["reduction_vs_int8"]), "energy reduction vs INT8 MAC"),
    ]
    if rep.get("fidelity") and rep["fidelity"].get("cosine") is not None:
        cards.append((_num(rep["fidelity"]["cosine"], 4), "cosine similarity vs float"))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(rep['title'])}</title><meta name='viewport' "
        "content='width=device-width, initial-scale=1'>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{esc(rep['title'])}</h1>",
        f"<div class='meta'>Generated {esc(rep['created'])} by spikingbrain "
        f"{esc(rep['spikingbrain_version'])} · report schema {esc(rep['schema'])} "
        f"v{rep['schema_version']} · energy table {esc(e['table']['name'])}</div>",
        "<nav style='margin-top:8px'>" + "".join(
            f"<a href='#{a}'>{t}</a>" for a, t in (
                ("summary", "Summary"), ("energy", "Energy"), ("estimators", "Estimators"),
                ("sweep", "k sweep"),
                ("plots", "Plots"), ("layers", "Layers"), ("definitions", "Definitions"),
                ("assumptions", "Assumptions")) if a not in ("sweep", "estimators") or rep.get(a))
        + "</nav>",
        "<div class='cards'>" + "".join(
            f"<div class='card'><div class='v'>{esc(v)}</div><div class='l'>{esc(lbl)}</div>"
            "</div>" for v, lbl in cards) + "</div>",
    ]
    if rep["model"] or rep["data"]:
        parts.append("<h2>Model and data</h2>")
        parts.append(_kv_table(_describe(rep["model"]) + _describe(rep["data"])))
    parts += ["<h2 id='summary'>Summary</h2>", _kv_table(_summary_rows(rep))]
    if rep.get("fidelity"):
        parts += ["<h3>Fidelity against the float model</h3>", _kv_table(
            [(k, _num(v, 4) if isinstance(v, float) else str(v))
             for k, v in rep["fidelity"].items()])]
    parts += [
        "<h2 id='energy'>Energy</h2>",
        f"<p class='note'>Table <b>{esc(e['table']['name'])}</b>: {esc(e['table']['source'])}. "
        f"Per-MAC figures use the MAC-weighted mean spikes per channel "
        f"({pm['mean_spikes']:.3f}); per-token figures sum all converted layers.</p>",
        _html_table(*_energy_rows(rep)),
    ]
    if rep.get("estimators"):
        parts.append("<h2 id='estimators'>Energy by estimator</h2>")
        for title, head, rows in _estimator_tables(rep):
            parts += [f"<h3>{esc(title)}</h3>", _html_table(head, rows)]
        parts.append("<ul class='note'>" + "".join(
            f"<li>{esc(n)}</li>" for n in _estimator_notes(rep)) + "</ul>")
    if rep.get("sweep"):
        parts += ["<h2 id='sweep'>k sweep</h2>", _html_table(*sweep_table_rows(rep["sweep"], rep["settings"].get("window")))]
    parts += ["<h3>NeuroBench metrics</h3>", _kv_table(_neurobench_rows(rep))]
    if figures:
        parts.append("<h2 id='plots'>Plots</h2>")
        for f in figures:
            b64 = base64.b64encode(f.png).decode("ascii")
            parts.append(f"<figure><h3>{esc(f.title)}</h3><img alt='{esc(f.title)}' "
                         f"src='data:image/png;base64,{b64}'><figcaption>{esc(f.caption)}"
                         "</figcaption></figure>")
    parts += ["<h2 id='layers'>Layers</h2>", _html_table(*_layer_rows(rep))]
    parts += ["<h2 id='definitions'>Definitions</h2>", "<dl>" + "".join(
        f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rep["definitions"].items()) + "</dl>"]
    parts += ["<h2 id='assumptions'>Assumptions of the energy estimate</h2><ul>"
              + "".join(f"<li>{esc(a)}</li>" for a in e["assumptions"]) + "</ul>",
              "<h3>What the estimate leaves out</h3><ul>"
              + "".join(f"<li>{esc(a)}</li>" for a in e["omissions"]) + "</ul>",
              "<h3>Settings</h3>", _kv_table(_describe(rep["settings"])),
              "</main></body></html>"]
    return "\n".join(parts)
