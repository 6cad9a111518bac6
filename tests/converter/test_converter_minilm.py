"""The real pretrained all-MiniLM-L6-v2: fidelity at k=3 and exact modes on real activations."""

from __future__ import annotations

import copy

import pytest
import torch

from spikingbrain.coding import scheme_names
from spikingbrain.converter import (
    SpikeConfig,
    SpikingLinear,
    convert,
    load_converted,
    memory_summary,
    save_converted,
)


def test_minilm_k3_cosine_at_least_099(minilm):
    from spikingbrain.data import embed, stdlib_sentences

    model, tok = minilm
    sents = stdlib_sentences(200)
    ref = embed(model, tok, sents, batch_size=64)
    conv = convert(copy.deepcopy(model),
                   SpikeConfig(k=3, scheme="bitwise_bidirectional", granularity="channel"))
    out = embed(conv, tok, sents, batch_size=64)
    cos = torch.nn.functional.cosine_similarity(out, ref, dim=-1)
    assert float(cos.mean()) >= 0.99
    assert memory_summary(conv).ratio <= 0.55


@pytest.fixture(scope="module")
def real_activations(minilm, minilm_batch):
    """Inputs of two real MiniLM projections (attention query and FFN output)."""
    model, _ = minilm
    names = ["encoder.layer.2.attention.self.query", "encoder.layer.3.output.dense"]
    got = {}
    hooks = [model.get_submodule(n).register_forward_pre_hook(
        lambda m, a, n=n: got.setdefault(n, a[0].detach().clone())) for n in names]
    with torch.no_grad():
        model(**minilm_batch)
    for h in hooks:
        h.remove()
    return {n: (model.get_submodule(n), got[n]) for n in names}


@pytest.mark.parametrize("scheme", scheme_names())
def test_count_equals_spike_on_real_activations(real_activations, scheme):
    for name, (lin, x) in real_activations.items():
        # spike mode of the unary schemes runs max|count| steps (hundreds on BERT outliers)
        x = x[:1, :8] if scheme in ("binary", "ternary") else x[:4]
        c = SpikingLinear.from_linear(lin, SpikeConfig(scheme=scheme, mode="count"))
        s = SpikingLinear.from_linear(lin, SpikeConfig(scheme=scheme, mode="spike"))
        counts, _, _ = c.spike_counts(x)
        assert torch.equal(c.integer_accumulators(counts), s.integer_accumulators(counts)), name
        assert torch.equal(c(x), s(x)), name


def test_minilm_save_load_identical(minilm, minilm_batch, tmp_path):
    model, _ = minilm
    conv = convert(copy.deepcopy(model), SpikeConfig(group_size=128))
    with torch.no_grad():
        ref = conv(**minilm_batch).last_hidden_state
    save_converted(conv, tmp_path)
    again = load_converted(tmp_path)
    with torch.no_grad():
        assert torch.equal(again(**minilm_batch).last_hidden_state, ref)
