"""The streaming monitor gives exactly the statistics computed from stored count tensors."""


import pytest
import torch
from torch import nn

from spikingbrain.analysis import SpikeMonitor, count_statistics, monitor
from spikingbrain.coding import scheme_names
from spikingbrain.neurons import AdaptiveThreshold
from spikingbrain.neurons.emitter import SpikeEmitter, SpikeRecord


class Emitter(SpikeEmitter):
    """Emits given counts (any scheme and window)."""

    def __init__(self, scheme, T=None, out_features=None):
        super().__init__()
        self.scheme, self.T = scheme, T
        if out_features:
            self.out_features = out_features

    def forward(self, c):
        self.emit(SpikeRecord(counts=c, vth=None, scheme=self.scheme, T=self.T))
        return c


def _compare(st, ref):
    a, b = st.to_dict(window=3), ref.to_dict(window=3)
    for d in (a, b):
        for key in ("kind", "name", "max_count"):  # descriptive, not measured
            d.pop(key)
    assert a == b


@pytest.mark.parametrize("scheme", scheme_names())
@pytest.mark.parametrize("T", [None, 3, 6])
@pytest.mark.parametrize("hist_range", [17, 4096])
def test_stream_equals_stored(scheme, T, hist_range):
    g = torch.Generator().manual_seed(hash((scheme, T, hist_range)) % 2**31)
    counts = [(torch.randn(2, 5, 16, generator=g) * torch.rand(16, generator=g) * 25).round()
              for _ in range(3)]
    if scheme in ("binary", "bitwise"):
        counts[0] = counts[0].abs()
    masks = [None, torch.rand(2, 5, generator=g) > 0.3, None]
    em = Emitter(scheme, T, out_features=7)
    with monitor(em, hist_range=hist_range) as m:
        for c, mk in zip(counts, masks):
            with m.token_mask(mk):
                em(c)
    st = m.stats().layers[0]
    ref = count_statistics(counts, scheme, T=T, masks=masks, fan_out=7, hist_range=hist_range)
    _compare(st, ref)


def test_adaptive_threshold_with_saturation():
    neuron = AdaptiveThreshold(k=3.0, max_count=4)
    stored = []
    neuron.add_spike_observer(lambda mod, rec: stored.append(rec.counts.clone()))
    x = torch.randn(3, 7, 32) * torch.linspace(0.1, 5, 32)
    with monitor(neuron) as m:
        out = neuron(x)
    st = m.stats().layers[0]
    assert st.saturated == out.n_saturated > 0
    _compare(st, count_statistics(stored, "bitwise_bidirectional", saturated=st.saturated))


def test_detach_stops_counting_and_reset():
    neuron = AdaptiveThreshold()
    m = SpikeMonitor(neuron).attach()
    neuron(torch.randn(4, 8))
    m.detach()
    neuron(torch.randn(4, 8))
    assert m.stats().layers[0].calls == 1
    m.reset()
    assert m.stats().layers[0].calls == 0


def test_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        SpikeMonitor("model")
    with pytest.raises(ValueError, match="hist_range"):
        SpikeMonitor(nn.Identity(), hist_range=3)
    with pytest.raises(ValueError, match="unknown layers"):
        SpikeMonitor(AdaptiveThreshold(), sample={"nope": (2, 2)})


def test_spiking_linear_stream_equals_stored():
    from spikingbrain.converter import SpikeConfig, convert

    torch.manual_seed(0)
    net = convert(nn.Sequential(nn.Linear(24, 16), nn.GELU(), nn.Linear(16, 8)),
                  SpikeConfig(k=3.0, group_size=8))
    stored = {}
    for name, mod in net.named_modules():
        if isinstance(mod, SpikeEmitter):
            mod.add_spike_observer(
                lambda mod, rec, name=name: stored.setdefault(name, []).append(rec.counts))
    with monitor(net) as m:
        for _ in range(3):
            net(torch.randn(5, 24))
    stats = m.stats()
    assert [s.name for s in stats.layers] == ["0", "2"]
    for st in stats.layers:
        assert st.groups == {"0": 3, "2": 2}[st.name] and st.trains == 1
        ref = count_statistics(stored[st.name], st.scheme, fan_out=st.fan_out, groups=st.groups)
        _compare(st, ref)
    assert stats.footprint_bytes > 0


