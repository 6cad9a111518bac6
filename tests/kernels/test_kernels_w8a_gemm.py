"""The Triton spiking-linear kernels against the CPU reference, under the interpreter on CPU.

Integers (counts given, accumulators) are compared bit for bit; float outputs within 1e-5
relative (the group sum's float rounding may fuse differently).
"""

import pytest
import torch
from torch import nn

from spikingbrain.converter import SpikeConfig, SpikingLinear
from spikingbrain.converter.kernels import reference_accumulators
from spikingbrain.kernels.threshold_triton import exact_counts, threshold_counts
from spikingbrain.kernels.w8a_gemm_triton import GemmWeights, w8a_gemm_tuning
from spikingbrain.neurons.adaptive import adaptive_threshold


def _layer(in_f, out_f, **cfg):
    torch.manual_seed(in_f * 7 + out_f)
    return SpikingLinear.from_linear(nn.Linear(in_f, out_f), SpikeConfig(**cfg))


def _x(m, k, outliers=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g)
    if outliers:  # a few massive activations: counts in the thousands for those tokens
        x[1, 3] = 5000.0
        x[m - 1, k - 2] = -9000.0
    return x


@pytest.mark.parametrize("outliers", [False, True])
@pytest.mark.parametrize("gs,k", [(16, 64), (32, 80), (None, 48)])
def test_accumulators_equal_reference_bit_for_bit(gs, k, outliers):
    layer = _layer(k, 24, **({"group_size": gs} if gs else {"granularity": "channel"}))
    x = _x(20, k, outliers)
    t = threshold_counts(x, 400.0 if outliers else 3.0)  # large k: three base-128 digits
    counts = exact_counts(x, t)
    if outliers:
        assert int(t.absmax.max()) > 128 * 128
    w = GemmWeights(layer.qdata, layer.scale, None, layer.group_size)
    _, acc = w8a_gemm_tuning(x, t, w, store_acc=True)
    ref = reference_accumulators(counts, layer.qdata, layer.group_size)
    assert torch.equal(acc.to(torch.int64), ref)


@pytest.mark.parametrize("scheme", ["binary", "ternary", "bitwise_unsigned",
                                    "bitwise_bidirectional", "bitwise_twos_complement"])
@pytest.mark.parametrize("outliers", [False, True])
def test_spike_planes_give_count_mode_accumulators(scheme, outliers):
    layer = _layer(32, 16, group_size=16)
    x = _x(18, 32, outliers, seed=3)
    if outliers and scheme in ("binary", "ternary"):
        x[1, 3], x[17, 30] = 60.0, -45.0  # unary trains: keep T (one plane per step) small
    t = threshold_counts(x, 3.0)
    w = GemmWeights(layer.qdata, layer.scale, None, 16)
    _, acc_c = w8a_gemm_tuning(x, t, w, store_acc=True)
    _, acc_s = w8a_gemm_tuning(x, t, w, scheme, store_acc=True)
    assert torch.equal(acc_s, acc_c)
    assert torch.equal(acc_c.long(), reference_accumulators(exact_counts(x, t), layer.qdata, 16))


@pytest.mark.parametrize("width", [64, 8192 + 64])  # one pass in registers; two passes
def test_threshold_kernel_equals_the_neuron_where_the_mean_is_exact(width):
    # multiples of 1/8 summing to an exact mean: Vth and every count match bit for bit
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-40, 41, (3, width), generator=g).float() / 8
    t = threshold_counts(x, 3.0)
    ref = adaptive_threshold(x, 3.0)
    assert torch.equal(t.vth, ref.vth.flatten())
    assert torch.equal(exact_counts(x, t), ref.counts)
    assert torch.equal(t.absmax.long(), ref.counts.abs().amax(1).long())


def test_threshold_kernel_with_window_limits_counts_saturation():
    x = _x(6, 40, outliers=True)
    t = threshold_counts(x, 3.0, -8, 7)
    ref = adaptive_threshold(x, 3.0)
    assert torch.equal(exact_counts(x, t), ref.counts.clamp(-8, 7))
    assert int(t.saturated.sum()) == int(((ref.counts < -8) | (ref.counts > 7)).sum())


WINDOWED = dict(scheme="bitwise_twos_complement", T=6)  # counts saturate at [-32, 31]
BEYOND_INT8 = dict(scheme="bitwise_bidirectional", k=100.0)  # counts in the thousands


