"""Generation of both SpikingBrain families through transformers' generate():

- a padded batch (left or right padding) gives every row its alone-generation;
- N new tokens cost one prompt forward and N - 1 forwards of one token (the cache is used);
- generation from inputs_embeds, and continuing a prompt from a cache;
- the decode window switch (flash: w + 1 keys, public: w keys);
- clear errors for a batch-size change against a cache, empty input and out-of-range ids.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from spikingbrain.models._common import cache_of
from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM
from spikingbrain.models.hybrid import SpikingBrainMoEConfig, SpikingBrainMoEForCausalLM

TINY_7B = dict(vocab_size=96, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
               num_key_value_heads=2, intermediate_size=48, bos_token_id=1, eos_token_id=2,
               pad_token_id=0, sliding_window=4, prefill_chunk_tokens=0)


def _tiny(kind: str, **overrides):
    torch.manual_seed(0)
    if kind == "7b":
        model = GLAswaForCausalLM(GLAswaConfig(**{**TINY_7B, **overrides}))
    else:
        cfg = SpikingBrainMoEConfig.tiny(pad_token_id=0, sliding_window=4, **overrides)
        model = SpikingBrainMoEForCausalLM(cfg)
        with torch.no_grad():
            model.model.sink_tokens.normal_()
    model = model.double().eval()
    with torch.no_grad():  # larger weights: greedy choices differ from token to token
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    return model


def _alone(model, row: list[int], n: int) -> list[int]:
    out = model.generate(torch.tensor([row]), max_new_tokens=n, do_sample=False,
                         pad_token_id=0)
    return out[0, len(row):].tolist()


PROMPTS = [[5, 9, 14, 3, 22, 7, 11], [8, 4], [30, 31, 32, 33, 34]]


@pytest.mark.parametrize("kind", ["7b", "76b"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_equals_alone_generation(kind, side):
    model = _tiny(kind)
    n = 9  # past the window of 4: the sliding layers drop keys while decoding
    width = max(map(len, PROMPTS))
    ids = torch.zeros(len(PROMPTS), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(PROMPTS):
        sl = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, sl] = torch.tensor(row)
        mask[i, sl] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers warns about right padding
        out = model.generate(ids, attention_mask=mask, max_new_tokens=n, do_sample=False,
                             pad_token_id=0)
    for i, row in enumerate(PROMPTS):
        assert out[i, width:].tolist() == _alone(model, row, n), (side, i)


@pytest.mark.parametrize("kind", ["7b", "76b"])
def test_padded_forward_rows_equal_their_alone_logits(kind):
    """Padding anywhere in a row (here in the middle) is skipped: the real tokens' logits
    equal the row's alone, with and without a cache."""
    model = _tiny(kind)
    row = [5, 9, 14, 3, 22, 7, 11, 40]
    ids = torch.tensor([row[:3] + [0, 0] + row[3:]])
    mask = torch.tensor([[1, 1, 1, 0, 0] + [1] * 5])
    with torch.no_grad():
        want = model(torch.tensor([row]), use_cache=False).logits
        for use_cache in (False, True):
            got = model(ids, attention_mask=mask, use_cache=use_cache).logits
            torch.testing.assert_close(got[:, mask[0].bool()], want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["7b", "76b"])
