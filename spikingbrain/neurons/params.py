"""Parameter dataclasses of the classic neurons (IF, LIF, ALIF), validated on construction.

The names follow NIR (``tau_mem``, ``v_th``, ``v_leak``, ``v_reset``, ``r``) plus the time step
``dt`` of the discrete simulation, so that an exporter can map them one to one. Every numeric
field accepts a Python number or a floating tensor broadcastable to the input (one value per
neuron, for heterogeneous populations); tensors must live on the input's device.

>>> LIFParams(tau_mem=5.0, reset="hard").decay
0.8
>>> LIFParams(tau_mem=0.0)
Traceback (most recent call last):
...
ValueError: tau_mem must be > 0 (a time constant, in the same unit as dt), got 0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from spikingbrain.neurons.surrogate import check_surrogate

__all__ = ["ALIFParams", "IFParams", "LIFParams", "Number"]

#: A parameter value: a Python number or a floating tensor broadcastable to the input.
Number = float | torch.Tensor

_RESETS = ("soft", "hard")


def _values(name: str, value: object) -> torch.Tensor:
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(
            f"{name} must be a number or a floating torch.Tensor, got {type(value).__name__}"
        )
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got dtype {value.dtype}")
        t = value.detach()
    else:
        t = torch.tensor(float(value), dtype=torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return t


def _show(value: object) -> str:
    return repr(float(value)) if not isinstance(value, torch.Tensor) else "a tensor"


def _positive(name: str, value: object, what: str) -> None:
    if not bool((_values(name, value) > 0).all()):
        shown = _show(value) + (" with values <= 0" if isinstance(value, torch.Tensor) else "")
        raise ValueError(f"{name} must be > 0 ({what}), got {shown}")


def _finite(name: str, value: object) -> None:
    _values(name, value)


def _as_float(value: Number) -> Number:
    return float(value) if isinstance(value, (int, float)) else value


def _check_common(p: object, has_leak: bool) -> None:
    if p.reset not in _RESETS:  # type: ignore[attr-defined]
        raise ValueError(
            f"reset must be 'soft' (subtract v_th on a spike) or 'hard' (set v to v_reset), "
            f"got {p.reset!r}"  # type: ignore[attr-defined]
        )
    _positive("v_th", p.v_th, "the firing threshold")  # type: ignore[attr-defined]
    _positive("dt", p.dt, "the simulation time step")  # type: ignore[attr-defined]
    _finite("v_reset", p.v_reset)  # type: ignore[attr-defined]
    _finite("r", p.r)  # type: ignore[attr-defined]
    if has_leak:
        _finite("v_leak", p.v_leak)  # type: ignore[attr-defined]
    if p.reset == "hard":  # type: ignore[attr-defined]
        gap = _values("v_th", p.v_th) - _values("v_reset", p.v_reset)  # type: ignore[attr-defined]
        if not bool((gap > 0).all()):
            raise ValueError(
                "with reset='hard', v_reset must be below v_th, otherwise a reset leaves the "
                "membrane at or above the threshold; lower v_reset or raise v_th"
            )
    if not isinstance(p.detach_reset, bool):  # type: ignore[attr-defined]
        raise TypeError("detach_reset must be a bool")
    object.__setattr__(p, "alpha", check_surrogate(p.surrogate, p.alpha))  # type: ignore[attr-defined]
    for f in ("v_th", "v_reset", "r", "dt", "tau_mem", "v_leak", "tau_adapt", "beta"):
        if hasattr(p, f):
            object.__setattr__(p, f, _as_float(getattr(p, f)))


def _check_tau(name: str, tau: Number, dt: Number) -> None:
    _positive(name, tau, "a time constant, in the same unit as dt")
    if not bool((_values("dt", dt) <= _values(name, tau)).all()):
        raise ValueError(
            f"dt must not exceed {name} (forward Euler with dt > {name} overshoots the decay); "
            f"got dt={_show(dt)}, {name}={_show(tau)}: use a smaller dt"
        )


@dataclass(frozen=True)
class IFParams:
    """Integrate-and-fire: ``v[t] = v[t-1] + dt * r * I[t]``; spike when ``v[t] >= v_th``.

    Args:
        v_th: firing threshold (> 0).
        v_reset: the membrane after a spike with ``reset="hard"``; also the initial membrane.
        reset: ``"soft"`` subtracts ``v_th`` on a spike (keeps the residue), ``"hard"`` sets
            ``v_reset``.
        r: input resistance (NIR's ``r``).
        dt: time step (> 0).
        surrogate: surrogate gradient name (see :mod:`spikingbrain.neurons.surrogate`).
        alpha: surrogate sharpness; ``None`` takes the surrogate's default.
        detach_reset: stop the gradient through the reset term (a common trick that often
            stabilises training).

    >>> IFParams(v_th=2.0).reset
    'soft'
    """

    v_th: Number = 1.0
    v_reset: Number = 0.0
    reset: Literal["soft", "hard"] = "soft"
    r: Number = 1.0
    dt: Number = 1.0
    surrogate: str = "atan"
    alpha: float | None = None
    detach_reset: bool = False

    def __post_init__(self) -> None:
        _check_common(self, has_leak=False)


@dataclass(frozen=True)
class LIFParams:
    """Leaky integrate-and-fire, forward Euler of ``tau_mem dv/dt = (v_leak - v) + r I``.

    ``v[t] = v[t-1] + dt/tau_mem * (v_leak - v[t-1] + r * I[t])``; spike when ``v[t] >= v_th``;
    then soft reset ``v -= v_th`` or hard reset ``v = v_reset``.

    Args:
        tau_mem: membrane time constant (> 0, and >= dt).
        v_th: firing threshold (> 0).
        v_leak: resting potential the membrane decays to; also the initial membrane.
        v_reset: the membrane after a spike with ``reset="hard"``.
        reset: ``"soft"`` or ``"hard"`` (see :class:`IFParams`).
        r: input resistance.
        dt: time step (> 0).
        surrogate, alpha, detach_reset: as in :class:`IFParams`.

    >>> p = LIFParams(tau_mem=4.0)
    >>> p.decay, p.dt / p.tau_mem
    (0.75, 0.25)
    """

    tau_mem: Number = 10.0
    v_th: Number = 1.0
    v_leak: Number = 0.0
    v_reset: Number = 0.0
    reset: Literal["soft", "hard"] = "soft"
    r: Number = 1.0
    dt: Number = 1.0
    surrogate: str = "atan"
    alpha: float | None = None
    detach_reset: bool = False

    def __post_init__(self) -> None:
        _check_common(self, has_leak=True)
        _check_tau("tau_mem", self.tau_mem, self.dt)

    @property
    def decay(self) -> Number:
        """Per-step membrane decay factor ``1 - dt/tau_mem``."""
        return 1 - self.dt / self.tau_mem

    @classmethod
    def from_decay(cls, decay: float, *, dt: float = 1.0, **kwargs: object) -> LIFParams:
        """Parameters of the common discrete form ``v[t] = decay * v[t-1] + I[t]``.

        Sets ``tau_mem = dt / (1 - decay)`` and ``r = 1 / (1 - decay)``, so that
        ``dt/tau_mem * r * I = I`` (snnTorch's ``Leaky(beta=decay)`` up to its reset convention).

        >>> p = LIFParams.from_decay(0.9)
        >>> round(p.tau_mem, 6), round(p.r, 6)
        (10.0, 10.0)
        """
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
        if "tau_mem" in kwargs or "r" in kwargs:
            raise TypeError("from_decay sets tau_mem and r itself; pass only the other fields")
        return cls(tau_mem=dt / (1 - decay), r=1 / (1 - decay), dt=dt, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ALIFParams:
    """Adaptive LIF: an LIF whose threshold rises by ``beta`` with every spike and decays back.

    ``v_th_eff[t] = v_th + beta * a[t-1]``; spike when ``v[t] >= v_th_eff[t]``; soft reset
    subtracts ``v_th_eff[t]``, hard reset sets ``v_reset``; the adaptation variable follows
    ``a[t] = (1 - dt/tau_adapt) * a[t-1] + s[t]`` (starts at 0).

    Args:
        tau_mem, v_th, v_leak, v_reset, reset, r, dt: as in :class:`LIFParams`.
        tau_adapt: adaptation time constant (> 0, and >= dt).
        beta: threshold increment per unit of adaptation (>= 0; 0 gives a plain LIF).
        surrogate, alpha, detach_reset: as in :class:`IFParams`.

    >>> ALIFParams(tau_adapt=50.0, beta=0.2).adapt_decay
    0.98
    """

    tau_mem: Number = 10.0
    v_th: Number = 1.0
    v_leak: Number = 0.0
    v_reset: Number = 0.0
    reset: Literal["soft", "hard"] = "soft"
    r: Number = 1.0
    dt: Number = 1.0
    tau_adapt: Number = 100.0
    beta: Number = 1.0
    surrogate: str = "atan"
    alpha: float | None = None
    detach_reset: bool = False

    def __post_init__(self) -> None:
        _check_common(self, has_leak=True)
        _check_tau("tau_mem", self.tau_mem, self.dt)
        _check_tau("tau_adapt", self.tau_adapt, self.dt)
        if not bool((_values("beta", self.beta) >= 0).all()):
            raise ValueError(
                f"beta must be >= 0 (a threshold that rises with every spike), got {self.beta!r}"
            )

    @property
    def decay(self) -> Number:
        """Per-step membrane decay factor ``1 - dt/tau_mem``."""
        return 1 - self.dt / self.tau_mem

    @property
    def adapt_decay(self) -> Number:
        """Per-step adaptation decay factor ``1 - dt/tau_adapt``."""
        return 1 - self.dt / self.tau_adapt

    def as_lif(self) -> LIFParams:
        """The same neuron without adaptation (what ALIF reduces to with ``beta = 0``)."""
        return LIFParams(
            tau_mem=self.tau_mem,
            v_th=self.v_th,
            v_leak=self.v_leak,
            v_reset=self.v_reset,
            reset=self.reset,
            r=self.r,
            dt=self.dt,
            surrogate=self.surrogate,
            alpha=self.alpha,
            detach_reset=self.detach_reset,
        )
