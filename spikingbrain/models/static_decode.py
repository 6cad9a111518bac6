"""Decoding SpikingBrain-7B with static buffers, one CUDA graph per step.

The 7B's generation state has a fixed size: one GLA state per linear layer and a window of
keys per softmax layer. :class:`StaticDecoder` copies the eager cache after the prompt into
preallocated buffers (a ring of ``sliding_window + 1`` key/value slots per softmax layer, with
each slot's position), and runs one decode step as a fixed sequence of kernels on fixed
addresses: embeddings, per layer the projections (the spiking layers' threshold and INT8 GEMM
kernels on W8ASpike models), RoPE, ring write and masked attention or the GLA update, the
FFN, the head, and the next token (greedy or sampled) written on the GPU. On CUDA that step is
captured once as a CUDA graph and replayed; on the CPU the same step runs eagerly (which is
how the tests compare it with the eager model).

Exactness: the step computes what the model's cached forward of one token computes (the same
modules and operations; the ring holds the same keys as the eager window) -- tested for
greedy tokens against ``generate()`` through the eager cache.

>>> import torch
>>> from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM
>>> m = GLAswaForCausalLM(GLAswaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
...     num_attention_heads=4, num_key_value_heads=2, intermediate_size=48, sliding_window=4,
...     bos_token_id=1, eos_token_id=2)).eval()
>>> ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
>>> dec = StaticDecoder(m, batch=1)
>>> out = dec.generate(ids, max_new_tokens=5)
>>> torch.equal(out, m.generate(ids, max_new_tokens=5, do_sample=False, use_static=False))
True
"""

from __future__ import annotations

from typing import Any

import torch

from spikingbrain.models._common import cache_of, merge_heads
from spikingbrain.models.ops.attention import decode_attention
from spikingbrain.models.ops.moe import MoEFeedForward
from spikingbrain.models.ops.rope import rope_cos_sin

__all__ = ["StaticDecoder", "static_decoding_supported", "static_generate"]


def static_decoding_supported(model: Any) -> str | None:
    """Why ``model`` cannot decode with static buffers (None when it can)."""
    cfg = getattr(model, "config", None)
    if getattr(cfg, "model_type", None) != "gla_swa":
        return "only SpikingBrain-7B (gla_swa) has a static decode step"
    if any(isinstance(b.mlp, MoEFeedForward) for b in model.model.layers):
        return "MoE FFNs route tokens data-dependently (decoded eagerly)"
    if cfg.sliding_window is None:
        return "sliding_window=None grows the key buffer without bound"
    if len({p.device for p in model.parameters()}) > 1:
        return "the model is spread over several devices (device_map)"
    return None