@pytest.mark.parametrize("scheme", ["binary", "bitwise"])
def test_unsigned_schemes_count_both_polarity_trains(scheme):
    """A converted layer runs an unsigned scheme's negative counts on a second train: the
    sparsity and firing-rate slots count both trains."""
    from spikingbrain.converter import SpikeConfig, convert

    torch.manual_seed(1)
    net = convert(nn.Sequential(nn.Linear(16, 8)), SpikeConfig(scheme=scheme))
    stored = []
    net[0].add_spike_observer(lambda mod, rec: stored.append(rec.counts))
    with monitor(net) as m:
        net(torch.randn(4, 16))
    st = m.stats().layers[0]
    assert st.trains == 2
    T = int(st.window_max)
    assert st.slots == 2 * T * st.elements
    ref = count_statistics(stored, scheme, fan_out=8, trains=2, groups=1)
    _compare(st, ref)
    assert st.sparsity_at(3) == pytest.approx(ref.sparsity_at(3))


def test_minilm_small_batch_stream_equals_stored(minilm_converted):
    """Must-show 2: on real text through the converted MiniLM, streaming == stored."""
    model, tok = minilm_converted
    from spikingbrain.data import stdlib_sentences

    batch = tok(stdlib_sentences(6), padding=True, return_tensors="pt")
    mask = batch["attention_mask"].bool()
    stored = {}
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, SpikeEmitter):
            handles.append(mod.add_spike_observer(
                lambda mod, rec, name=name: stored.setdefault(name, []).append(
                    rec.counts.clone())))
    with monitor(model) as m, m.token_mask(mask), torch.no_grad():
        model(**batch)
    for h in handles:
        h.remove()
    stats = m.stats()
    assert len(stats.layers) == len(stored) > 30
    for st in stats.layers:
        st.groups = None  # the reference has no module to read the group count from
        ref = count_statistics(stored[st.name], st.scheme, T=st.T_config, fan_out=st.fan_out,
                               masks=[mask] * len(stored[st.name]))
        _compare(st, ref)
    assert stats.total.tokens == int(mask.sum())


@pytest.mark.parametrize("hist_range", [17, 40, 5000])
def test_model_totals_equal_stored_for_every_hist_range(hist_range):
    """The whole-model total uses the monitor's histogram range, including ranges smaller
    than the largest count (the end bins hold what lies beyond)."""
    g = torch.Generator().manual_seed(hist_range)
    net = nn.Sequential(Emitter("bitwise_bidirectional", out_features=4),
                        Emitter("bitwise_bidirectional", out_features=9))
    counts = [(torch.randn(3, 6, 16, generator=g) * 30).round() for _ in range(2)]
    counts[0][0, 0, 0] = 3 * hist_range  # beyond the histogram
    with monitor(net, hist_range=hist_range) as m:
        for c in counts:
            net(c)
    total = m.stats().total
    everything = [torch.cat([c.reshape(-1, 16) for c in counts])] * 2
    ref = count_statistics(everything, "bitwise_bidirectional", hist_range=hist_range)
    assert total.hist_range == hist_range
    assert total.zeros == ref.zeros == sum(int((c == 0).sum()) for c in counts) * 2
    assert total.silent_fraction == pytest.approx(ref.silent_fraction)
    assert total.fraction_le_7 == pytest.approx(ref.fraction_le_7)
    assert total.beyond_hist == ref.beyond_hist > 0
    assert total.hist == ref.hist
    assert total.spikes == ref.spikes and total.elements == ref.elements


def test_mismatched_token_mask_is_an_error():
    em = Emitter("ternary")
    with monitor(em) as m, m.token_mask(torch.ones(2, 3, dtype=torch.bool)):
        with pytest.raises(ValueError, match="does not match the token shape"):
            em(torch.zeros(2, 4, 8))


def test_pooled_inputs_under_a_token_mask_are_kept_whole():
    """A [batch] input under a [batch, seq] mask (a pooler) is counted unmasked."""
    em = Emitter("ternary")
    with monitor(em) as m, m.token_mask(torch.tensor([[True, False, False]] * 2)):
        em(torch.ones(2, 8))
    assert m.stats().layers[0].elements == 16
