"""The observer contract between modules that emit spikes and the analysis layer.

Every module of ours that turns activations into spike counts (the adaptive-threshold neuron,
``SpikingLinear``) derives from :class:`SpikeEmitter` and calls :meth:`SpikeEmitter.emit` with a
:class:`SpikeRecord` after computing its counts. Observers (for example the streaming monitor in
:mod:`spikingbrain.analysis`) subscribe with :meth:`SpikeEmitter.add_spike_observer`; with no
observer, ``emit`` costs one attribute check.

>>> import torch
>>> seen = []
>>> class Toy(SpikeEmitter):
...     def forward(self, c):
...         self.emit(SpikeRecord(counts=c, vth=None, scheme="ternary"))
...         return c
>>> toy = Toy()
>>> handle = toy.add_spike_observer(lambda module, rec: seen.append(rec.counts.tolist()))
>>> _ = toy(torch.tensor([1, -2]))
>>> handle.remove()
>>> _ = toy(torch.tensor([3]))
>>> seen
[[1, -2]]

A model tells observers which rows of its records are real tokens: inside
``token_rows(mask)`` every record whose leading shape has ``mask.numel()`` rows carries the
flattened ``mask`` as ``row_mask`` (padding and sink tokens are False); inside
``unobserved()`` nothing is emitted at all (a pass that belongs to no token, such as the
input-independent sink tokens of SpikingBrain-76B).

>>> seen.clear(); handle = toy.add_spike_observer(lambda m, rec: seen.append(rec.row_mask))
>>> with token_rows(torch.tensor([[True, False]])):
...     _ = toy(torch.tensor([[1, 2], [3, 4]]))
>>> with unobserved():
...     _ = toy(torch.tensor([5]))
>>> seen
[tensor([ True, False])]
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["SpikeRecord", "SpikeEmitter", "ObserverHandle", "current_token_rows", "is_observed",
           "token_rows", "token_rows_of", "unobserved"]

_ROWS: contextvars.ContextVar = contextvars.ContextVar("spikingbrain_token_rows", default=None)
_OFF: contextvars.ContextVar = contextvars.ContextVar("spikingbrain_unobserved", default=False)


@contextlib.contextmanager
def token_rows(mask: torch.Tensor | None) -> Iterator[None]:
    """Within the block, records with ``mask.numel()`` leading rows carry ``row_mask`` =
    ``mask`` flattened (True = a real token). ``None`` clears an outer mask (for example for
    MoE experts, whose rows are a gathered subset of the tokens)."""
    flat = None if mask is None else mask.detach().reshape(-1).bool()
    token = _ROWS.set(flat)
    try:
        yield
    finally:
        _ROWS.reset(token)


def is_observed() -> bool:
    """False inside :func:`unobserved` (a pass that belongs to no token)."""
    return not _OFF.get()


def token_rows_of(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x [..., C]`` that are real tokens under the current :func:`token_rows`
    mask, as ``[n, C]`` (all rows when no mask applies to ``x``'s shape)."""
    flat = x.reshape(-1, x.shape[-1])
    rows = _ROWS.get()
    if rows is not None and rows.numel() == flat.shape[0]:
        return flat[rows.to(flat.device)]
    return flat


def current_token_rows() -> torch.Tensor | None:
    """The flattened row mask set by the innermost :func:`token_rows` (None: none set)."""
    return _ROWS.get()


@contextlib.contextmanager
def unobserved() -> Iterator[None]:
    """Within the block, spiking modules emit nothing (a pass that belongs to no token)."""
    token = _OFF.set(True)
    try:
        yield
    finally:
        _OFF.reset(token)


@dataclass
class SpikeRecord:
    """What a spiking module reports for one forward call.

    Attributes:
        counts: integer-valued spike counts ``[..., channels]`` (the last dimension is the
            channel/hidden dimension; any leading dimensions are tokens).
        vth: per-token threshold ``[..., 1]`` (``None`` where the module has none).
        scheme: the coding scheme the counts are expanded with.
        T: the configured window, or ``None`` for the minimal window of each call.
        n_saturated: how many counts were clamped by ``max_count`` (0-dim tensor or int).
        max_count: the saturation limit, or ``None``.
        row_mask: ``[rows]`` bool, False for rows that are not real tokens (padding, sink
            tokens), set from :func:`token_rows`; ``None``: every row is a token.
    """

    counts: torch.Tensor
    vth: torch.Tensor | None
    scheme: str
    T: int | None = None
    n_saturated: torch.Tensor | int = 0
    max_count: int | None = None
    row_mask: torch.Tensor | None = None


Observer = Callable[[nn.Module, SpikeRecord], None]


class ObserverHandle:
    """Returned by :meth:`SpikeEmitter.add_spike_observer`; ``remove()`` unsubscribes."""

    def __init__(self, observers: list[Observer], fn: Observer) -> None:
        self._observers, self._fn = observers, fn

    def remove(self) -> None:
        if self._fn in self._observers:
            self._observers.remove(self._fn)


class SpikeEmitter(nn.Module):
    """Base class for modules that emit spike counts to observers."""

    def __init__(self) -> None:
        super().__init__()
        self._spike_observers: list[Observer] = []

    def add_spike_observer(self, fn: Observer) -> ObserverHandle:
        """Call ``fn(module, record)`` after every forward; returns a removable handle."""
        self._spike_observers.append(fn)
        return ObserverHandle(self._spike_observers, fn)

    def emit(self, record: SpikeRecord) -> None:
        """Hand ``record`` to every observer (nothing happens without observers)."""
        if self._spike_observers and not _OFF.get():
            rows = _ROWS.get()
            if rows is not None and record.row_mask is None:
                n = record.counts.shape[:-1].numel() if record.counts.dim() else 1
                if n == rows.numel():
                    record.row_mask = rows.to(record.counts.device)
            for fn in list(self._spike_observers):
                fn(self, record)
