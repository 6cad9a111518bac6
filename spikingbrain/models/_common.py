"""What both SpikingBrain model families share: head reshapes, initialisation, token positions
under padding, the sliding key/value buffer of the generation caches, and the bridge to the
installed transformers' cache API.

Padding. A batch row may hold padding anywhere (left padding for generation, right padding
from a tokenizer, both after ``generate()`` appended tokens to a right-padded row). Every
padding position is skipped as if it were not there: real tokens are numbered ``0, 1, ...``
per row (RoPE positions come from the mask, as in the public SpikingBrain-7B code), padded
keys are masked out of softmax attention, and the GLA recurrence passes a padding step
unchanged (``k = v = 0`` and no decay). So each row's outputs equal those of the row alone.

>>> mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
>>> lay = Layout.build(mask, past=None, length=4)
>>> lay.pos.tolist()
[[-1, -1, 0, 1], [0, 1, 2, 3]]
>>> Layout.build(None, past=None, length=3).pos is None      # no padding: one arange for all
True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KVWindow", "Layout", "PositionState", "cache_field", "cache_of", "carry_over_padding",
           "causal_lm_loss", "check_decode_window", "check_input_ids", "check_inputs",
           "init_weights_", "mask_recurrent_inputs", "merge_heads", "model_output",
           "new_token_mask", "pick_cache", "split_heads"]

DECODE_WINDOWS = ("flash", "public")


def split_heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, L, n * D] -> [B, n, L, D]``."""
    B, L, _ = x.shape
    return x.view(B, L, n, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, n, L, D] -> [B, L, n * D]``."""
    B, n, L, D = x.shape
    return x.transpose(1, 2).reshape(B, L, n * D)


def init_weights_(module: nn.Module, std: float) -> bool:
    """The SpikingBrain models' initialisation of one module (normal linear and embedding
    weights, zero biases, unit norms); whether the module was one of those kinds."""
    from spikingbrain.models.ops.norm import RMSNorm

    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    elif isinstance(module, RMSNorm):
        nn.init.ones_(module.weight)
    else:
        return False
    return True


def check_decode_window(value: str) -> str:
    """Validate a ``decode_window`` config value (``"flash"`` or ``"public"``)."""
    if value not in DECODE_WINDOWS:
        raise ValueError(f"decode_window must be one of {DECODE_WINDOWS}, got {value!r}: 'flash' "
                         "lets every query see w + 1 keys (flash-attention window_size=(w, 0)), "
                         "'public' lets a decoded token see w keys as the public SpikingBrain "
                         "cache does")
    return value


def check_input_ids(input_ids: torch.Tensor | None, vocab_size: int) -> None:
    """Token ids must be integers in ``[0, vocab_size)`` and the batch non-empty."""
    if input_ids is None:
        return
    if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be integer token ids, got dtype {input_ids.dtype}")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, tokens], got shape {tuple(input_ids.shape)}")
    if not input_ids.numel():
        return
    lo, hi = torch.stack(torch.aminmax(input_ids)).tolist()  # one read-back
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}) (the vocabulary), got ids "
                         f"from {lo} to {hi}: is the tokenizer the model's own?")


def check_inputs(input_ids, inputs_embeds, vocab_size: int) -> None:
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of input_ids and inputs_embeds")
    check_input_ids(input_ids, vocab_size)
    x = input_ids if input_ids is not None else inputs_embeds
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"the input holds no token (shape {tuple(x.shape)}): give at least one "
                         "token per sequence")


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy (labels ``-100`` ignored), in float32."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(),
                           labels[:, 1:].flatten().to(logits.device), ignore_index=-100)


# ---- transformers' cache API ---------------------------------------------------------------
@functools.cache
def cache_field() -> str:
    """The name transformers' model outputs give the cache: ``"cache"`` (5.18 on) or
    ``"past_key_values"`` (earlier)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    fields = getattr(CausalLMOutputWithPast, "__dataclass_fields__", {})
    return "cache" if "cache" in fields else "past_key_values"


