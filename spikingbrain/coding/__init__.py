"""Exact spike coding: integer counts <-> spike trains ``[T, ...]`` <-> event streams.

>>> import torch
>>> from spikingbrain.coding import encode, decode
>>> c = torch.tensor([6, -1, 0])
>>> s = encode(c, "bitwise_bidirectional")
>>> s.shape
torch.Size([3, 3])
>>> decode(s, "bitwise_bidirectional").tolist()
[6, -1, 0]
"""

from spikingbrain.coding.codec import count_range, decode, encode, min_steps
from spikingbrain.coding.events import (
    SpikeEvents,
    from_events,
    load_events,
    save_events,
    to_events,
)
from spikingbrain.coding.schemes import SCHEMES, SchemeSpec, get_scheme, scheme_names

__all__ = [
    "encode",
    "decode",
    "min_steps",
    "count_range",
    "SCHEMES",
    "SchemeSpec",
    "get_scheme",
    "scheme_names",
    "SpikeEvents",
    "to_events",
    "from_events",
    "save_events",
    "load_events",
]
