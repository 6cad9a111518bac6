"""Activation quantisation inside the sliding-window attention of the public W8ASpike model.

After RoPE, per (token, head), i.e. over the last (head) dimension:

- the query is spiked with the adaptive threshold ``Vth = clamp(mean|q| / k, 1e-5, 1e4)``
  (``k = 3``) and replaced by ``round(q / Vth) * Vth`` (the bitwise sign-magnitude coder is
  exact on integers, so its encode/decode round trip changes nothing);
- keys and values are fake-quantised to int8: ``s = clamp(max|x| / 127, 1e-5, 1e4)``,
  ``x <- clamp(round(x / s), -128, 127) * s``.

The arithmetic runs in float32 and the results are cast back to the input dtype. Every step is
per token, so quantising each new key before it enters the cache equals quantising the whole
buffer at every step.

>>> q = torch.tensor([[[[3.0, -1.0, 0.2, 0.0]]]])
>>> (spike_query(q) / 0.35).round().tolist()       # Vth = mean|q| / 3 = 0.35
[[[[9.0, -3.0, 1.0, 0.0]]]]
>>> int8_fake_quant(torch.tensor([[1.0, -0.5, 0.001]])).mul(127).round().tolist()
[[127.0, -64.0, 0.0]]
"""

from __future__ import annotations

import torch

__all__ = ["int8_fake_quant", "quantize_attention_inputs", "spike_query"]

_CLAMP = (1e-5, 1e4)


def spike_query(q: torch.Tensor, k: float = 3.0) -> torch.Tensor:
    """``round(q / Vth) * Vth`` with a per-vector adaptive threshold (last dimension)."""
    vth = (q.abs().mean(-1, keepdim=True).float() / k).clamp(*_CLAMP)
    return ((q.float() / vth).round() * vth).to(q.dtype)


def int8_fake_quant(x: torch.Tensor) -> torch.Tensor:
    """Symmetric per-vector int8 fake quantisation over the last dimension."""
    scale = (x.abs().amax(-1, keepdim=True).float() / 127).clamp(*_CLAMP)
    return ((x.float() / scale).round().clamp(-128, 127) * scale).to(x.dtype)


def quantize_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                              spike_k: float = 3.0
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The W8ASpike attention step: spiked ``q``, int8 ``k`` and ``v`` (``[B, H, L, D]``)."""
    return spike_query(q, spike_k), int8_fake_quant(k), int8_fake_quant(v)