def model_output(cls: type, **fields: Any) -> Any:
    """Build a transformers output ``cls``, filing the cache (passed as ``cache=``) under the
    field name of the installed transformers, so no deprecation warning is printed."""
    cache = fields.pop("cache", None)
    fields[cache_field()] = cache
    return cls(**fields)


def cache_of(output: Any) -> Any:
    """The cache of a model output, whatever the transformers version names it.

    >>> from transformers.modeling_outputs import CausalLMOutputWithPast
    >>> cache_of(model_output(CausalLMOutputWithPast, logits=None, cache="c"))
    'c'
    """
    return getattr(output, cache_field())


def pick_cache(cache: Any, past_key_values: Any, expected: type) -> Any:
    """The cache handed to a forward under either name (``cache=`` or the older
    ``past_key_values=``), checked to be ``expected``.

    >>> pick_cache(None, [1], list)
    [1]
    """
    if cache is not None and past_key_values is not None and cache is not past_key_values:
        raise ValueError("pass the cache once, as cache= (or past_key_values= on older "
                         "transformers), not both")
    c = cache if cache is not None else past_key_values
    if c is not None and not isinstance(c, expected):
        raise TypeError(f"the cache must be a {expected.__name__} (the one a previous forward "
                        f"or model.new_cache() returned), got {type(c).__name__}; transformers' "
                        "DynamicCache cannot hold GLA states")
    return c


# ---- positions under padding ---------------------------------------------------------------
@dataclass
class Layout:
    """Where the ``length`` new tokens of a forward call sit.

    Attributes:
        start: position of the first new token when no row is padded (then ``pos`` is None
            and every row's positions are ``start + arange(length)``); with padding the
            per-row ``pos`` is what counts (``start`` is then 0).
        length: tokens (columns) in this call.
        pos: ``[B, length]`` int64 positions, ``-1`` at padding; None without padding.
    """

    start: int
    length: int
    pos: torch.Tensor | None = None

    @property
    def valid(self) -> torch.Tensor | None:
        """``[B, length]`` bool, False at padding (None without padding)."""
        return None if self.pos is None else self.pos >= 0

    def positions(self, device: torch.device | str) -> torch.Tensor:
        """``[length]`` (no padding) or ``[B, length]`` positions for RoPE (padding at 0)."""
        if self.pos is None:
            return torch.arange(self.start, self.start + self.length, device=device)
        return self.pos.clamp_min(0).to(device)

    def shifted(self, offset: int) -> Layout:
        """The same layout with every real position moved by ``offset`` (sink tokens)."""
        pos = None if self.pos is None else torch.where(self.pos >= 0, self.pos + offset,
                                                        self.pos)
        return Layout(self.start + offset, self.length, pos)

    def chunk(self, s: int, e: int) -> Layout:
        """The layout of columns ``s:e``."""
        if self.pos is None:
            return Layout(self.start + s, e - s)
        return Layout(self.start, e - s, self.pos[:, s:e])

    @staticmethod
    def build(mask: torch.Tensor | None, past: torch.Tensor | int | None, length: int
              ) -> Layout:
        """Layout of ``length`` new tokens whose padding ``mask [B, length]`` (1 = real; None
        when every token is real, as :func:`new_token_mask` gives it) is given, after ``past``
        real tokens per row (int for every row, ``[B]``, or None = 0)."""
        if mask is None and not isinstance(past, torch.Tensor):
            return Layout(int(past or 0), length)
        if mask is None:
            mask = torch.ones(past.shape[0], length, dtype=torch.bool, device=past.device)
        m = mask.to(torch.int64)
        base = past if isinstance(past, torch.Tensor) else torch.full(
            (m.shape[0],), int(past or 0), dtype=torch.int64, device=m.device)
        pos = base.to(m.device)[:, None] + m.cumsum(1) - 1
        pos = pos.masked_fill(m == 0, -1)
        return Layout(0, length, pos)


