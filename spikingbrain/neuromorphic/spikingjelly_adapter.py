"""Our IF / LIF / ALIF neurons inside spikingjelly networks.

:func:`spikingjelly_neuron` wraps the pure step functions of
:mod:`spikingbrain.neurons.functional` in a ``spikingjelly.activation_based.base.MemoryModule``:
the neuron state is a spikingjelly *memory* (so ``functional.reset_net`` resets it), the step
mode follows spikingjelly (``"s"``: one step ``[N, ...]`` per call; ``"m"``: a sequence
``[T, N, ...]``, which ``functional.set_step_mode`` switches), and spikingjelly's functional
state API (``functional_forward(inputs, states)``) works too. The dynamics are ours, bit for bit
(the multi-step path calls our multi-step function, which equals looping the single step).

:func:`wrap_neurons` swaps every IF / LIF / ALIF of a model for its adapter in place.

>>> import torch
>>> from spikingjelly.activation_based import functional
>>> from spikingbrain.neurons.params import IFParams
>>> sj_if = spikingjelly_neuron(IFParams(v_th=1.0), step_mode="m")
>>> sj_if(torch.full((4, 1, 3), 0.5)).sum(0).tolist()
[[2.0, 2.0, 2.0]]
>>> functional.reset_net(sj_if); sj_if.state is None
True
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from spikingbrain.utils.optional import require

__all__ = ["adapter_class", "spikingjelly_neuron", "wrap_neurons"]


def _models() -> dict[type, tuple[Any, Any]]:
    from spikingbrain.neurons import functional as F
    from spikingbrain.neurons.params import ALIFParams, IFParams, LIFParams

    return {IFParams: (F.if_step, F.if_multistep), LIFParams: (F.lif_step, F.lif_multistep),
            ALIFParams: (F.alif_step, F.alif_multistep)}


@functools.lru_cache(maxsize=1)
def adapter_class() -> type:
    """The ``MemoryModule`` subclass behind :func:`spikingjelly_neuron` (built on first use,
    so that importing this module does not import spikingjelly)."""
    base = require("spikingjelly.activation_based.base", extra="spikingjelly",
                   purpose="the spikingjelly adapter").MemoryModule

    class SpikingJellyNeuron(base):  # type: ignore[misc, valid-type]
        """A spikingbrain IF / LIF / ALIF as a spikingjelly ``MemoryModule``.

        Args:
            params: ``IFParams``, ``LIFParams`` or ``ALIFParams``.
            step_mode: ``"s"`` (input ``[N, ...]``) or ``"m"`` (input ``[T, N, ...]``).

        The memory ``state`` holds our state tuple (``None`` at rest).
        """

        def __init__(self, params: Any, step_mode: str = "s") -> None:
            super().__init__()
            models = _models()
            if type(params) not in models:
                raise TypeError(
                    f"params must be IFParams, LIFParams or ALIFParams, got {type(params).__name__}"
                )
            if step_mode not in ("s", "m"):
                raise ValueError(f"step_mode must be 's' or 'm', got {step_mode!r}")
            self.params = params
            self._fns = models[type(params)]
            self.register_memory("state", None)
            self.step_mode = step_mode

        @property
        def v(self) -> torch.Tensor | None:
            """Membrane potential after the last step (``None`` at rest)."""
            st = self.state
            return None if st is None else st.v

        def single_step_functional_forward(self, inputs: tuple, states: tuple, **kwargs: Any
                                           ) -> tuple[tuple, tuple]:
            spikes, st = self._fns[0](inputs[0], states[0], self.params)
            return (spikes,), (st,)

        def multi_step_functional_forward(self, inputs: tuple, states: tuple, **kwargs: Any
                                          ) -> tuple[tuple, tuple]:
            spikes, st = self._fns[1](inputs[0], states[0], self.params)
            return (spikes,), (st,)

        def extra_repr(self) -> str:
            return f"{type(self.params).__name__}, step_mode={self.step_mode}"

    return SpikingJellyNeuron


def spikingjelly_neuron(neuron: Any, step_mode: str | None = None) -> nn.Module:
    """A spikingjelly ``MemoryModule`` running our neuron.

    Args:
        neuron: an IF / LIF / ALIF module (its params and step mode are taken) or an
            ``IFParams`` / ``LIFParams`` / ``ALIFParams``.
        step_mode: ``"s"`` or ``"m"`` (default: the module's, else ``"s"``).

    Returns:
        the adapter module (a fresh state; the source module's state is not copied).
    """
    from spikingbrain.neurons.classic import ALIF, IF, LIF

    if isinstance(neuron, (IF, LIF, ALIF)):
        params, mode = neuron.params, neuron.step_mode
    else:
        params, mode = neuron, "s"
    return adapter_class()(params, step_mode or mode)


def wrap_neurons(model: nn.Module, step_mode: str | None = None) -> int:
    """Replace every IF / LIF / ALIF inside ``model`` by its spikingjelly adapter (in place).

    Returns how many were replaced. A bare neuron (no parent) cannot be replaced in place: use
    :func:`spikingjelly_neuron` for it.

    >>> from torch import nn
    >>> from spikingbrain.neurons.classic import IF
    >>> net = nn.Sequential(nn.Linear(2, 2), IF())
    >>> wrap_neurons(net, step_mode="m"), type(net[1]).__name__
    (1, 'SpikingJellyNeuron')
    """
    from spikingbrain.neurons.classic import ALIF, IF, LIF

    if isinstance(model, (IF, LIF, ALIF)):
        raise TypeError("wrap_neurons replaces children of a model; wrap a bare neuron with "
                        "spikingjelly_neuron(neuron)")
    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (IF, LIF, ALIF)):
                setattr(parent, name, spikingjelly_neuron(child, step_mode))
                n += 1
    return n
