"""SpikingLinear: modes agree bit for bit, bad input is rejected clearly, imports keep codes."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from spikingbrain.coding import scheme_names
from spikingbrain.converter import SpikeConfig, SpikingLinear
from spikingbrain.converter.kernels import reference_accumulators


def _pair(lin, **cfg):
    return (SpikingLinear.from_linear(lin, SpikeConfig(mode="count", **cfg)),
            SpikingLinear.from_linear(lin, SpikeConfig(mode="spike", **cfg)))


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(scheme_names()), st.integers(1, 70), st.integers(1, 9),
       st.sampled_from([3, 16, 128]), st.floats(0.5, 8.0), st.integers(0, 10_000),
       st.sampled_from([None, 3, 5]))
def test_count_equals_spike_random(scheme, inp, out, gs, k, seed, T):
    torch.manual_seed(seed)
    if T is not None and "twos" in scheme:
        T += 1
    lin = nn.Linear(inp, out)
    c, s = _pair(lin, scheme=scheme, group_size=gs, k=k, T=T)
    x = torch.randn(3, 2, inp) * torch.rand(1) * 10
    counts, _, _ = c.spike_counts(x)
    acc_c = c.integer_accumulators(counts)
    acc_s = s.integer_accumulators(counts)
    assert torch.equal(acc_c, acc_s)
    ref = reference_accumulators(counts.reshape(-1, inp), c.qdata, c.group_size)
    assert torch.equal(acc_c.reshape(-1, out, c.n_groups).long(), ref)
    assert torch.equal(c(x), s(x))


def test_fake_mode_close_and_float_close():
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    x = torch.randn(10, 64)
    y_c = SpikingLinear.from_linear(lin, SpikeConfig())(x)
    y_f = SpikingLinear.from_linear(lin, SpikeConfig(mode="fake"))(x)
    assert torch.allclose(y_c, y_f, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        ref = lin(x)
    assert torch.nn.functional.cosine_similarity(y_c, ref, dim=-1).min() > 0.98


def test_group_remainder_and_error():
    lin = nn.Linear(300, 4)
    sl = SpikingLinear.from_linear(lin, SpikeConfig(group_size=128))
    assert sl.scale.shape == (4, 3) and sl.group_size == 128
    with pytest.raises(ValueError, match="does not divide"):
        SpikingLinear.from_linear(lin, SpikeConfig(group_size=128, remainder="error"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_inf_activations_rejected(bad):
    sl = SpikingLinear.from_linear(nn.Linear(8, 4), SpikeConfig())
    x = torch.randn(2, 8)
    x[1, 3] = bad
    with pytest.raises(ValueError, match="NaN/Inf"):
        sl(x)


@pytest.mark.parametrize("mode", ["count", "spike", "fake"])
def test_all_zero_tokens_give_bias(mode):
    lin = nn.Linear(8, 4)
    sl = SpikingLinear.from_linear(lin, SpikeConfig(mode=mode))
    y = sl(torch.zeros(3, 8))
    assert torch.isfinite(y).all()
    assert torch.equal(y, lin.bias.detach().expand(3, 4))


def test_half_input_and_wrong_shape():
    sl = SpikingLinear.from_linear(nn.Linear(8, 4), SpikeConfig())
    y = sl(torch.randn(2, 8).half())
    assert y.dtype == torch.float16 and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="in_features=8"):
        sl(torch.randn(2, 7))
    with pytest.raises(TypeError):
        sl([1.0] * 8)


def test_saturation_reported_to_observers():
    sl = SpikingLinear.from_linear(nn.Linear(16, 4), SpikeConfig(T=2, max_count=5))
    seen = []
    sl.add_spike_observer(lambda m, rec: seen.append(rec))
    x = torch.zeros(1, 16)
    x[0, 0] = 100.0  # one outlier: count 48 at k=3, window 2 holds |c| <= 3
    sl(x)
    rec = seen[0]
    assert rec.T == 2 and rec.scheme == "bitwise_bidirectional" and int(rec.n_saturated) == 1
    assert rec.counts.abs().max() == 3


def test_import_public_codes_out_of_range():
    torch.manual_seed(0)
    w = torch.randn(8, 256)
    scales = w.abs().reshape(8, 2, 128).amax(-1, keepdim=True) / 127 * 0.9  # ~10 % overflow
    sl = SpikingLinear.from_quantized(w, scales)
    codes = torch.round(w / scales.repeat_interleave(128, 1).reshape(8, 256))
    n_out = int((codes.abs() > 127).sum() - (codes == -128).sum())
    assert sl.qdata.dtype == torch.int16 and sl.n_out_of_range == n_out > 0
    assert torch.equal(sl.qdata.long(), codes.long())  # kept exact
    with pytest.warns(UserWarning, match=f"{n_out} of"):
        clipped = SpikingLinear.from_quantized(w, scales, config=SpikeConfig(clip_weights=True))
    assert clipped.qdata.dtype == torch.int8
    # count and spike modes stay identical with int16 codes
    x = torch.randn(4, 256)
    spike = SpikingLinear.from_quantized(w, scales, config=SpikeConfig(mode="spike"))
    assert torch.equal(sl(x), spike(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SpikingLinear.from_quantized(w, scales)  # keeping codes warns nothing


def test_public_quantlinear_detected_by_convert():
    from spikingbrain.converter import convert

    class Quantizer(nn.Module):
        def __init__(self, out, n):
            super().__init__()
            self.register_buffer("scales", torch.full((out, n, 1), 0.0004))

    class QuantLinear(nn.Linear):  # the public layout: weight + weight_quantizer.scales
        def __init__(self, i, o):
            super().__init__(i, o)
            self.weight_quantizer = Quantizer(o, i // 128)

    net = nn.Sequential(QuantLinear(256, 4))
    net_w = net[0].weight.detach().clone()
    convert(net, SpikeConfig())
    assert isinstance(net[0], SpikingLinear) and net[0].group_size == 128
    codes = torch.round(net_w / 0.0004)
    assert net[0].n_out_of_range == int((codes.abs() > 127).sum() - (codes == -128).sum()) > 0
    assert torch.equal(net[0].qdata.long(), codes.long())


def test_config_validation():
    with pytest.raises(ValueError, match="k must be"):
        SpikeConfig(k=0)
    with pytest.raises(ValueError, match="unknown spike coding scheme"):
        SpikeConfig(scheme="morse")
    with pytest.raises(ValueError, match="granularity"):
        SpikeConfig(granularity="row")
    with pytest.raises(ValueError, match="group_size"):
        SpikeConfig(group_size=0)
    with pytest.raises(TypeError, match="compute_dtype"):
        SpikeConfig(compute_dtype="float32")
    with pytest.raises(ValueError, match="unknown SpikeConfig field"):
        SpikeConfig.from_dict({"k": 3, "colour": "red"})
    cfg = SpikeConfig(compute_dtype=torch.float64, T=4)
    assert SpikeConfig.from_dict(cfg.to_dict()) == cfg


def test_auto_fallback_on_cuda_warns_once_per_model_with_the_reason():
    """``kernel="auto"`` sending a CUDA call to the torch path warns once per model (not per
    layer call), naming the reason. The decision is taken in ``_use_triton``; a stand-in for
    a CUDA tensor reaches it on this CPU machine (the reason here is the mode, checked first)."""
    from types import SimpleNamespace

    from spikingbrain.converter.layer import reset_fallback_warnings, share_fallback_warnings

    x = SimpleNamespace(is_cuda=True, dtype=torch.float32, device=torch.device("cuda"))
    torch.manual_seed(0)
    layers = [SpikingLinear.from_linear(nn.Linear(32, 32), SpikeConfig(mode="fake"))
              for _ in range(3)]
    for model in (nn.Sequential(*layers), nn.Sequential(*[
            SpikingLinear.from_linear(nn.Linear(32, 32), SpikeConfig(mode="fake"))
            for _ in range(2)])):
        assert share_fallback_warnings(model) == len(model)
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            for _ in range(4):  # every layer, several calls
                assert not any(m._use_triton(x) for m in model)
        assert len(got) == 1, [str(w.message) for w in got]
        assert "torch path" in str(got[0].message) and "mode 'fake'" in str(got[0].message)
    reset_fallback_warnings()  # layers never shared: the process-wide notice, also once
    loose = [SpikingLinear.from_linear(nn.Linear(32, 32), SpikeConfig(mode="fake"))
             for _ in range(2)]
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        for m in loose * 3:
            m._use_triton(x)
    assert len(got) == 1
    cpu = SpikingLinear.from_linear(nn.Linear(32, 32), SpikeConfig(mode="fake"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto on a CPU tensor is the normal path: no warning
        reset_fallback_warnings()
        cpu(torch.randn(2, 32))
