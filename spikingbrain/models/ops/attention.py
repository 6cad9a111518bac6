"""Softmax attention with flash-attention's sliding-window semantics, GQA and sink keys, plus
a naive reference.

Positions: the non-sink keys sit at absolute positions ``k_start, k_start + 1, ...`` and the
queries at ``q_start, q_start + 1, ...`` (default: the last ``Lq`` key positions). A query at
``i`` sees a non-sink key at ``j`` iff ``j <= i`` and ``i - j <= window`` (flash-attention
``window_size=(w, 0)``: keys ``i - w .. i``, ``w + 1`` of them); ``window=None`` is plain causal.
The first ``n_sink`` keys are sinks: every query sees them. With ``sink_queries=True`` the
first ``n_sink`` queries are the sinks themselves: they see every sink (no causal mask among
sinks) and nothing else.

Padded rows: ``q_pos [B, Lq']`` and ``k_pos [B, Lk']`` (the non-sink queries and keys) give
every token's position per row, ``-1`` at padding. A padded key is seen by no query; a query
at ``i`` sees a key at ``j`` iff ``0 <= i - j <= window`` as above; a padding query (whose
output nobody reads) sees every key, so it stays finite.

Shapes: ``q [B, H, Lq, D]``, ``k, v [B, Hkv, Lk, D]`` with ``H % Hkv == 0``; output
``[B, H, Lq, D]`` in ``q``'s dtype.

>>> torch.manual_seed(0) is not None
True
>>> q = torch.randn(1, 4, 9, 8, dtype=torch.float64)
>>> k, v = torch.randn(1, 2, 9, 8, dtype=torch.float64), torch.randn(1, 2, 9, 8, dtype=torch.float64)
>>> a = softmax_attention(q, k, v, window=3, q_chunk=4)
>>> torch.allclose(a, attention_reference(q, k, v, window=3))
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["attention_mask", "attention_reference", "decode_attention", "position_mask",
           "softmax_attention"]


def attention_mask(lq: int, lk: int, *, window: int | None = None, n_sink: int = 0,
                   q_start: int | None = None, k_start: int = 0, sink_queries: bool = False,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``[Lq, Lk]`` mask, True where a query may attend (see the module docstring).

    >>> attention_mask(3, 4, window=1).int().tolist()
    [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    n_real_k = lk - n_sink
    n_real_q = lq - (n_sink if sink_queries else 0)
    if q_start is None:
        q_start = k_start + n_real_k - n_real_q
    qi = torch.arange(n_real_q, device=device) + q_start
    kj = torch.arange(n_real_k, device=device) + k_start
    rel = qi[:, None] - kj[None, :]
    real = rel >= 0
    if window is not None:
        real &= rel <= window
    mask = torch.ones(n_real_q, n_sink, dtype=torch.bool, device=device)
    mask = torch.cat([mask, real], 1)
    if sink_queries and n_sink:
        sinks = torch.zeros(n_sink, lk, dtype=torch.bool, device=device)
        sinks[:, :n_sink] = True
        mask = torch.cat([sinks, mask], 0)
    return mask


def position_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, *, window: int | None = None,
                  n_sink: int = 0, sink_queries: bool = False) -> torch.Tensor:
    """Boolean ``[B, Lq, Lk]`` mask from per-row positions (``-1`` = padding), see the module
    docstring; ``Lq``/``Lk`` include the sinks.

    >>> position_mask(torch.tensor([[-1, 0, 1]]), torch.tensor([[-1, 0, 1]]), window=1
    ...               ).int().tolist()
    [[[1, 1, 1], [0, 1, 0], [0, 1, 1]]]
    """
    rel = q_pos[:, :, None] - k_pos[:, None, :]
    m = (k_pos[:, None, :] >= 0) & (rel >= 0)
    if window is not None:
        m &= rel <= window
    B, lq = q_pos.shape
    m = torch.cat([torch.ones(B, lq, n_sink, dtype=torch.bool, device=m.device), m], 2)
    m |= ~m.any(-1, keepdim=True)  # padding queries: any finite output will do
    if sink_queries and n_sink:
        sinks = torch.zeros(B, n_sink, m.shape[2], dtype=torch.bool, device=m.device)
        sinks[:, :, :n_sink] = True
        m = torch.cat([sinks, m], 1)
    return m


def _check(q, k, v) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.shape[:3] != k.shape[:3]:
        raise ValueError(f"q must be [B, H, Lq, D] and k, v [B, Hkv, Lk, D]; got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads {q.shape[1]} must be a multiple of key heads {k.shape[1]}")


def attention_reference(q, k, v, *, window=None, scale=None, n_sink=0, q_start=None,
                        k_start=0, sink_queries=False, q_pos=None, k_pos=None) -> torch.Tensor:
    """Naive masked softmax attention (float64 math for float64 inputs, else float32)."""
    _check(q, k, v)
    wd = torch.float64 if q.dtype == torch.float64 else torch.float32
    rep = q.shape[1] // k.shape[1]
    kf = k.to(wd).repeat_interleave(rep, 1)
    vf = v.to(wd).repeat_interleave(rep, 1)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = (q.to(wd) * scale) @ kf.transpose(-1, -2)
    if q_pos is not None:
        m = position_mask(q_pos, k_pos, window=window, n_sink=n_sink,
                          sink_queries=sink_queries)[:, None]
    else:
        m = attention_mask(q.shape[2], k.shape[2], window=window, n_sink=n_sink,
                           q_start=q_start, k_start=k_start, sink_queries=sink_queries,
                           device=q.device)
    s = s.masked_fill(~m, float("-inf"))
    p = torch.softmax(s, -1).nan_to_num(0.0)  # a query that sees nothing gives zeros
    return (p @ vf).to(q.dtype)


def softmax_attention(q, k, v, *, window=None, scale=None, n_sink=0, q_start=None, k_start=0,
                      sink_queries=False, q_chunk: int = 1024, q_pos=None, k_pos=None
                      ) -> torch.Tensor:
    """Masked attention through ``scaled_dot_product_attention``, ``q_chunk`` queries at a
    time; with a window, each chunk reads only the keys its queries can see (plus the
    sinks), so memory stays ``O(q_chunk x (window + q_chunk))``. ``q_pos``/``k_pos`` select
    the per-row (padded) form."""
    _check(q, k, v)
    if q_pos is not None or k_pos is not None:
        return _padded_attention(q, k, v, q_pos, k_pos, window=window, scale=scale,
                                 n_sink=n_sink, sink_queries=sink_queries, q_chunk=q_chunk)
    Lq, Lk = q.shape[2], k.shape[2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    n_sq = n_sink if sink_queries else 0
    if q_start is None:
        q_start = k_start + (Lk - n_sink) - (Lq - n_sq)
    outs = []
    if n_sq:
        outs.append(F.scaled_dot_product_attention(q[:, :, :n_sq], k[:, :, :n_sink],
                                                   v[:, :, :n_sink], scale=scale,
                                                   enable_gqa=True))
    for s in range(n_sq, Lq, q_chunk):
        e = min(s + q_chunk, Lq)
        qs = q_start + (s - n_sq)  # absolute position of this chunk's first query
        lo = k_start if window is None else max(k_start, qs - window)
        hi = min(k_start + Lk - n_sink, q_start + (e - n_sq))  # exclusive, absolute
        ks = slice(n_sink + (lo - k_start), n_sink + max(lo, hi) - k_start)
        kk = torch.cat([k[:, :, :n_sink], k[:, :, ks]], 2)
        vv = torch.cat([v[:, :, :n_sink], v[:, :, ks]], 2)
        m = attention_mask(e - s, kk.shape[2], window=window, n_sink=n_sink, q_start=qs,
                           k_start=lo, device=q.device)
        o = F.scaled_dot_product_attention(q[:, :, s:e], kk, vv, attn_mask=m, scale=scale,
                                           enable_gqa=True)
        outs.append(o)
    return torch.cat(outs, 2) if outs else q.new_zeros(q.shape[:3] + (v.shape[-1],))


def _padded_attention(q, k, v, q_pos, k_pos, *, window, scale, n_sink, sink_queries, q_chunk):
    """Per-row masks from positions; each query chunk reads the keys from the first one any
    of its rows can still see (found by a search over the running maximum of key positions)
    up to its last query's own key."""
    B, _, Lq, _ = q.shape
    Lk = k.shape[2]
    n_sq = n_sink if sink_queries else 0
    if q_pos is None or k_pos is None or q_pos.shape != (B, Lq - n_sq) or \
            k_pos.shape != (B, Lk - n_sink):
        raise ValueError(f"q_pos must be [B, {Lq - n_sq}] and k_pos [B, {Lk - n_sink}] (the "
                         f"non-sink queries and keys), got "
                         f"{None if q_pos is None else tuple(q_pos.shape)} and "
                         f"{None if k_pos is None else tuple(k_pos.shape)}")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    outs = []
    if n_sq:
        outs.append(F.scaled_dot_product_attention(q[:, :, :n_sq], k[:, :, :n_sink],
                                                   v[:, :, :n_sink], scale=scale,
                                                   enable_gqa=True))
    offset = (Lk - n_sink) - (Lq - n_sq)  # key index of the first new query's own key
    running = k_pos.cummax(1).values.contiguous()
    for s in range(n_sq, Lq, q_chunk):
        e = min(s + q_chunk, Lq)
        qp = q_pos[:, s - n_sq:e - n_sq]
        hi = offset + (e - n_sq)
        lo = 0
        if window is not None:
            low = qp.masked_fill(qp < 0, torch.iinfo(torch.int64).max).amin(1) - window
            lo = int(torch.searchsorted(running, low[:, None].contiguous()).min())
            lo = min(lo, max(hi - 1, 0))
        kp = k_pos[:, lo:hi]
        kk = torch.cat([k[:, :, :n_sink], k[:, :, n_sink + lo:n_sink + hi]], 2)
        vv = torch.cat([v[:, :, :n_sink], v[:, :, n_sink + lo:n_sink + hi]], 2)
        m = position_mask(qp, kp, window=window, n_sink=n_sink)
        outs.append(F.scaled_dot_product_attention(q[:, :, s:e], kk, vv, attn_mask=m[:, None],
                                                   scale=scale, enable_gqa=True))
    return torch.cat(outs, 2) if outs else q.new_zeros(q.shape[:3] + (v.shape[-1],))


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_pos: torch.Tensor,
                     q_pos: torch.Tensor, window: int, slots: int) -> torch.Tensor:
    """One decoded token per row over its window of keys, on a fixed number of key slots.

    ``q [B, H, 1, D]`` at positions ``q_pos [B]``; ``k, v [B, Hkv, n, D]`` in position order
    (``n <= slots``) at ``k_pos [B, n]`` (``-1``: empty). The keys are padded at the front to
    ``slots`` empty (masked, zero) entries, so the eager cached step and the static-buffer step
    of :mod:`spikingbrain.models.static_decode` hand identical tensors to one attention kernel
    and give identical results. A key is seen iff ``0 <= q_pos - k_pos <= window``.

    >>> q = torch.randn(1, 2, 1, 4); k = torch.randn(1, 1, 3, 4)
    >>> o = decode_attention(q, k, k, torch.tensor([[5, 6, 7]]), torch.tensor([7]), 2, 4)
    >>> torch.allclose(o, attention_reference(q, k, k, window=2))
    True
    """
    B, hk, n, D = k.shape
    if n > slots:
        raise ValueError(f"{n} keys do not fit {slots} slots")
    if n < slots:
        pad = k.new_zeros(B, hk, slots - n, D)
        k, v = torch.cat([pad, k], 2), torch.cat([pad, v], 2)
        k_pos = torch.cat([k_pos.new_full((B, slots - n), -1), k_pos], 1)
    rel = q_pos.to(k_pos.device)[:, None] - k_pos
    mask = (k_pos >= 0) & (rel >= 0) & (rel <= window)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :],
                                          enable_gqa=True)
