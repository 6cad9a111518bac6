"""End-to-end analysis of a Hugging Face model folder on real text: analyze, k sweep, demo.

- :func:`load_model_dir`: a float HF folder (converted here with a :class:`SpikeConfig`) or a
  folder written by :func:`spikingbrain.converter.save_converted`.
- :func:`run_text`: tokenised batches through the model under a monitor (padding excluded),
  returning mean-pooled sentence embeddings.
- :func:`analyze`, :func:`sweep_k`: statistics, energy, plots and reports.
- :func:`demo_report`: the embedded all-MiniLM-L6-v2 on 64 standard-library sentences.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikingbrain.analysis import distributed
from spikingbrain.analysis.energy import HOROWITZ_45NM, EnergyTable, load_table, model_energy
from spikingbrain.analysis.monitor import SpikeMonitor
from spikingbrain.analysis.report import build_report, report_figures, write_report
from spikingbrain.analysis.stats import ModelStats

__all__ = [
    "analyze",
    "analyze_model",
    "demo_report",
    "load_model_dir",
    "read_text_file",
    "run_text",
    "sweep_k",
    "sweep_rows_from",
]

Progress = Callable[[int], None]


def read_text_file(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a UTF-8 text file, one sequence per line (a missing, empty, binary
    or non-UTF-8 file raises :class:`~spikingbrain.utils.cli_checks.UsageError`)."""
    from spikingbrain.utils.cli_checks import read_text_lines

    return read_text_lines(path, "text file")


def load_model_dir(model_dir: str | os.PathLike, config: Any = None,
                   tokenizer_dir: str | os.PathLike | None = None, placement: Any = None
                   ) -> tuple[nn.Module, Any, nn.Module | None, dict[str, Any]]:
    """Load ``(spiking model, tokenizer, float model or None, description)`` from MODEL_DIR
    with :func:`spikingbrain.converter.folder.load_model_folder`: a float folder is converted
    with ``config`` (the float model is kept as the fidelity reference); a converted folder is
    loaded as saved (no float reference); the tokenizer comes from ``tokenizer_dir`` or the
    model folder and is required; ``placement`` (a
    :class:`~spikingbrain.utils.placement.Placement`, default the CPU) says where the models go.
    """
    from spikingbrain.converter.folder import load_model_folder

    loaded = load_model_folder(model_dir, config, keep_float=True, tokenizer_dir=tokenizer_dir,
                               placement=placement)
    return loaded.model, loaded.tokenizer, loaded.float_model, loaded.info


