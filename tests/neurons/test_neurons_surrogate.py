"""Surrogate gradients: Heaviside forward, analytic pseudo-derivatives backward."""

from __future__ import annotations

import math

import pytest
import torch

from spikingbrain.neurons.surrogate import (
    DEFAULT_ALPHA,
    SURROGATES,
    check_surrogate,
    heaviside,
    spike_fn,
    surrogate_grad,
    surrogate_step,
)

NAMES = ["atan", "sigmoid", "fast_sigmoid", "superspike", "triangle"]


# Independent hand-written derivatives (not the package's helpers), in float64.
def reference_grad(name: str, x: torch.Tensor, a: float) -> torch.Tensor:
    if name == "atan":
        return a / (2 * (1 + (math.pi * a * x / 2) ** 2))
    if name == "sigmoid":
        e = torch.exp(-a * x)
        return a * e / (1 + e) ** 2
    if name in ("fast_sigmoid", "superspike"):
        return a / (2 * (1 + a * x.abs()) ** 2)
    if name == "triangle":
        return torch.where(x.abs() < 1 / a, a - a * a * x.abs(), torch.zeros_like(x))
    raise AssertionError(name)


def grid(n: int = 2001, lim: float = 3.0) -> torch.Tensor:
    return torch.linspace(-lim, lim, n, dtype=torch.float64)


def test_heaviside_fires_at_zero():
    x = torch.tensor([-1e-30, -0.0, 0.0, 1e-30, 5.0])
    assert heaviside(x).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_forward_is_heaviside(name, dtype):
    x = torch.randn(257, generator=torch.Generator().manual_seed(0)).to(dtype)
    x[0] = 0.0
    s = spike_fn(x, name)
    assert s.dtype == dtype and s.shape == x.shape
    assert torch.equal(s, (x >= 0).to(dtype))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("alpha", [None, 0.5, 1.0, 3.0, 10.0])
def test_backward_equals_analytic_derivative(name, alpha):
    a = DEFAULT_ALPHA[name] if alpha is None else alpha
    x = grid().requires_grad_(True)
    w = torch.rand(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (spike_fn(x, name, alpha) * w).sum().backward()  # chain rule: grad = w * g'(x)
    torch.testing.assert_close(
        x.grad, w * reference_grad(name, x.detach(), a), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("alpha", [0.7, 2.5])
def test_surrogate_is_derivative_of_smooth_step_gradcheck(name, alpha):
    """gradcheck (float64, finite differences) on the smooth step g, then g' == backward.

    gradcheck on spike_fn itself is not meaningful: its forward is a step function whose numerical
    derivative is 0 almost everywhere, which is exactly why a surrogate is used.
    """
    # keep away from the triangle's kinks at |x| = 1/alpha where g'' jumps
    x = torch.tensor([-2.1, -0.33, -0.05, 0.0, 0.11, 0.29, 1.7], dtype=torch.float64)
    x = x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: surrogate_step(t, name, alpha), (x,))
    (dg,) = torch.autograd.grad(surrogate_step(x, name, alpha).sum(), x)
    y = x.detach().clone().requires_grad_(True)
    spike_fn(y, name, alpha).sum().backward()
    torch.testing.assert_close(y.grad, dg, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(surrogate_grad(x.detach(), name, alpha), dg, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_unit_area_and_unit_peak(name):
    a = DEFAULT_ALPHA[name]
    assert surrogate_grad(torch.tensor([0.0], dtype=torch.float64), name).item() == pytest.approx(
        1.0
    )
    big = torch.tensor([-1e9, 1e9], dtype=torch.float64)
    lo, hi = surrogate_step(big, name).tolist()
    assert lo == pytest.approx(0.0, abs=1e-8) and hi == pytest.approx(1.0, abs=1e-8)
    x = grid(200001, 20.0)
    area = torch.trapezoid(surrogate_grad(x, name), x).item()
    expect = (surrogate_step(x[-1:], name) - surrogate_step(x[:1], name)).item()
    assert area == pytest.approx(expect, abs=1e-6)
    assert a == check_surrogate(name)


@pytest.mark.parametrize("name", NAMES)
def test_alpha_sharpens(name):
    x = torch.tensor([0.3], dtype=torch.float64)
    g = [surrogate_grad(x, name, a).item() for a in (0.5, 1.0, 2.0)]
    g0 = [surrogate_grad(torch.zeros(1, dtype=torch.float64), name, a).item() for a in (0.5, 1, 2)]
    assert g0[0] < g0[1] < g0[2]  # taller at 0
    assert g[2] / g0[2] < g[0] / g0[0]  # narrower: relatively lower away from 0


def test_superspike_is_fast_sigmoid():
    assert SURROGATES["superspike"] is SURROGATES["fast_sigmoid"]


def test_no_grad_when_input_does_not_require_it():
    s = spike_fn(torch.tensor([0.5, -0.5]))
    assert not s.requires_grad


def test_gradient_flows_through_spike_to_upstream_parameter():
    w = torch.tensor(0.8, requires_grad=True)
    x = torch.tensor([0.5, 1.0, 2.0])
    spike_fn(w * x - 1.0, "sigmoid").sum().backward()
    expect = (x * reference_grad("sigmoid", (0.8 * x - 1.0).double(), 4.0).float()).sum()
    torch.testing.assert_close(w.grad, expect)


@pytest.mark.parametrize(
    "name, alpha, err",
    [
        ("relu", None, ValueError),
        (None, None, ValueError),
        ("atan", 0.0, ValueError),
        ("atan", -1.0, ValueError),
        ("atan", float("nan"), ValueError),
        ("atan", float("inf"), ValueError),
        ("atan", "2", TypeError),
        ("atan", True, TypeError),
    ],
)
def test_bad_surrogate_arguments(name, alpha, err):
    with pytest.raises(err):
        spike_fn(torch.zeros(2), name, alpha)
