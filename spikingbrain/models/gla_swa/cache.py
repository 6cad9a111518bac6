"""Constant-memory generation cache of SpikingBrain-7B: a GLA recurrent state per linear
layer and a sliding-window key/value buffer per softmax layer.

A sliding-window layer needs the last ``window`` keys besides the current token (a query at
``i`` sees keys ``i - window .. i``), so after each step the buffer keeps the last ``window``
keys of every row: its size stops growing once the sequence is longer than the window (rows
with padding keep their padded slots until they slide out, a constant too).

The cache also records positions: ``seen_tokens`` columns went through the model, and once a
padded batch was seen, ``next_pos [B]`` holds each row's count of real tokens.

>>> c = GLAswaCache(window=3)
>>> from spikingbrain.models._common import Layout
>>> k = torch.zeros(1, 2, 5, 4)
>>> c.window_kv(1).extend(k, k, Layout(0, 5))[0].shape[2]
5
>>> c.positions.advance(Layout(0, 5), 1); c.trim(); c.kv[1].k.shape[2], c.kv[1].start
(3, 2)
"""

from __future__ import annotations

import torch

from spikingbrain.models._common import KVWindow, PositionState

__all__ = ["GLAswaCache"]


class GLAswaCache:
    """Per-layer state: ``state[i]`` (GLA, ``[B, H, Dk, Dv]`` float32) or ``kv[i]`` (SWA, a
    :class:`~spikingbrain.models._common.KVWindow` of ``[B, Hkv, n, D]`` keys and values)."""

    is_compileable = False

    def __init__(self, window: int | None) -> None:
        self.window = window
        self.state: dict[int, torch.Tensor] = {}
        self.kv: dict[int, KVWindow] = {}
        self.positions = PositionState()

    @property
    def seen_tokens(self) -> int:
        """Columns (tokens and padding) that went through the model."""
        return self.positions.seen_tokens

    # transformers' generate() asks these of a cache
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.positions.seen_tokens

    def __len__(self) -> int:
        return len(self.state) + len(self.kv)

    def window_kv(self, i: int) -> KVWindow:
        """The key/value buffer of softmax layer ``i`` (created empty on first use)."""
        if i not in self.kv:
            self.kv[i] = KVWindow(self.window)
        return self.kv[i]

    def trim(self) -> None:
        """After a forward: keep in every buffer only the keys a later query can see."""
        p = self.positions
        for buf in self.kv.values():
            buf.trim(p.next_pos, p.seen_tokens)

    def nbytes(self) -> int:
        """Bytes held (the flat-memory measurement of decoding)."""
        n = sum(t.numel() * t.element_size() for t in self.state.values())
        return n + sum(buf.nbytes() for buf in self.kv.values())

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Beam search support: select the batch rows ``beam_idx``."""
        for i, s in self.state.items():
            self.state[i] = s.index_select(0, beam_idx.to(s.device))
        for buf in self.kv.values():
            buf.reorder(beam_idx)
        p = self.positions
        if p.next_pos is not None:
            p.next_pos = p.next_pos.index_select(0, beam_idx.to(p.next_pos.device))
        p.batch = int(beam_idx.numel())
