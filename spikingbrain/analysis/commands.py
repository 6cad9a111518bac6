"""CLI commands of `spikingbrain.analysis`: ``analyze`` and ``sweep-k`` (``energy`` lives in
:mod:`spikingbrain.analysis.energy_cli`).

Heavy imports (transformers, matplotlib, the converter) happen inside the command bodies.
"""

from __future__ import annotations

from pathlib import Path

import typer

from spikingbrain.analysis.energy_cli import TABLE_HELP as _TABLE_HELP
from spikingbrain.utils.cli_checks import (
    UsageError,
    check_existing_dir,
    check_finite,
    check_out_dir,
    check_text_file,
    usage_errors,
)
from spikingbrain.utils.placement import (
    DEVICE_MAP_OPTION,
    DEVICE_OPTION,
    DTYPE_OPTION,
    Placement,
)


def _parse_ks(text: str) -> list[float]:
    parts = [x.strip() for x in text.split(",") if x.strip()]
    if not parts:
        raise UsageError("--k needs at least one value, e.g. 2,2.5,3")
    return [check_finite(x, "--k", positive=True) for x in parts]


def _check_common(model_dir: Path, text: Path | None, out: Path, table: str,
                  memory: str | None = None, tokenizer: Path | None = None) -> str:
    """Every argument shared by analyze and sweep-k, checked before a model is loaded;
    returns the MODEL_DIR kind (embedded, float, converted)."""
    from spikingbrain.analysis.energy import load_table
    from spikingbrain.converter.folder import folder_kind

    kind = folder_kind(model_dir)
    if text is not None:
        check_text_file(text, "--text")
    check_out_dir(out, "--out")
    try:
        t = load_table(table)
        if memory is not None:
            t.read_pj_per_byte(memory)
    except ValueError as err:
        raise UsageError(f"--table/--memory: {err}") from None
    if tokenizer is not None:
        check_existing_dir(tokenizer, "--tokenizer")
    return kind


def _sentences(text: Path | None, n: int) -> tuple[list[str], str]:
    from spikingbrain.analysis.pipeline import read_text_file

    if text is not None:
        lines = read_text_file(text)
        return lines[:n] if n else lines, str(text)
    from spikingbrain.data import stdlib_sentences

    n = n or 64
    return stdlib_sentences(n), f"{n} sentences from Python standard-library docstrings"


def _progress(disable: bool = False):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), disable=disable)


