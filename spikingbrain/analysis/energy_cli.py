"""The ``spikingbrain energy`` command: energy per MAC of FP16, INT8 and spiking layers.

Heavy imports stay inside the command body so that ``spikingbrain --help`` stays instant.
"""

from __future__ import annotations

import json
import math

import typer

from spikingbrain.utils.cli_checks import UsageError, check_finite, usage_errors

TABLE_HELP = ("Energy table: 'horowitz-45nm', 'spikingbrain-report' (alias 'report'), or a "
              "JSON/TOML file with name, source, fp16_mac, int8_mac, int8_add in pJ.")


def _ratio(v: float) -> str:
    return f"{v:.2f}x" if math.isfinite(v) else "n/a (no spiking energy)"


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def register_energy(app: typer.Typer) -> None:
    """Add ``energy`` to ``app``."""

    @app.command("energy")
    def energy(
        mean_spikes: float = typer.Option(..., "--mean-spikes",
                                          help="Mean spikes per input channel, a finite number "
                                               ">= 0 (e.g. 1.13 for SpikingBrain-7B at k=3)."),
        table: str = typer.Option("spikingbrain-report", "--table", help=TABLE_HELP),
        group_size: int = typer.Option(128, "--group-size", min=0,
                                       help="Input columns per INT8 weight scale: the epilogue "
                                            "takes one float multiply-add per group and output "
                                            "(0: leave it out, the report's figure)."),
        precision: int = typer.Option(3, "--precision", min=0, max=12,
                                      help="Decimals of pJ the spiking add energy is rounded to "
                                           "before ratios are taken (the report rounds to 3)."),
        exact: bool = typer.Option(False, "--exact", help="Do not round before taking ratios."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Energy per MAC of FP16, INT8 and event-driven spiking layers.

        Spiking adds: mean spikes x INT8 add (the SpikingBrain report's figure: --mean-spikes
        1.13 gives 0.034 pJ per MAC, 97.7 % below an FP16 MAC and 85.2 % below an INT8 MAC).
        Epilogue: the group-scale float multiply-adds, 1/group_size per MAC, counted for the
        INT8 and the spiking layer alike (FP32 MAC of the table, else its FP16 MAC). The
        ratios are energy ratios, not speed-ups.
        """
        from rich.console import Console
        from rich.table import Table

        from spikingbrain.analysis.energy import OMISSIONS, load_table, per_mac_energy

        with usage_errors():
            check_finite(mean_spikes, "--mean-spikes", minimum=0.0)
            try:
                t = load_table(table)
            except ValueError as err:
                raise UsageError(f"--table: {err}") from None
        e = per_mac_energy(mean_spikes, t, None if exact else precision, group_size or None)
        if as_json:
            typer.echo(json.dumps(e.to_dict() | {"source": t.source, "group_size": group_size,
                                                 "leaves_out": OMISSIONS}, indent=2))
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
        console = Console(width=max(Console().width, 110))
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
