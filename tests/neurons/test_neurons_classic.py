"""Classic neurons (IF, LIF, ALIF): params, functional steps, modules, references, training."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from spikingbrain.neurons import functional as F
from spikingbrain.neurons.classic import ALIF, IF, LIF, reset_states
from spikingbrain.neurons.params import ALIFParams, IFParams, LIFParams

KINDS = {
    "if": (IFParams, F.IFState, F.if_step, F.if_multistep, IF),
    "lif": (LIFParams, F.LIFState, F.lif_step, F.lif_multistep, LIF),
    "alif": (ALIFParams, F.ALIFState, F.alif_step, F.alif_multistep, ALIF),
}


def params_for(kind: str, reset: str = "soft", **kw):
    base = {
        "if": {"v_th": 1.0},
        "lif": {"tau_mem": 4.0, "v_leak": 0.1, "r": 2.0},
        "alif": {"tau_mem": 4.0, "v_leak": 0.1, "r": 2.0, "tau_adapt": 8.0, "beta": 0.3},
    }[kind]
    base.update(kw)
    return KINDS[kind][0](reset=reset, **base)


def random_state(kind: str, shape, g, dtype=torch.float32):
    cls = KINDS[kind][1]
    return cls(*(torch.randn(shape, generator=g, dtype=dtype) for _ in cls._fields))


def loop(step, xs, state, p):
    out = []
    for x in xs:
        s, state = step(x, state, p)
        out.append(s)
    return torch.stack(out), state


# --- literal references (float64, written from the documented equations) ---------------------


def reference(kind: str, xs: torch.Tensor, p) -> tuple[torch.Tensor, torch.Tensor]:
    T = xs.shape[0]
    v = torch.full(xs.shape[1:], p.v_reset if kind == "if" else p.v_leak, dtype=torch.float64)
    a = torch.zeros_like(v)
    spikes, vs = [], []
    for t in range(T):
        x = xs[t].double()
        if kind == "if":
            v = v + x * p.r * p.dt
        else:
            v = v + p.dt / p.tau_mem * (p.v_leak - v + p.r * x)
        th = p.v_th + (p.beta * a if kind == "alif" else 0.0)
        s = (v >= th).double()
        v = torch.where(s > 0, v - th if p.reset == "soft" else torch.full_like(v, p.v_reset), v)
        if kind == "alif":
            a = a - p.dt / p.tau_adapt * a + s
        spikes.append(s)
        vs.append(v)
    return torch.stack(spikes), torch.stack(vs)


# --- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, kw, match",
    [
        (LIFParams, {"tau_mem": 0.0}, "tau_mem must be > 0"),
        (LIFParams, {"tau_mem": -3.0}, "tau_mem must be > 0"),
        (LIFParams, {"dt": 0.0}, "dt must be > 0"),
        (LIFParams, {"dt": -1.0}, "dt must be > 0"),
        (LIFParams, {"tau_mem": 0.5, "dt": 1.0}, "dt must not exceed tau_mem"),
        (LIFParams, {"v_th": 0.0}, "v_th must be > 0"),
        (IFParams, {"v_th": -1.0}, "v_th must be > 0"),
        (IFParams, {"v_th": torch.tensor([1.0, -1.0])}, "v_th must be > 0"),
        (LIFParams, {"v_th": float("nan")}, "v_th must be finite"),
        (LIFParams, {"v_leak": float("inf")}, "v_leak must be finite"),
        (LIFParams, {"reset": "subtract"}, "reset must be 'soft'"),
        (IFParams, {"reset": "hard", "v_reset": 1.5}, "v_reset must be below v_th"),
        (LIFParams, {"surrogate": "relu"}, "unknown surrogate"),
        (LIFParams, {"alpha": 0.0}, "alpha must be a positive"),
        (ALIFParams, {"tau_adapt": 0.0}, "tau_adapt must be > 0"),
        (ALIFParams, {"tau_adapt": 0.5}, "dt must not exceed tau_adapt"),
        (ALIFParams, {"beta": -0.1}, "beta must be >= 0"),
    ],
)
def test_bad_params_value_error(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(**kw)


@pytest.mark.parametrize(
    "cls, kw",
    [
        (LIFParams, {"tau_mem": "10"}),
        (LIFParams, {"v_th": True}),
        (LIFParams, {"v_th": torch.tensor([1, 2])}),
        (IFParams, {"detach_reset": 1}),
    ],
)
def test_bad_params_type_error(cls, kw):
    with pytest.raises(TypeError):
        cls(**kw)


def test_param_conveniences():
    p = LIFParams.from_decay(0.75, v_th=0.5)
    assert p.decay == pytest.approx(0.75) and p.dt / p.tau_mem * p.r == pytest.approx(1.0)
    # from_decay gives v[t] = decay * v[t-1] + I[t]
    xs = torch.tensor([[0.2], [0.1], [0.0]], dtype=torch.float64)
    _, st = F.lif_multistep(xs, params=p)
    assert st.v.item() == pytest.approx((0.2 * 0.75 + 0.1) * 0.75)
    with pytest.raises(ValueError, match="decay must be"):
        LIFParams.from_decay(1.0)
    with pytest.raises(TypeError, match="sets tau_mem and r"):
        LIFParams.from_decay(0.5, tau_mem=3.0)
    ap = ALIFParams(tau_mem=3.0, beta=0.0)
    assert ap.as_lif() == LIFParams(tau_mem=3.0)
    assert LIFParams(tau_mem=5).tau_mem == 5.0 and isinstance(LIFParams(tau_mem=5).tau_mem, float)


# --- dynamics against the documented equations ------------------------------------------------


@pytest.mark.parametrize("kind", ["if", "lif", "alif"])
@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_matches_literal_reference(kind, reset):
    g = torch.Generator().manual_seed(3)
    xs = torch.rand(40, 3, 5, generator=g, dtype=torch.float64) * 0.8
    p = params_for(kind, reset, v_reset=-0.2, dt=0.5)
    spikes, st = F.__dict__[f"{kind}_multistep"](xs, None, p)
    ref_s, ref_v = reference(kind, xs, p)
    assert torch.equal(spikes, ref_s)
    assert spikes.sum() > 10  # the test exercises firing
    torch.testing.assert_close(st.v, ref_v[-1], rtol=1e-12, atol=1e-12)


def test_if_hand_trace():
    s, st = F.if_multistep(torch.tensor([0.5, 0.5, 0.75, 0.25, 2.5]), None, IFParams(v_th=1.0))
    assert s.tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert st.v.item() == 1.5  # soft reset keeps the residue: 2.5 - 1
    s, st = F.if_multistep(
        torch.tensor([0.75, 0.75, 3.0]), None, IFParams(v_th=1.0, reset="hard", v_reset=-0.5)
    )  # starts at v_reset = -0.5: 0.25, 1.0 (spike, back to -0.5), 2.5 (spike)
    assert s.tolist() == [0.0, 1.0, 1.0] and st.v.item() == -0.5


def test_hard_reset_is_exactly_v_reset_and_soft_keeps_residue():
    xs = torch.rand(30, 100, generator=torch.Generator().manual_seed(0)) * 3
    p = LIFParams(tau_mem=3.0, reset="hard", v_reset=0.3, v_th=1.1)
    v = None
    for x in xs:
        s, v = F.lif_step(x, v, p)
        assert torch.equal(v.v[s > 0], torch.full_like(v.v[s > 0], 0.3))
    p = LIFParams(tau_mem=3.0, reset="soft", v_th=1.1)
    v = None
    for x in xs:
        s, new = F.lif_step(x, v, p)
        charged = (v.v if v is not None else torch.zeros(100)) * p.decay + (x * p.r) * (
            p.dt / p.tau_mem
        )
        torch.testing.assert_close(new.v, charged - 1.1 * s)
        v = new


def test_fires_when_reaching_threshold_exactly():
    s, _ = F.if_step(torch.tensor([1.0, 0.999999]), None, IFParams(v_th=1.0))
    assert s.tolist() == [1.0, 0.0]


def test_alif_with_zero_beta_is_lif_bit_for_bit():
    g = torch.Generator().manual_seed(5)
    xs = torch.randn(50, 4, 7, generator=g)
    for reset in ("soft", "hard"):
        ap = ALIFParams(tau_mem=3.0, tau_adapt=7.0, beta=0.0, r=2.0, v_leak=0.1, reset=reset)
        s_a, st_a = F.alif_multistep(xs, None, ap)
        s_l, st_l = F.lif_multistep(xs, None, ap.as_lif())
        assert torch.equal(s_a, s_l) and torch.equal(st_a.v, st_l.v)
        assert s_a.sum() > 0


def test_alif_threshold_rises_and_decays_back():
    p = ALIFParams(tau_mem=2.0, r=2.0, tau_adapt=10.0, beta=0.5)
    xs = torch.cat([torch.full((20, 1), 1.2), torch.zeros(30, 1)])
    spikes, st = F.alif_multistep(xs, None, p)
    times = spikes.flatten().nonzero().flatten().tolist()
    isis = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 3 and isis == sorted(isis) and isis[-1] > isis[0]
    n = len(times)
    # a after silence: decayed geometrically from its value at the last spike
    assert 0 < st.a.item() < n * 0.9 ** (49 - times[-1])


def test_tensor_params_per_neuron():
    v_th = torch.tensor([0.5, 1.0, 2.0])
    s, _ = F.if_multistep(torch.full((8, 3), 0.5), None, IFParams(v_th=v_th))
    assert s.sum(0).tolist() == [8.0, 4.0, 2.0]
    with pytest.raises(ValueError, match="does not broadcast"):
        F.if_step(torch.zeros(2), None, IFParams(v_reset=torch.zeros(3, 1)))


# --- multi-step == looped single step, bit for bit --------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["if", "lif", "alif"]),
    reset=st.sampled_from(["soft", "hard"]),
    surrogate=st.sampled_from(["atan", "sigmoid", "fast_sigmoid", "triangle"]),
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    T=st.integers(0, 12),
    with_state=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_multistep_equals_looped_step(kind, reset, surrogate, shape, T, with_state, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    p = params_for(kind, reset, v_reset=-0.1, surrogate=surrogate)
    _, _, step, multistep, _ = KINDS[kind]
    xs = (torch.randn(T, *shape, generator=g, dtype=dtype) + 0.5).requires_grad_(True)
    state0 = random_state(kind, shape, g, dtype) if with_state else None
    s_m, st_m = multistep(xs, state0, p)
    xs2 = xs.detach().clone().requires_grad_(True)
    if T:
        s_l, st_l = loop(step, xs2, state0, p)
    else:
        s_l, st_l = xs2.new_zeros(xs2.shape), state0
    assert s_m.shape == xs.shape and s_m.dtype == dtype
    assert torch.equal(s_m, s_l)
    if st_l is None:  # T == 0 without a state: the multi-step call returns the resting state
        assert all(t.shape == torch.Size(shape) for t in st_m)
        return
    for a, b in zip(st_m, st_l):
        assert torch.equal(a, b)
    if T:  # gradients agree bit for bit too
        w = torch.randn(xs.shape, generator=g, dtype=dtype)
        ((s_m * w).sum() + st_m.v.sum()).backward()
        ((s_l * w).sum() + st_l.v.sum()).backward()
        assert torch.equal(xs.grad, xs2.grad)


@pytest.mark.parametrize("kind", ["if", "lif", "alif"])
def test_chunked_multistep_continues_exactly(kind):
    _, _, _, multistep, _ = KINDS[kind]
    p = params_for(kind)
    xs = torch.rand(30, 6, generator=torch.Generator().manual_seed(1))
    s_full, st_full = multistep(xs, None, p)
    s1, st1 = multistep(xs[:13], None, p)
    s2, st2 = multistep(xs[13:], st1, p)
    assert torch.equal(torch.cat([s1, s2]), s_full)
    for a, b in zip(st2, st_full):
        assert torch.equal(a, b)


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(k=st.integers(0, 64), T=st.integers(1, 200), j=st.integers(-2, 3))
def test_if_soft_reset_counts_floor_formula(k, T, j):
    """Constant input I = k/64 * v_th (dyadic, exact in float): spikes over T = floor(T*I/v_th)."""
    v_th = 2.0**j
    xs = torch.full((T, 1), k / 64 * v_th)
    spikes, st = F.if_multistep(xs, None, IFParams(v_th=v_th))
    n = int(spikes.sum())
    assert n == (T * k) // 64
    assert st.v.item() == pytest.approx((T * k % 64) / 64 * v_th)  # the residue is kept


@settings(max_examples=40, deadline=None)
@given(
    tau=st.floats(1.0, 50.0),
    v_leak=st.floats(-1.0, 0.5),
    margin=st.floats(0.02, 1.0),
    reset=st.sampled_from(["soft", "hard"]),
)
def test_lif_rheobase(tau, v_leak, margin, reset):
    """Constant r*I below v_th - v_leak never fires; above it, fires within the expected time."""
    p = LIFParams(tau_mem=tau, v_leak=v_leak, v_th=1.0, reset=reset, v_reset=v_leak)
    gap = p.v_th - v_leak
    T = math.ceil(tau * math.log((1 + margin) / margin)) + 2
    below, _ = F.lif_multistep(torch.full((T, 1), gap * (1 - margin), dtype=torch.float64), None, p)
    assert below.sum() == 0
    above, _ = F.lif_multistep(torch.full((T, 1), gap * (1 + margin), dtype=torch.float64), None, p)
    assert above.sum() >= 1


@settings(max_examples=40, deadline=None)
@given(
    current=st.floats(0.0, 3.0),
    beta=st.floats(0.0, 2.0),
    tau_adapt=st.floats(1.0, 100.0),
    reset=st.sampled_from(["soft", "hard"]),
)
def test_alif_fires_no_more_than_lif_for_constant_input(current, beta, tau_adapt, reset):
    ap = ALIFParams(tau_mem=4.0, r=2.0, tau_adapt=tau_adapt, beta=beta, reset=reset)
    xs = torch.full((100, 1), current, dtype=torch.float64)
    s_a, _ = F.alif_multistep(xs, None, ap)
    s_l, _ = F.lif_multistep(xs, None, ap.as_lif())
    assert s_a.sum() <= s_l.sum()


# --- comparisons with norse and spikingjelly (parameter mapping documented in docs) ----------


def test_lif_hard_matches_norse_lif_box():
    norse_lif = pytest.importorskip("norse.torch.functional.lif_box")
    xs = torch.rand(60, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3
    tau_mem, dt, v_leak, v_th, v_reset = 5.0, 0.5, 0.1, 1.0, -0.2
    np_ = norse_lif.LIFBoxParameters(
        tau_mem_inv=torch.tensor(1 / tau_mem, dtype=torch.float64),
        v_leak=torch.tensor(v_leak, dtype=torch.float64),
        v_th=torch.tensor(v_th, dtype=torch.float64),
        v_reset=torch.tensor(v_reset, dtype=torch.float64),
    )
    state = norse_lif.LIFBoxFeedForwardState(v=torch.full((8,), v_leak, dtype=torch.float64))
    ref = []
    for x in xs:
        z, state = norse_lif.lif_box_feed_forward_step(x, state, np_, dt=dt)
        ref.append(z)
    p = LIFParams(tau_mem=tau_mem, dt=dt, v_leak=v_leak, v_th=v_th, v_reset=v_reset, reset="hard")
    spikes, st = F.lif_multistep(xs, None, p)
    assert torch.equal(spikes, torch.stack(ref)) and spikes.sum() > 20
    torch.testing.assert_close(st.v, state.v, rtol=1e-12, atol=1e-12)


def test_if_hard_matches_norse_iaf():
    norse_iaf = pytest.importorskip("norse.torch.functional.iaf")
    xs = torch.rand(40, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    np_ = norse_iaf.IAFParameters(v_th=torch.tensor(1.0), v_reset=torch.tensor(0.0))
    state = norse_iaf.IAFFeedForwardState(v=torch.zeros(8, dtype=torch.float64))
    ref = []
    for x in xs:
        z, state = norse_iaf.iaf_feed_forward_step(x, state, np_)
        ref.append(z)
    spikes, st = F.if_multistep(xs, None, IFParams(reset="hard"))
    assert torch.equal(spikes, torch.stack(ref).to(spikes.dtype)) and spikes.sum() > 5
    torch.testing.assert_close(st.v, state.v.to(st.v.dtype))


@pytest.mark.parametrize(
    "decay_input, v_reset, surrogate",
    [(True, 0.0, "sigmoid"), (True, None, "atan"), (False, -0.1, "sigmoid"), (False, None, "atan")],
)
def test_lif_matches_spikingjelly_lifnode_and_its_gradient(decay_input, v_reset, surrogate):
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    tau = 3.0
    sg = sj_surrogate.Sigmoid() if surrogate == "sigmoid" else sj_surrogate.ATan()
    node = sj_neuron.LIFNode(
        tau=tau, decay_input=decay_input, v_reset=v_reset, surrogate_function=sg, step_mode="m"
    )
    xs = torch.rand(30, 16, generator=torch.Generator().manual_seed(7)) * 2.5
    x_sj = xs.clone().requires_grad_(True)
    ref = node(x_sj)
    # the mapping: dt = 1, tau_mem = tau, v_leak = v_reset (0 for soft), r = 1 or tau
    p = LIFParams(
        tau_mem=tau,
        v_leak=v_reset or 0.0,
        v_reset=v_reset or 0.0,
        r=1.0 if decay_input else tau,
        reset="soft" if v_reset is None else "hard",
        surrogate=surrogate,
    )
    x_ours = xs.clone().requires_grad_(True)
    spikes, st = F.lif_multistep(x_ours, None, p)
    assert torch.equal(spikes, ref) and 30 < spikes.sum() < 30 * 16
    torch.testing.assert_close(st.v, node.v, rtol=1e-5, atol=1e-6)
    w = torch.randn(xs.shape, generator=torch.Generator().manual_seed(8))
    (ref * w).sum().backward()
    (spikes * w).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_sj.grad, rtol=1e-4, atol=1e-5)


# --- input validation -------------------------------------------------------------------------


def test_functional_input_errors():
    with pytest.raises(TypeError, match="needs LIFParams"):
        F.lif_step(torch.zeros(2), None, IFParams())
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        F.lif_step([0.0, 1.0])
    with pytest.raises(TypeError, match="floating"):
        F.if_step(torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="leading time dimension"):
        F.if_multistep(torch.tensor(1.0))
    with pytest.raises(TypeError, match="state must be a LIFState"):
        F.lif_step(torch.zeros(2), F.IFState(torch.zeros(2)))
    with pytest.raises(ValueError, match=r"state.v has shape \(3,\) but the input"):
        F.lif_step(torch.zeros(2), F.LIFState(torch.zeros(3)))
    with pytest.raises(ValueError, match=r"state.a has shape"):
        F.alif_multistep(torch.zeros(4, 2), F.ALIFState(torch.zeros(2), torch.zeros(1)))
    with pytest.raises(TypeError, match=r"state.v must be a torch.Tensor"):
        F.if_step(torch.zeros(2), F.IFState(0.0))


# --- modules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["if", "lif", "alif"])
def test_module_single_step_keeps_state_and_matches_functional(kind):
    _, _, step, multistep, Module = KINDS[kind]
    p = params_for(kind, "hard")
    neuron = Module(p)
    xs = torch.rand(25, 3, 4, generator=torch.Generator().manual_seed(0)) * 1.5
    out = torch.stack([neuron(x) for x in xs])
    ref, ref_state = multistep(xs, None, p)
    assert torch.equal(out, ref)
    assert torch.equal(neuron.v, ref_state.v)
    neuron.reset()
    assert neuron.state is None and neuron.v is None
    assert torch.equal(neuron(xs[0]), step(xs[0], None, p)[0])


@pytest.mark.parametrize("kind", ["if", "lif", "alif"])
def test_module_multi_step_chunks(kind):
    _, _, _, multistep, Module = KINDS[kind]
    p = params_for(kind)
    neuron = Module(p, step_mode="m")
    xs = torch.rand(20, 5, generator=torch.Generator().manual_seed(1)) * 1.5
    out = torch.cat([neuron(xs[:7]), neuron(xs[7:])])
    ref, ref_state = multistep(xs, None, p)
    assert torch.equal(out, ref)
    for a, b in zip(neuron.state, ref_state):
        assert torch.equal(a, b)


def test_module_keyword_construction_and_errors():
    lif = LIF(tau_mem=5.0, reset="hard", v_reset=-0.1)
    assert lif.params == LIFParams(tau_mem=5.0, reset="hard", v_reset=-0.1)
    assert "step_mode='s'" in repr(lif) and "tau_mem=5.0" in repr(lif)
    with pytest.raises(ValueError, match="step_mode must be 's'"):
        LIF(step_mode="multi")
    with pytest.raises(ValueError, match="step_mode must be 's'"):
        lif.step_mode = "x"
    with pytest.raises(TypeError, match="either params= or keyword"):
        LIF(LIFParams(), tau_mem=3.0)
    with pytest.raises(TypeError, match="LIF needs LIFParams"):
        LIF(IFParams())
    with pytest.raises(ValueError, match="tau_mem must be > 0"):
        LIF(tau_mem=-1.0)
    with pytest.raises(TypeError):
        LIF(not_a_field=1.0)
    lif(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"call .reset\(\)"):
        lif(torch.zeros(4, 3))
    lif.reset()
    assert lif(torch.zeros(4, 3)).shape == (4, 3)
    m = ALIF(step_mode="m")
    m(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="input per time step has shape"):
        m(torch.zeros(5, 3))


def test_detach_state_truncates_the_graph():
    x = torch.ones(3, requires_grad=True)
    attached, detached = LIF(), LIF(detach_state=True)
    attached(x * 3)
    detached(x * 3)
    assert attached.v.requires_grad and not detached.v.requires_grad
    detached(x * 3).sum().backward()  # only the second call's graph: no error, grad from step 2
    assert x.grad is not None


def test_detach_reset_changes_gradient_not_forward():
    xs = torch.rand(20, 6, generator=torch.Generator().manual_seed(2)) * 2
    grads, outs = [], []
    for detach in (False, True):
        x = xs.clone().requires_grad_(True)
        s, _ = F.lif_multistep(x, None, LIFParams(tau_mem=3.0, detach_reset=detach))
        s.sum().backward()
        outs.append(s)
        grads.append(x.grad)
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(grads[0], grads[1])


def test_reset_states_counts_neurons():
    net = nn.Sequential(nn.Linear(2, 3), IF(), nn.Linear(3, 3), LIF(), ALIF())
    net(torch.ones(1, 2))
    assert reset_states(net) == 3
    assert all(m.state is None for m in net if hasattr(m, "state"))


# --- training: the surrogate gradients make a spiking network learn ---------------------------


def xor_blobs(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Four Gaussian blobs with XOR labels: not linearly separable, so the hidden layer must learn."""
    c = torch.randint(0, 4, (n,), generator=g)
    centers = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    return centers[c] + 0.35 * torch.randn(n, 2, generator=g), (c >= 2).long()


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize(
    "make, step_mode",
    [
        (lambda: LIF(tau_mem=5.0, surrogate="atan", step_mode="m"), "m"),
        (lambda: LIF(tau_mem=5.0, reset="hard", surrogate="triangle", step_mode="s"), "s"),
        (
            lambda: ALIF(tau_mem=5.0, tau_adapt=20.0, beta=0.2, surrogate="sigmoid", step_mode="m"),
            "m",
        ),
    ],
    ids=["lif-soft-atan-multistep", "lif-hard-triangle-singlestep", "alif-sigmoid-multistep"],
)
def test_two_layer_spiking_network_learns_xor(make, step_mode, one_thread):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    T = 10
    net = nn.Sequential(nn.Linear(2, 32), make(), nn.Linear(32, 2), make())
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    x_train, y_train = xor_blobs(256, g)
    x_test, y_test = xor_blobs(512, g)

    def rates(x: torch.Tensor) -> torch.Tensor:  # constant-current input, rate readout
        reset_states(net)
        if step_mode == "m":
            return net(x.expand(T, *x.shape)).mean(0)
        return torch.stack([net(x) for _ in range(T)]).mean(0)

    losses = []
    for _ in range(150):
        loss = nn.functional.cross_entropy(5 * rates(x_train), y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        acc = (rates(x_test).argmax(1) == y_test).float().mean().item()
    first, last = losses[0], sum(losses[-10:]) / 10
    assert last < 0.3 * first, (first, last)
    assert acc > 0.9, acc  # chance is 0.5
