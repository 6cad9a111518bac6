"""The ``spikingbrain energy`` command: energy per MAC and per token under each estimator.

Without MODEL and with the default ``--estimator horowitz`` it prints the report's per-MAC
figures (FP16 MAC, INT8 MAC, spiking adds, the group-scale epilogue). With MODEL (``7b``,
``76b`` or a model folder) or another estimator it estimates every projection of that model
(shapes from the meta device; spike rates assumed: ``--mean-spikes``, ``--silent-fraction``,
``--steps``), or one layer of ``--layer IN:OUT``, and prints energy per token per estimator
and regime, with every constant and its source.

Heavy imports stay inside the command body so that ``spikingbrain --help`` stays instant.
"""

from __future__ import annotations

import json
import math
from typing import Any

import typer

from spikingbrain.utils.cli_checks import UsageError, check_finite, usage_errors

TABLE_HELP = ("Energy table: 'horowitz-45nm', 'spikingbrain-report' (alias 'report'), or a "
              "JSON/TOML file with name, source, fp16_mac, int8_mac, int8_add in pJ.")
BUILTIN_MODELS = ("7b", "76b")


def _ratio(v: float) -> str:
    return f"{v:.2f}x" if math.isfinite(v) else "n/a (no spiking energy)"


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _estimators(name: str) -> list[str]:
    from spikingbrain.analysis.estimators import estimator_names

    names = estimator_names()
    if name == "all":
        return names
    if name not in names:
        raise UsageError(f"--estimator: unknown energy estimator {name!r}; choose one of: "
                         f"{', '.join(['all', *names])}")
    return [name]


def _layer_shape(text: str) -> tuple[int, int]:
    parts = text.replace("x", ":").split(":")
    try:
        n, m = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--layer must be IN:OUT (two positive ints, e.g. 3584:18944), got "
                         f"{text!r}") from None
    if n < 1 or m < 1:
        raise UsageError(f"--layer must be IN:OUT with positive sizes, got {text!r}")
    return n, m


def _model_config(model: str) -> Any:
    """The config of a built-in full-size model (``7b``, ``76b``) or of a model folder."""
    if model.lower() == "7b":
        from spikingbrain.models.gla_swa import GLAswaConfig

        return GLAswaConfig()
    if model.lower() == "76b":
        from spikingbrain.models.hybrid import SpikingBrainMoEConfig

        return SpikingBrainMoEConfig()
    from pathlib import Path

    folder = Path(model)
    if not (folder / "config.json").is_file():
        raise UsageError(f"MODEL {model!r}: give {' or '.join(BUILTIN_MODELS)} (full-size "
                         f"SpikingBrain shapes) or a model folder holding config.json")
    import transformers

    from spikingbrain.models import register

    register()
    try:
        return transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except (ValueError, OSError) as err:
        raise UsageError(f"MODEL {model!r}: cannot read its config.json ({err})") from None


def _print_table(console: Any, title: str, head: list[str], rows: list[list[str]],
                 caption: str | None = None) -> None:
    from rich.table import Table

    tab = Table(title=title, caption=caption)
    for i, col in enumerate(head):
        tab.add_column(col, justify="left" if i == 0 or col in ("source", "regime",
                                                                "constant") else "right",
                       overflow="fold")
    for r in rows:
        tab.add_row(*r)
    console.print(tab)


def _estimate_workloads(model: str | None, layer: str | None, mean_spikes: float,
                        silent_fraction: float, steps: int, scheme: str, group_size: int
                        ) -> tuple[list[Any], str]:
    from spikingbrain.analysis.estimators import LayerWorkload, workloads_from_shapes
    from spikingbrain.converter import SpikeConfig

    if model is not None:
        cfg = _model_config(model)
        spike_config = SpikeConfig(group_size=group_size) if group_size else \
            SpikeConfig(granularity="channel")
        ws = workloads_from_shapes(cfg, mean_spikes, silent_fraction, scheme, steps,
                                   spike_config=spike_config)
        return ws, f"{model}: {len(ws)} projections of {type(cfg).__name__}"
    n, m = _layer_shape(layer or "3584:3584")
    w = LayerWorkload(f"layer {n}x{m}", n, m, group_size or None, 0, mean_spikes,
                      1.0 - silent_fraction, scheme=scheme, steps=float(steps),
                      source=f"assumed: {mean_spikes} spikes per channel, {silent_fraction} "
                      f"silent fraction, {scheme}, {steps} steps")
    return [w], f"one layer of {n} x {m}"


