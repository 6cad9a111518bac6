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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["SpikeRecord", "SpikeEmitter", "ObserverHandle"]


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
    """

    counts: torch.Tensor
    vth: torch.Tensor | None
    scheme: str
    T: int | None = None
    n_saturated: torch.Tensor | int = 0
    max_count: int | None = None


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
        if self._spike_observers:
            for fn in list(self._spike_observers):
                fn(self, record)
