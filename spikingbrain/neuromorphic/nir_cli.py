"""CLI for NIR: ``spikingbrain export nir MODEL_DIR --layers PATTERN --tokens N --out OUT``.

Registered from :mod:`spikingbrain.neuromorphic.commands` (``_register_nir``); heavy imports stay
inside the command body so that ``spikingbrain --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from spikingbrain.neuromorphic.cli_args import (
    GROUP_SIZE_OPTION,
    K_OPTION,
    MODEL_DIR_ARGUMENT,
    SCHEME_OPTION,
)
from spikingbrain.utils.cli_checks import fail, with_usage_errors
from spikingbrain.utils.placement import (
    DEVICE_MAP_OPTION,
    DEVICE_OPTION,
    DTYPE_OPTION,
    Placement,
)

__all__ = ["record_on_device", "register_export_nir", "token_batch"]


def token_batch(tok: Any, n_tokens: int) -> dict[str, Any]:
    """One sequence of exactly ``n_tokens`` real tokens (standard-library sentences)."""
    from spikingbrain.data import stdlib_sentences

    if n_tokens < 1:
        raise ValueError(f"--tokens must be >= 1, got {n_tokens}")
    n_sent = 8
    while True:
        text = " ".join(stdlib_sentences(n_sent))
        batch = tok(text, truncation=True, max_length=n_tokens, return_tensors="pt")
        if batch["input_ids"].shape[1] >= n_tokens or n_sent >= 4096:
            return dict(batch)
        n_sent *= 4


def record_on_device(chosen: dict[str, Any], run: Any) -> Any:
    """Run the model once where it is placed, keeping each chosen layer's first real token rows
    (padding and sink rows dropped, as :func:`~.nir_events.record_nir_data` does), then bring
    the layers and those rows back to the CPU and record their NIR data there (in place:
    ``chosen``'s layers end on the CPU). Returns ``nir.NIRGraphData``."""
    from spikingbrain.neuromorphic.nir_events import capture_layer_inputs, layer_nir_data
    from spikingbrain.utils.optional import require
    from spikingbrain.utils.placement import modules_to_cpu

    nir = require("nir", extra="nir", purpose="NIR export")
    seen = capture_layer_inputs(chosen, run)
    modules_to_cpu(chosen)
    nodes: dict[str, Any] = {}
    for name, layer in chosen.items():
        nodes.update(layer_nir_data(name, layer, seen[name].cpu()))
    return nir.NIRGraphData(nodes)


def _check_args(model_dir: str, layers: str, out: Path, scheme: str, k: float,
                group_size: int) -> tuple[Path, Any]:
    """Every argument checked before a model loads: ``(graph path, SpikeConfig)``."""
    from spikingbrain.neuromorphic.cli_args import model_dir_arg, out_file_arg, spike_config_arg
    from spikingbrain.neuromorphic.nir_export import data_path

    if not layers.strip(" ,"):
        fail("--layers is empty; give a glob such as 'encoder.layer.0.*'")
    out = out_file_arg(out, ".nir")
    out_file_arg(data_path(out), ".nir", "--out (its data file)")
    cfg = spike_config_arg(scheme, k, group_size)
    model_dir_arg(model_dir)
    return out, cfg


def _print_summary(console: Any, chosen: dict, data: Any) -> None:
    """One table row per exported layer: shape, coding, token rows seen, input events."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("layer", overflow="fold")
    for col in ("in->out", "coding", "tokens", "events", "per token·ch"):
        table.add_column(col, justify="right", overflow="fold")
    for name, m in chosen.items():
        ev = data.nodes[f"{name}.regroup"].observables["spikes"]
        n_ev = int((ev.idx >= 0).sum())
        # the token rows this layer saw (an MoE expert sees the tokens routed to it)
        rows = int(data.nodes[f"{name}.threshold"].observables["vth"].data.shape[0])
        c = m.config
        coding = f"{c.scheme} k={c.k:g} T={'min' if c.T is None else c.T}"
        table.add_row(name, f"{m.in_features}->{m.out_features}", coding, f"{rows:,}",
                      f"{n_ev:,}", f"{n_ev / max(1, rows * m.in_features):.3f}")
    console.print(table)


def register_export_nir(export_app: typer.Typer) -> None:
    """Add ``nir`` to the ``export`` group."""

    @export_app.command("nir")
    @with_usage_errors
    def export_nir_cmd(
        model_dir: str = MODEL_DIR_ARGUMENT,
        layers: str = typer.Option(
            "encoder.layer.0.intermediate.dense", "--layers",
            help="fnmatch pattern over dotted layer names, e.g. 'encoder.layer.0.*' "
                 "(comma-separated patterns allowed)"),
        tokens: int = typer.Option(
            8, "--tokens",
            help="real tokens (standard-library sentences) run through the model; each layer's "
                 "thresholds, input spike events and outputs are recorded as NIR data"),
        out: Path = typer.Option("spiking.nir", "--out",  # noqa: B008
                                 help="graph file (.nir appended when missing); the recorded data "
                                      "go to <stem>.data.nir (both written, or neither)"),
        chain: bool = typer.Option(
            False, "--chain/--no-chain",
            help="connect the matched layers in order as one chain (shapes must chain and "
                 "each layer must take its input from the previous one in the model's data "
                 "flow, so query/key/value are refused; the model's own operations between "
                 "them, such as norms, activations and residuals, are not exported); default: independent layers, each with its "
                 "own input and output node. Recorded data always come from the model's run"),
        scheme: str = SCHEME_OPTION,
        k: float = K_OPTION,
        group_size: int = GROUP_SIZE_OPTION,
        device: str = DEVICE_OPTION,
        dtype: str = DTYPE_OPTION,
        device_map: str | None = DEVICE_MAP_OPTION,
    ) -> None:
        """Export converted spiking layers to a NIR graph (.nir, HDF5).

        Int8 weight codes, per-group scales and biases are stored exactly.
        The adaptive threshold and the spike coding are Scale / I / LI nodes
        with their rule in the node metadata (see docs/nir.md).
        Recorded thresholds, spike events and outputs of --tokens real
        tokens go to <stem>.data.nir. Read back in Python with
        spikingbrain.neuromorphic.nir_import.from_nir / read_nir_data.
        The model runs on --device (--dtype, --device-map); the selected layers and their
        recorded inputs come back to the CPU, where the NIR data are computed and written.
        """
        from rich.console import Console

        from spikingbrain.neuromorphic.cli_args import load_model_dir
        from spikingbrain.neuromorphic.layer_select import check_chain, select_layers
        from spikingbrain.neuromorphic.nir_export import layers_to_nir, write_nir
        from spikingbrain.utils.placement import input_device, to_device

        console = Console()
        if tokens < 1:
            fail(f"--tokens must be >= 1, got {tokens}")
        out, cfg = _check_args(model_dir, layers, out, scheme, k, group_size)
        placement = Placement(device, dtype, device_map)
        with console.status(f"loading the model ({placement.describe()})"):
            model, tok, how = load_model_dir(model_dir, cfg, placement)
        try:
            chosen = select_layers(model, layers)
            batch = to_device(token_batch(tok, tokens), input_device(model))
            if chain:
                check_chain(model, chosen, lambda: model(**batch))
            with console.status(f"running {tokens} tokens"):
                data = record_on_device(chosen, lambda: model(**batch))
            graph = layers_to_nir(chosen, chain=chain)
            files = write_nir(graph, out, data)
        except (ValueError, TypeError) as err:
            fail(str(err))
        console.print(f"[bold]NIR export[/bold] of {model_dir}: {how}")
        _print_summary(console, chosen, data)
        console.print(f"{len(graph.nodes)} nodes, {len(graph.edges)} edges, "
                      f"{'chained' if chain else 'independent'} layers, "
                      f"{batch['input_ids'].shape[1]} tokens run (padding and sink tokens are "
                      f"never recorded)")
        for f in files:
            console.print(f"wrote {f} ({f.stat().st_size / 1024:.1f} KiB)")