def _estimator_mode(console: Any, workloads: list[Any], what: str, names: list[str],
                    table: Any, group_size: int, per_layer: bool, as_json: bool) -> None:
    from spikingbrain.analysis.estimators.compare import (
        compare,
        constant_rows,
        per_layer_rows,
        per_token_rows,
    )
    from spikingbrain.analysis.estimators.horowitz import HorowitzConfig
    from spikingbrain.analysis.plots import short_layer_names

    configs = [HorowitzConfig.from_table(table, epilogue=bool(group_size))
               if n == "horowitz" else n for n in names]
    cmp = compare(workloads, configs)
    if as_json:
        typer.echo(json.dumps(cmp | {"workloads": what}, indent=1))
        return
    _print_table(console, f"Energy per token: {what}", *per_token_rows(cmp),
                 caption=f"{cmp['dense_macs_per_token']:,.0f} dense MACs per token; rates: "
                 + "; ".join(cmp["workload_sources"]))
    if per_layer:
        _print_table(console, "Energy per token per layer",
                     *per_layer_rows(cmp, short_layer_names(cmp["layers"])))
    _print_table(console, "Constants", *constant_rows(cmp))
    for res in cmp["results"]:
        for note in res["notes"]:
            console.print(f"{res['estimator']}: {note}", style="dim", highlight=False)