@torch.no_grad()
def run_text(model: nn.Module, tokenizer: Any, sentences: Sequence[str],
             mon: SpikeMonitor | None = None, batch_size: int = 32, max_length: int = 128,
             on_batch: Progress | None = None) -> tuple[torch.Tensor, int]:
    """Run ``sentences`` through ``model`` in batches; returns (mean-pooled embeddings
    ``[n, hidden]``, number of real tokens). Padding tokens are masked out of ``mon``; a model
    with ``marks_token_rows = True`` (the SpikingBrain models) marks its padding and
    input-independent sink rows itself (:func:`spikingbrain.neurons.emitter.token_rows`), so
    MoE experts' gathered rows are counted right too."""
    from spikingbrain.data import mean_pool
    from spikingbrain.utils.placement import input_device

    if batch_size < 1 or max_length < 1:
        raise ValueError("batch_size and max_length must be >= 1")
    marks = bool(getattr(model, "marks_token_rows", False))
    device = input_device(model)  # the embedding's device (under a device map, the first GPU)
    outs, n_tokens = [], 0
    for i in range(0, len(sentences), batch_size):
        batch = tokenizer(list(sentences[i : i + batch_size]), padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt").to(device)
        mask = batch["attention_mask"]
        n_tokens += int(mask.sum())
        if mon is not None and not marks:
            with mon.token_mask(mask.bool()):
                out = model(**batch)
        else:
            out = model(**batch)
        hidden = getattr(out, "last_hidden_state", None)
        if hidden is None:
            hidden = out[0]
        outs.append(mean_pool(hidden.float(), mask))
        if on_batch is not None:
            on_batch(len(batch["input_ids"]))
    return torch.cat(outs), n_tokens


def _cosine(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)
    return {"cosine": float(cos.mean()), "cosine_min": float(cos.min()),
            "relative_l2": float((a - b).norm() / b.norm().clamp_min(1e-12))}


def analyze_model(model: nn.Module, tokenizer: Any, sentences: Sequence[str], *,
                  float_model: nn.Module | None = None, batch_size: int = 32,
                  max_length: int = 128, raster_layer: str | None = None,
                  on_batch: Progress | None = None) -> tuple[ModelStats, dict, dict, dict]:
    """Monitor ``model`` on ``sentences``; returns (stats, samples, fidelity, data info).

    Inside a ``torch.distributed`` process group of several ranks, each rank runs its share
    (:func:`spikingbrain.analysis.distributed.analyze_model`) and rank 0 gets the
    single-process result."""
    if distributed.rank_world()[1] > 1:
        return distributed.analyze_model(model, tokenizer, sentences, float_model=float_model,
                                         batch_size=batch_size, max_length=max_length,
                                         raster_layer=raster_layer, on_batch=on_batch)
    mon0 = SpikeMonitor(model)
    if not mon0.layer_names:
        raise ValueError("the model has no spiking layer: convert it first "
                         "(spikingbrain.converter.convert)")
    layer = raster_layer or mon0.layer_names[0]
    mon = SpikeMonitor(model, sample={layer: (12, 48)})
    mon.attach()
    try:
        emb, n_tok = run_text(model, tokenizer, sentences, mon, batch_size, max_length, on_batch)
    finally:
        mon.detach()
    fidelity = {}
    if float_model is not None:
        ref, _ = run_text(float_model, tokenizer, sentences, None, batch_size, max_length)
        fidelity = _cosine(emb, ref)
    data = {"sentences": len(sentences), "tokens": n_tok, "max_length": max_length}
    return mon.stats(), mon.samples(), fidelity, data


def layer_roles(model: nn.Module) -> dict[str, str]:
    """``{layer name: class of the block that holds it}`` (e.g. ``GatedLinearAttention``,
    ``SlidingWindowAttention``, ``SwiGLU``, ``BertSelfAttention``): what each projection is.

    >>> net = nn.Sequential(nn.Sequential(nn.Linear(2, 2)))
    >>> layer_roles(net)
    {'0.0': 'Sequential'}
    """
    roles = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) or hasattr(mod, "qdata"):
            parent = name.rpartition(".")[0]
            owner = model.get_submodule(parent) if parent else model
            if isinstance(owner, (nn.Sequential, nn.ModuleList)) and parent:
                grand = parent.rpartition(".")[0]
                holder = model.get_submodule(grand) if grand else model
                if not isinstance(holder, (nn.Sequential, nn.ModuleList)):
                    owner = holder
            roles[name] = type(owner).__name__
    return roles


