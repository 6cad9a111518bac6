"""CLI commands of `spikingbrain.converter` (registered on the `spikingbrain` app)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


class _Granularity(str, Enum):
    group = "group"
    channel = "channel"


class _Mode(str, Enum):
    count = "count"
    spike = "spike"
    fake = "fake"


class _Task(str, Enum):
    auto = "auto"
    causal_lm = "causal-lm"
    base = "base"


def _load_hf(model_dir: Path, task: str):
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from spikingbrain.utils.optional import require

    transformers = require("transformers", extra="hf", purpose="converting Hugging Face models")
    config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    if task == "auto":
        archs = getattr(config, "architectures", None) or []
        causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
        task = "causal-lm" if causal else "base"
    auto = transformers.AutoModelForCausalLM if task == "causal-lm" else transformers.AutoModel
    model = auto.from_pretrained(model_dir, local_files_only=True)
    tokenizer = None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except Exception:  # a folder without tokenizer files converts all the same
        tokenizer = None
    return model.eval(), tokenizer


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def convert_command(
    model_dir: Path = typer.Argument(..., help="Local Hugging Face model folder (config.json + "
                                     "weights); nothing is downloaded."),
    out_dir: Path = typer.Argument(..., help="Output folder for the converted model "
                                   "(model.safetensors, spikingbrain_converted.json, config.json, "
                                   "tokenizer files)."),
    k: float = typer.Option(3.0, help="Threshold divisor: Vth = mean(|x|) / k."),
    scheme: str = typer.Option("bitwise_bidirectional", help="Spike coding scheme: binary, "
                               "ternary, bitwise, bitwise_bidirectional, bitwise_twos_complement."),
    T: int = typer.Option(0, "--T", help="Fixed time window (0 = minimal window per call); "
                          "counts beyond it saturate."),
    max_count: int = typer.Option(0, help="Clamp |count| to this value (0 = no clamp)."),
    granularity: _Granularity = typer.Option(_Granularity.group, help="INT8 weight scales per "
                                             "group of input columns, or per output channel."),
    group_size: int = typer.Option(128, help="Input columns per weight scale (granularity group); "
                                   "a shorter last group handles the remainder."),
    mode: _Mode = typer.Option(_Mode.count, help="count: exact int32 accumulation; spike: "
                               "event-driven step by step (identical output); fake: float "
                               "simulation."),
    task: _Task = typer.Option(_Task.auto, help="Model head to load: causal-lm "
                               "(AutoModelForCausalLM), base (AutoModel), or auto from "
                               "config.architectures."),
    calibrate_text: Path = typer.Option(None, help="Text file, one calibration sample per line: "
                                        "pick weight clipping by output error (default absmax)."),
    calibrate_n: int = typer.Option(128, help="Calibration samples to use."),
    clip_weights: bool = typer.Option(False, help="Clip imported W8ASpike codes outside "
                                      "[-128, 127] to int8 (default: keep them exact in int16)."),
) -> None:
    """Convert a local Hugging Face model to W8ASpike (INT8 weights, spiking inputs) and save it.

    Every linear projection except the output head becomes a SpikingLinear. The output folder
    loads back with spikingbrain.converter.load_converted(OUT_DIR).
    """
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from spikingbrain.converter import (
        SpikeConfig,
        calibrate,
        convert,
        memory_summary,
        save_converted,
    )
    from spikingbrain.converter.convert import is_convertible, module_nbytes, output_head_names

    console = Console()
    if not (model_dir / "config.json").is_file():
        raise typer.BadParameter(f"{model_dir} is not a Hugging Face model folder (no config.json)",
                                 param_hint="MODEL_DIR")
    try:
        cfg = SpikeConfig(k=k, scheme=scheme, T=T or None, max_count=max_count or None,
                          granularity=granularity.value, group_size=group_size, mode=mode.value,
                          clip_weights=clip_weights)
    except (ValueError, TypeError) as err:
        raise typer.BadParameter(str(err)) from None
    with console.status(f"loading {model_dir}"):
        model, tokenizer = _load_hf(model_dir, task.value)
    before = module_nbytes(model)
    heads = output_head_names(model)
    n_targets = sum(1 for n, m in model.named_modules() if is_convertible(m) and n not in heads)
    if calibrate_text is not None:
        if tokenizer is None:
            raise typer.BadParameter("calibration needs the model's tokenizer files in MODEL_DIR")
        lines = [ln.strip() for ln in calibrate_text.read_text(encoding="utf-8").splitlines()
                 if ln.strip()][:calibrate_n]
        if not lines:
            raise typer.BadParameter(f"{calibrate_text} has no non-empty line")
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        batches = (tokenizer(lines[i:i + 8], return_tensors="pt", padding=True, truncation=True,
                             max_length=256) for i in range(0, len(lines), 8))
        model = calibrate(model, batches, n=len(lines), config=cfg)
    else:
        with Progress(TextColumn("converting"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), console=console, transient=True) as bar:
            t = bar.add_task("", total=n_targets)
            convert(model, cfg, progress=lambda name: bar.update(t, advance=1, description=name))
    mem = memory_summary(model)
    with console.status(f"saving {out_dir}"):
        save_converted(model, out_dir)
        if tokenizer is not None:
            tokenizer.save_pretrained(out_dir)
    # saturation on a short probe (the calibration text or a fixed sentence)
    saturated = "-"
    if cfg.max_count is not None or cfg.T is not None:
        from spikingbrain.converter.convert import spiking_layers

        total = [0, 0]

        def obs(_m, rec):
            total[0] += int(rec.n_saturated)
            total[1] += rec.counts.numel()

        hs = [m.add_spike_observer(obs) for m in spiking_layers(model).values()]
        enc = None
        if tokenizer is not None:
            try:
                enc = tokenizer(["The quick brown fox jumps over the lazy dog."],
                                return_tensors="pt")
            except Exception:  # a tokenizer that cannot encode: no probe
                enc = None
        if enc is not None and enc["input_ids"].numel():
            with torch.no_grad():
                model(**enc)
            saturated = f"{total[0]} of {total[1]} counts on a probe sentence"
        else:
            saturated = "not measured (no usable tokenizer in MODEL_DIR)"
        for h in hs:
            h.remove()
    table = Table(title=f"W8ASpike conversion: {model_dir.name} -> {out_dir}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("model class", type(model).__name__)
    table.add_row("layers converted", f"{mem.n_layers} (output head kept: {', '.join(heads) or '-'})")
    table.add_row("config", f"k={cfg.k:g} {cfg.scheme} T={cfg.T} max_count={cfg.max_count} "
                  f"{cfg.granularity}{'' if cfg.granularity == 'channel' else f'/{cfg.group_size}'}"
                  f" mode={cfg.mode}")
    table.add_row("weight clipping", "calibrated" if calibrate_text else "absmax")
    table.add_row("converted layers, fp16", _fmt_bytes(mem.fp16_bytes))
    table.add_row("converted layers, INT8 + scales",
                  f"{_fmt_bytes(mem.converted_bytes)} ({mem.ratio:.3f}x fp16)")
    table.add_row("whole model before / after",
                  f"{_fmt_bytes(before)} / {_fmt_bytes(mem.model_bytes)}")
    table.add_row("out-of-range weight codes",
                  f"{mem.n_out_of_range} ({'clipped' if clip_weights else 'kept in int16'}, "
                  f"{mem.n_int16_layers} int16 layers)")
    table.add_row("saturated counts", saturated if (cfg.T or cfg.max_count)
                  else "none possible (no T / max_count)")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to ``app``."""
    app.command("convert")(convert_command)
