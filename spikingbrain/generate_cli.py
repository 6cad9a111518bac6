"""``spikingbrain generate MODEL``: text generation from a model folder, with tokens per second
and, for spiking models, the spikes of every generated token.

MODEL is a float SpikingBrain / Hugging Face causal-LM folder or a folder written by
``spikingbrain convert``. Prompts of different lengths run as one batch (left padding with an
attention mask). With ``--spikes`` the streaming monitor
(:class:`~spikingbrain.analysis.monitor.SpikeMonitor`) is attached after the prompt's forward
pass, so only decoding is measured: for every decode step it prints the mean spikes per
channel and the fraction of silent channels over all spiking layers, and with
``--raster-layer``/``--raster-out`` it draws that layer's spike trains over the generated
tokens. Heavy imports stay inside the command (``spikingbrain --help`` is instant).

>>> count_new_tokens([[5, 6, 2, 0], [7, 8, 9, 4]], eos_ids={2})
[3, 4]
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import typer

from spikingbrain.utils.cli_checks import (
    EMBEDDED,
    UsageError,
    check_existing_dir,
    check_out_file,
    read_text_lines,
    usage_errors,
)
from spikingbrain.utils.placement import (
    DEVICE_MAP_OPTION,
    DEVICE_OPTION,
    DTYPE_OPTION,
    Placement,
)

__all__ = ["count_new_tokens", "decode_spikes", "register"]


def count_new_tokens(rows: Iterable[Sequence[int]], eos_ids: set[int]) -> list[int]:
    """New tokens of each generated row ``[new tokens]``: up to and including the first end of
    sequence token (what follows it is padding), else the whole row."""
    out = []
    for row in rows:
        row = list(row)
        n = len(row)
        for i, t in enumerate(row):
            if int(t) in eos_ids:
                n = i + 1
                break
        out.append(n)
    return out


def _prompts(prompt: list[str] | None, prompt_file: Path | None) -> list[str]:
    texts = [p for p in (prompt or [])]
    if any(not p.strip() for p in texts):
        raise UsageError("--prompt is empty; give some text, e.g. --prompt 'Once upon a time'")
    if prompt_file is not None:
        texts += read_text_lines(prompt_file, "--prompt-file")
    if not texts:
        raise UsageError("give at least one prompt: --prompt TEXT (repeatable) or "
                         "--prompt-file FILE (one prompt per line)")
    return texts


def _check(model_dir: str, max_new_tokens: int, temperature: float, top_p: float,
           raster_layer: str | None, raster_out: Path | None, raster_channels: int,
           raster_prompt: int, n_prompts: int, tokenizer: Path | None) -> Path | None:
    from spikingbrain.converter.folder import folder_kind

    folder_kind(model_dir)  # a clear error for a missing or foreign folder
    if str(model_dir) == EMBEDDED:
        raise UsageError(f"'{EMBEDDED}' (all-MiniLM-L6-v2) is an encoder without a language-model "
                         f"head and cannot generate; give a causal-LM folder (float or "
                         f"converted with 'spikingbrain convert')")
    if max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise UsageError(f"--temperature must be a finite number > 0, got {temperature}")
    if not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise UsageError(f"--top-p must be in (0, 1], got {top_p}")
    if (raster_layer is None) != (raster_out is None):
        raise UsageError("--raster-layer and --raster-out go together: name the layer and the "
                         ".png file to draw it into")
    if raster_channels < 1:
        raise UsageError(f"--raster-channels must be >= 1, got {raster_channels}")
    if not 0 <= raster_prompt < n_prompts:
        raise UsageError(f"--raster-prompt must index one of the {n_prompts} prompts "
                         f"(0 .. {n_prompts - 1}), got {raster_prompt}")
    if tokenizer is not None:
        check_existing_dir(tokenizer, "--tokenizer")
    if raster_out is not None:
        return check_out_file(raster_out, "--raster-out", suffix=".png")
    return None


class _DecodeSpikes:
    """Streaming monitor switched on after the prompt's forward pass: one statistics row per
    decode step (then the monitor is reset), and one sample of the raster layer per step.

    Rows: ``(step, tokens, mean spikes per channel, silent fraction)`` over every spiking layer.
    """

    def __init__(self, model: Any, raster_layer: str | None, rows: int, channels: int) -> None:
        from spikingbrain.analysis.monitor import SpikeMonitor

        sample = {raster_layer: (rows, channels)} if raster_layer else None
        try:
            self.mon = SpikeMonitor(model, sample=sample)
        except ValueError as err:
            raise UsageError(f"--raster-layer: {err}") from None
        if not self.mon.layer_names:
            raise UsageError("the model has no spiking layer: --spikes needs a converted model "
                             "(a folder written by 'spikingbrain convert', or --convert)")
        self.model, self.layer, self.row = model, raster_layer, rows - 1
        self.calls = 0
        self.steps: list[tuple[int, int, float, float]] = []
        self.total: Any = None
        self.samples: list[Any] = []
        self._handle = model.register_forward_hook(self._after_forward)

    def _after_forward(self, *_: Any) -> None:
        self.calls += 1
        if self.calls == 1:  # the prompt: not measured; decoding starts now
            self.mon.attach()
            return
        st = self.mon.stats(reduce=False).total
        self.steps.append((self.calls - 1, st.tokens, st.mean_spikes_per_channel,
                           st.silent_fraction))
        self.total = st if self.total is None else self.total.merged(st)
        if self.layer is not None:
            self.samples.append(self.mon.samples().get(self.layer))
        self.mon.reset()

    def close(self) -> None:
        self._handle.remove()
        self.mon.detach()

    def raster_counts(self, channels: int) -> Any:
        """``[decode steps, channels]`` int counts of the raster layer for the chosen prompt
        (a step in which the layer saw no token of it, e.g. an unrouted expert, is zero)."""
        import torch

        rows = []
        for s in self.samples:
            if s is None or s.shape[0] <= self.row:
                rows.append(torch.zeros(channels, dtype=torch.int32))
            else:
                rows.append(s[self.row, :channels].to(torch.int32))
        return torch.stack(rows) if rows else torch.zeros(0, channels, dtype=torch.int32)


def decode_spikes(model: Any, raster_layer: str | None = None, rows: int = 1,
                  channels: int = 64) -> _DecodeSpikes:
    """Attach a decode-only spike recorder to ``model`` (call ``.close()`` afterwards)."""
    return _DecodeSpikes(model, raster_layer, rows, channels)


def _load(model_dir: str, placement: Placement, convert: bool, k: float,
          tokenizer: Path | None) -> Any:
    from spikingbrain.converter import SpikeConfig
    from spikingbrain.converter.folder import load_model_folder

    try:
        cfg = SpikeConfig(k=k)
    except (TypeError, ValueError) as err:
        raise UsageError(f"--k: {err}") from None
    loaded = load_model_folder(model_dir, cfg, spiking=convert, task="causal-lm",
                               tokenizer_dir=tokenizer, placement=placement)
    model = loaded.model
    can = getattr(model, "can_generate", None)
    if not callable(getattr(model, "generate", None)) or (callable(can) and not can()):
        raise UsageError(f"{model_dir} holds a {type(model).__name__}, which has no language-"
                         f"model head and cannot generate; give a causal-LM folder")
    return loaded


def _generate(model: Any, tok: Any, prompts: list[str], max_new_tokens: int, sample: bool,
              temperature: float, top_p: float, eager: bool = False
              ) -> tuple[Any, Any, float]:
    """``(prompt batch, generated ids [batch, prompt + new], wall seconds)``; ``eager``: no
    CUDA-graph decoding (monitors watch every step)."""
    import inspect

    import torch

    from spikingbrain.utils.placement import input_device, synchronize

    tok.padding_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise UsageError("the tokenizer has neither a pad nor an end-of-sequence token; "
                             "batches of prompts need one")
        tok.pad_token = tok.eos_token
    device = input_device(model)
    enc = tok(prompts, padding=True, return_tensors="pt")
    batch = {k: enc[k].to(device) for k in ("input_ids", "attention_mask")}
    kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sample,
                          "pad_token_id": tok.pad_token_id}
    if sample:
        kw |= {"temperature": temperature, "top_p": top_p}
    if eager and "use_static" in inspect.signature(type(model).generate).parameters:
        kw["use_static"] = False  # a CUDA-graph replay runs no Python: monitors see nothing
    synchronize(device)
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            out = model.generate(**batch, **kw)
    except ValueError as err:
        raise UsageError(f"generation failed: {err}") from None
    synchronize(device)
    return batch, out, time.perf_counter() - t0


def _eos_ids(model: Any, tok: Any) -> set[int]:
    ids: set[int] = set()
    for src in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        e = getattr(src, "eos_token_id", None)
        ids |= set(e) if isinstance(e, (list, tuple)) else ({e} if isinstance(e, int) else set())
    return ids


def _print_spikes(console: Any, rec: _DecodeSpikes) -> None:
    from rich.table import Table

    tab = Table(title="spikes per generated token (decode steps; every spiking layer)",
                caption="step i: the forward pass that reads generated token i (the last "
                        "generated token is never read back)")
    for col in ("step", "tokens", "spikes / channel", "silent channels"):
        tab.add_column(col, justify="right")
    for step, tokens, spikes, silent in rec.steps:
        tab.add_row(str(step), str(tokens), f"{spikes:.3f}", f"{100 * silent:.1f} %")
    console.print(tab)
    if rec.total is not None:
        console.print(f"decoding, {len(rec.steps)} steps: {rec.total.mean_spikes_per_channel:.3f}"
                      f" spikes per channel, {100 * rec.total.silent_fraction:.1f} % silent "
                      f"channels", highlight=False)


def _draw_raster(rec: _DecodeSpikes, layer: str, channels: int, prompt: int,
                 out: Path) -> Path:
    from spikingbrain.analysis.plots import save_figure, scheme_raster_figure

    counts = rec.raster_counts(channels)
    if counts.shape[0] == 0:
        raise UsageError("--raster-out: no decode step was run (use --max-new-tokens >= 2)")
    mod = rec.model.get_submodule(layer)
    scheme = mod.config.scheme if hasattr(mod, "config") else "bitwise_bidirectional"
    fig = scheme_raster_figure(counts, schemes=(scheme,),
                               layer=f"{layer} (prompt {prompt}, {counts.shape[0]} generated "
                                     f"tokens)")
    return save_figure(fig, out)


def register(app: typer.Typer) -> None:
    """Add ``generate`` to ``app``."""

    @app.command("generate")
    def generate(
        model_dir: str = typer.Argument(..., metavar="MODEL",
                                        help="A causal-LM folder: float SpikingBrain or Hugging "
                                             "Face (config.json + weights + tokenizer), or a "
                                             "folder written by 'spikingbrain convert'."),
        prompt: list[str] = typer.Option(None, "--prompt", help="A prompt (repeat for a "
                                         "batch; prompts of different lengths are left-padded)."),
        prompt_file: Path | None = typer.Option(None, "--prompt-file", help="UTF-8 text file, "
                                                "one prompt per line (added after --prompt)."),
        max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="New tokens per "
                                           "prompt (fewer when a row ends with the "
                                           "end-of-sequence token)."),
        sample: bool = typer.Option(False, "--sample/--greedy", help="Sample (with "
                                    "--temperature/--top-p) instead of greedy decoding."),
        temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature "
                                          "(> 0; with --sample)."),
        top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass in (0, 1] "
                                    "(with --sample)."),
        seed: int = typer.Option(0, "--seed", help="Random seed (sampling)."),
        spikes: bool = typer.Option(False, "--spikes", help="Spiking models only: attach the "
                                    "streaming spike monitor during decoding (not the prompt) and "
                                    "print the mean spikes per channel and the silent fraction "
                                    "per generated token."),
        raster_layer: str | None = typer.Option(None, "--raster-layer", metavar="NAME",
                                                help="Spiking layer drawn over the generated "
                                                     "tokens (with --raster-out; implies "
                                                     "--spikes), e.g. model.layers.0.mlp."
                                                     "down_proj."),
        raster_out: Path | None = typer.Option(None, "--raster-out", metavar="FILE.png",
                                               help="PNG file of the raster (.png appended "
                                                    "when missing)."),
        raster_channels: int = typer.Option(64, "--raster-channels", help="Input channels "
                                            "drawn (the first N)."),
        raster_prompt: int = typer.Option(0, "--raster-prompt", help="Which prompt of the "
                                          "batch the raster shows (0-based)."),
        convert: bool = typer.Option(False, "--convert", help="Convert a float folder to "
                                     "W8ASpike on the fly (k = --k, bitwise sign-magnitude "
                                     "coding, INT8 groups of 128) before generating."),
        k: float = typer.Option(3.0, "--k", help="Threshold divisor for --convert."),
        tokenizer: Path | None = typer.Option(None, "--tokenizer", help="Tokenizer folder if "
                                              "MODEL has none."),
        json_out: Path | None = typer.Option(None, "--json", metavar="OUT.json",
                                             help="Also write prompts, generated token ids and "
                                                  "texts, speed and spike rows as JSON."),
        device: str = DEVICE_OPTION,
        dtype: str = DTYPE_OPTION,
        device_map: str | None = DEVICE_MAP_OPTION,
    ) -> None:
        """Generate text from MODEL for one or more prompts; print each continuation and the
        speed (new tokens / wall time of generation, CUDA synchronised).

        Greedy by default; prompts of different lengths run as one left-padded batch. With
        --spikes (converted models, or --convert) the streaming monitor measures decoding only
        and prints mean spikes per channel and silent channels per generated token;
        --raster-layer NAME --raster-out FILE.png draws NAME's spike trains over the generated
        tokens.

        Example: spikingbrain generate ./SpikingBrain-7B-W8ASpike --prompt "The brain" --prompt
        "Spiking neurons are" --max-new-tokens 64 --device cuda --spikes
        """
        import torch
        from rich.console import Console

        with usage_errors():
            texts = _prompts(prompt, prompt_file)
            png = _check(model_dir, max_new_tokens, temperature, top_p, raster_layer,
                         raster_out, raster_channels, raster_prompt, len(texts), tokenizer)
            jpath = check_out_file(json_out, "--json", suffix=".json") if json_out else None
            placement = Placement(device, dtype, device_map)
        want_spikes = spikes or raster_layer is not None
        console = Console()
        with console.status(f"loading {model_dir} ({placement.describe()})"), usage_errors():
            loaded = _load(model_dir, placement, convert, k, tokenizer)
        model, tok = loaded.model, loaded.tokenizer
        console.print(f"model: {loaded.description} on {placement.describe()}", highlight=False)
        torch.manual_seed(seed)
        rec = None
        with usage_errors():
            if want_spikes:
                rec = decode_spikes(model, raster_layer, raster_prompt + 1, raster_channels)
            try:
                batch, out, wall = _generate(model, tok, texts, max_new_tokens, sample,
                                             temperature, top_p, eager=rec is not None)
            finally:
                if rec is not None:
                    rec.close()
        width = batch["input_ids"].shape[1]
        new = out[:, width:].cpu()
        counts = count_new_tokens(new.tolist(), _eos_ids(model, tok))
        doc: dict[str, Any] = {"model": str(model_dir), "description": loaded.description,
                               "placement": placement.describe(), "sampled": sample,
                               "prompts": texts, "prompt_width": int(width), "generated_ids": [],
                               "texts": [], "new_tokens": counts}
        for i, text in enumerate(texts):
            cont = tok.decode(new[i, :counts[i]], skip_special_tokens=True)
            doc["generated_ids"].append(new[i, :counts[i]].tolist())
            doc["texts"].append(cont)
            console.print(f"[bold]prompt {i}:[/bold] {text}", highlight=False)
            console.print(f"[bold]generated ({counts[i]} tokens):[/bold] {cont}",
                          highlight=False)
        total = sum(counts)
        console.print(f"{total} new tokens ({len(texts)} prompt{'s' if len(texts) > 1 else ''}"
                      f", {'sampled' if sample else 'greedy'}) in {wall:.3f} s: "
                      f"{total / wall:.1f} tokens/s"
                      f"{' (spike monitor attached)' if rec is not None else ''}",
                      highlight=False)
        doc |= {"wall_s": wall, "tokens_per_s": total / wall}
        if rec is not None:
            _print_spikes(console, rec)
            doc["spikes"] = {
                "steps": [{"step": s, "tokens": t, "mean_spikes_per_channel": m,
                           "silent_fraction": f} for s, t, m, f in rec.steps],
                "mean_spikes_per_channel": rec.total.mean_spikes_per_channel if rec.total
                else None,
                "silent_fraction": rec.total.silent_fraction if rec.total else None}
            if raster_layer is not None and png is not None:
                with usage_errors():
                    path = _draw_raster(rec, raster_layer, raster_channels, raster_prompt, png)
                console.print(f"raster of {raster_layer} written to {path}", highlight=False)
        if jpath is not None:
            import json

            from spikingbrain.utils.atomic import atomic_write

            with atomic_write(jpath, "w") as fh:
                json.dump(doc, fh, indent=1)
            console.print(f"wrote {jpath}", highlight=False)
