"""Plots (matplotlib, headless): spike rasters, count histograms, per-layer bars, k sweeps.

matplotlib is imported lazily, and only its object-oriented API is used (``Figure`` with an
Agg canvas), so nothing depends on a display or on pyplot's global state. Every function
returns the ``Figure`` (or the axis for :func:`raster`); :func:`save_figure` writes PNGs.

>>> import torch
>>> from spikingbrain.coding import encode
>>> train = encode(torch.tensor([[3, -2, 0, 5]]), "bitwise_bidirectional")  # [T, 1, 4]
>>> ax = raster(train[:, 0])
>>> ax.get_xlabel()
'time step'
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from spikingbrain.utils.atomic import atomic_write
from spikingbrain.utils.optional import require

__all__ = [
    "count_histograms",
    "energy_bars",
    "figure_png",
    "k_sweep_figure",
    "layer_bars",
    "raster",
    "save_figure",
    "scheme_raster_figure",
    "short_layer_names",
]

POS_COLOR = "#1f5fbf"
NEG_COLOR = "#d62728"
REGIME_COLORS = {"FP16 MAC": "#7f7f7f", "INT8 MAC": "#ff7f0e", "spiking (INT8 add)": "#2ca02c"}


def _figure(width: float, height: float) -> Any:
    require("matplotlib", purpose="plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """The figure rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically; returns the path."""
    path = Path(path)
    data = figure_png(fig, dpi)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path


def _as_tensor(x: Any, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if hasattr(x, "__array__"):
        return torch.as_tensor(x)
    raise TypeError(f"{what} must be a torch.Tensor or an array, got {type(x).__name__}")


def raster(
    spikes: Any,
    ax: Any = None,
    *,
    pos_color: str = POS_COLOR,
    neg_color: str = NEG_COLOR,
    marker: str = "|",
    s: float | None = None,
    legend: bool = True,
    **kwargs: Any,
) -> Any:
    """Time x neuron raster of a spike train ``[T, neurons]``, drawn into ``ax``.

    Positive spikes are drawn in ``pos_color``, negative (ternary / sign-magnitude) spikes
    in ``neg_color``; extra ``kwargs`` go to ``ax.scatter``. Creates a figure when ``ax`` is
    None. Returns the axis.

    Shapes: ``spikes`` is ``[T, N]`` (a 1-D train ``[T]`` is one neuron).
    """
    sp = _as_tensor(spikes, "spikes")
    if sp.dim() == 1:
        sp = sp[:, None]
    if sp.dim() != 2:
        raise ValueError(f"spikes must be [T, neurons] (2-D), got shape {tuple(sp.shape)}; "
                         f"select one token/batch element or flatten the neuron dimensions")
    if ax is None:
        ax = _figure(6, 3.5).add_subplot()
    T, N = sp.shape
    if s is None:  # one marker per (step, neuron) cell, as large as the cell allows
        bbox = ax.get_window_extent()
        dpi = ax.figure.dpi
        cell_w = bbox.width * 72 / dpi / max(T, 1)
        cell_h = bbox.height * 72 / dpi / max(N, 1)
        if marker == "|":
            s = max(1.0, min(cell_h * 0.95, 12.0)) ** 2
        else:
            s = max(0.5, min(cell_w, cell_h, 12.0) * 0.9) ** 2
    for sign, color, label in ((1, pos_color, "+1 spike"), (-1, neg_color, "−1 spike")):
        t, n = torch.nonzero(sp * sign > 0, as_tuple=True)
        if t.numel() or sign > 0:
            ax.scatter(t.numpy(), n.numpy(), c=color, marker=marker, s=s, linewidths=1.0,
                       label=label, **kwargs)
    ax.set_xlim(-0.5, T - 0.5)
    ax.set_ylim(-0.5, N - 0.5)
    ax.invert_yaxis()
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron (channel)")
    if legend and bool((sp < 0).any()):
        ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    return ax


def scheme_raster_figure(
    counts: Any,
    schemes: Sequence[str] = ("binary", "ternary", "bitwise_bidirectional",
                              "bitwise_twos_complement"),
    layer: str = "",
    T: dict[str, int] | None = None,
) -> Any:
    """Rasters of the same counts under several coding schemes (like the report's Figure 10).

    ``counts`` is ``[tokens, neurons]``; each token occupies ``T`` consecutive time steps
    (the minimal window of the sample per scheme unless given in ``T``), separated by
    dotted lines. Unsigned schemes show ``|c|`` (their inputs would be non-negative).
    """
    from spikingbrain.coding import encode, get_scheme, min_steps

    c = _as_tensor(counts, "counts").to(torch.int64)
    if c.dim() != 2:
        raise ValueError(f"counts must be [tokens, neurons], got shape {tuple(c.shape)}")
    n_tok, n_neu = c.shape
    fig = _figure(11, 1.2 + 2.3 * len(schemes))
    axes = fig.subplots(len(schemes), 1, squeeze=False)[:, 0]
    for ax, scheme in zip(axes, schemes):
        spec = get_scheme(scheme)
        cc = c if spec.signed else c.abs()
        Tw = (T or {}).get(scheme) or max(min_steps(cc, spec), 1)
        train = encode(cc, spec, Tw, overflow="saturate")  # [T, tokens, neurons]
        flat = train.permute(1, 0, 2).reshape(n_tok * Tw, n_neu)
        raster(flat, ax=ax)
        for i in range(1, n_tok):
            ax.axvline(i * Tw - 0.5, color="#999999", lw=0.6, ls=":")
        nz = int((flat != 0).sum())
        ax.set_title(f"{scheme}: T = {Tw} steps per token, {nz} spikes, "
                     f"sparsity {1 - nz / flat.numel():.1%}", fontsize=10, loc="left")
        ax.set_xlabel(f"time step ({n_tok} tokens x {Tw} steps; dotted lines separate tokens)")
    fig.suptitle(f"Spike trains of {n_tok} tokens x {n_neu} input channels"
                 + (f" of {layer}" if layer else ""), fontsize=12)
    return fig


def short_layer_names(names: Sequence[str]) -> list[str]:
    """Readable layer labels: the common dotted prefix removed, common words shortened.

    >>> short_layer_names(["encoder.layer.0.attention.self.query",
    ...                    "encoder.layer.0.intermediate.dense", "pooler.dense"])
    ['L0 attn.query', 'L0 intermediate', 'pooler']
    """
    parts = [n.split(".") for n in names]
    k = 0
    if len(parts) > 1:
        while all(len(p) > k + 1 for p in parts) and len({p[k] for p in parts}) == 1:
            k += 1
    out = []
    for p in parts:
        s = ".".join(p[k:]) or ".".join(p)
        s = s.replace("attention.self.", "attn.").replace("attention.output.", "attn.out.")
        s = s.replace("self_attn.", "attn.").replace("attention.", "attn.")
        s = re.sub(r"\.dense$", "", s)
        s = re.sub(r"^(\d+)\.", r"L\1 ", s)
        s = re.sub(r"^(?:.*\.)?(?:layers?|h|blocks?)\.(\d+)\.", r"L\1 ", s)
        out.append(s)
    return out


def count_histograms(
    model_stats: Any, layers: Sequence[str] | None = None, max_abs: int = 24, ncols: int = 6
) -> Any:
    """Per-layer histograms of the signed counts (log scale), like the report's Figure 9.

    Each panel shows the fraction of counts per value in ``[-max_abs, max_abs]`` (the end
    bars gather everything beyond) and the fraction with ``|c| <= 7``.
    """
    sel = [s for s in model_stats.layers if s.elements and (layers is None or s.name in layers)]
    if not sel:
        raise ValueError("no layer with recorded counts to plot (run the model under the monitor)")
    names = short_layer_names([s.name for s in sel])
    ncols = max(1, min(ncols, len(sel)))
    nrows = -(-len(sel) // ncols)
    fig = _figure(2.6 * ncols, 1.2 + 2.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    x = torch.arange(-max_abs, max_abs + 1)
    for i, ax in enumerate(axes.flat):
        if i >= len(sel):
            ax.set_visible(False)
            continue
        st = sel[i]
        h = torch.tensor(st.hist, dtype=torch.float64)
        H = st.hist_range
        mid = h[H - max_abs : H + max_abs + 1].clone()
        mid[0] += h[: H - max_abs].sum()
        mid[-1] += h[H + max_abs + 1 :].sum()
        frac = (mid / max(st.elements, 1)).numpy()
        colors = [NEG_COLOR if v < 0 else (POS_COLOR if v > 0 else "#555555") for v in x]
        ax.bar(x.numpy(), frac, width=1.0, color=colors, linewidth=0)
        ax.set_yscale("log")
        ax.set_ylim(1e-6, 1)
        ax.axvspan(-7.5, 7.5, color="#2ca02c", alpha=0.07, lw=0)
        ax.set_title(names[i], fontsize=8)
        ax.text(0.03, 0.95, f"|c|≤7: {st.fraction_le_7:.1%}\nsilent: {st.silent_fraction:.1%}",
                transform=ax.transAxes, fontsize=6.5, va="top")
        if i % ncols == 0:
            ax.set_ylabel("fraction of counts")
        if i // ncols == nrows - 1 or i + ncols >= len(sel):
            ax.set_xlabel("count c")
            ax.tick_params(labelbottom=True)
    fig.suptitle(f"Spike-count histograms per layer (end bars: |c| ≥ {max_abs}; shaded: "
                 f"|c| ≤ 7)", fontsize=11)
    return fig


def layer_bars(model_stats: Any, window: int | None = 3) -> Any:
    """Per-layer bars: mean spikes per channel, sparsity and silent channels."""
    sel = [s for s in model_stats.layers if s.elements]
    if not sel:
        raise ValueError("no layer with recorded counts to plot (run the model under the monitor)")
    names = short_layer_names([s.name for s in sel])
    y = torch.arange(len(sel)).numpy()
    fig = _figure(12, 1.5 + 0.22 * len(sel))
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    ax1.barh(y, [s.mean_spikes_per_channel for s in sel], color=POS_COLOR)
    ax1.set_xlabel("mean spikes per channel (per token)")
    ax1.set_title("Spikes per channel")
    ax1.set_yticks(y, names, fontsize=7)
    ax1.invert_yaxis()
    h = 0.4 if window else 0.8
    ax2.barh(y - (h / 2 if window else 0), [100 * s.sparsity for s in sel], height=h,
             color="#2ca02c", label="sparsity, own window per call")
    if window:
        ax2.barh(y + h / 2, [100 * s.sparsity_at(window) for s in sel], height=h,
                 color="#98df8a", label=f"sparsity, {window}-step window")
    ax2.plot([100 * s.silent_fraction for s in sel], y, "k|", ms=8, mew=1.5,
             label="silent channels")
    ax2.set_xlim(0, 100)
    ax2.set_xlabel("% of (channel, time step) slots without a spike / % silent channels")
    ax2.set_title("Sparsity")
    handles, labels = ax2.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Per-layer spike activity", fontsize=12)
    return fig


def energy_bars(layer_energies: Sequence[Any], table: str = "") -> Any:
    """Per-layer energy per token (nJ, log scale): FP16 MACs, INT8 MACs and spiking adds, the
    last two with the group-scale epilogue."""
    if not layer_energies:
        raise ValueError("no layer energies to plot (layers need a fan-out, e.g. SpikingLinear)")
    names = short_layer_names([e.name for e in layer_energies])
    y = torch.arange(len(layer_energies)).numpy()
    fig = _figure(9, 1.5 + 0.22 * len(layer_energies))
    ax = fig.add_subplot()
    h = 0.27
    vals = {  # (regime, legend): the INT8 and spiking totals include the group-scale epilogue
        ("FP16 MAC", "FP16 MAC"): [e.fp16_total_pj / 1e3 for e in layer_energies],
        ("INT8 MAC", "INT8 MAC + epilogue"): [e.int8_total_pj / 1e3 for e in layer_energies],
        ("spiking (INT8 add)", "spiking: INT8 adds + epilogue"):
            [e.spiking_total_pj / 1e3 for e in layer_energies],
    }
    for j, ((regime, label), v) in enumerate(vals.items()):
        ax.barh(y + (j - 1) * h, v, height=h, color=REGIME_COLORS[regime], label=label)
    ax.set_xscale("log")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("energy per token (nJ, log scale)")
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Energy per token per layer" + (f" ({table})" if table else ""))
    return fig


def k_sweep_figure(rows: Sequence[dict[str, Any]]) -> Any:
    """Trade-off of the threshold divisor k (like the report's Table 11).

    ``rows``: dicts with ``k``, ``sparsity``, ``fraction_le_7``, ``mean_spikes_per_channel``
    and optionally ``cosine`` (embedding similarity to the float model).
    """
    if not rows:
        raise ValueError("k_sweep_figure needs at least one row")
    ks = [r["k"] for r in rows]
    fig = _figure(12, 4.2)
    ax1, ax2 = fig.subplots(1, 2)
    has_cos = all(r.get("cosine") is not None for r in rows)
    if has_cos:
        xs = [100 * r["sparsity"] for r in rows]
        ys = [r["cosine"] for r in rows]
        ax1.plot(xs, ys, "-o", color=POS_COLOR)
        for x, yv, k in zip(xs, ys, ks):
            ax1.annotate(f"k={k:g}", (x, yv), textcoords="offset points", xytext=(5, 5),
                         fontsize=8)
        ax1.set_xlabel("sparsity of the spike trains (%)")
        ax1.set_ylabel("cosine similarity to float embeddings")
        ax1.set_title("Fidelity vs sparsity")
    else:
        ax1.plot(ks, [100 * r["sparsity"] for r in rows], "-o", color=POS_COLOR)
        ax1.set_xlabel("threshold divisor k")
        ax1.set_ylabel("sparsity (%)")
        ax1.set_title("Sparsity vs k")
    ax1.grid(alpha=0.3)
    ax2.plot(ks, [100 * r["fraction_le_7"] for r in rows], "-o", color="#2ca02c",
             label="|c| ≤ 7 (%)")
    ax2.set_xlabel("threshold divisor k")
    ax2.set_ylabel("counts with |c| ≤ 7 (%)", color="#2ca02c")
    ax3 = ax2.twinx()
    ax3.plot(ks, [r["mean_spikes_per_channel"] for r in rows], "-s", color=NEG_COLOR,
             label="mean spikes per channel")
    ax3.set_ylabel("mean spikes per channel", color=NEG_COLOR)
    ax2.grid(alpha=0.3)
    ax2.set_title("Count range and spikes vs k")
    fig.suptitle("k sweep: Vth = mean(|x|) / k", fontsize=12)
    return fig
