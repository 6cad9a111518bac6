"""Analysis spread over processes with ``torch.distributed`` (``torchrun``), one exact report.

Under ``torchrun --nproc-per-node N spikingbrain analyze ...`` (or ``spikingbrain analyze
--distributed N ...``, which launches that) every rank loads the model and runs its share of
the text; the result is the report a single process writes over the same text, bit for bit:

- the text is sharded by **whole batches** (:func:`shard`): rank ``r`` runs batches
  ``r, r + N, r + 2N, ...`` of the single-process batching, so every forward call (and its
  per-call threshold and window) is one a single process makes;
- the monitor's integer accumulators are all-reduced (:meth:`SpikeMonitor.stats`), token
  counts summed;
- the sentence embeddings of the spiking and the float model and the raster sample are
  gathered to rank 0 and put back in single-process order (:func:`unshard`), so fidelity
  figures are computed over the same tensors in the same order;
- rank 0 alone builds and writes the report, and only after every rank reported success
  (:func:`all_ok`): a failure on any rank leaves no report (and the write itself is atomic).

CPU ranks use the ``gloo`` backend; CUDA ranks ``nccl``, rank ``r`` on ``cuda:LOCAL_RANK``
(:func:`session`).

>>> shard(list("abcdefg"), batch_size=2, rank=1, world=2)     # batches ab|cd|ef|g
['c', 'd', 'g']
>>> import torch
>>> parts = [torch.tensor([0, 1, 4, 5]), torch.tensor([2, 3, 6])]
>>> unshard(parts, batch_size=2).tolist()
[0, 1, 2, 3, 4, 5, 6]
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = [
    "all_ok",
    "analyze_model",
    "command_args",
    "is_lead",
    "launch",
    "launched",
    "rank_world",
    "session",
    "shard",
    "shard_size",
    "unshard",
]

T = TypeVar("T")


# ---- pure helpers -------------------------------------------------------------------------
def _check_rank(batch_size: int, rank: int, world: int) -> None:
    for name, v in (("batch_size", batch_size), ("world", world)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world:
        raise ValueError(f"rank must be an int in [0, {world}), got {rank!r}")


def shard(items: Sequence[T], batch_size: int, rank: int, world: int) -> list[T]:
    """The items of ``rank``: batches ``rank, rank + world, ...`` of ``items`` cut into
    ``batch_size`` pieces, concatenated (cut again into ``batch_size`` pieces they are those
    batches, since only the last batch of all can be short).

    >>> shard(list(range(7)), 2, 0, 2), shard(list(range(7)), 2, 1, 2)
    ([0, 1, 4, 5], [2, 3, 6])
    >>> shard([1, 2], 4, 1, 3)       # more ranks than batches: nothing to do
    []
    """
    _check_rank(batch_size, rank, world)
    out: list[T] = []
    for start in range(rank * batch_size, len(items), world * batch_size):
        out.extend(items[start : start + batch_size])
    return out


def shard_size(n: int, batch_size: int, rank: int | None = None, world: int | None = None) -> int:
    """``len(shard(range(n), batch_size, rank, world))``; rank and world default to this
    process's (:func:`rank_world`).

    >>> shard_size(7, 2, 1, 2)
    3
    """
    r, w = rank_world()
    rank, world = (r if rank is None else rank), (w if world is None else world)
    return len(shard(range(n), batch_size, rank, world))


def unshard(parts: Sequence[torch.Tensor], batch_size: int) -> torch.Tensor:
    """Inverse of :func:`shard` on tensors: ``parts[r]`` holds rank ``r``'s rows (``[n_r,
    ...]``, batches in order); returns all rows ``[sum n_r, ...]`` in the original order.

    >>> unshard([torch.tensor([[0], [1], [4]]), torch.tensor([[2], [3]])], 2).flatten().tolist()
    [0, 1, 2, 3, 4]
    """
    if not parts:
        raise ValueError("unshard needs the rows of at least one rank")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    chunks = [list(p.split(batch_size)) for p in parts]
    out = []
    for j in range(max(len(c) for c in chunks)):
        out.extend(c[j] for c in chunks if j < len(c))
    return torch.cat(out) if out else parts[0][:0]


# ---- process group ------------------------------------------------------------------------
def launched() -> bool:
    """True in a process started by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` are set)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def rank_world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised default process group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_lead() -> bool:
    """True on rank 0 (and in a single process): the one that writes."""
    return rank_world()[0] == 0


@contextlib.contextmanager
def session(device: str | torch.device | None = None) -> Iterator[torch.device]:
    """Join the ``torchrun`` process group for the block (a no-op outside ``torchrun``).

    ``device``: where this process computes (None: CPU). CPU uses ``gloo``; a CUDA device uses
    ``nccl`` with this rank on ``cuda:LOCAL_RANK`` (set as the current device, so ``"cuda"``
    means that card). Yields the device of this rank. The group is destroyed on exit.
    """
    import torch.distributed as dist

    dev = torch.device(device if device is not None else "cpu")
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield dev
        return
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run one process")
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
        backend = "nccl"
    elif dev.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"distributed analysis runs on cpu (gloo) or cuda (nccl), not {dev}")
    dist.init_process_group(backend)
    try:
        yield dev
    finally:
        dist.destroy_process_group()


def _flag_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_ok(ok: bool) -> bool:
    """True when ``ok`` holds on every rank (an ``all_reduce`` MIN; every rank must call)."""
    import torch.distributed as dist

    if rank_world()[1] == 1:
        return bool(ok)
    flag = torch.tensor([1 if ok else 0], dtype=torch.int64, device=_flag_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _sum_int(n: int) -> int:
    import torch.distributed as dist

    t = torch.tensor([n], dtype=torch.int64, device=_flag_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item())


def _gather(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` on rank 0 (list in rank order), None elsewhere."""
    import torch.distributed as dist

    rank, world = rank_world()
    out: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


# ---- the analysis -------------------------------------------------------------------------
def analyze_model(model: nn.Module, tokenizer: Any, sentences: Sequence[str], *,
                  float_model: nn.Module | None = None, batch_size: int = 32,
                  max_length: int = 128, raster_layer: str | None = None,
                  on_batch: Callable[[int], None] | None = None
                  ) -> tuple[Any, dict, dict, dict]:
    """:func:`spikingbrain.analysis.pipeline.analyze_model` over the ranks of the process
    group: ``sentences`` is the whole text (the same on every rank), each rank runs its
    :func:`shard`. Every rank gets the global statistics; rank 0 also gets the raster sample,
    the fidelity figures and the data description a single process would compute (other ranks
    get empty ones). Raises on every rank when any rank failed (no rank is left waiting).
    """
    from spikingbrain.analysis.monitor import SpikeMonitor
    from spikingbrain.analysis.pipeline import _cosine, run_text

    rank, world = rank_world()
    mon0 = SpikeMonitor(model)
    if not mon0.layer_names:
        raise ValueError("the model has no spiking layer: convert it first "
                         "(spikingbrain.converter.convert)")
    layer = raster_layer or mon0.layer_names[0]
    mine = shard(sentences, batch_size, rank, world)
    mon = SpikeMonitor(model, sample={layer: (12, 48)})
    first: list[int] = []  # local batch index of the sample (the first call of the layer)
    calls = [0]

    def tick(n: int) -> None:
        if not first and mon.samples():
            first.append(calls[0])
        calls[0] += 1
        if on_batch is not None:
            on_batch(n)

    error: BaseException | None = None
    emb = ref = None
    n_tok = 0
    mon.attach()
    try:
        if mine:
            emb, n_tok = run_text(model, tokenizer, mine, mon, batch_size, max_length, tick)
            if float_model is not None:
                ref, _ = run_text(float_model, tokenizer, mine, None, batch_size, max_length)
    except Exception as err:  # reported to every rank below, then re-raised here
        error = err
    finally:
        mon.detach()
    if not all_ok(error is None):
        if error is not None:
            raise error
        raise RuntimeError("another rank failed during the analysis; no report is written")
    n_tok = _sum_int(n_tok)
    stats = mon.stats()  # all-reduced
    sample = mon.samples().get(layer)
    origin = first[0] * world + rank if (first and sample is not None) else None
    parts = _gather((origin, sample, None if emb is None else emb.cpu(),
                     None if ref is None else ref.cpu()))
    if parts is None:
        return stats, {}, {}, {}
    seen = [(o, s) for o, s, _, _ in parts if o is not None]
    samples = {layer: min(seen, key=lambda x: x[0])[1]} if seen else {}
    fidelity = {}
    if float_model is not None and sentences:
        dev = next(model.parameters()).device
        a = unshard([p[2] for p in parts if p[2] is not None], batch_size).to(dev)
        b = unshard([p[3] for p in parts if p[3] is not None], batch_size).to(dev)
        fidelity = _cosine(a, b)
    data = {"sentences": len(sentences), "tokens": n_tok, "max_length": max_length}
    return stats, samples, fidelity, data


# ---- launching ----------------------------------------------------------------------------
def command_args(ctx: Any, drop: Sequence[str] = ("distributed",)) -> list[str]:
    """The command line of a click/typer command as given (``ctx``: its context): the command
    name, its arguments and every option not left at its default, ``drop`` left out.

    Options are written in their first spelling (``--max-length 64``), flags as the flag
    itself (or its ``--no-`` form).
    """
    # duck-typed: typer may carry its own copy of click
    out = [ctx.info_name]
    for p in ctx.command.params:
        if p.name in drop or p.name not in ctx.params:
            continue
        value = ctx.params[p.name]
        if p.param_type_name == "argument":
            if value is not None:
                out += [str(v) for v in value] if p.multiple else [str(value)]
            continue
        source = ctx.get_parameter_source(p.name)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        if getattr(p, "is_flag", False) and not getattr(p, "count", False):
            if value:
                out.append(p.opts[0])
            elif p.secondary_opts:
                out.append(p.secondary_opts[0])
            continue
        for v in (value if p.multiple else [value]):
            if v is not None:
                out += [p.opts[0], str(v)]
    return out


def launch(nproc: int, args: Sequence[str], module: str = "spikingbrain.cli",
           env: dict[str, str] | None = None) -> int:
    """Run ``python -m <module> <args>`` in ``nproc`` processes with ``torchrun --standalone``
    (``torch.distributed.run``) and wait; returns its exit code (non-zero when any rank
    failed)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"the number of processes must be an int >= 1, got {nproc!r}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", module, *args]
    return subprocess.run(cmd, env=env).returncode