def register_energy(app: typer.Typer) -> None:
    """Add ``energy`` to ``app``."""

    @app.command("energy")
    def energy(
        model: str = typer.Argument(None, metavar="MODEL",
                                    help="'7b' or '76b' (full-size SpikingBrain shapes) or a "
                                         "model folder with config.json: estimate every "
                                         "projection per token. Omit it for per-MAC figures."),
        mean_spikes: float = typer.Option(..., "--mean-spikes",
                                          help="Mean spikes per input channel, a finite number "
                                               ">= 0 (e.g. 1.13 for SpikingBrain-7B at k=3)."),
        estimator: str = typer.Option("horowitz", "--estimator",
                                      help="Energy estimator: 'horowitz' (the report's per-MAC "
                                           "model), 'lemaire' (Lemaire et al. 2022, memory "
                                           "accesses), any other registered one, or 'all' for "
                                           "the comparison table."),
        table: str = typer.Option("spikingbrain-report", "--table", help=TABLE_HELP),
        group_size: int = typer.Option(128, "--group-size", min=0,
                                       help="Input columns per INT8 weight scale: the epilogue "
                                            "takes one float multiply-add per group and output "
                                            "(0: leave it out, the report's figure)."),
        silent_fraction: float = typer.Option(0.184, "--silent-fraction",
                                              help="Fraction of input channels with a zero "
                                                   "count per token (the report's 18.4 %)."),
        steps: int = typer.Option(3, "--steps", min=1, help="Time steps T per token."),
        scheme: str = typer.Option("bitwise_bidirectional", "--scheme",
                                   help="Spike coding scheme of the assumed rates."),
        layer: str = typer.Option(None, "--layer", metavar="IN:OUT",
                                  help="Estimate one layer of IN:OUT per token (default "
                                       "3584:3584, SpikingBrain-7B's hidden size, when MODEL is "
                                       "omitted and --estimator is not horowitz)."),
        per_layer: bool = typer.Option(False, "--per-layer", help="Also print every layer."),
        show_constants: bool = typer.Option(False, "--show-constants",
                                            help="Print the constants and their sources (always "
                                                 "printed when estimating a model or a layer)."),
        precision: int = typer.Option(3, "--precision", min=0, max=12,
                                      help="Decimals of pJ the spiking add energy is rounded to "
                                           "before ratios are taken (the report rounds to 3)."),
        exact: bool = typer.Option(False, "--exact", help="Do not round before taking ratios."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Energy per MAC and per token of FP16, INT8 and spiking layers, per estimator.

        Default (no MODEL, --estimator horowitz): the per-MAC figures. Spiking adds: mean spikes
        x INT8 add (the SpikingBrain report's figure: --mean-spikes 1.13 gives 0.034 pJ per
        MAC, 97.7 % below an FP16 MAC and 85.2 % below an INT8 MAC). Epilogue: the group-scale
        float multiply-adds, 1/group_size per MAC, counted for the INT8 and the spiking layer
        alike (FP32 MAC of the table, else its FP16 MAC). The ratios are energy ratios, not
        speed-ups.

        With MODEL (7b, 76b or a folder), --layer, or another --estimator: energy per token
        of every projection under each estimator and regime, the rates assumed from
        --mean-spikes, --silent-fraction and --steps; constants printed with their sources.
        """
        from rich.console import Console

        from spikingbrain.analysis.energy import load_table

        with usage_errors():
            check_finite(mean_spikes, "--mean-spikes", minimum=0.0)
            check_finite(silent_fraction, "--silent-fraction", minimum=0.0)
            if silent_fraction > 1:
                raise UsageError(f"--silent-fraction must be in [0, 1], got {silent_fraction}")
            names = _estimators(estimator)
            try:
                t = load_table(table)
            except ValueError as err:
                raise UsageError(f"--table: {err}") from None
            console = Console(width=max(Console().width, 110))
            if model is None and names == ["horowitz"] and layer is None:
                _per_mac(console, t, mean_spikes, group_size, precision, exact, as_json,
                         show_constants)
                return
            try:
                ws, what = _estimate_workloads(model, layer, mean_spikes, silent_fraction,
                                               steps, scheme, group_size)
            except ValueError as err:
                if isinstance(err, UsageError):
                    raise
                raise UsageError(str(err)) from None
        _estimator_mode(console, ws, what, names, t, group_size, per_layer, as_json)


def _per_mac(console: Any, t: Any, mean_spikes: float, group_size: int, precision: int,
             exact: bool, as_json: bool, show_constants: bool) -> None:
    """Today's per-MAC table of the report's model (the default)."""
    from rich.table import Table

    from spikingbrain.analysis.energy import OMISSIONS, per_mac_energy
    from spikingbrain.analysis.estimators.horowitz import HorowitzConfig

    e = per_mac_energy(mean_spikes, t, None if exact else precision, group_size or None)
    constants = [c.to_dict() for c in HorowitzConfig.from_table(t).constants()]
    if as_json:
        extra = {"constants": constants} if show_constants else {}
        typer.echo(json.dumps(e.to_dict() | {"source": t.source, "group_size": group_size,
                                             "leaves_out": OMISSIONS} | extra, indent=2))
        return
    digits = 6 if exact else max(precision, 4)
    tab = Table(title=f"Energy per MAC ({t.name})", caption=t.source)
    for col in ("operation", "energy / MAC", "spiking total saves", "energy ratio"):
        tab.add_column(col, justify="right" if col != "operation" else "left")
    tab.add_row("FP16 MAC", f"{e.fp16_pj:.3f} pJ", _pct(e.reduction_vs_fp16),
                _ratio(e.energy_ratio_fp16_to_spiking))
    int8_label = "INT8 MAC" + (f" + epilogue ({e.epilogue_pj:.4f} pJ)" if e.epilogue_pj else "")
    tab.add_row(int8_label, f"{e.int8_total_pj:.4f} pJ", _pct(e.reduction_vs_int8),
                _ratio(e.energy_ratio_int8_to_spiking))
    tab.add_row(f"spiking adds: {mean_spikes:g} spikes x INT8 add ({t.int8_add:g} pJ)",
                f"{e.spiking_pj:.{digits}f} pJ", "-", "-")
    if e.epilogue_pj:
        tab.add_row(f"epilogue: 1/{group_size} float MAC ({t.epilogue_mac:g} pJ)",
                    f"{e.epilogue_pj:.4f} pJ", "-", "-")
    tab.add_row("spiking total", f"{e.spiking_total_pj:.{digits}f} pJ", "-", "1.00x")
    console.print(tab)
    adds_only = per_mac_energy(mean_spikes, t, None if exact else precision)
    console.print(
        f"Spiking adds alone (the report's figure): {adds_only.spiking_pj:.{digits}f} pJ per "
        f"MAC, {_pct(adds_only.reduction_vs_fp16)} below FP16 and "
        f"{_pct(adds_only.reduction_vs_int8)} below INT8.", highlight=False)
    if e.epilogue_pj:
        console.print(
            f"With the group-scale epilogue: {e.spiking_total_pj:.{digits}f} pJ per MAC, "
            f"{_pct(e.reduction_vs_fp16)} below FP16 and {_pct(e.reduction_vs_int8)} below "
            f"INT8 (which pays the same epilogue).", highlight=False)
    console.print("Left out: " + " ".join(OMISSIONS), style="dim", highlight=False)
    if show_constants:
        _print_table(console, "Constants (horowitz)", ["constant", "value", "unit", "source"],
                     [[c["name"], f"{c['value']:g}", c["unit"], c["source"]] for c in constants])
