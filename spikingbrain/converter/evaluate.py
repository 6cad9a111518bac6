"""Fidelity of the conversion on the embedded real model (all-MiniLM-L6-v2).

``python -m spikingbrain.converter.evaluate [--n 256] [--ks 2,3,4]`` prints, for each k, the
mean (and minimum) cosine similarity between mean-pooled sentence embeddings of the converted
and the float model on real standard-library sentences, and the weight memory against fp16.
:func:`demo_summary` is the short version used by ``make demo``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from spikingbrain.converter.config import SpikeConfig
from spikingbrain.converter.convert import convert, memory_summary

__all__ = ["SimilarityResult", "demo_summary", "embedding_similarity", "main", "similarity_sweep"]


@dataclass
class SimilarityResult:
    """Similarity of converted vs float sentence embeddings for one config."""

    k: float
    scheme: str
    granularity: str
    n_sentences: int
    mean_cosine: float
    min_cosine: float
    n_layers: int
    memory_ratio_vs_fp16: float
    seconds: float


def embedding_similarity(config: SpikeConfig, model: Any, tokenizer: Any, sentences: list[str],
                         reference: torch.Tensor, batch_size: int = 64) -> SimilarityResult:
    """Convert a copy of ``model`` with ``config`` and compare its embeddings to ``reference``."""
    from spikingbrain.data import embed

    t0 = time.perf_counter()
    conv = convert(copy.deepcopy(model), config)
    emb = embed(conv, tokenizer, sentences, batch_size=batch_size)
    cos = torch.nn.functional.cosine_similarity(emb, reference, dim=-1)
    mem = memory_summary(conv)
    return SimilarityResult(config.k, config.scheme, config.granularity, len(sentences),
                            float(cos.mean()), float(cos.min()), mem.n_layers, mem.ratio,
                            time.perf_counter() - t0)


def similarity_sweep(ks: tuple[float, ...] = (2.0, 3.0, 4.0), n: int = 256,
                     scheme: str = "bitwise_bidirectional", granularity: str = "channel",
                     batch_size: int = 64, model: Any = None, tokenizer: Any = None,
                     **config: Any) -> list[SimilarityResult]:
    """:func:`embedding_similarity` of MiniLM on ``n`` stdlib sentences for each ``k``.

    ``model``/``tokenizer``: an already loaded float MiniLM (it is not modified).
    """
    from spikingbrain.data import embed, load_minilm, stdlib_sentences

    model, tok = (model, tokenizer) if model is not None else load_minilm()
    sents = stdlib_sentences(n)
    ref = embed(model, tok, sents, batch_size=batch_size)
    return [embedding_similarity(SpikeConfig(k=k, scheme=scheme, granularity=granularity,
                                             **config), model, tok, sents, ref, batch_size)
            for k in ks]


def demo_summary(n: int = 64, k: float = 3.0, show: bool = True, model: Any = None,
                 tokenizer: Any = None) -> dict[str, Any]:
    """Convert the embedded MiniLM (k, bitwise_bidirectional, INT8 per channel) and report
    cosine similarity to the float model on ``n`` real sentences and weight memory.

    Returns a dict with ``mean_cosine``, ``min_cosine``, ``memory_ratio_vs_fp16``,
    ``converted_bytes``, ``fp16_bytes``, ``n_layers``, ``seconds``; prints a rich table when
    ``show``. ``model``/``tokenizer``: an already loaded float MiniLM (not modified).
    """
    res = similarity_sweep(ks=(k,), n=n, model=model, tokenizer=tokenizer)[0]
    conv_info = asdict(res)
    if show:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"W8ASpike conversion of all-MiniLM-L6-v2 ({n} real sentences)")
        t.add_column("quantity")
        t.add_column("value", justify="right")
        t.add_row("layers converted", str(res.n_layers))
        t.add_row("k / scheme / weights", f"{res.k:g} / {res.scheme} / INT8 per channel")
        t.add_row("mean cosine vs float", f"{res.mean_cosine:.4f}")
        t.add_row("min cosine vs float", f"{res.min_cosine:.4f}")
        t.add_row("weight memory vs fp16", f"{res.memory_ratio_vs_fp16:.3f}x")
        Console().print(t)
    return conv_info


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: print the k sweep as a table."""
    import argparse

    from rich.console import Console
    from rich.table import Table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256, help="number of real sentences (default 256)")
    p.add_argument("--ks", default="2,3,4", help="comma-separated k values (default 2,3,4)")
    p.add_argument("--scheme", default="bitwise_bidirectional")
    p.add_argument("--granularity", default="channel", choices=["channel", "group"])
    p.add_argument("--group-size", type=int, default=128)
    a = p.parse_args(argv)
    ks = tuple(float(k) for k in a.ks.split(","))
    results = similarity_sweep(ks, a.n, a.scheme, a.granularity, group_size=a.group_size)
    t = Table(title=f"all-MiniLM-L6-v2, {a.n} stdlib sentences, {a.scheme}, INT8 {a.granularity}")
    for col in ("k", "mean cosine", "min cosine", "layers", "memory vs fp16", "seconds"):
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(f"{r.k:g}", f"{r.mean_cosine:.4f}", f"{r.min_cosine:.4f}", str(r.n_layers),
                  f"{r.memory_ratio_vs_fp16:.3f}x", f"{r.seconds:.1f}")
    Console().print(t)


if __name__ == "__main__":  # pragma: no cover
    main()
