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

from spikingbrain.utils.cli_checks import (
    UsageError,
    check_existing_dir,
    check_finite,
    check_out_file,
)

__all__ = ["EMBEDDED", "GROUP_SIZE_OPTION", "K_OPTION", "MODEL_DIR_ARGUMENT", "SCHEME_OPTION",
           "bundle_arg", "load_model_dir", "model_dir_arg", "out_file_arg",
           "results_arg", "spike_config_arg"]

#: the MODEL_DIR name of the embedded all-MiniLM-L6-v2 (converted on the fly)
EMBEDDED = "minilm"
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
#: files of which a model folder must hold one: without them transformers builds an empty
#: tokenizer (every word [UNK]) instead of failing
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                   "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")


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
    """``minilm``, a converted model folder or a Hugging Face model folder (checked by its
    files, nothing loaded)."""
    from spikingbrain.converter.serialize import META_FILE

    if model_dir == EMBEDDED:
        return model_dir
    folder = check_existing_dir(model_dir, "MODEL_DIR")
    if not (folder / META_FILE).is_file() and not (folder / "config.json").is_file():
        raise UsageError(f"MODEL_DIR {folder} holds neither a converted model ({META_FILE}) nor a "
                         f"Hugging Face model (config.json); pass such a folder or '{EMBEDDED}'")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise UsageError(f"MODEL_DIR {folder} has no tokenizer files ({', '.join(TOKENIZER_FILES)});"
                         f" save the model's tokenizer there (tokenizer.save_pretrained)")
    return model_dir


def load_model_dir(model_dir: str, cfg: Any) -> tuple[Any, Any, str]:
    """``(model, tokenizer, how)`` for a MODEL_DIR that passed :func:`model_dir_arg`.

    A converted folder loads as saved; a Hugging Face float folder and ``minilm`` are converted
    on the fly with ``cfg`` (``how`` says which). A tokenizer that does not load is an error
    (no fall-back to another model's tokenizer).
    """
    from spikingbrain.converter import convert, load_converted
    from spikingbrain.converter.serialize import META_FILE
    from spikingbrain.data import load_minilm
    from spikingbrain.utils.optional import require

    short = f"scheme={cfg.scheme}, k={cfg.k:g}, group_size={cfg.group_size}"
    if model_dir == EMBEDDED:
        model, tok = load_minilm()
        return convert(model, cfg), tok, f"embedded all-MiniLM-L6-v2, converted on the fly ({short})"
    folder = Path(model_dir)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers = require("transformers", extra="hf", purpose="loading Hugging Face models")
    try:
        tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"MODEL_DIR {folder} has no usable tokenizer ({_first_line(err)}); save "
                         f"the model's tokenizer there (tokenizer.save_pretrained)") from None
    try:
        if (folder / META_FILE).is_file():
            model, how = load_converted(folder).eval(), "converted model folder"
        else:
            model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
            model = convert(model, cfg)
            how = f"float Hugging Face folder, converted on the fly ({short})"
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"MODEL_DIR {folder} does not load: {_first_line(err)}") from None
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(vocab, int) and len(tok) > vocab:
        raise UsageError(f"MODEL_DIR {folder}: the tokenizer has {len(tok)} tokens but the model "
                         f"only {vocab}; save the model's own tokenizer there")
    return model, tok, how


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


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
