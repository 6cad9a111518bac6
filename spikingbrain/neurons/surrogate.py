"""Surrogate gradients: a Heaviside step forward, a smooth pseudo-derivative backward.

Every surrogate here is the derivative ``g'(x)`` of a smooth step ``g`` that rises from 0 to 1,
so each pseudo-derivative integrates to exactly 1 over the real line. ``alpha`` sets the
sharpness (the inverse width): a larger ``alpha`` gives a narrower, taller bump. The default
``alpha`` of each surrogate makes its peak ``g'(0)`` equal to 1.

- ``atan``: ``g(x) = 1/2 + atan(pi/2 * alpha * x) / pi``,
  ``g'(x) = (alpha/2) / (1 + (pi/2 * alpha * x)^2)``; default ``alpha = 2``.
- ``sigmoid``: ``g(x) = sigmoid(alpha * x)``, ``g'(x) = alpha * g(x) * (1 - g(x))``;
  default ``alpha = 4``.
- ``fast_sigmoid``: ``g(x) = 1/2 + alpha*x / (2 * (1 + alpha*|x|))``,
  ``g'(x) = alpha / (2 * (1 + alpha*|x|)^2)``; default ``alpha = 2``.
- ``triangle``: ``g'(x) = alpha * max(0, 1 - alpha*|x|)`` (support ``|x| < 1/alpha``),
  ``g`` piecewise quadratic; default ``alpha = 1``.

``superspike`` is an alias of ``fast_sigmoid`` (Zenke & Ganguli 2018). Note that snnTorch's
``fast_sigmoid(slope)`` and norse's ``superspike`` use ``1 / (1 + alpha*|x|)^2`` (peak 1, area
``2/alpha``): that is ours times ``2/alpha``.

The forward pass is ``H(x) = 1 if x >= 0 else 0`` (a spike when the membrane *reaches* the
threshold, as in spikingjelly and the SpikingBrain IF neuron; norse fires only when ``x > 0``).

>>> import torch
>>> x = torch.tensor([-1.0, 0.0, 0.5], requires_grad=True)
>>> s = spike_fn(x, "atan")
>>> s.tolist()
[0.0, 1.0, 1.0]
>>> s.sum().backward()
>>> [round(g, 4) for g in x.grad.tolist()]
[0.092, 1.0, 0.2884]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "DEFAULT_ALPHA",
    "SURROGATES",
    "ATanSpike",
    "FastSigmoidSpike",
    "SigmoidSpike",
    "TriangleSpike",
    "check_surrogate",
    "heaviside",
    "spike_fn",
    "surrogate_grad",
    "surrogate_step",
]


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """``1`` where ``x >= 0`` else ``0``, in ``x``'s dtype (no gradient; see :func:`spike_fn`).

    >>> heaviside(torch.tensor([-0.1, 0.0, 2.0])).tolist()
    [0.0, 1.0, 1.0]
    """
    return (x >= 0).to(x.dtype)


# --- pseudo-derivatives g'(x) and smooth steps g(x), written once, used by backward and tests ---


def _atan_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)


def _atan_step(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return 0.5 + torch.atan(math.pi / 2 * alpha * x) / math.pi


def _sigmoid_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    sg = torch.sigmoid(alpha * x)
    return alpha * sg * (1 - sg)


def _sigmoid_step(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.sigmoid(alpha * x)


def _fast_sigmoid_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha / (2 * (1 + alpha * x.abs()) ** 2)


def _fast_sigmoid_step(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return 0.5 + alpha * x / (2 * (1 + alpha * x.abs()))


def _triangle_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha * torch.clamp(1 - alpha * x.abs(), min=0)


def _triangle_step(x: torch.Tensor, alpha: float) -> torch.Tensor:
    u = torch.clamp(alpha * x, -1.0, 1.0)
    return 0.5 + u - u * u.abs() / 2


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward; ``grad_out * g'(x; alpha)`` backward. Subclasses set ``_grad``."""

    _grad: Callable[[torch.Tensor, float], torch.Tensor]

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    @classmethod
    def backward(cls, ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        grad_x = grad_out * cls._grad(x, ctx.alpha) if ctx.needs_input_grad[0] else None
        return grad_x, None


class ATanSpike(_SpikeFunction):
    """Heaviside with the arctangent surrogate ``alpha/2 / (1 + (pi/2*alpha*x)^2)``.

    >>> ATanSpike.apply(torch.tensor([0.0, -1.0]), 2.0).tolist()
    [1.0, 0.0]
    """

    _grad = staticmethod(_atan_grad)


class SigmoidSpike(_SpikeFunction):
    """Heaviside with the sigmoid surrogate ``alpha * sigmoid(alpha*x) * (1 - sigmoid(alpha*x))``.

    >>> SigmoidSpike.apply(torch.tensor([0.0, -1.0]), 4.0).tolist()
    [1.0, 0.0]
    """

    _grad = staticmethod(_sigmoid_grad)


class FastSigmoidSpike(_SpikeFunction):
    """Heaviside with the fast-sigmoid / SuperSpike surrogate ``alpha / (2(1 + alpha|x|)^2)``.

    >>> FastSigmoidSpike.apply(torch.tensor([0.0, -1.0]), 2.0).tolist()
    [1.0, 0.0]
    """

    _grad = staticmethod(_fast_sigmoid_grad)


class TriangleSpike(_SpikeFunction):
    """Heaviside with the triangle surrogate ``alpha * max(0, 1 - alpha|x|)`` (support ``1/alpha``).

    >>> TriangleSpike.apply(torch.tensor([0.0, -1.0]), 1.0).tolist()
    [1.0, 0.0]
    """

    _grad = staticmethod(_triangle_grad)


#: name -> autograd.Function. ``superspike`` is an alias of ``fast_sigmoid``.
SURROGATES: dict[str, type[_SpikeFunction]] = {
    "atan": ATanSpike,
    "sigmoid": SigmoidSpike,
    "fast_sigmoid": FastSigmoidSpike,
    "superspike": FastSigmoidSpike,
    "triangle": TriangleSpike,
}

#: default ``alpha`` per surrogate: the one that makes the peak ``g'(0)`` equal to 1.
DEFAULT_ALPHA: dict[str, float] = {
    "atan": 2.0,
    "sigmoid": 4.0,
    "fast_sigmoid": 2.0,
    "superspike": 2.0,
    "triangle": 1.0,
}

_STEPS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "atan": _atan_step,
    "sigmoid": _sigmoid_step,
    "fast_sigmoid": _fast_sigmoid_step,
    "superspike": _fast_sigmoid_step,
    "triangle": _triangle_step,
}


