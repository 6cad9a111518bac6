"""Constant-memory generation cache of SpikingBrain-7B: a GLA recurrent state per linear
layer and a sliding-window key/value buffer per softmax layer.

A sliding-window layer needs the last ``window`` keys besides the current token (a query at
``i`` sees keys ``i - window .. i``), so after each step the buffer keeps exactly the last
``window`` keys: its size stops growing once the sequence is longer than the window.

>>> c = GLAswaCache(window=3)
>>> k = torch.zeros(1, 2, 5, 4)
>>> c.append_kv(1, k, k)[0].shape[2], c.trim(1), c.kv[1][0].shape[2], c.k_start[1]
(5, None, 3, 2)
"""

from __future__ import annotations

import torch

__all__ = ["GLAswaCache"]


class GLAswaCache:
    """Per-layer state: ``state[i]`` (GLA, ``[B, H, Dk, Dv]`` float32) or ``kv[i]`` (SWA,
    ``(k, v) [B, Hkv, n, D]``) with ``k_start[i]`` the absolute position of its first key."""

    is_compileable = False

    def __init__(self, window: int | None) -> None:
        self.window = window
        self.state: dict[int, torch.Tensor] = {}
        self.kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.k_start: dict[int, int] = {}
        self.seen_tokens = 0

    # transformers' generate() asks these of a cache
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def __len__(self) -> int:
        return len(self.state) + len(self.kv)

    def append_kv(self, i: int, k: torch.Tensor, v: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Keys/values to attend to (buffer + new) and the position of the first one."""
        if i in self.kv:
            pk, pv = self.kv[i]
            k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
            start = self.k_start[i]
        else:
            start = self.seen_tokens
        self.kv[i] = (k, v)
        self.k_start[i] = start
        return k, v, start

    def trim(self, i: int) -> None:
        """Keep the last ``window`` keys of layer ``i`` (all of them without a window)."""
        if self.window is None or i not in self.kv:
            return
        k, v = self.kv[i]
        drop = k.shape[2] - self.window
        if drop > 0:
            self.kv[i] = (k[:, :, drop:].contiguous(), v[:, :, drop:].contiguous())
            self.k_start[i] += drop

    def nbytes(self) -> int:
        """Bytes held (the flat-memory measurement of decoding)."""
        ts = list(self.state.values()) + [t for kv in self.kv.values() for t in kv]
        return sum(t.numel() * t.element_size() for t in ts)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Beam search support: select the batch rows ``beam_idx``."""
        for i, s in self.state.items():
            self.state[i] = s.index_select(0, beam_idx.to(s.device))
        for i, (k, v) in self.kv.items():
            idx = beam_idx.to(k.device)
            self.kv[i] = (k.index_select(0, idx), v.index_select(0, idx))