def analyze(model_dir: str | os.PathLike | None, out_dir: str | os.PathLike,
            sentences: Sequence[str], *, config: Any = None, window: int | None = 3,
            table: str | EnergyTable = HOROWITZ_45NM, memory: str | None = None,
            batch_size: int = 32, max_length: int = 128, raster_layer: str | None = None,
            model: tuple | None = None, text_source: str = "", sweep: list | None = None,
            on_batch: Progress | None = None, title: str | None = None,
            extra_json: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Analyse a model folder (or ``model=(spiking, tokenizer, float|None, info)``) on
    ``sentences`` and write the report into ``out_dir`` (all or nothing, with the
    ``extra_json`` files such as ``sweep.json``); returns the report dict. Under
    ``torch.distributed`` only rank 0 writes (after every rank succeeded); other ranks
    return None."""
    spiking, tok, float_model, info = model if model is not None else load_model_dir(
        model_dir, config)
    stats, samples, fidelity, data = analyze_model(
        spiking, tok, sentences, float_model=float_model, batch_size=batch_size,
        max_length=max_length, raster_layer=raster_layer, on_batch=on_batch)
    if not distributed.is_lead():  # a rank other than 0 of a distributed run: rank 0 writes
        return None
    data["source"] = text_source
    rep = build_report(stats, title=title or f"Spike analysis of {Path(info['path']).name}",
                       model=info, data=data, window=window, table=table, memory=memory,
                       fidelity=fidelity or None, sweep=sweep)
    roles = layer_roles(spiking)
    for layer in rep["layers"]:
        layer["role"] = roles.get(layer["name"], "")
    figs = report_figures(stats, window=window, table=table, memory=memory, samples=samples,
                          sweep=sweep, estimators=rep.get("estimators"))
    write_report(out_dir, rep, figs, extra_json)
    return rep


def sweep_rows_from(k: float, stats: ModelStats, fidelity: dict[str, float] | None,
                    table: str | EnergyTable = HOROWITZ_45NM, window: int | None = 3
                    ) -> dict[str, Any]:
    """One k-sweep row (fractions, spikes, sparsity, energy, cosine) from statistics."""
    total = stats.total
    _, e = model_energy(stats, load_table(table))
    return {
        "k": k,
        "tokens": total.tokens,
        "fraction_le_7": total.fraction_le_7,
        "fraction_gt_16": total.fraction_gt_16,
        "mean_spikes_per_channel": total.mean_spikes_per_channel,
        "sparsity": total.sparsity,
        "sparsity_at_window": total.sparsity_at(window) if window else None,
        "silent_fraction": total.silent_fraction,
        "energy_per_token_pj": e.spiking_total_pj if e else 0.0,
        "int8_energy_per_token_pj": e.int8_total_pj if e else 0.0,
        "fp16_energy_per_token_pj": e.fp16_pj if e else 0.0,
        "cosine": (fidelity or {}).get("cosine"),
    }


def sweep_k(float_model: nn.Module, tokenizer: Any, sentences: Sequence[str],
            ks: Sequence[float], config: Any = None, *, batch_size: int = 32,
            max_length: int = 128, table: str | EnergyTable = HOROWITZ_45NM,
            window: int | None = 3, on_batch: Progress | None = None,
            on_k: Callable[[float], None] | None = None) -> list[dict[str, Any]]:
    """Convert a copy of ``float_model`` for each ``k`` and measure it on ``sentences``.

    Returns one row per k (see :func:`sweep_rows_from`); the float embeddings are computed
    once.
    """
    from spikingbrain.converter import SpikeConfig, convert

    if not ks:
        raise ValueError("give at least one k")
    base = SpikeConfig() if config is None else config
    ref, _ = run_text(float_model, tokenizer, sentences, None, batch_size, max_length)
    rows = []
    for k in ks:
        model = convert(copy.deepcopy(float_model), base.replace(k=float(k))).eval()
        mon = SpikeMonitor(model).attach()
        try:
            emb, _ = run_text(model, tokenizer, sentences, mon, batch_size, max_length, on_batch)
        finally:
            mon.detach()
        rows.append(sweep_rows_from(float(k), mon.stats(), _cosine(emb, ref), table, window))
        if on_k is not None:
            on_k(float(k))
    return rows


def demo_report(out_dir: str | os.PathLike = "report", n_sentences: int = 64,
                ks: Sequence[float] = (2, 2.5, 3, 3.5, 4), config: Any = None,
                batch_size: int = 32, model: Any = None, tokenizer: Any = None) -> dict[str, Any]:
    """Convert the embedded all-MiniLM-L6-v2, run ``n_sentences`` standard-library sentences
    through the monitor, sweep ``ks`` and write ``out_dir`` (index.html, report.json,
    report.md, plots/). Returns the report dict. ``model``/``tokenizer``: an already loaded
    float MiniLM (not modified)."""
    from spikingbrain.converter import SpikeConfig, convert
    from spikingbrain.data import load_minilm, minilm_dir, stdlib_sentences

    float_model, tok = (model, tokenizer) if model is not None else load_minilm()
    sentences = stdlib_sentences(n_sentences)
    config = SpikeConfig() if config is None else config
    rows = sweep_k(float_model, tok, sentences, ks, config, batch_size=batch_size) if ks else None
    spiking = convert(copy.deepcopy(float_model), config).eval()
    info = {"name": "sentence-transformers/all-MiniLM-L6-v2", "path": str(minilm_dir()),
            "class": type(float_model).__name__, "config": config.to_dict()}
    return analyze(None, out_dir, sentences, model=(spiking, tok, float_model, info),
                   text_source=f"{n_sentences} sentences from Python standard-library docstrings",
                   sweep=rows, batch_size=batch_size,
                   title="Spike analysis of all-MiniLM-L6-v2 (W8ASpike)")