class StaticDecoder:
    """Static-buffer decoding of a SpikingBrain-7B (``GLAswaForCausalLM``).

    Args:
        model: the model (float or converted to W8ASpike), in eval mode.
        batch: sequences decoded together.
        graphs: capture the step as a CUDA graph (default: when the model is on CUDA).
    """

    def __init__(self, model: Any, batch: int, graphs: bool | None = None) -> None:
        reason = static_decoding_supported(model)
        if reason is not None:
            raise ValueError(f"static decoding is not available: {reason}")
        self.model, self.cfg = model, model.config
        self.batch = batch
        p = next(model.parameters())
        self.device, self.dtype = p.device, model.model.embeddings.weight.dtype
        self.graphs = self.device.type == "cuda" if graphs is None else graphs
        cfg = self.cfg
        d, hk, h = cfg.head_dim, cfg.num_key_value_heads, cfg.num_attention_heads
        self.slots = cfg.sliding_window + 1
        B, dev = batch, self.device
        self.ring_k, self.ring_v, self.ring_pos, self.state = {}, {}, {}, {}
        for i, block in enumerate(model.model.layers):
            if block.kind == "swa":
                self.ring_k[i] = torch.zeros(B, hk, self.slots, d, dtype=self.dtype, device=dev)
                self.ring_v[i] = torch.zeros_like(self.ring_k[i])
                self.ring_pos[i] = torch.full((B, self.slots), -1, dtype=torch.long, device=dev)
            else:
                self.state[i] = torch.zeros(B, h, d, d, dtype=torch.promote_types(
                    self.dtype, torch.float32), device=dev)
        self.tokens = torch.zeros(B, 1, dtype=torch.long, device=dev)  # the step's input
        self.pos = torch.zeros(B, dtype=torch.long, device=dev)       # its positions
        self.next_tokens = torch.zeros(B, 1, dtype=torch.long, device=dev)
        self.logits: torch.Tensor | None = None
        self.temperature = torch.ones((), device=dev)
        self.sample = False
        self._graph: torch.cuda.CUDAGraph | None = None

    # ---- prompt -------------------------------------------------------------------------
    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Run the prompt eagerly, load the static buffers, return the last logits ``[B, V]``."""
        if input_ids.shape[0] != self.batch:
            raise ValueError(f"this decoder holds {self.batch} sequences, got "
                             f"{input_ids.shape[0]}")
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=None
                         if attention_mask is None else attention_mask.to(self.device),
                         use_cache=True, logits_to_keep=1)
        cache = cache_of(out)
        self._load(cache)
        return out.logits[:, -1]

    def _load(self, cache: Any) -> None:
        p = cache.positions
        B = self.batch
        next_pos = p.next_pos if p.next_pos is not None else torch.full(
            (B,), p.seen_tokens, dtype=torch.long, device=self.device)
        self.pos.copy_(next_pos.to(self.device))
        for i, st in self.state.items():
            st.copy_(cache.state[i].to(st.dtype))
        for i in self.ring_k:
            buf = cache.kv[i]
            self.ring_pos[i].fill_(-1)
            n = len(buf)
            kpos = buf.pos if buf.pos is not None else (
                torch.arange(n, device=self.device) + buf.start)[None].expand(B, n)
            keep = (kpos >= 0) & (kpos >= self.pos[:, None] - self.slots + 1)
            slot = torch.where(keep, kpos % self.slots, self.slots)  # dropped -> a spare column
            for name, ring, src in (("k", self.ring_k[i], buf.k), ("v", self.ring_v[i], buf.v)):
                spare = torch.zeros(B, ring.shape[1], self.slots + 1, ring.shape[3],
                                    dtype=ring.dtype, device=ring.device)
                idx = slot[:, None, :, None].expand(-1, ring.shape[1], -1, ring.shape[3])
                spare.scatter_(2, idx, src.to(ring.dtype))
                ring.copy_(spare[:, :, : self.slots])
            pos = torch.full((B, self.slots + 1), -1, dtype=torch.long, device=self.device)
            pos.scatter_(1, slot, torch.where(keep, kpos, -1))
            self.ring_pos[i].copy_(pos[:, : self.slots])

    # ---- one step ----------------------------------------------------------------------
    def _step(self) -> None:
        """Decode ``self.tokens`` at ``self.pos``: advance every buffer, write the logits and
        the next tokens (no host synchronisation: capturable)."""
        cfg, model = self.cfg, self.model
        x = model.model.embeddings(self.tokens)
        rope = rope_cos_sin(self.pos[:, None], cfg.head_dim, cfg.rope_theta)
        for i, block in enumerate(model.model.layers):
            h = block.attn_norm(x)
            attn = block.attn
            if block.kind == "swa":
                q, k, v = attn.qkv(h, rope)
                slot = (self.pos % self.slots)[:, None]
                idx = slot[:, None, :, None].expand(-1, k.shape[1], 1, k.shape[3])
                self.ring_k[i].scatter_(2, idx, k)
                self.ring_v[i].scatter_(2, idx, v)
                self.ring_pos[i].scatter_(1, slot, self.pos[:, None])
                # the ring in position order (empty slots first): the eager step's keys
                order = torch.argsort(self.ring_pos[i], dim=1, stable=True)
                idx = order[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])
                o = decode_attention(q, self.ring_k[i].gather(2, idx),
                                     self.ring_v[i].gather(2, idx),
                                     self.ring_pos[i].gather(1, order), self.pos,
                                     attn.window(decoding=True), self.slots)
                o = attn.o_proj(merge_heads(o))
            else:
                o, new = attn.recurrence(h, None, self.state[i], keep_state=True)
                self.state[i].copy_(new)
            x = x + o
            x = x + block.mlp(block.mlp_norm(x))
        logits = model.lm_head(model.model.norm(x))[:, -1]
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        if self.logits is None:
            self.logits = logits
        else:
            self.logits.copy_(logits)
        if self.sample:
            probs = torch.softmax(logits / self.temperature, -1)
            self.next_tokens.copy_(torch.multinomial(probs, 1))
        else:
            self.next_tokens.copy_(logits.argmax(-1, keepdim=True))
        self.pos.add_(1)

    def step(self) -> torch.Tensor:
        """One decode step (a graph replay on CUDA); returns the next tokens ``[B, 1]``."""
        if not self.graphs:
            with torch.no_grad():
                self._step()
            return self.next_tokens
        if self._graph is None:
            try:
                self._capture()
            except Exception as err:  # noqa: BLE001 - a kernel that cannot be captured
                import warnings

                warnings.warn(f"the decode step could not be captured as a CUDA graph ({err}); "
                              "decoding with static buffers but without the graph",
                              stacklevel=2)
                torch.cuda.synchronize()
                self.graphs = False
                return self.step()
        self._graph.replay()
        return self.next_tokens

    def _capture(self) -> None:
        # warm up on a side stream (kernel compilation, cached checks), restoring the state
        _error_flags(self.device, create=True)
        saved = self._snapshot()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(stream)
        self._restore(saved)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.no_grad():
            self._step()
        self._restore(saved)  # capture ran the step once: undo it
        self._graph = graph

    def _snapshot(self) -> list[torch.Tensor]:
        return [t.clone() for t in self._buffers()]

    def _restore(self, saved: list[torch.Tensor]) -> None:
        for t, s in zip(self._buffers(), saved, strict=True):
            t.copy_(s)

    def _buffers(self) -> list[torch.Tensor]:
        return [*self.ring_k.values(), *self.ring_v.values(), *self.ring_pos.values(),
                *self.state.values(), self.pos, self.tokens, self.next_tokens]

    # ---- whole generation -------------------------------------------------------------
    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 max_new_tokens: int = 20, eos_token_id: int | list[int] | None = None,
                 pad_token_id: int | None = None, do_sample: bool = False,
                 temperature: float = 1.0) -> torch.Tensor:
        """Prompt + up to ``max_new_tokens`` tokens ``[B, L + n]`` (rows that produced an eos
        continue with ``pad_token_id``, as transformers' generate() does)."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.sample = bool(do_sample)
        self.temperature.fill_(float(temperature))
        logits = self.prefill(input_ids, attention_mask)
        if self.sample:
            first = torch.multinomial(torch.softmax(logits.float() / temperature, -1), 1)
        else:
            first = logits.argmax(-1, keepdim=True)
        eos = [] if eos_token_id is None else (
            [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id))
        eos_t = torch.tensor(eos, dtype=torch.long, device=self.device)
        pad = pad_token_id if pad_token_id is not None else (eos[0] if eos else 0)
        done = torch.zeros(self.batch, 1, dtype=torch.bool, device=self.device)
        out = [first]
        token = first
        for _ in range(max_new_tokens - 1):
            if eos:
                done |= torch.isin(token, eos_t)
                if bool(done.all()):
                    break
            self.tokens.copy_(token)
            token = self.step().clone()
            if eos:
                token = torch.where(done, torch.full_like(token, pad), token)
            out.append(token)
        if self._graph is not None:
            _error_flags(self.device, create=False)
        return torch.cat([input_ids.to(self.device), *out], 1)


def _error_flags(device: torch.device, create: bool) -> None:
    """Create the spiking kernels' capture-time error flag before capturing (``create``), or
    raise what replays flagged (afterwards); nothing without the kernels."""
    try:
        from spikingbrain.kernels.spiking_linear_triton import (
            captured_error_flag,
            raise_captured_errors,
        )
    except ImportError:  # no triton: no spiking kernels in the graph
        return
    if create:
        captured_error_flag(device)
    else:
        raise_captured_errors(device)


#: generate() arguments the static path understands (anything else: transformers' loop)
_STATIC_KWARGS = {"input_ids", "inputs", "attention_mask", "max_new_tokens", "do_sample",
                  "temperature", "eos_token_id", "pad_token_id", "use_cache"}


def static_generate(model: Any, args: tuple, kwargs: dict, force: bool = False
                    ) -> torch.Tensor | None:
    """``model.generate(*args, **kwargs)`` through a (cached) :class:`StaticDecoder`, or None
    when the call needs transformers' loop (not on CUDA, other arguments, an MoE model...).
    ``force``: raise instead of returning None."""
    def refuse(why: str) -> None:
        if force:
            raise ValueError(f"use_static=True, but {why}")
        return None

    reason = static_decoding_supported(model)
    if reason is not None:
        return refuse(reason)
    if not force and next(model.parameters()).device.type != "cuda":
        return None
    extra = set(kwargs) - _STATIC_KWARGS
    if extra or len(args) > 1:
        return refuse(f"the arguments {sorted(extra) or 'beyond input_ids'} need "
                      "transformers' generation loop")
    ids = args[0] if args else kwargs.get("input_ids", kwargs.get("inputs"))
    if ids is None:
        return refuse("the static path takes input_ids (not inputs_embeds)")
    gc = model.generation_config
    do_sample = kwargs.get("do_sample", gc.do_sample)
    if do_sample and ((gc.top_k not in (None, 0, 50) and gc.top_k) or
                      (gc.top_p is not None and gc.top_p < 1.0)):
        return refuse("top-k / top-p sampling needs transformers' logits processors")
    max_new = kwargs.get("max_new_tokens", gc.max_new_tokens)
    if max_new is None:
        max_new = max(1, (gc.max_length or 20) - ids.shape[1])
    cache = model.__dict__.setdefault("_static_decoders", {})
    dec = cache.get(ids.shape[0])
    if dec is None:
        dec = cache[ids.shape[0]] = StaticDecoder(model, ids.shape[0])
    return dec.generate(ids, kwargs.get("attention_mask"), max_new_tokens=int(max_new),
                        eos_token_id=kwargs.get("eos_token_id", gc.eos_token_id),
                        pad_token_id=kwargs.get("pad_token_id", gc.pad_token_id),
                        do_sample=bool(do_sample),
                        temperature=float(kwargs.get("temperature", gc.temperature) or 1.0))
