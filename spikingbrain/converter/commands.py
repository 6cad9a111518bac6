"""CLI commands of `spikingbrain.converter` (registered on the `spikingbrain` app)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from spikingbrain.utils.cli_checks import (
    UsageError,
    check_finite,
    check_out_dir,
    read_text_lines,
    usage_errors,
)
from spikingbrain.utils.placement import (
    DEVICE_MAP_OPTION,
    DEVICE_OPTION,
    DTYPE_OPTION,
    Placement,
)


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


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def convert_command(
    model_dir: Path = typer.Argument(..., help="Local Hugging Face model folder (config.json + "
                                     "weights + tokenizer), or 'minilm' for the embedded "
                                     "all-MiniLM-L6-v2; nothing is downloaded."),
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
    calibrate_n: int = typer.Option(128, help="Calibration samples to use (>= 1)."),
    clip_weights: bool = typer.Option(False, help="Clip imported W8ASpike codes outside "
                                      "[-128, 127] to int8 (default: keep them exact in int16)."),
    device: str = DEVICE_OPTION,
    dtype: str = DTYPE_OPTION,
    device_map: str | None = DEVICE_MAP_OPTION,
) -> None:
    """Convert a local Hugging Face model to W8ASpike (INT8 weights, spiking inputs) and save it.

    Every linear projection except the output head becomes a SpikingLinear. OUT_DIR is written
    all or nothing (weights, config, tokenizer, metadata) and loads back with
    spikingbrain.converter.load_converted(OUT_DIR). Calibration (--calibrate-text) picks each
    layer's weight clipping ratio by the layer's output error on the given text; it does not
    change k or the spike coding (see docs/converter.md for what it gains).

    --device/--dtype/--device-map: where the float model is loaded and quantised (weights
    read straight onto the device in that dtype); the saved folder is the same wherever it
    was converted. Example: spikingbrain convert ./Qwen2.5-7B ./qwen-w8aspike --device cuda
    """
    from rich.console import Console

    from spikingbrain.converter import save_converted

    with usage_errors():
        cfg, lines, model_dir = _validate(model_dir, out_dir, k, scheme, T, max_count, granularity.value,
                               group_size, mode.value, clip_weights, calibrate_text, calibrate_n)
        placement = Placement(device, dtype, device_map)
    console = Console()
    if _public_w8aspike(model_dir, out_dir, cfg, placement, console):
        return  # a public W8ASpike release, saved with its exact codes
    if lines is None and _stream(model_dir, out_dir, cfg, task.value, console):
        return  # a sharded folder, converted shard by shard on the host
    with console.status(f"loading {model_dir} ({placement.describe()})"), usage_errors():
        from spikingbrain.converter.folder import (
            check_vocabulary,
            load_float_model,
            load_tokenizer,
        )

        model = load_float_model(model_dir, task.value, placement)
        tokenizer = load_tokenizer(model_dir, required=lines is not None)
        check_vocabulary(model, tokenizer, model_dir)
    if tokenizer is None:
        console.print(f"[yellow]note:[/yellow] {model_dir} has no tokenizer files; the converted "
                      f"folder will have none either (analyze/export then need --tokenizer or "
                      f"the files copied in)")
    before, heads = _convert(model, cfg, tokenizer, lines, console)
    with console.status(f"saving {out_dir}"), usage_errors():
        try:
            save_converted(model, out_dir, tokenizer=tokenizer)
        except ValueError as err:
            raise UsageError(str(err)) from None
    _print_summary(console, model, cfg, model_dir, out_dir, before, heads, tokenizer,
                   lines is not None, clip_weights, placement)


def _public_w8aspike(model_dir, out_dir, cfg, placement, console) -> bool:
    """A public W8ASpike folder (fp32 weights + ``weight_quantizer.scales``) is not quantised
    again: its exact codes and scales are loaded and saved as a converted folder (k, scheme and
    mode from the options; the group size from its scales). Returns whether it was one."""
    from spikingbrain.converter import save_converted
    from spikingbrain.converter.folder import folder_kind, load_model_folder

    if folder_kind(model_dir) != "w8aspike":
        return False
    with console.status(f"loading the W8ASpike folder {model_dir}"), usage_errors():
        loaded = load_model_folder(model_dir, cfg, require_tokenizer=False, placement=placement)
    with console.status(f"saving {out_dir}"), usage_errors():
        try:
            save_converted(loaded.model, out_dir, tokenizer=loaded.tokenizer)
        except ValueError as err:
            raise UsageError(str(err)) from None
    n = sum(1 for m in loaded.model.modules() if type(m).__name__ == "SpikingLinear")
    console.print(f"{loaded.description}: {n} layers saved with their exact codes to {out_dir}",
                  highlight=False)
    return True


def _stream(model_dir, out_dir, cfg, task, console) -> bool:
    """A sharded float folder of a causal LM converts shard by shard
    (:mod:`spikingbrain.converter.stream`, peak memory about one shard); returns whether it
    did. Other folders (and calibration, which needs the whole model) load whole."""
    from spikingbrain.converter.stream import can_stream, stream_convert

    if can_stream(model_dir, task) is not None:
        return False
    with console.status(f"streaming {model_dir} shard by shard"), usage_errors():
        try:
            s = stream_convert(model_dir, out_dir, cfg,
                               progress=lambda name: console.log(f"converted {name}"))
        except ValueError as err:
            raise UsageError(str(err)) from None
    console.print(f"W8ASpike conversion (streamed): {s.class_name}, {s.n_layers} layers "
                  f"converted (k={cfg.k:g} {cfg.scheme} group {cfg.group_size}), "
                  f"{s.n_shards} shards, {_fmt_bytes(s.float_bytes)} {s.dtype} -> "
                  f"{_fmt_bytes(s.converted_bytes)}, written to {out_dir}")
    return True


def _validate(model_dir, out_dir, k, scheme, T, max_count, granularity, group_size, mode,
              clip_weights, calibrate_text, calibrate_n):
    """Check every argument before the model is loaded: ``(SpikeConfig, calibration lines,
    model folder)`` (``minilm`` resolves to the embedded model's folder)."""
    from spikingbrain.converter import SpikeConfig
    from spikingbrain.converter.folder import folder_kind
    from spikingbrain.converter.serialize import META_FILE

    check_finite(k, "--k", positive=True)
    for name, v in (("--T", T), ("--max-count", max_count)):
        if v < 0:
            raise UsageError(f"{name} must be >= 0 (0 = off), got {v}")
    if calibrate_n < 1:
        raise UsageError(f"--calibrate-n must be >= 1, got {calibrate_n}")
    if str(model_dir) == "minilm":
        from spikingbrain.data import minilm_dir

        model_dir = minilm_dir()
    kind = folder_kind(model_dir)
    if kind == "converted":
        raise UsageError(f"{model_dir} is already a converted model ({META_FILE}); convert "
                         f"the float model it came from instead")
    src, dst = Path(model_dir).resolve(), Path(out_dir).resolve()
    if dst == src or src in dst.parents:
        raise UsageError(f"OUT_DIR {out_dir} is MODEL_DIR or inside it: the float model would "
                         f"be overwritten; give another folder")
    check_out_dir(out_dir, "OUT_DIR")
    if Path(out_dir).is_dir() and any(Path(out_dir).iterdir()) and \
            not (Path(out_dir) / META_FILE).is_file():
        raise UsageError(f"OUT_DIR {out_dir} holds files of something else; give a new or empty "
                         f"folder (or a previous 'spikingbrain convert' output to replace)")
    try:
        cfg = SpikeConfig(k=k, scheme=scheme, T=T or None, max_count=max_count or None,
                          granularity=granularity, group_size=group_size, mode=mode,
                          clip_weights=clip_weights)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None
    lines = None
    if calibrate_text is not None:
        lines = read_text_lines(calibrate_text, "--calibrate-text")[:calibrate_n]
    return cfg, lines, Path(model_dir)


def _convert(model, cfg, tokenizer, lines, console):
    """Convert (or calibrate and convert) in place: ``(bytes before, output head names)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from spikingbrain.converter import calibrate, convert
    from spikingbrain.converter.convert import is_convertible, module_nbytes, output_head_names
    from spikingbrain.utils.placement import input_device

    before = module_nbytes(model)
    heads = output_head_names(model)
    n_targets = sum(1 for n, m in model.named_modules() if is_convertible(m) and n not in heads)
    if lines is not None:
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        dev = input_device(model)
        batches = (tokenizer(lines[i:i + 8], return_tensors="pt", padding=True, truncation=True,
                             max_length=256).to(dev) for i in range(0, len(lines), 8))
        calibrate(model, batches, n=len(lines), config=cfg)
        return before, heads
    with Progress(TextColumn("converting"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), console=console, transient=True) as bar:
        t = bar.add_task("", total=n_targets)
        convert(model, cfg, progress=lambda name: bar.update(t, advance=1, description=name))
    return before, heads


def _probe_saturation(model, cfg, tokenizer) -> str:
    """Saturated counts on a probe sentence (only possible with T or max_count)."""
    import torch

    from spikingbrain.converter.convert import spiking_layers
    from spikingbrain.utils.placement import input_device

    if cfg.max_count is None and cfg.T is None:
        return "none possible (no T / max_count)"
    if tokenizer is None:
        return "not measured (no tokenizer in MODEL_DIR)"
    total = [0, 0]

    def obs(_m, rec):
        total[0] += int(rec.n_saturated)
        total[1] += rec.counts.numel()

    hs = [m.add_spike_observer(obs) for m in spiking_layers(model).values()]
    try:
        enc = tokenizer(["The quick brown fox jumps over the lazy dog."],
                        return_tensors="pt").to(input_device(model))
        with torch.no_grad():
            model(**enc)
    finally:
        for h in hs:
            h.remove()
    return f"{total[0]} of {total[1]} counts on a probe sentence"


def _print_summary(console, model, cfg, model_dir, out_dir, before, heads, tokenizer,
                   calibrated, clip_weights, placement) -> None:
    from rich.table import Table

    from spikingbrain.converter import memory_summary

    mem = memory_summary(model)
    table = Table(title=f"W8ASpike conversion: {Path(model_dir).name} -> {out_dir}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("model class", type(model).__name__)
    table.add_row("converted on", placement.describe())
    table.add_row("layers converted", f"{mem.n_layers} (output head kept: {', '.join(heads) or '-'})")
    table.add_row("config", f"k={cfg.k:g} {cfg.scheme} T={cfg.T} max_count={cfg.max_count} "
                  f"{cfg.granularity}{'' if cfg.granularity == 'channel' else f'/{cfg.group_size}'}"
                  f" mode={cfg.mode}")
    table.add_row("weight clipping", "calibrated" if calibrated else "absmax")
    table.add_row("converted layers, fp16", _fmt_bytes(mem.fp16_bytes))
    table.add_row("converted layers, INT8 + scales",
                  f"{_fmt_bytes(mem.converted_bytes)} ({mem.ratio:.3f}x fp16)")
    table.add_row("whole model before / after",
                  f"{_fmt_bytes(before)} / {_fmt_bytes(mem.model_bytes)}")
    table.add_row("out-of-range weight codes",
                  f"{mem.n_out_of_range} ({'clipped' if clip_weights else 'kept in int16'}, "
                  f"{mem.n_int16_layers} int16 layers)")
    table.add_row("saturated counts", _probe_saturation(model, cfg, tokenizer))
    table.add_row("tokenizer", "saved with the model" if tokenizer is not None else "none")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to ``app``."""
    app.command("convert")(convert_command)