def new_token_mask(attention_mask: torch.Tensor | None, batch: int, length: int,
                   past_columns: int) -> torch.Tensor | None:
    """The padding mask ``[B, length]`` of a call's new tokens from the ``attention_mask``
    handed to the forward, which covers either the new tokens or the cached ones too (as
    ``generate()`` passes it). None when every token is real.

    >>> new_token_mask(torch.tensor([[1, 1, 0, 1]]), 1, 2, 2).tolist()   # 2 cached, 2 new
    [[False, True]]
    >>> new_token_mask(torch.ones(1, 3, dtype=torch.long), 1, 3, 0) is None
    True
    """
    if attention_mask is None:
        return None
    if attention_mask.dim() != 2 or attention_mask.shape[0] != batch:
        raise ValueError(f"attention_mask must be [batch, tokens] = [{batch}, ...] with 1 for "
                         f"tokens and 0 for padding, got shape {tuple(attention_mask.shape)}")
    n = attention_mask.shape[1]
    if n == past_columns + length:
        m = attention_mask[:, past_columns:]
    elif n == length:
        m = attention_mask
    else:
        raise ValueError(f"attention_mask has {n} columns but this call holds {length} new "
                         f"tokens after {past_columns} cached ones: give a mask over the new "
                         f"tokens ({length}) or over all of them ({past_columns + length})")
    if not m.numel():
        return None
    lo, hi = torch.stack(torch.aminmax(m.to(torch.int64))).tolist()  # one read-back
    if lo < 0 or hi > 1:
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
    return None if lo == 1 else m.bool()


class PositionState:
    """How many columns a cache has seen and, once padding appeared, how many real tokens
    each row holds (``next_pos [B]``), so later tokens get the right positions."""

    def __init__(self) -> None:
        self.seen_tokens = 0
        self.next_pos: torch.Tensor | None = None
        self.batch: int | None = None

    def check_batch(self, batch: int) -> None:
        if self.batch is not None and batch != self.batch:
            raise ValueError(f"this cache holds {self.batch} sequences but the input has {batch}: "
                             "start a new cache (pass none) to change the batch size")

    def layout(self, mask: torch.Tensor | None, length: int) -> Layout:
        """The layout of the next ``length`` tokens with padding ``mask`` (None: all real)."""
        past = self.next_pos if self.next_pos is not None else self.seen_tokens
        return Layout.build(mask, past, length)

    def advance(self, layout: Layout, batch: int) -> None:
        """Record that the tokens of ``layout`` went through every layer."""
        self.batch = batch
        if layout.pos is not None or self.next_pos is not None:
            dev = layout.pos.device if layout.pos is not None else self.next_pos.device
            prev = self.next_pos if self.next_pos is not None else torch.full(
                (batch,), self.seen_tokens, dtype=torch.int64, device=dev)
            added = (layout.pos >= 0).sum(1) if layout.pos is not None else layout.length
            self.next_pos = prev + added
        self.seen_tokens += layout.length


