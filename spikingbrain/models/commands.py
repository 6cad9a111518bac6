"""CLI commands of `spikingbrain.models` (registered on the `spikingbrain` app): ``transfer``,
the conversion by training of :mod:`spikingbrain.models.transfer`."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from spikingbrain.utils.cli_checks import UsageError, check_out_dir, usage_errors

_DTYPES = ("float32", "bfloat16", "float16")


def _teacher_dir(teacher: str) -> Path:
    """A Hugging Face folder, or an embedded name the converter knows (``smollm2``)."""
    path = Path(teacher)
    if path.is_dir():
        return path
    from spikingbrain.converter import folder

    resolve = getattr(folder, "embedded_dir", None)
    names = getattr(folder, "EMBEDDED_NAMES", ())
    if resolve is not None and teacher in names:
        return Path(resolve(teacher))
    hint = f" or one of the embedded names {', '.join(names)}" if names else ""
    raise UsageError(f"TEACHER {teacher}: no such folder; give a Hugging Face causal-LM folder"
                     f"{hint}")


def _layers(text: str | None) -> list[int] | None:
    if text is None or not text.strip():
        return None
    try:
        return sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise UsageError(f"--attn-layers must be comma-separated layer indices such as 1,3,5, "
                         f"got {text!r}") from None


def transfer_command(
    teacher: str = typer.Argument(..., help="Hugging Face causal-LM folder (Qwen2 or Llama "
                                  "architecture) or an embedded name such as 'smollm2'."),
    out_dir: Path = typer.Argument(..., help="Output folder: the trained hybrid "
                                   "(save_pretrained + tokenizer) and transfer_summary.json/.md, "
                                   "written all or nothing."),
    window: int = typer.Option(256, "--window", help="Sliding window of the softmax layers."),
    attn_layers: str = typer.Option(None, help="Comma-separated layers that stay softmax "
                                    "attention (default: the odd ones); the others become GLA."),
    seq_len: int = typer.Option(512, help="Tokens per training / evaluation block."),
    batch_size: int = typer.Option(8, help="Blocks per optimiser step."),
    train_tokens: int = typer.Option(0, help="Training tokens to take from the text (0: all)."),
    eval_tokens: int = typer.Option(65536, help="Held-out tokens for the perplexities "
                                    "(0: all)."),
    steps_attn: int = typer.Option(400, help="Attention-transfer steps (0 skips it)."),
    steps_distill: int = typer.Option(400, help="Distillation steps (0 skips it)."),
    lr_attn: float = typer.Option(1e-3, help="Peak learning rate of the attention transfer."),
    lr_distill: float = typer.Option(1e-4, help="Peak learning rate of the distillation."),
    schedule: str = typer.Option("cosine", help="Learning-rate decay after the warm-up: "
                                 "cosine, linear or constant."),
    warmup: float = typer.Option(0.05, help="Fraction of the steps with a linear warm-up."),
    fresh_only: bool = typer.Option(False, help="Attention transfer trains only the fresh "
                                    "gk_proj and g_norm (not the reused q/k/v/o)."),
    distill_params: str = typer.Option("all", help="What the distillation trains: all, "
                                       "attention (every layer's) or gla (GLA layers' "
                                       "attention only)."),
    temperature: float = typer.Option(2.0, help="Distillation temperature T."),
    lm_weight: float = typer.Option(0.0, help="Weight a of the next-token loss in the "
                                    "distillation loss (1 - a) T^2 KL + a CE."),
    max_minutes: float = typer.Option(0.0, help="Wall-time budget of the whole command "
                                      "(0: none); the step counts are cut to fit it."),
    attn_share: float = typer.Option(0.5, help="Share of the training time given to the "
                                     "attention transfer under --max-minutes."),
    device: str = typer.Option("cpu", help="Where to train: cpu, cuda, cuda:1 ..."),
    dtype: str = typer.Option("float32", help="dtype of the saved student (training keeps "
                              "float32 weights; on CUDA it computes under bf16 autocast)."),
    no_autocast: bool = typer.Option(False, help="No bf16 autocast on CUDA."),
    seed: int = typer.Option(0, help="Seed of the fresh parameters and of the batch order."),
) -> None:
    """Convert a causal LM to a SpikingBrain-7B-architecture hybrid by training (report
    section 3): build it (GLA + sliding-window layers), train the GLA layers to reproduce the
    teacher's attention outputs, distil the whole model on the teacher's logits, and report
    held-out perplexity before and after each step beside the teacher's, with wall times.
    See docs/models.md, "Conversion by training"."""
    import torch
    from rich.console import Console
    from rich.table import Table

    start = time.perf_counter()
    console = Console()
    with usage_errors():
        from spikingbrain.models.transfer import TransferConfig

        if dtype not in _DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        if max_minutes < 0:
            raise UsageError(f"--max-minutes must be >= 0 (0: no budget), got {max_minutes}")
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise UsageError(f"--device {device!r} is not a torch device (cpu, cuda, "
                             f"cuda:1 ...)") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available here; use --device cpu")
        try:
            cfg = TransferConfig(sliding_window=window, attn_layers=_layers(attn_layers),
                                 seq_len=seq_len, batch_size=batch_size,
                                 train_tokens=train_tokens or None,
                                 eval_tokens=eval_tokens or None, steps_attn=steps_attn,
                                 steps_distill=steps_distill, lr_attn=lr_attn,
                                 lr_distill=lr_distill, schedule=schedule, warmup=warmup,
                                 fresh_only=fresh_only, distill_params=distill_params,
                                 temperature=temperature,
                                 lm_weight=lm_weight, attn_share=attn_share,
                                 autocast=not no_autocast, seed=seed)
        except ValueError as err:
            raise UsageError(str(err)) from None
        check_out_dir(out_dir, "OUT")
        src = _teacher_dir(teacher)
        if Path(out_dir).resolve() == src.resolve() or src.resolve() in \
                Path(out_dir).resolve().parents:
            raise UsageError(f"OUT {out_dir} is TEACHER or inside it; give another folder")
        from spikingbrain.models.transfer import SUMMARY

        out = Path(out_dir)
        if out.is_dir() and any(out.iterdir()) and not (out / SUMMARY).is_file():
            raise UsageError(f"OUT {out_dir} holds files of something else; give a new or "
                             f"empty folder (or an earlier 'spikingbrain transfer' output)")
        from spikingbrain.converter.folder import load_float_model, load_tokenizer

        with console.status(f"loading {src}"):
            model = load_float_model(src, "causal-lm")
            tokenizer = load_tokenizer(src)
    if max_minutes:
        cfg.max_seconds = max(1.0, max_minutes * 60 - (time.perf_counter() - start) - 15)
    from spikingbrain.models.transfer import save_transfer, transfer

    try:
        res = transfer(model, tokenizer, cfg, device=dev, log=console.print)
    except (ValueError, TypeError) as err:
        with usage_errors():
            raise UsageError(str(err)) from None
    t = time.perf_counter()
    res.student.to(getattr(torch, dtype))
    with usage_errors():
        try:
            save_transfer(res, out_dir, tokenizer)
        except ValueError as err:
            raise UsageError(str(err)) from None
    res.seconds["save"] = time.perf_counter() - t
    table = Table(title=f"conversion by training: {teacher} -> {out_dir}")
    for col in ("model", "perplexity", "x teacher"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, v in res.perplexity.items():
        table.add_row(name, f"{v:.3f}", f"{v / res.perplexity['teacher']:.3f}")
    console.print(table)
    times = Table(title="wall time (s)")
    times.add_column("step")
    times.add_column("seconds", justify="right")
    for name, v in res.seconds.items():
        times.add_row(name, f"{v:.1f}")
    console.print(times)
    console.print(f"steps: attention transfer {res.attention.steps}, distillation "
                  f"{res.distillation.steps}; tokens: {res.tokens}")


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to ``app``."""
    app.command("transfer")(transfer_command)
