"""Generation cache of SpikingBrain-76B: per layer a GLA state, sink K/V and a K/V buffer.

Memory per layer and sequence: the GLA state ``[B, H, Dk, Dv]`` (float32, constant), the sink
tokens' keys and values (``num_sink_tokens`` positions, constant: computed once, they do not
depend on the input) and the token K/V buffer (a
:class:`~spikingbrain.models._common.KVWindow`): at most ``sliding_window`` past positions in
sliding-window layers (constant), every position in the full-attention layers (growing: 4 of
the 28 full-size layers). Positions of the tokens (and, after padded batches, each row's count
of real tokens) are kept in ``positions``.

>>> import torch
>>> from spikingbrain.models._common import Layout
>>> cache = HybridCache([2, None])
>>> cache.seen_tokens
0
>>> k = torch.zeros(1, 1, 4, 2)
>>> cache.layers[0].kv.extend(k, k, Layout(0, 4))[0].shape
torch.Size([1, 1, 4, 2])
>>> cache.positions.advance(Layout(0, 4), 1); cache.trim(); cache.layers[0].kv.k.shape
torch.Size([1, 1, 2, 2])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikingbrain.models._common import KVWindow, PositionState


@dataclass
class LayerCache:
    """One layer's cached tensors (``None`` until filled)."""

    kv: KVWindow
    sink_k: torch.Tensor | None = None
    sink_v: torch.Tensor | None = None
    gla_state: torch.Tensor | None = None


class HybridCache:
    """Cache for :class:`~spikingbrain.models.hybrid.modeling.SpikingBrainMoEForCausalLM`.

    Args:
        windows: per layer the sliding window (``None`` = full attention, growing buffer).
    """

    is_compileable = False

    def __init__(self, windows: list[int | None]) -> None:
        self.windows = list(windows)
        self.layers = [LayerCache(KVWindow(w)) for w in windows]
        self.positions = PositionState()
        self.has_sinks = False

    @property
    def seen_tokens(self) -> int:
        """Columns (tokens and padding, not the sinks) that went through the model."""
        return self.positions.seen_tokens

    def __len__(self) -> int:
        return len(self.layers)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of columns (real tokens and padding, not the sinks) processed so far."""
        return self.positions.seen_tokens

    def trim(self) -> None:
        """After a forward: keep in every buffer only the keys a later query can see."""
        p = self.positions
        for entry in self.layers:
            entry.kv.trim(p.next_pos, p.seen_tokens)

    def memory_bytes(self) -> int:
        """Bytes held by every cached tensor."""
        total = 0
        for entry in self.layers:
            for t in (entry.sink_k, entry.sink_v, entry.gla_state):
                total += 0 if t is None else t.numel() * t.element_size()
            total += entry.kv.nbytes()
        return total

    nbytes = memory_bytes

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Reorder the batch (beam search); the sinks' K/V (batch 1, shared) stay as they are."""
        for entry in self.layers:
            entry.kv.reorder(beam_idx)
            if entry.gla_state is not None and entry.gla_state.shape[0] > 1:
                entry.gla_state = entry.gla_state.index_select(
                    0, beam_idx.to(entry.gla_state.device))
        p = self.positions
        if p.next_pos is not None:
            p.next_pos = p.next_pos.index_select(0, beam_idx.to(p.next_pos.device))
        p.batch = int(beam_idx.numel())
