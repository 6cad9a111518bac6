"""Softmax attention: sliding window with flash-attention semantics, GQA, sinks, chunked
queries and cache offsets, against the naive masked reference."""

import pytest
import torch

from spikingbrain.models.ops.attention import attention_mask, attention_reference, softmax_attention


def _qkv(Lq, Lk, H=4, Hkv=2, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, H, Lq, D, generator=g, dtype=torch.float64),
            torch.randn(2, Hkv, Lk, D, generator=g, dtype=torch.float64),
            torch.randn(2, Hkv, Lk, D, generator=g, dtype=torch.float64))


def test_window_semantics_are_flash_attentions():
    """A query at i sees keys i-w .. i: w + 1 keys."""
    m = attention_mask(10, 10, window=3)
    assert m.sum(1).tolist() == [1, 2, 3, 4, 4, 4, 4, 4, 4, 4]
    assert m[9, 6] and not m[9, 5] and not m[5, 6]


@pytest.mark.parametrize("window", [None, 0, 2, 5, 100])
@pytest.mark.parametrize("q_chunk", [3, 1024])
@pytest.mark.parametrize("n_sink", [0, 3])
def test_chunked_sdpa_equals_reference(window, q_chunk, n_sink):
    q, k, v = _qkv(17, 17 + n_sink)
    a = softmax_attention(q, k, v, window=window, n_sink=n_sink, q_chunk=q_chunk)
    b = attention_reference(q, k, v, window=window, n_sink=n_sink)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("window", [None, 4])
def test_decoding_with_offsets_equals_the_full_pass(window):
    """Queries at the end of a trimmed cache (keys from k_start on) give the full pass's rows."""
    q, k, v = _qkv(20, 20)
    full = attention_reference(q, k, v, window=window)
    keep = 6  # a cache that kept the last 6 keys
    for t in (14, 19):
        lo = max(0, t + 1 - keep) if window is not None else 0
        out = softmax_attention(q[:, :, t:t + 1], k[:, :, lo:t + 1], v[:, :, lo:t + 1],
                                window=window, k_start=lo)
        if window is not None and window < keep:
            torch.testing.assert_close(out, full[:, :, t:t + 1], rtol=1e-10, atol=1e-10)


def test_sink_queries_see_all_sinks_and_nothing_else():
    q, k, v = _qkv(3 + 6, 3 + 6)
    a = softmax_attention(q, k, v, n_sink=3, sink_queries=True, window=2, q_chunk=4)
    b = attention_reference(q, k, v, n_sink=3, sink_queries=True, window=2)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    m = attention_mask(9, 9, n_sink=3, sink_queries=True, window=2)
    assert m[:3, :3].all() and not m[:3, 3:].any() and m[3:, :3].all()


def test_gqa_head_mismatch_is_an_error():
    q, k, v = _qkv(4, 4, H=3, Hkv=2)
    with pytest.raises(ValueError, match="multiple"):
        softmax_attention(q, k, v)
