"""Generation cache of SpikingBrain-76B: per layer a GLA state, sink K/V and a K/V buffer.

Memory per layer and sequence: the GLA state ``[B, H, Dk, Dv]`` (float32, constant), the sink
tokens' keys and values (``num_sink_tokens`` positions, constant: computed once, they do not
depend on the input) and the token K/V buffer: at most ``sliding_window`` positions in
sliding-window layers (constant), every position in the full-attention layers (growing: 4 of
the 28 full-size layers). The buffer keeps the last ``w`` keys because a query at ``i`` sees
keys ``i - w .. i``.

>>> import torch
>>> cache = HybridCache([2, None])
>>> cache.seen_tokens
0
>>> k = torch.zeros(1, 1, 4, 2)
>>> cache.append_kv(0, k, k)[0].shape, cache.layers[0].k.shape
(torch.Size([1, 1, 4, 2]), torch.Size([1, 1, 2, 2]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LayerCache:
    """One layer's cached tensors (``None`` until filled)."""

    sink_k: torch.Tensor | None = None
    sink_v: torch.Tensor | None = None
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    gla_state: torch.Tensor | None = None


class HybridCache:
    """Cache for :class:`~spikingbrain.models.hybrid.modeling.SpikingBrainMoEForCausalLM`.

    Args:
        windows: per layer the sliding window (``None`` = full attention, growing buffer).
    """

    is_compileable = False

    def __init__(self, windows: list[int | None]) -> None:
        self.windows = list(windows)
        self.layers = [LayerCache() for _ in windows]
        self.seen_tokens = 0
        self.has_sinks = False

    def __len__(self) -> int:
        return len(self.layers)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of real (non-sink) tokens processed so far."""
        return self.seen_tokens

    def append_kv(self, layer: int, k: torch.Tensor, v: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the buffered keys/values followed by the new ``k``, ``v`` ``[B, Hkv, L, D]``
        and keep the last ``window`` of them (all of them in full-attention layers)."""
        entry = self.layers[layer]
        if entry.k is not None:
            k, v = torch.cat([entry.k, k], dim=2), torch.cat([entry.v, v], dim=2)
        window = self.windows[layer]
        keep = k.shape[2] if window is None else min(window, k.shape[2])
        entry.k, entry.v = k[:, :, -keep:], v[:, :, -keep:]
        return k, v

    def memory_bytes(self) -> int:
        """Bytes held by every cached tensor."""
        total = 0
        for entry in self.layers:
            for t in (entry.sink_k, entry.sink_v, entry.k, entry.v, entry.gla_state):
                total += 0 if t is None else t.numel() * t.element_size()
        return total

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Reorder the batch (beam search); the sinks' K/V (batch 1, shared) stay as they are."""
        for entry in self.layers:
            for name in ("k", "v", "gla_state"):
                t = getattr(entry, name)
                if t is not None:
                    setattr(entry, name, t.index_select(0, beam_idx.to(t.device)))