def carry_over_padding(h: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """``h [B, L, H]`` with every padding row replaced by the last real token's row before it,
    so the logits at a right-padded row's last column are its last token's (what
    ``generate()`` reads for the next token). Rows before any real token are left as they are.

    >>> h = torch.arange(4.0).view(1, 4, 1)
    >>> carry_over_padding(h, torch.tensor([[True, True, False, False]])).flatten().tolist()
    [0.0, 1.0, 1.0, 1.0]
    """
    if valid is None:
        return h
    L = h.shape[1]
    idx = torch.arange(L, device=h.device).expand(h.shape[0], L)
    src = torch.where(valid.to(h.device), idx, 0).cummax(1).values
    src = torch.where(valid.to(h.device).cumsum(1) > 0, src, idx)
    return h.gather(1, src[..., None].expand_as(h))


def mask_recurrent_inputs(valid: torch.Tensor | None, *tensors: torch.Tensor
                          ) -> tuple[torch.Tensor, ...]:
    """Zero ``[B, H, L, D]`` tensors (k, v, log g) at padding so a GLA step is the identity
    there: ``k = v = 0`` adds nothing to the state and ``log g = 0`` does not decay it.

    >>> k = torch.ones(1, 1, 3, 2)
    >>> mask_recurrent_inputs(torch.tensor([[True, False, True]]), k)[0][0, 0, :, 0].tolist()
    [1.0, 0.0, 1.0]
    """
    if valid is None:
        return tensors
    m = valid[:, None, :, None].to(tensors[0].device)
    return tuple(t.masked_fill(~m, 0) for t in tensors)


class KVWindow:
    """One softmax layer's buffer of past keys and values ``[B, Hkv, n, D]`` with their
    positions, kept to what a later query can still see (``window`` past keys per row; all of
    them for full attention, ``window=None``).

    >>> buf = KVWindow(window=3)
    >>> k = torch.zeros(1, 1, 5, 2)
    >>> keys, _, kpos, start = buf.extend(k, k, Layout(0, 5))
    >>> keys.shape[2], kpos, start
    (5, None, 0)
    >>> buf.trim(None, 5)
    >>> buf.k.shape[2], buf.start
    (3, 2)
    """

    def __init__(self, window: int | None) -> None:
        self.window = window
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.start = 0                         # position of the first key (no padding)
        self.pos: torch.Tensor | None = None   # [B, n] positions, -1 at padding (padded rows)

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def extend(self, k: torch.Tensor, v: torch.Tensor, layout: Layout
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
        """Append the new keys/values; returns every key and value to attend to, their
        positions ``[B, n]`` (None without padding) and the first key's position."""
        if self.k is None:
            self.start = layout.start
            if layout.pos is not None:
                self.pos = layout.pos
            self.k, self.v = k, v
        else:
            if layout.pos is not None and self.pos is None:
                n = self.k.shape[2]
                self.pos = (torch.arange(n, device=layout.pos.device) + self.start)[None].expand(
                    k.shape[0], n).contiguous()
            if self.pos is not None:
                new = layout.pos if layout.pos is not None else (
                    torch.arange(layout.length, device=self.pos.device) + layout.start)[None]
                self.pos = torch.cat([self.pos, new.expand(k.shape[0], -1)], 1)
            self.k, self.v = torch.cat([self.k, k], 2), torch.cat([self.v, v], 2)
        return self.k, self.v, self.pos, self.start

    def trim(self, next_pos: torch.Tensor | None, next_start: int) -> None:
        """Drop the keys no later query can see: a query at ``p`` sees keys down to
        ``p - window``; ``next_pos [B]`` (padded rows) or ``next_start`` is the next position."""
        if self.window is None or self.k is None:
            return
        n = self.k.shape[2]
        if self.pos is None:
            drop = n - self.window
        else:
            nxt = next_pos if next_pos is not None else torch.full(
                (self.pos.shape[0],), next_start, device=self.pos.device)
            gone = (self.pos < 0) | (self.pos < nxt.to(self.pos.device)[:, None] - self.window)
            drop = int(gone.all(0).to(torch.int64).cumprod(0).sum())
        if drop > 0:
            self.k = self.k[:, :, drop:].contiguous()
            self.v = self.v[:, :, drop:].contiguous()
            self.start += drop
            if self.pos is not None:
                self.pos = self.pos[:, drop:].contiguous()

    def nbytes(self) -> int:
        ts = [t for t in (self.k, self.v, self.pos) if t is not None]
        return sum(t.numel() * t.element_size() for t in ts)

    def reorder(self, idx: torch.Tensor) -> None:
        for name in ("k", "v", "pos"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.index_select(0, idx.to(t.device)))
