"""Pure step functions of the classic neurons: IF, LIF and ALIF.

Each model has a single-step function ``*_step(x, state, params) -> (spikes, new_state)`` over
one time step of input ``x [...]`` and a multi-step function
``*_multistep(xs, state, params) -> (spikes [T, ...], final_state)`` over ``xs [T, ...]``; the
multi-step functions give bit for bit what looping the single-step function gives. ``state=None``
starts from rest. Nothing is stored between calls: the modules in
:mod:`spikingbrain.neurons.classic` hold the state.

One time step, in order (``I = x[t]``, all operations elementwise):

1. charge. IF: ``v = v + dt * r * I``. LIF / ALIF: ``v = v + dt/tau_mem * (v_leak - v + r*I)``,
   computed as ``v = (1 - dt/tau_mem) * v + dt/tau_mem * (v_leak + r*I)``.
2. fire: ``s = H(v - th)`` with ``H(0) = 1`` and a surrogate gradient; ``th = v_th`` (IF, LIF)
   or ``th = v_th + beta * a`` (ALIF, with ``a`` from the previous step).
3. reset: soft ``v = v - s * th``; hard ``v = v * (1 - s) + s * v_reset`` (exactly ``v_reset``).
4. adapt (ALIF only): ``a = (1 - dt/tau_adapt) * a + s``.

The returned state holds ``v`` after the reset. Initial state: ``v = v_reset`` for IF,
``v = v_leak`` for LIF / ALIF, ``a = 0``.

>>> import torch
>>> xs = torch.full((6, 1), 0.4)
>>> spikes, state = if_multistep(xs)
>>> spikes.flatten().tolist(), round(state.v.item(), 4)
([0.0, 0.0, 1.0, 0.0, 1.0, 0.0], 0.4)
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import torch

from spikingbrain.neurons.params import ALIFParams, IFParams, LIFParams, Number
from spikingbrain.neurons.surrogate import SURROGATES

__all__ = [
    "ALIFState",
    "IFState",
    "LIFState",
    "alif_init_state",
    "alif_multistep",
    "alif_step",
    "if_init_state",
    "if_multistep",
    "if_step",
    "lif_init_state",
    "lif_multistep",
    "lif_step",
]


class IFState(NamedTuple):
    """State of an IF neuron: membrane ``v`` (input's shape)."""

    v: torch.Tensor


class LIFState(NamedTuple):
    """State of a LIF neuron: membrane ``v`` (input's shape)."""

    v: torch.Tensor


class ALIFState(NamedTuple):
    """State of an ALIF neuron: membrane ``v`` and adaptation ``a`` (both the input's shape)."""

    v: torch.Tensor
    a: torch.Tensor


P = TypeVar("P", IFParams, LIFParams, ALIFParams)
S = TypeVar("S", IFState, LIFState, ALIFState)


# --- validation --------------------------------------------------------------------------------


def _check_params(params: object, cls: type[P], fn: str) -> P:
    if params is None:
        return cls()
    if not isinstance(params, cls):
        raise TypeError(
            f"{fn} needs {cls.__name__} (or None for the defaults), got {type(params).__name__}"
        )
    return params


def _check_input(x: object, fn: str, multistep: bool) -> torch.Tensor:
    what = "xs" if multistep else "x"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {what} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{fn}: {what} must be a floating tensor of input currents, got dtype {x.dtype}; "
            f"convert with .float()"
        )
    if multistep and x.dim() == 0:
        raise ValueError(f"{fn}: xs must have a leading time dimension [T, ...], got a scalar")
    return x