def test_generation_uses_the_cache_one_token_per_step(kind):
    model = _tiny(kind)
    lengths = []
    original = model.forward

    def counting(*args, **kwargs):
        x = kwargs.get("input_ids")
        lengths.append(x.shape[1])
        return original(*args, **kwargs)

    model.forward = counting
    prompt = torch.tensor([[5, 9, 14, 3, 22, 7]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning about the cache argument
        model.generate(prompt, max_new_tokens=100, min_new_tokens=100, do_sample=False,
                       pad_token_id=0)
    # the prompt once (its logits give the first new token), then one token per step
    assert lengths == [6] + [1] * 99


@pytest.mark.parametrize("kind", ["7b", "76b"])
def test_generate_from_inputs_embeds_equals_from_ids(kind):
    model = _tiny(kind)
    ids = torch.tensor([[5, 9, 14, 3, 22, 7]])
    want = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)[0, 6:]
    embeds = model.get_input_embeddings()(ids)
    got = model.generate(inputs_embeds=embeds, max_new_tokens=8, do_sample=False,
                         pad_token_id=0)[0]
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("kind", ["7b", "76b"])
def test_a_cache_continues_a_prompt(kind):
    model = _tiny(kind)
    ids = torch.tensor([[5, 9, 14, 3, 22, 7, 11, 40, 41]])
    want = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    cache = model.new_cache()
    with torch.no_grad():
        model(ids[:, :5], cache=cache)  # the first part of the prompt, kept in the cache
    got = model.generate(ids, cache=cache, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(got, want)


def test_decode_window_public_sees_one_key_fewer():
    """flash: decoding equals the full forward at every length; public: a decoded token sees
    w keys (the current one included), so it differs once the sequence is longer than w."""
    ids = torch.randint(3, 96, (1, 14), generator=torch.Generator().manual_seed(5))
    for mode in ("flash", "public"):
        model = _tiny("7b", decode_window=mode)
        with torch.no_grad():
            full = model(ids, use_cache=False).logits
            out = model(ids[:, :2], use_cache=True)
            steps = [out.logits]
            for t in range(2, 14):
                out = model(ids[:, t:t + 1], cache=cache_of(out))
                steps.append(out.logits)
            dec = torch.cat(steps, 1)
        early = slice(0, 4)  # no window reached yet: every rule sees every key
        torch.testing.assert_close(dec[:, early], full[:, early], rtol=1e-9, atol=1e-9)
        if mode == "flash":
            torch.testing.assert_close(dec, full, rtol=1e-9, atol=1e-9)
        else:
            assert not torch.allclose(dec[:, 5:], full[:, 5:], atol=1e-6)
            # the public rule is the flash rule with one key fewer while decoding
            ref = _tiny("7b", decode_window="flash", sliding_window=3)
            ref.load_state_dict(model.state_dict())
            with torch.no_grad():
                out = ref(ids[:, :2], use_cache=True)
                for t in range(2, 14):
                    out = ref(ids[:, t:t + 1], cache=cache_of(out))
                    torch.testing.assert_close(out.logits, dec[:, t:t + 1], rtol=1e-9,
                                               atol=1e-9)
    with pytest.raises(ValueError, match="decode_window"):
        GLAswaConfig(**TINY_7B, decode_window="wide")


@pytest.mark.parametrize("kind", ["7b", "76b"])
def test_clear_errors_for_bad_inputs(kind):
    model = _tiny(kind)
    out = model(torch.tensor([[5, 6, 7]]), use_cache=True)
    with pytest.raises(ValueError, match="start a new cache"):
        model(torch.tensor([[5], [6]]), cache=cache_of(out))
    with pytest.raises(ValueError, match="no token"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="vocabulary"):
        model(torch.tensor([[5, 100000]]))
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.tensor([[5.0, 6.0]]))
    with pytest.raises(ValueError, match="columns"):
        model(torch.tensor([[5, 6]]), attention_mask=torch.ones(1, 7, dtype=torch.long),
              cache=cache_of(out))
    with pytest.raises(TypeError, match="DynamicCache cannot hold"):
        from transformers import DynamicCache

        model(torch.tensor([[5]]), cache=DynamicCache())


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        GLAswaConfig(**{**TINY_7B, "vocab_size": 0})
    with pytest.raises(ValueError, match="must be even"):
        GLAswaConfig(**{**TINY_7B, "hidden_size": 36, "num_attention_heads": 4})
    with pytest.raises(ValueError, match="head_dim must be even"):
        SpikingBrainMoEConfig.tiny(head_dim=7)
    with pytest.raises(ValueError, match="vocab_size"):
        SpikingBrainMoEConfig.tiny(vocab_size=0)
