"""``spikingbrain map loihi2 MODEL``: place a model's spiking layers on Loihi 2 chips.

Cores, chips, events, time and energy per token, per layer and in total, for binary spike
trains and for graded spikes (see :mod:`spikingbrain.analysis.estimators.loihi2`). MODEL is
``7b`` / ``76b`` (full-size SpikingBrain shapes on the meta device) or a model folder with
config.json; the spike rates are stated assumptions (default: the SpikingBrain report's 1.13
spikes per channel, 18.4 % silent channels, 3 time steps), or measured with ``--text FILE``:
MODEL (a model folder or ``minilm``) then runs on that text under the spike monitor, on
``--device`` in ``--dtype`` (``--device-map auto`` over several GPUs), and every layer is
placed with its own measured rates.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from spikingbrain.utils.cli_checks import (
    UsageError,
    check_finite,
    check_out_file,
    check_text_file,
    usage_errors,
)
from spikingbrain.utils.placement import (
    DEVICE_MAP_OPTION,
    DEVICE_OPTION,
    DTYPE_OPTION,
    Placement,
)

__all__ = ["register_map"]


def _si(v: float, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {prefix}{unit}"
    return f"{v:.3g} {unit}"


def _joules(pj: float) -> str:
    for scale, unit in ((1e12, "J"), (1e9, "mJ"), (1e6, "uJ"), (1e3, "nJ")):
        if pj >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def measured_workloads(model: str, text: str, placement: Placement | None = None,
                       batch_size: int = 8, max_length: int = 128) -> list[Any]:
    """Workloads with the rates measured by running ``model`` (a model folder or ``minilm``;
    a float folder is converted with the default SpikeConfig) on the lines of ``text`` under
    the spike monitor, placed by ``placement`` (default: the CPU)."""
    from spikingbrain.analysis.estimators.workload import workloads_from_model_stats
    from spikingbrain.analysis.monitor import SpikeMonitor
    from spikingbrain.analysis.pipeline import read_text_file, run_text
    from spikingbrain.converter.folder import load_model_folder

    lines = read_text_file(text)
    loaded = load_model_folder(model, placement=placement)
    mon = SpikeMonitor(loaded.model).attach()
    try:
        run_text(loaded.model, loaded.tokenizer, lines, mon, batch_size, max_length)
    finally:
        mon.detach()
    ws = workloads_from_model_stats(mon.stats())
    if not ws:
        raise UsageError(f"{model}: no spiking layer saw a token of {text}")
    return ws


def mapping_report(model: str, config_file: str | None, spikes: float, silent: float,
                   steps: int, text: str | None = None,
                   placement: Placement | None = None) -> dict[str, Any]:
    """The JSON-ready mapping of ``model`` (``7b``, ``76b`` or a folder); with ``text`` the
    rates are measured on it (:func:`measured_workloads`) instead of assumed."""
    from spikingbrain.analysis.energy_cli import _model_config
    from spikingbrain.analysis.estimators import estimate, workloads_from_shapes
    from spikingbrain.analysis.estimators.loihi2 import Loihi2Config, summary

    cfg = Loihi2Config.from_toml(config_file) if config_file else Loihi2Config()
    if text is not None:
        ws = measured_workloads(model, text, placement)
    else:
        ws = workloads_from_shapes(_model_config(model), spikes, silent,
                                   "bitwise_bidirectional", steps)
    est = estimate(ws, cfg)
    return {"model": model, "projections": len(ws),
            "synapses": sum(w.weight_count for w in ws),
            "rates": ws[0].source if ws else "", "summary": summary(est, ws, cfg),
            "estimate": est.to_dict()}


def register_map(app: typer.Typer) -> None:
    """Add ``map`` (with ``map loihi2``) to ``app``."""
    sub = typer.Typer(help="Map a model onto neuromorphic hardware (cores, chips, events, "
                           "time and energy per token).", no_args_is_help=True)
    app.add_typer(sub, name="map")

    @sub.command("loihi2")
    def loihi2(
        model: str = typer.Argument(..., metavar="MODEL",
                                    help="'7b' or '76b' (full-size SpikingBrain shapes, built on "
                                         "the meta device) or a model folder with config.json."),
        config: str = typer.Option(None, "--config", metavar="FILE.toml",
                                   help="TOML file overriding Loihi 2 constants (name = value, "
                                        "e.g. fan_in_per_core = 4096); see docs/loihi2.md."),
        spikes: float = typer.Option(1.13, "--spikes-per-channel",
                                     help="Mean spikes per input channel per token (binary "
                                          "events; the report's 1.13 for the 7B at k=3)."),
        silent: float = typer.Option(0.184, "--silent-fraction",
                                     help="Fraction of input channels with a zero count per "
                                          "token (graded events are the others)."),
        steps: int = typer.Option(3, "--steps", min=1, help="Time steps T of the binary trains."),
        per_layer: bool = typer.Option(False, "--per-layer", help="Also print every layer."),
        json_out: str = typer.Option(None, "--json", metavar="OUT.json",
                                     help="Write the whole mapping as JSON (atomically)."),
        text: str = typer.Option(None, "--text", metavar="FILE",
                                 help="Measure the spike rates instead of assuming them: run "
                                      "MODEL (a model folder, float or converted, or 'minilm') "
                                      "on this UTF-8 text, one sequence per line, under the "
                                      "spike monitor (replaces --spikes-per-channel, "
                                      "--silent-fraction and --steps)."),
        device: str = DEVICE_OPTION,
        dtype: str = DTYPE_OPTION,
        device_map: str | None = DEVICE_MAP_OPTION,
    ) -> None:
        """Place MODEL's spiking layers on Loihi 2 cores and chips; events, time and energy per
        token for binary spike trains and for graded spikes (one event per non-zero count).

        Per-core limits: Loihi 2's 128 cores and 1M neurons per chip, and synapses per core
        from the per-core synaptic memory (128 KiB) and the weight bits (8: 131,072 per core;
        the published 120M synapses per chip hold only at 1 bit). Per-operation energies and
        times are Loihi 1's measured figures (Davies et al. 2018), times scaled by Loihi 2's
        stated speed-up. Every constant and its source is in the JSON; --config overrides them.
        --device/--dtype/--device-map place the model run of --text (without --text nothing
        is loaded: the shapes come from the meta device).
        """
        from rich.console import Console
        from rich.table import Table

        with usage_errors():
            check_finite(spikes, "--spikes-per-channel", minimum=0.0)
            check_finite(silent, "--silent-fraction", minimum=0.0)
            if silent > 1:
                raise UsageError(f"--silent-fraction must be in [0, 1], got {silent!r}")
            out = check_out_file(json_out, "--json") if json_out else None
            placement = Placement(device, dtype, device_map)
            if text is not None:
                check_text_file(text, "--text")
                if model.lower() in ("7b", "76b"):
                    raise UsageError(f"--text runs the model, and '{model}' is shapes without "
                                     f"weights; give a model folder or 'minilm'")
            try:
                rep = mapping_report(model, config, spikes, silent, steps, text, placement)
            except ValueError as err:
                raise UsageError(str(err)) from None
        s = rep["summary"]
        console = Console()
        tab = Table(title=f"{model} on Loihi 2: {rep['projections']} projections, "
                          f"{rep['synapses'] / 1e9:.2f} B synapses, {s['cores']:,} cores, "
                          f"{s['chips']:,} chips ({s['hala_point_fraction']:.0%} of Hala Point)",
                    caption=rep["rates"])
        for col in ("spikes", "events / token", "synaptic ops / token", "time / token",
                    "energy / token", "chip-power bound"):
            tab.add_column(col, justify="right" if col != "spikes" else "left")
        for regime, label in (("loihi2_binary", "binary trains"), ("loihi2_graded", "graded")):
            r = s[regime]
            tab.add_row(label, _si(r["events_per_token"], ""), _si(r["synaptic_ops_per_token"],
                        ""), f"{r['time_s_per_token'] * 1e3:.3g} ms",
                        _joules(r["energy_pj_per_token"]),
                        _joules(r["chip_power_bound_pj_per_token"]))
        console.print(tab)
        if per_layer:
            lt = Table(title="per layer (binary trains)")
            for col in ("layer", "cores", "events / token", "time / token", "energy / token"):
                lt.add_column(col, justify="left" if col == "layer" else "right")
            for e in rep["estimate"]["layers"]:
                if e["regime"] == "loihi2_binary":
                    x = e["extra"]
                    lt.add_row(e["name"], f"{int(x['cores'])}", _si(x["events_per_token"], ""),
                               f"{x['time_s_per_token'] * 1e6:.3g} us",
                               _joules(e["energy_pj_per_token"]))
            console.print(lt)
        for note in rep["estimate"]["notes"]:
            console.print(note, style="dim", highlight=False, soft_wrap=True)
        if out is not None:
            from spikingbrain.utils.atomic import atomic_write

            with atomic_write(out, "w") as fh:
                json.dump(rep, fh, indent=1)
            console.print(f"wrote {out}")