def _check_state(state: object, cls: type[S], shape: torch.Size, fn: str) -> S:
    if not isinstance(state, cls):
        raise TypeError(
            f"{fn}: state must be a {cls.__name__} (or None to start from rest), "
            f"got {type(state).__name__}"
        )
    for name, t in zip(cls._fields, state):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{fn}: state.{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.shape != shape:
            raise ValueError(
                f"{fn}: state.{name} has shape {tuple(t.shape)} but the input (per time step) has "
                f"shape {tuple(shape)}; pass state=None to start from rest, or reset() the module "
                f"before feeding a batch of another shape"
            )
    return state  # type: ignore[return-value]


def _filled(like: torch.Tensor, shape: torch.Size, value: Number, what: str) -> torch.Tensor:
    t = like.new_zeros(shape) + value
    if t.shape != shape:
        raise ValueError(
            f"the parameter {what} has a shape that does not broadcast to the input's shape "
            f"{tuple(shape)}"
        )
    return t


# --- initial states ----------------------------------------------------------------------------


def if_init_state(x: torch.Tensor, params: IFParams | None = None) -> IFState:
    """Resting state for input ``x`` (one time step): ``v = v_reset``.

    >>> if_init_state(torch.zeros(2, 3)).v.shape
    torch.Size([2, 3])
    """
    p = _check_params(params, IFParams, "if_init_state")
    return IFState(_filled(x, x.shape, p.v_reset, "v_reset"))


def lif_init_state(x: torch.Tensor, params: LIFParams | None = None) -> LIFState:
    """Resting state for input ``x`` (one time step): ``v = v_leak``.

    >>> lif_init_state(torch.zeros(2), LIFParams(v_leak=-0.5)).v.tolist()
    [-0.5, -0.5]
    """
    p = _check_params(params, LIFParams, "lif_init_state")
    return LIFState(_filled(x, x.shape, p.v_leak, "v_leak"))


def alif_init_state(x: torch.Tensor, params: ALIFParams | None = None) -> ALIFState:
    """Resting state for input ``x`` (one time step): ``v = v_leak``, ``a = 0``.

    >>> alif_init_state(torch.zeros(2)).a.tolist()
    [0.0, 0.0]
    """
    p = _check_params(params, ALIFParams, "alif_init_state")
    return ALIFState(_filled(x, x.shape, p.v_leak, "v_leak"), torch.zeros_like(x))


# --- the dynamics, shared by single- and multi-step (so both give the same bits) -------------


def _fire_and_reset(
    v: torch.Tensor, th: Number, p: IFParams | LIFParams | ALIFParams
) -> tuple[torch.Tensor, torch.Tensor]:
    s = SURROGATES[p.surrogate].apply(v - th, p.alpha)
    sr = s.detach() if p.detach_reset else s
    if p.reset == "soft":
        v = v - sr * th
    else:
        v = v * (1 - sr) + sr * p.v_reset
    return s, v


def _if_drive(x: torch.Tensor, p: IFParams) -> torch.Tensor:
    return x * (p.dt * p.r)


def _lif_drive(x: torch.Tensor, p: LIFParams | ALIFParams) -> torch.Tensor:
    return (x * p.r + p.v_leak) * (p.dt / p.tau_mem)


def _if_update(drive: torch.Tensor, st: IFState, p: IFParams) -> tuple[torch.Tensor, IFState]:
    s, v = _fire_and_reset(st.v + drive, p.v_th, p)
    return s, IFState(v)


def _lif_update(
    drive: torch.Tensor, st: LIFState, p: LIFParams, decay: Number
) -> tuple[torch.Tensor, LIFState]:
    s, v = _fire_and_reset(st.v * decay + drive, p.v_th, p)
    return s, LIFState(v)


def _alif_update(
    drive: torch.Tensor, st: ALIFState, p: ALIFParams, decay: Number, adapt_decay: Number
) -> tuple[torch.Tensor, ALIFState]:
    th = p.v_th + p.beta * st.a
    s, v = _fire_and_reset(st.v * decay + drive, th, p)
    return s, ALIFState(v, st.a * adapt_decay + s)


# --- single step -------------------------------------------------------------------------------


def if_step(
    x: torch.Tensor, state: IFState | None = None, params: IFParams | None = None
) -> tuple[torch.Tensor, IFState]:
    """One time step of the integrate-and-fire neuron.

    Args:
        x: input current ``[...]`` (floating).
        state: :class:`IFState` with ``v [...]``, or ``None`` to start from rest.
        params: :class:`~spikingbrain.neurons.params.IFParams` (defaults if ``None``).

    Returns:
        ``(spikes [...], new_state)``; spikes are 0/1 in ``x``'s dtype, with a surrogate gradient.

    >>> s, st = if_step(torch.tensor([0.6, 1.2]))
    >>> s.tolist(), [round(v, 4) for v in st.v.tolist()]
    ([0.0, 1.0], [0.6, 0.2])
    """
    fn = "if_step"
    p = _check_params(params, IFParams, fn)
    x = _check_input(x, fn, multistep=False)
    st = if_init_state(x, p) if state is None else _check_state(state, IFState, x.shape, fn)
    return _if_update(_if_drive(x, p), st, p)


def lif_step(
    x: torch.Tensor, state: LIFState | None = None, params: LIFParams | None = None
) -> tuple[torch.Tensor, LIFState]:
    """One time step of the leaky integrate-and-fire neuron.

    Args:
        x: input current ``[...]`` (floating).
        state: :class:`LIFState` with ``v [...]``, or ``None`` to start from rest (``v_leak``).
        params: :class:`~spikingbrain.neurons.params.LIFParams` (defaults if ``None``).

    Returns:
        ``(spikes [...], new_state)``.

    >>> p = LIFParams(tau_mem=2.0)
    >>> s, st = lif_step(torch.tensor([1.0, 3.0]), params=p)
    >>> s.tolist(), st.v.tolist()
    ([0.0, 1.0], [0.5, 0.5])
    """
    fn = "lif_step"
    p = _check_params(params, LIFParams, fn)
    x = _check_input(x, fn, multistep=False)
    st = lif_init_state(x, p) if state is None else _check_state(state, LIFState, x.shape, fn)
    return _lif_update(_lif_drive(x, p), st, p, p.decay)


def alif_step(
    x: torch.Tensor, state: ALIFState | None = None, params: ALIFParams | None = None
) -> tuple[torch.Tensor, ALIFState]:
    """One time step of the adaptive LIF neuron (threshold ``v_th + beta * a``).

    Args:
        x: input current ``[...]`` (floating).
        state: :class:`ALIFState` with ``v [...]`` and ``a [...]``, or ``None`` for rest.
        params: :class:`~spikingbrain.neurons.params.ALIFParams` (defaults if ``None``).

    Returns:
        ``(spikes [...], new_state)``.

    >>> p = ALIFParams(tau_mem=1.0, tau_adapt=2.0, beta=0.5)
    >>> s, st = alif_step(torch.tensor([1.5]), params=p)
    >>> s.tolist(), st.v.tolist(), st.a.tolist()
    ([1.0], [0.5], [1.0])
    >>> s, st = alif_step(torch.tensor([1.2]), st, p)   # threshold is now 1 + 0.5 * 1.0
    >>> s.tolist(), st.a.tolist()
    ([0.0], [0.5])
    """
    fn = "alif_step"
    p = _check_params(params, ALIFParams, fn)
    x = _check_input(x, fn, multistep=False)
    st = alif_init_state(x, p) if state is None else _check_state(state, ALIFState, x.shape, fn)
    return _alif_update(_lif_drive(x, p), st, p, p.decay, p.adapt_decay)


# --- multi-step --------------------------------------------------------------------------------


def _run(xs, st, update):  # type: ignore[no-untyped-def]
    if xs.shape[0] == 0:
        return xs.new_zeros(xs.shape), st
    out = []
    # unbind, not xs[t]: the backward of T separate indexings would write T full-size gradient
    # tensors (O(T^2) memory traffic); unbind's backward stacks once. The input term is computed
    # per step on purpose: one [T, ...] temporary is slower (allocation, cache) than T small ones.
    for x in xs.unbind(0):
        s, st = update(x, st)
        out.append(s)
    return torch.stack(out), st


def if_multistep(
    xs: torch.Tensor, state: IFState | None = None, params: IFParams | None = None
) -> tuple[torch.Tensor, IFState]:
    """Run the IF neuron over ``xs [T, ...]``; equals looping :func:`if_step` bit for bit.

    Args:
        xs: input currents ``[T, ...]``.
        state: initial :class:`IFState` (``v`` of shape ``xs.shape[1:]``) or ``None``.
        params: :class:`~spikingbrain.neurons.params.IFParams`.

    Returns:
        ``(spikes [T, ...], final_state)``. ``T = 0`` returns empty spikes and the initial state.

    >>> spikes, st = if_multistep(torch.full((4, 2), 0.5))
    >>> spikes.sum(0).tolist()
    [2.0, 2.0]
    """
    fn = "if_multistep"
    p = _check_params(params, IFParams, fn)
    xs = _check_input(xs, fn, multistep=True)
    shape = xs.shape[1:]
    if state is None:
        st = IFState(_filled(xs, shape, p.v_reset, "v_reset"))
    else:
        st = _check_state(state, IFState, shape, fn)
    return _run(xs, st, lambda x, s: _if_update(_if_drive(x, p), s, p))


def lif_multistep(
    xs: torch.Tensor, state: LIFState | None = None, params: LIFParams | None = None
) -> tuple[torch.Tensor, LIFState]:
    """Run the LIF neuron over ``xs [T, ...]``; equals looping :func:`lif_step` bit for bit.

    Args:
        xs: input currents ``[T, ...]``.
        state: initial :class:`LIFState` (``v`` of shape ``xs.shape[1:]``) or ``None``.
        params: :class:`~spikingbrain.neurons.params.LIFParams`.

    Returns:
        ``(spikes [T, ...], final_state)``.

    >>> p = LIFParams(tau_mem=5.0, r=5.0)   # steady state v_leak + r*I = 1.5 > v_th
    >>> spikes, st = lif_multistep(torch.full((20, 1), 0.3), params=p)
    >>> spikes.flatten().nonzero().flatten().tolist()
    [4, 9, 14, 19]
    """
    fn = "lif_multistep"
    p = _check_params(params, LIFParams, fn)
    xs = _check_input(xs, fn, multistep=True)
    shape = xs.shape[1:]
    if state is None:
        st = LIFState(_filled(xs, shape, p.v_leak, "v_leak"))
    else:
        st = _check_state(state, LIFState, shape, fn)
    decay = p.decay
    return _run(xs, st, lambda x, s: _lif_update(_lif_drive(x, p), s, p, decay))


def alif_multistep(
    xs: torch.Tensor, state: ALIFState | None = None, params: ALIFParams | None = None
) -> tuple[torch.Tensor, ALIFState]:
    """Run the ALIF neuron over ``xs [T, ...]``; equals looping :func:`alif_step` bit for bit.

    Args:
        xs: input currents ``[T, ...]``.
        state: initial :class:`ALIFState` (``v``, ``a`` of shape ``xs.shape[1:]``) or ``None``.
        params: :class:`~spikingbrain.neurons.params.ALIFParams`.

    Returns:
        ``(spikes [T, ...], final_state)``.

    >>> xs = torch.full((50, 1), 0.3)
    >>> lif, _ = lif_multistep(xs, params=LIFParams(tau_mem=5.0, r=5.0))
    >>> p = ALIFParams(tau_mem=5.0, r=5.0, tau_adapt=20.0, beta=0.5)
    >>> alif, st = alif_multistep(xs, params=p)
    >>> int(lif.sum()), int(alif.sum())    # the threshold rises with every spike
    (10, 4)
    >>> alif.flatten().nonzero().flatten().tolist()    # intervals grow: 10, 14, 15
    [4, 14, 28, 43]
    """
    fn = "alif_multistep"
    p = _check_params(params, ALIFParams, fn)
    xs = _check_input(xs, fn, multistep=True)
    shape = xs.shape[1:]
    if state is None:
        st = ALIFState(_filled(xs, shape, p.v_leak, "v_leak"), xs.new_zeros(shape))
    else:
        st = _check_state(state, ALIFState, shape, fn)
    decay, adapt_decay = p.decay, p.adapt_decay
    return _run(xs, st, lambda x, s: _alif_update(_lif_drive(x, p), s, p, decay, adapt_decay))