def check_surrogate(name: object, alpha: object = None) -> float:
    """Validate a surrogate name and width; return the ``alpha`` to use (the default if None).

    >>> check_surrogate("sigmoid")
    4.0
    >>> check_surrogate("relu")
    Traceback (most recent call last):
    ...
    ValueError: unknown surrogate 'relu'; choose one of 'atan', 'sigmoid', 'fast_sigmoid', 'superspike', 'triangle'
    """
    if not isinstance(name, str) or name not in SURROGATES:
        choices = ", ".join(repr(k) for k in SURROGATES)
        raise ValueError(f"unknown surrogate {name!r}; choose one of {choices}")
    if alpha is None:
        return DEFAULT_ALPHA[name]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a positive float, got {type(alpha).__name__}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(
            f"alpha must be a positive finite number (the surrogate's sharpness), got {alpha!r}"
        )
    return float(alpha)


def spike_fn(x: torch.Tensor, surrogate: str = "atan", alpha: float | None = None) -> torch.Tensor:
    """Heaviside step ``x >= 0`` with a surrogate gradient.

    Args:
        x: any-shape floating tensor, typically ``v - v_th``.
        surrogate: one of :data:`SURROGATES` (``atan``, ``sigmoid``, ``fast_sigmoid`` /
            ``superspike``, ``triangle``).
        alpha: sharpness; ``None`` takes :data:`DEFAULT_ALPHA` (peak gradient 1).

    Returns:
        spikes, same shape and dtype as ``x``, values in {0, 1}.

    >>> x = torch.tensor([-0.5, 0.25], requires_grad=True)
    >>> spike_fn(x, "triangle", alpha=1.0).sum().backward()
    >>> x.grad.tolist()
    [0.5, 0.75]
    """
    a = check_surrogate(surrogate, alpha)
    return SURROGATES[surrogate].apply(x, a)


def surrogate_grad(
    x: torch.Tensor, surrogate: str = "atan", alpha: float | None = None
) -> torch.Tensor:
    """The pseudo-derivative ``g'(x)`` that :func:`spike_fn` uses in its backward pass.

    >>> surrogate_grad(torch.tensor([0.0]), "fast_sigmoid").tolist()
    [1.0]
    """
    a = check_surrogate(surrogate, alpha)
    return SURROGATES[surrogate]._grad(x, a)


def surrogate_step(
    x: torch.Tensor, surrogate: str = "atan", alpha: float | None = None
) -> torch.Tensor:
    """The smooth step ``g(x)`` whose derivative is the surrogate (``g(-inf)=0``, ``g(inf)=1``).

    Useful to plot a surrogate or to check it: ``d/dx surrogate_step == surrogate_grad``.

    >>> surrogate_step(torch.tensor([0.0, 100.0]), "sigmoid").tolist()
    [0.5, 1.0]
    """
    a = check_surrogate(surrogate, alpha)
    return _STEPS[surrogate](x, a)
