"""IF, LIF and ALIF as nn.Modules: thin stateful wrappers of :mod:`spikingbrain.neurons.functional`.

``step_mode="s"`` (single step) takes one time step ``[...]`` per call and keeps the membrane
between calls; ``step_mode="m"`` (multi-step) takes a whole sequence ``[T, ...]`` per call and
keeps the final state, so consecutive chunks continue one simulation. ``reset()`` returns the
neuron to rest (call it between independent samples; :func:`reset_states` resets every neuron
in a model). ``detach_state=True`` detaches the stored state from the graph after every call
(truncated back-propagation through time).

>>> import torch
>>> lif = LIF(tau_mem=2.0, step_mode="m")
>>> lif(torch.full((4, 3), 1.5)).sum(0).tolist()
[2.0, 2.0, 2.0]
>>> lif.reset()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from spikingbrain.neurons import functional as F
from spikingbrain.neurons.params import ALIFParams, IFParams, LIFParams

__all__ = ["ALIF", "IF", "LIF", "STEP_MODES", "ALIFParams", "IFParams", "LIFParams", "reset_states"]

#: ``"s"``: one time step ``[...]`` per call; ``"m"``: a sequence ``[T, ...]`` per call.
STEP_MODES = ("s", "m")

P = TypeVar("P", IFParams, LIFParams, ALIFParams)


class _ClassicNeuron(nn.Module, Generic[P]):
    _params_cls: type
    _step: Callable[..., Any]
    _multistep: Callable[..., Any]

    def __init__(
        self,
        params: P | None = None,
        *,
        step_mode: str = "s",
        detach_state: bool = False,
        **param_fields: Any,
    ) -> None:
        super().__init__()
        if params is not None and param_fields:
            raise TypeError(
                f"pass either params= or keyword fields ({', '.join(param_fields)}), not both"
            )
        if params is None:
            params = self._params_cls(**param_fields)
        elif not isinstance(params, self._params_cls):
            raise TypeError(
                f"{type(self).__name__} needs {self._params_cls.__name__}, "
                f"got {type(params).__name__}"
            )
        self.params: P = params
        self.step_mode = step_mode
        self.detach_state = bool(detach_state)
        self.state: Any = None

    @property
    def step_mode(self) -> str:
        """``"s"`` (single step, input ``[...]``) or ``"m"`` (multi-step, input ``[T, ...]``)."""
        return self._step_mode

    @step_mode.setter
    def step_mode(self, mode: str) -> None:
        if mode not in STEP_MODES:
            raise ValueError(
                f"step_mode must be 's' (one time step [...] per call) or 'm' (a sequence "
                f"[T, ...] per call), got {mode!r}"
            )
        self._step_mode = mode

    def reset(self) -> None:
        """Forget the stored state; the next call starts from rest."""
        self.state = None

    @property
    def v(self) -> torch.Tensor | None:
        """The membrane potential after the last call (``None`` at rest)."""
        return None if self.state is None else self.state.v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes for ``x``: ``[...]`` in single-step mode, ``[T, ...]`` in multi-step mode."""
        if self.state is not None and isinstance(x, torch.Tensor):
            shape = x.shape if self._step_mode == "s" else x.shape[1:]
            if self.state.v.shape != shape:
                what = "input" if self._step_mode == "s" else "input per time step"
                raise ValueError(
                    f"{type(self).__name__}: {what} has shape {tuple(shape)} but the stored "
                    f"state has shape {tuple(self.state.v.shape)}; call .reset() (or "
                    f"reset_states(model)) before feeding a batch of another shape"
                )
        if self._step_mode == "s":
            spikes, state = type(self)._step(x, self.state, self.params)
        else:
            spikes, state = type(self)._multistep(x, self.state, self.params)
        if self.detach_state:
            state = type(state)(*(t.detach() for t in state))
        self.state = state
        return spikes

    def extra_repr(self) -> str:
        fields = ", ".join(
            f"{k}={v!r}" for k, v in vars(self.params).items() if not isinstance(v, torch.Tensor)
        )
        return f"step_mode={self._step_mode!r}, detach_state={self.detach_state}, {fields}"


class IF(_ClassicNeuron[IFParams]):
    """Integrate-and-fire neuron ``v += dt * r * I``; see :class:`IFParams` and :func:`F.if_step`.

    Args:
        params: :class:`IFParams`, or pass its fields as keywords (``IF(v_th=0.5)``).
        step_mode: ``"s"`` (input ``[...]``) or ``"m"`` (input ``[T, ...]``).
        detach_state: detach the stored state after every call.

    Shapes: input ``[...]`` / ``[T, ...]``, spikes the same shape, 0/1 in the input's dtype.

    >>> neuron = IF(v_th=1.0)
    >>> [neuron(torch.tensor([0.4])).item() for _ in range(5)]
    [0.0, 0.0, 1.0, 0.0, 1.0]
    """

    _params_cls = IFParams
    _step = staticmethod(F.if_step)
    _multistep = staticmethod(F.if_multistep)


class LIF(_ClassicNeuron[LIFParams]):
    """Leaky integrate-and-fire neuron; see :class:`LIFParams` and :func:`F.lif_step`.

    Args:
        params: :class:`LIFParams`, or its fields as keywords (``LIF(tau_mem=5.0, reset="hard")``).
        step_mode: ``"s"`` (input ``[...]``) or ``"m"`` (input ``[T, ...]``).
        detach_state: detach the stored state after every call.

    Shapes: input ``[...]`` / ``[T, ...]``, spikes the same shape, 0/1 in the input's dtype.

    >>> neuron = LIF(tau_mem=2.0, reset="hard")
    >>> [neuron(torch.tensor([1.5])).item() for _ in range(4)], neuron.v.item()
    ([0.0, 1.0, 0.0, 1.0], 0.0)
    """

    _params_cls = LIFParams
    _step = staticmethod(F.lif_step)
    _multistep = staticmethod(F.lif_multistep)


class ALIF(_ClassicNeuron[ALIFParams]):
    """Adaptive LIF neuron (threshold ``v_th + beta * a``); see :class:`ALIFParams`.

    Args:
        params: :class:`ALIFParams`, or its fields as keywords (``ALIF(tau_adapt=50.0)``).
        step_mode: ``"s"`` (input ``[...]``) or ``"m"`` (input ``[T, ...]``).
        detach_state: detach the stored state after every call.

    Shapes: input ``[...]`` / ``[T, ...]``, spikes the same shape; ``.state`` is an
    :class:`~spikingbrain.neurons.functional.ALIFState` ``(v, a)``.

    >>> neuron = ALIF(tau_mem=5.0, r=5.0, tau_adapt=20.0, beta=0.5, step_mode="m")
    >>> neuron(torch.full((50, 1), 0.3)).flatten().nonzero().flatten().tolist()
    [4, 14, 28, 43]
    """

    _params_cls = ALIFParams
    _step = staticmethod(F.alif_step)
    _multistep = staticmethod(F.alif_multistep)


def reset_states(module: nn.Module) -> int:
    """Call ``reset()`` on every IF / LIF / ALIF inside ``module``; return how many.

    >>> net = nn.Sequential(nn.Linear(2, 3), LIF(), nn.Linear(3, 1), LIF())
    >>> _ = net(torch.ones(1, 2))
    >>> reset_states(net), net[1].state
    (2, None)
    """
    n = 0
    for m in module.modules():
        if isinstance(m, _ClassicNeuron):
            m.reset()
            n += 1
    return n
