"""GLA: the naive recurrence, the chunked parallel form and the recurrent step agree on outputs,
final states and gradients."""

import warnings

import pytest
import torch

from spikingbrain.models.ops.gla import gla, gla_chunked, gla_naive


def _inputs(B=2, H=3, L=23, Dk=8, Dv=6, strong=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, H, L, Dk, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, H, L, Dv, generator=g, dtype=torch.float64)
    z = torch.randn(B, H, L, Dk, generator=g, dtype=torch.float64) * (8 if strong else 1)
    log_g = torch.nn.functional.logsigmoid(z) / (1 if strong else 16)
    h0 = torch.randn(B, H, Dk, Dv, generator=g, dtype=torch.float64)
    return q, k, v, log_g, h0


@pytest.mark.parametrize("L, chunk", [(23, 4), (23, 64), (16, 16), (1, 8), (40, 7)])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunked_equals_naive_outputs_and_states(L, chunk, with_state):
    q, k, v, log_g, h0 = _inputs(L=L)
    h0 = h0 if with_state else None
    o1, s1 = gla_naive(q, k, v, log_g, initial_state=h0, output_final_state=True)
    o2, s2 = gla_chunked(q, k, v, log_g, initial_state=h0, output_final_state=True,
                         chunk_size=chunk)
    torch.testing.assert_close(o2, o1, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s2, s1, rtol=1e-10, atol=1e-10)


def test_strong_decay_does_not_overflow_the_chunked_form():
    """Decays down to exp(-30) per step: the chunked form never forms exp(+b) alone."""
    q, k, v, log_g, _ = _inputs(L=64, strong=True)
    o1, _ = gla_naive(q, k, v, log_g)
    o2, _ = gla_chunked(q.float(), k.float(), v.float(), log_g.float(), chunk_size=64)
    assert torch.isfinite(o2).all()
    torch.testing.assert_close(o2.double(), o1, rtol=1e-4, atol=1e-4)


def test_gradients_agree():
    q, k, v, log_g, h0 = _inputs(L=19)
    leaves = [t.clone().requires_grad_() for t in (q, k, v, log_g, h0)]
    grads = []
    for fn in (lambda *a, **kw: gla_naive(*a, **kw),
               lambda *a, **kw: gla_chunked(*a, chunk_size=5, **kw)):
        for t in leaves:
            t.grad = None
        o, s = fn(*leaves[:4], initial_state=leaves[4], output_final_state=True)
        ((o ** 2).sum() + (s ** 3).sum()).backward()
        grads.append([t.grad.clone() for t in leaves])
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)


def test_step_by_step_decoding_equals_one_pass():
    """The recurrent form fed one token at a time, carrying its state, gives the same
    outputs as the chunked form over the whole sequence (prefill + decode)."""
    q, k, v, log_g, _ = _inputs(L=12)
    full, _ = gla(q, k, v, log_g, backend="chunked", chunk_size=4)
    o, state = gla(q[:, :, :7], k[:, :, :7], v[:, :, :7], log_g[:, :, :7], backend="chunked",
                   output_final_state=True)
    outs = [o]
    for t in range(7, 12):
        sl = slice(t, t + 1)
        o, state = gla(q[:, :, sl], k[:, :, sl], v[:, :, sl], log_g[:, :, sl],
                       initial_state=state, output_final_state=True, backend="auto")
        outs.append(o)
    torch.testing.assert_close(torch.cat(outs, 2), full, rtol=1e-10, atol=1e-10)


def test_bad_shapes_and_backend():
    q, k, v, log_g, _ = _inputs(L=4)
    with pytest.raises(ValueError, match="share one"):
        gla_naive(q, k[..., :4], v, log_g)
    with pytest.raises(ValueError, match="backend"):
        gla(q, k, v, log_g, backend="magic")


@pytest.mark.parametrize("ver,ok", [("0.6.2", True), ("0.6.0.dev1", True), ("0.5.1", False),
                                    ("0.7.0", False), ("0.1.2", False), ("weird", False)])
def test_fla_version_is_checked_before_use(monkeypatch, ver, ok):
    import spikingbrain.models.ops.gla as gla_mod

    monkeypatch.setattr(gla_mod, "_fla_version", lambda: ver)
    monkeypatch.setattr(gla_mod, "_FLA_WARNED", set())
    assert (gla_mod._fla_unsupported(ver) is None) == ok
    if ok:
        assert gla_mod._fla_available()
        return
    with pytest.warns(RuntimeWarning, match=f"flash-linear-attention {ver}.*tested"):
        assert not gla_mod._fla_available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per version, not per call
        assert not gla_mod._fla_available()
    q, k, v, log_g, _ = _inputs(L=4)
    with pytest.raises(RuntimeError, match="backend='fla' cannot run.*0.6.x"):
        gla(q, k, v, log_g, backend="fla")


def test_fla_missing_is_not_available(monkeypatch):
    import spikingbrain.models.ops.gla as gla_mod

    monkeypatch.setattr(gla_mod, "_fla_version", lambda: None)
    assert not gla_mod._fla_available()
    with pytest.raises(RuntimeError, match="not installed"):
        gla(*_inputs(L=3)[:4], backend="fla")