def _spike_config(k, scheme, T, max_count, granularity, group_size, mode):
    from spikingbrain.converter import SpikeConfig

    check_finite(k, "--k", positive=True)
    try:
        return SpikeConfig(k=k, scheme=scheme, T=T, max_count=max_count,
                           granularity=granularity, group_size=group_size, mode=mode)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands (energy, analyze, sweep-k) to ``app``."""
    from spikingbrain.analysis.energy_cli import register_energy
    from spikingbrain.analysis.map_cli import register_map

    register_energy(app)
    register_map(app)
    _register_analyze(app)
    _register_sweep_k(app)


def _register_analyze(app: typer.Typer) -> None:
    """Add ``analyze`` to ``app``."""

    @app.command("analyze")
    def analyze(
        ctx: typer.Context,
        model_dir: Path = typer.Argument(..., help="Local Hugging Face model folder (float; "
                                         "converted on the fly), a folder written by "
                                         "'spikingbrain convert', or 'minilm' for the "
                                         "embedded all-MiniLM-L6-v2."),
        text: Path | None = typer.Option(None, "--text", help="UTF-8 text file, one "
                                            "sequence per line (default: standard-library "
                                            "sentences)."),
        out: Path = typer.Option(Path("report"), "--out", help="Output folder (index.html, "
                                 "report.json, report.md, plots/)."),
        n_sentences: int = typer.Option(0, "--n-sentences", min=0,
                                        help="Use only the first N lines (0: all; 64 "
                                             "standard-library sentences without --text)."),
        k: float = typer.Option(3.0, "--k", help="Threshold divisor, Vth = mean(|x|)/k."),
        scheme: str = typer.Option("bitwise_bidirectional", "--scheme",
                                   help="Spike coding scheme: binary, ternary, bitwise, "
                                        "bitwise_bidirectional, bitwise_twos_complement."),
        T: int | None = typer.Option(None, "--T", help="Fixed window (default: minimal "
                                        "window per call)."),
        max_count: int | None = typer.Option(None, "--max-count", help="Clamp |count|."),
        granularity: str = typer.Option("group", "--granularity", help="group or channel."),
        group_size: int = typer.Option(128, "--group-size", help="Weight group size."),
        mode: str = typer.Option("count", "--mode", help="count, spike or fake."),
        window: int = typer.Option(3, "--window", min=0, help="Fixed window W for the "
                                   "'sparsity at W steps' metric (0 to omit)."),
        table: str = typer.Option("horowitz-45nm", "--table", help=_TABLE_HELP),
        memory: str | None = typer.Option(None, "--memory", help="Add weight-fetch energy "
                                             "from this memory level of the table (e.g. "
                                             "sram_32kb, dram)."),
        batch_size: int = typer.Option(32, "--batch-size", min=1),
        max_length: int = typer.Option(128, "--max-length", min=1, help="Tokens per line."),
        raster_layer: str | None = typer.Option(None, "--raster-layer", help="Layer drawn "
                                                   "in the raster plot (default: the first)."),
        tokenizer: Path | None = typer.Option(None, "--tokenizer", help="Tokenizer folder "
                                                 "if MODEL_DIR has none."),
        device: str = DEVICE_OPTION,
        dtype: str = DTYPE_OPTION,
        device_map: str | None = DEVICE_MAP_OPTION,
        distributed: int = typer.Option(0, "--distributed", min=0, help="Run N processes "
                                        "with torchrun, each on its share of the text (one "
                                        "report, identical to one process's; 0: this "
                                        "process only). On CUDA each process takes the GPU "
                                        "of its local rank (nccl)."),
    ) -> None:
        """Convert (if needed) and analyse a model on real text; write an HTML/JSON/MD report.

        Example: spikingbrain analyze ./all-MiniLM-L6-v2 --text sentences.txt --out report
        (add --device cuda to run on a GPU, bf16 by default there).
        """
        from rich.console import Console

        from spikingbrain.analysis import distributed as dist
        from spikingbrain.analysis.pipeline import analyze as run
        from spikingbrain.analysis.pipeline import load_model_dir

        with usage_errors():
            _check_common(model_dir, text, out, table, memory, tokenizer)
            cfg = _spike_config(k, scheme, T, max_count, granularity, group_size, mode)
            placement = Placement(device, dtype, device_map)
            sentences, source = _sentences(text, n_sentences)
            if distributed and dist.launched():
                raise UsageError("--distributed starts torchrun itself; under torchrun leave "
                                 "it out")
        if distributed:  # relaunch this command line under torchrun and wait
            code = dist.launch(distributed, dist.command_args(ctx))
            if code:
                typer.echo(f"distributed analysis failed (exit code {code}); no report "
                           f"written", err=True)
            raise typer.Exit(code)
        console = Console()
        import dataclasses
        import time

        from spikingbrain.utils.placement import input_device, synchronize

        # under torchrun each rank computes on its own GPU (cuda:LOCAL_RANK), else as placed
        rank_device = placement.device if placement.device_map is None else None
        with dist.session(rank_device) as dev:
            if dist.launched() and dev.type == "cuda":
                placement = dataclasses.replace(placement, device=str(dev))
            with console.status(f"loading {model_dir} ({placement.describe()})"), \
                    usage_errors():
                loaded = load_model_dir(model_dir, cfg, tokenizer, placement)
            loaded[3]["placement"] = placement.describe()
            t0 = time.perf_counter()
            with _progress(disable=not dist.is_lead()) as prog:
                task = prog.add_task("monitoring", total=dist.shard_size(len(sentences),
                                                                         batch_size))
                rep = run(None, out, sentences, model=loaded, window=window or None,
                          table=table, memory=memory, batch_size=batch_size,
                          max_length=max_length, raster_layer=raster_layer,
                          text_source=source, on_batch=lambda n: prog.advance(task, n))
            synchronize(input_device(loaded[0]))
            wall = time.perf_counter() - t0
        if rep is None:  # a rank other than 0 under torchrun: rank 0 reports
            return
        s = rep["summary"]
        console.print(f"{s['layers']} spiking layers, {s['tokens']:,} tokens: "
                      f"{s['mean_spikes_per_channel']:.3f} spikes per channel, "
                      f"|c|<=7 {100 * s['fraction_le_7']:.1f} %, sparsity "
                      f"{100 * s['sparsity']:.1f} %, silent {100 * s['silent_fraction']:.1f} %",
                      highlight=False)
        console.print(f"{s['tokens']:,} tokens in {wall:.2f} s on {placement.describe()}: "
                      f"{s['tokens'] / wall:,.1f} tokens/s (the whole analysis: monitored run, "
                      f"float reference run, report)", highlight=False)
        console.print(f"report written to {out}/index.html", highlight=False)


def _register_sweep_k(app: typer.Typer) -> None:
    """Add ``sweep-k`` to ``app``."""

    @app.command("sweep-k")
    def sweep_k(
        model_dir: Path = typer.Argument(..., help="Local Hugging Face float model folder, or "
                                         "'minilm' for the embedded all-MiniLM-L6-v2."),
        text: Path | None = typer.Option(None, "--text", help="UTF-8 text file, one "
                                            "sequence per line (default: standard-library "
                                            "sentences)."),
        k: str = typer.Option("2,2.5,3,3.5,4", "--k", help="Comma-separated k values."),
        out: Path = typer.Option(Path("sweep"), "--out", help="Output folder."),
        n_sentences: int = typer.Option(0, "--n-sentences", min=0,
                                        help="Use only the first N lines (0: all)."),
        scheme: str = typer.Option("bitwise_bidirectional", "--scheme", help="Coding scheme."),
        granularity: str = typer.Option("group", "--granularity", help="group or channel."),
        group_size: int = typer.Option(128, "--group-size", help="Weight group size."),
        window: int = typer.Option(3, "--window", min=0, help="Fixed window for sparsity."),
        table: str = typer.Option("horowitz-45nm", "--table", help=_TABLE_HELP),
        batch_size: int = typer.Option(32, "--batch-size", min=1),
        max_length: int = typer.Option(128, "--max-length", min=1),
        tokenizer: Path | None = typer.Option(None, "--tokenizer", help="Tokenizer folder."),
        device: str = DEVICE_OPTION,
        dtype: str = DTYPE_OPTION,
        device_map: str | None = DEVICE_MAP_OPTION,
    ) -> None:
        """Sweep the threshold divisor k: fraction |c|<=7, spikes, sparsity, silent channels,
        energy per token and embedding similarity to the float model, one row per k.

        Writes OUT/index.html (full report at the middle k, with the sweep table and plot),
        report.json, report.md and sweep.json.
        """
        from rich.console import Console
        from rich.table import Table

        from spikingbrain.analysis.pipeline import analyze as run
        from spikingbrain.analysis.pipeline import load_model_dir
        from spikingbrain.analysis.pipeline import sweep_k as sw
        from spikingbrain.analysis.report import sweep_table_rows

        with usage_errors():
            ks = _parse_ks(k)
            if _check_common(model_dir, text, out, table, tokenizer=tokenizer) == "converted":
                raise UsageError(f"{model_dir} is a converted model with a fixed k; sweep-k "
                                 f"needs the float model folder (or 'minilm')")
            cfg = _spike_config(3.0, scheme, None, None, granularity, group_size, "count")
            placement = Placement(device, dtype, device_map)
            sentences, source = _sentences(text, n_sentences)
        console = Console()
        with console.status(f"loading {model_dir} ({placement.describe()})"), usage_errors():
            spiking, tok, float_model, info = load_model_dir(
                model_dir, cfg.replace(k=ks[len(ks) // 2]), tokenizer, placement)
        with _progress() as prog:
            t_k = prog.add_task("k values", total=len(ks))
            t_s = prog.add_task("sentences", total=len(sentences) * (len(ks) + 1))
            rows = sw(float_model, tok, sentences, ks, cfg, batch_size=batch_size,
                      max_length=max_length, table=table, window=window or None,
                      on_batch=lambda n: prog.advance(t_s, n),
                      on_k=lambda _k: prog.advance(t_k))
            sweep_doc = {"k": ks, "rows": rows, "text": source, "config": cfg.to_dict()}
            run(None, out, sentences, model=(spiking, tok, float_model, info),
                window=window or None, table=table, batch_size=batch_size,
                max_length=max_length, text_source=source, sweep=rows,
                on_batch=lambda n: prog.advance(t_s, n), extra_json={"sweep.json": sweep_doc},
                title=f"k sweep of {Path(model_dir).name} (report at k = {ks[len(ks) // 2]:g})")
        _, body = sweep_table_rows(rows, window or None)
        head = ["k", "|c|<=7", "|c|>16", "spikes/ch", "sparsity", f"sp. {window}-step",
                "silent", "E spk/token", "E FP16/token", "cosine"]
        tab = Table(title=f"k sweep on {len(sentences)} sequences ({source})",
                    caption="sparsity: own window per call; E: energy per token")
        for h in head:
            tab.add_column(h, justify="right")
        for r in body:
            tab.add_row(*r)
        console.print(tab)
        console.print(f"report written to {out}/index.html", highlight=False)