@pytest.mark.parametrize("mode", ["count", "spike"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", [WINDOWED, BEYOND_INT8])
def test_layer_through_triton_matches_torch_path(mode, dtype, case):
    cfgs = dict(group_size=16, mode=mode, **case)
    torch_layer = _layer(48, 40, kernel="torch", **cfgs)
    tri = _layer(48, 40, kernel="triton", **cfgs)
    x = _x(3 * 7, 48, outliers=True).reshape(3, 7, 48).to(dtype)
    seen = {}
    tri.add_spike_observer(lambda m, r: seen.update(tri=r))
    torch_layer.add_spike_observer(lambda m, r: seen.update(ref=r))
    y_t, y_r = tri(x), torch_layer(x)
    assert y_t.dtype == dtype and y_t.shape == (3, 7, 40)
    torch.testing.assert_close(y_t.float(), y_r.float(), rtol=1e-5 if dtype == torch.float32
                               else 1e-2, atol=1e-5)
    assert torch.equal(seen["tri"].counts, seen["ref"].counts)
    assert int(seen["tri"].n_saturated) == int(seen["ref"].n_saturated)
    if case is WINDOWED:
        assert int(seen["ref"].n_saturated) > 0
    else:
        assert float(seen["ref"].counts.abs().max()) > 1000


def test_non_finite_tokens_raise_or_give_nan():
    x = _x(4, 32)
    x[2, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN/Inf"):
        _layer(32, 8, kernel="triton", group_size=16)(x)
    y = _layer(32, 8, kernel="triton", group_size=16, check_finite=False)(x)
    assert torch.isnan(y[2]).all() and torch.isfinite(y[[0, 1, 3]]).all()


@pytest.mark.parametrize("cfg,why", [
    (dict(mode="fake"), "mode"), (dict(group_size=24), "group size"),
    (dict(compute_dtype=torch.float64), "compute_dtype"), (dict(k=1e6), "2\\*\\*21")])
def test_kernel_triton_says_why_it_cannot_run(cfg, why):
    layer = _layer(48, 8, kernel="triton", **cfg)
    with pytest.raises(ValueError, match=why):
        layer(torch.randn(2, 48))
    auto = _layer(48, 8, **cfg)  # "auto" on a CPU tensor: the torch path, no error
    assert auto(torch.randn(2, 48)).shape == (2, 8)


def test_bad_kernel_name_is_a_clear_error():
    with pytest.raises(ValueError, match="kernel must be one of"):
        SpikeConfig(kernel="cuda")


@pytest.mark.parametrize("m,n", [(32, 64), (33, 70)])  # tile-aligned (no masks), ragged
def test_two_tile_kernel_matches_torch_path(m, n):
    torch_layer = _layer(64, n, kernel="torch", group_size=16)
    tri = _layer(64, n, kernel="triton", group_size=16)
    x = _x(m, 64, outliers=m % 2 == 1)  # the ragged case also has blocks beyond int8
    torch.testing.assert_close(tri(x), torch_layer(x), rtol=1e-5, atol=1e-5)


def test_transposed_scales_follow_every_write_including_data():
    from spikingbrain.kernels.spiking_linear_triton import _scale_t

    layer = SpikingLinear.from_linear(nn.Linear(64, 8), SpikeConfig(group_size=16))
    first = _scale_t(layer)
    assert torch.equal(first, layer.scale.t().contiguous()) and first.is_contiguous()
    with torch.no_grad():
        layer.scale.mul_(2.0)  # written in place (bumps the version)
    assert torch.equal(_scale_t(layer), layer.scale.t().contiguous())
    version = layer.scale._version
    layer.scale.data.mul_(0.25)  # in place through .data: the version does not move
    assert layer.scale._version == version
    assert torch.equal(_scale_t(layer), layer.scale.t().contiguous())
    layer.scale.data = layer.scale.data * 3.0  # replaced through .data
    assert layer.scale._version == version
    assert torch.equal(_scale_t(layer), layer.scale.t().contiguous())
    layer.load_state_dict({**layer.state_dict(), "scale": layer.scale * 0.5})
    assert torch.equal(_scale_t(layer), layer.scale.t().contiguous())
    col_major = layer.scale.t().contiguous().t()  # already [G, N] in memory: no copy
    layer.scale.data = col_major
    assert _scale_t(layer).data_ptr() == col_major.data_ptr()
    one_group = SpikingLinear.from_linear(nn.Linear(64, 8), SpikeConfig(granularity="channel"))
    assert _scale_t(one_group) is None


def _clamped_vth_x():
    """Token 1: ``mean|x| / k`` far above 1e4, so ``Vth`` is clamped there and its largest
    count (3e11 / 1e4) passes the kernels' 2**21 bound."""
    x = _x(4, 32)
    x[1, 5] = 3e11
    return x


def test_counts_beyond_the_exact_range_raise_in_the_read_back():
    layer = _layer(32, 8, kernel="triton", group_size=16)
    with pytest.raises(ValueError, match="beyond 2080767.*kernel='torch'"):
        layer(_clamped_vth_x())


def test_counts_beyond_the_exact_range_give_nan_without_the_check():
    x = _clamped_vth_x()
    y = _layer(32, 8, kernel="triton", group_size=16, check_finite=False)(x)
    ref = _layer(32, 8, kernel="torch", group_size=16)(x)
    assert torch.isnan(y[1]).all()
    torch.testing.assert_close(y[[0, 2, 3]], ref[[0, 2, 3]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel,mode", [("torch", "count"), ("torch", "spike"),
                                         ("torch", "fake"), ("triton", "count"),
                                         ("triton", "spike")])  # fake mode has no kernel
def test_check_finite_false_gives_nan_rows_on_both_paths(kernel, mode):
    x = _x(4, 32)
    x[2, 5] = float("nan")
    x[3, 0] = float("inf")
    layer = _layer(32, 8, kernel=kernel, group_size=16, mode=mode, check_finite=False)
    seen = {}
    layer.add_spike_observer(lambda m, r: seen.update(r=r))
    y = layer(x)
    assert torch.isnan(y[2:]).all() and torch.isfinite(y[:2]).all()
    assert torch.isnan(seen["r"].vth[2:]).all() and not seen["r"].counts[2:].any()
    finite = _layer(32, 8, kernel="torch", group_size=16, mode=mode)(x[:2])
    torch.testing.assert_close(y[:2], finite, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="NaN/Inf"):
        _layer(32, 8, kernel=kernel, group_size=16, mode=mode)(x)


@pytest.mark.parametrize("bm,pair_bm", [(16, 32), (32, 16)])
def test_pair_config_with_its_own_row_block_writes_every_row(bm, pair_bm):
    from spikingbrain.kernels.threshold_triton import threshold_counts as thr

    layer = _layer(64, 64, kernel="torch", group_size=16)
    x = _x(80, 64)
    x[40, 3] = 500.0  # a block with counts beyond int8, for the general kernel
    t = thr(x, 3.0)
    cfg = dict(BM=bm, BN=16, GROUP_M=2, num_warps=4, num_stages=1)
    pc = dict(BM=pair_bm, BN=16, GROUP_M=2, num_warps=4, num_stages=1)
    y, _ = w8a_gemm_tuning(x, t, GemmWeights.of(layer), config=cfg, pair_config=pc)
    assert not torch.isnan(y).any()
    torch.testing.assert_close(y, layer(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="lacks"):
        w8a_gemm_tuning(x, t, GemmWeights.of(layer), pair_config=dict(BM=16))


def _int16_layer(in_f, out_f, frac=0.02, **cfg):
    """A layer with public-style int16 codes: ``frac`` of them beyond int8, up to +-383
    (high digit +-1) and a few up to the edge of the kernels' code range."""
    layer = _layer(in_f, out_f, **cfg)
    g = torch.Generator().manual_seed(in_f + out_f)
    q = layer.qdata.to(torch.int16)
    big = torch.rand(q.shape, generator=g) < frac
    q[big] = torch.randint(128, 384, (int(big.sum()),), generator=g, dtype=torch.int16) * \
        torch.where(torch.rand(int(big.sum()), generator=g) < 0.5, -1, 1).to(torch.int16)
    q[0, 0], q[1, 1], q[2, 2] = 32639, -32768, 20000  # the extremes the digits take
    layer.qdata = q
    return layer


@pytest.mark.parametrize("scheme", [None, "bitwise_bidirectional", "binary",
                                    "bitwise_twos_complement"])
@pytest.mark.parametrize("outliers", [False, True])
@pytest.mark.parametrize("gs", [16, None])
def test_int16_codes_accumulators_equal_the_integer_reference(scheme, outliers, gs):
    layer = _int16_layer(48, 24, **({"group_size": gs} if gs else {"granularity": "channel"}))
    x = _x(20, 48, outliers and scheme != "binary", seed=5)
    t = threshold_counts(x, 3.0)
    counts = exact_counts(x, t)
    if outliers and scheme != "binary":
        assert int(t.absmax.max()) > 127  # the digit path of the general kernel
    _, acc = w8a_gemm_tuning(x, t, GemmWeights.of(layer), scheme, store_acc=True)
    ref = reference_accumulators(counts, layer.qdata, layer.group_size)
    assert torch.equal(acc.to(torch.int64), ref)


@pytest.mark.parametrize("mode", ["count", "spike"])
@pytest.mark.parametrize("m", [32, 33])  # two-tile kernel aligned; ragged with a wide block
def test_int16_code_layer_through_triton_matches_torch_path(mode, m):
    tri = _int16_layer(64, 40, kernel="triton", group_size=16, mode=mode)
    ref = _int16_layer(64, 40, kernel="torch", group_size=16, mode=mode)
    assert tri.qdata.dtype == torch.int16 and torch.equal(tri.qdata, ref.qdata)
    x = _x(m, 64, outliers=m % 2 == 1)
    torch.testing.assert_close(tri(x), ref(x), rtol=1e-5, atol=1e-5)


def test_int16_codes_beyond_two_digits_are_refused():
    layer = _int16_layer(48, 8, kernel="triton", group_size=16)
    layer.qdata[3, 3] = 32700
    with pytest.raises(ValueError, match="int16 weight codes outside"):
        layer(torch.randn(2, 48))
