"""Argument checks and model loading shared by ``export nir``, ``export lava`` and
``simulate lava``.

Every check here runs before a model is loaded and raises
:class:`~spikingbrain.utils.cli_checks.UsageError` (one line, exit code 2 through
``with_usage_errors``).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "bundle.npz").write_bytes(b"")
>>> bundle_arg(d / "bundle").name
'bundle.npz'
>>> results_arg(None, d / "bundle.npz").name
'bundle.results.npz'
>>> try:
...     results_arg(d / "bundle.npz", d / "bundle.npz")
... except UsageError as err:
...     print(str(err)[-40:])
would destroy it; give another file name
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from spikingbrain.utils.cli_checks import EMBEDDED, UsageError, check_finite, check_out_file

__all__ = ["EMBEDDED", "GROUP_SIZE_OPTION", "K_OPTION", "MODEL_DIR_ARGUMENT", "SCHEME_OPTION",
           "bundle_arg", "load_model_dir", "model_dir_arg", "out_file_arg",
           "results_arg", "spike_config_arg"]

#: the shared MODEL_DIR argument and conversion options of ``export nir`` and ``export lava``
MODEL_DIR_ARGUMENT = typer.Argument(
    ..., help=f"a converted model folder (spikingbrain convert), a float Hugging Face model folder "
              f"(converted on the fly with --scheme/--k/--group-size; the command says so), or "
              f"'{EMBEDDED}' for the embedded all-MiniLM-L6-v2 (converted on the fly); a folder "
              f"must hold the model's tokenizer")
SCHEME_OPTION = typer.Option("bitwise_bidirectional",
                             help="spike coding scheme for on-the-fly conversion")
K_OPTION = typer.Option(3.0, help="threshold divisor k (> 0) for on-the-fly conversion")
GROUP_SIZE_OPTION = typer.Option(128, help="weight group size (>= 1) for on-the-fly conversion")


def spike_config_arg(scheme: str, k: float, group_size: int) -> Any:
    """The SpikeConfig for on-the-fly conversion; a bad value raises UsageError."""
    from spikingbrain.converter import SpikeConfig

    check_finite(k, "--k", positive=True)
    if group_size < 1:
        raise UsageError(f"--group-size must be >= 1, got {group_size}")
    try:
        return SpikeConfig(scheme=scheme, k=k, group_size=group_size)
    except (ValueError, TypeError) as err:
        raise UsageError(f"bad conversion option: {err}") from None


def model_dir_arg(model_dir: str) -> str:
    """``minilm``, a converted model folder or a Hugging Face model folder with its tokenizer
    (checked by its files, nothing loaded: :mod:`spikingbrain.converter.folder`)."""
    from spikingbrain.converter.folder import folder_kind, has_tokenizer, load_tokenizer

    if folder_kind(model_dir) != "embedded" and not has_tokenizer(model_dir):
        load_tokenizer(model_dir)  # raises the shared "no tokenizer files" error
    return model_dir


def load_model_dir(model_dir: str, cfg: Any, placement: Any = None) -> tuple[Any, Any, str]:
    """``(model, tokenizer, how)`` through the shared loader
    (:func:`spikingbrain.converter.folder.load_model_folder`): a converted folder loads as
    saved; a Hugging Face float folder and ``minilm`` are converted on the fly with ``cfg``
    (``how`` says which). No fall-back to another model's tokenizer. ``placement``
    (:class:`~spikingbrain.utils.placement.Placement`, default the CPU): where the model runs;
    ``how`` names it."""
    from spikingbrain.converter.folder import load_model_folder

    loaded = load_model_folder(model_dir, cfg, placement=placement)
    where = f" on {placement.describe()}" if placement is not None else ""
    return loaded.model, loaded.tokenizer, loaded.description + where


def out_file_arg(path: str | os.PathLike, suffix: str, option: str = "--out") -> Path:
    """An output file: a directory is refused (before ``suffix`` is appended when missing)."""
    if Path(path).is_dir():
        raise UsageError(f"{option} {path} is a directory; give a file name (e.g. "
                         f"{Path(path) / ('out' + suffix)})")
    return check_out_file(path, option, suffix=suffix)


def bundle_arg(bundle: str | os.PathLike) -> Path:
    """An existing bundle file; ``bundle`` also means ``bundle.npz`` (what ``export lava --out
    bundle`` writes)."""
    p = Path(bundle)
    if not p.exists() and p.suffix != ".npz" and p.with_name(p.name + ".npz").is_file():
        p = p.with_name(p.name + ".npz")
    if p.is_dir():
        raise UsageError(f"BUNDLE {p} is a directory; give the .npz file written by "
                         f"'spikingbrain export lava'")
    if not p.is_file():
        raise UsageError(f"BUNDLE {p}: no such file; write one with 'spikingbrain export lava'")
    return p


def results_arg(out: str | os.PathLike | None, bundle: Path) -> Path:
    """The results file: ``--out`` (``.npz`` appended when missing) or
    ``<bundle stem>.results.npz``; never the bundle itself, never a directory."""
    p = bundle.with_name(bundle.stem + ".results.npz") if out is None else Path(out)
    p = out_file_arg(p, ".npz")
    if p.exists() and p.resolve() == bundle.resolve():
        raise UsageError(f"--out {p} is the bundle itself; writing results there would destroy "
                         f"it; give another file name")
    return p
