"""SpikingBrain-76B-A12B as a Hugging Face model (``model_type`` "spikingbrain_moe").

Two paths give the same logits (tested): the full forward (``use_cache=False``) prepends the
sink tokens and runs everything at once; the cached path first runs the sinks alone through
every layer (their K/V and GLA state do not depend on the input, so they are computed once per
cache), then the tokens in chunks of ``config.prefill_chunk_tokens`` (chunked prefill), then one
token per ``generate()`` step.

>>> import torch
>>> from spikingbrain.models.hybrid.configuration import SpikingBrainMoEConfig
>>> model = SpikingBrainMoEForCausalLM(SpikingBrainMoEConfig.tiny()).eval()
>>> model(torch.tensor([[5, 6, 7]]), use_cache=False).logits.shape
torch.Size([1, 3, 97])
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from spikingbrain.models._common import (
    Layout,
    cache_of,
    carry_over_padding,
    causal_lm_loss,
    check_inputs,
    init_weights_,
    model_output,
    new_token_mask,
    pick_cache,
)
from spikingbrain.models.hybrid.cache import HybridCache
from spikingbrain.models.hybrid.configuration import SpikingBrainMoEConfig
from spikingbrain.models.hybrid.layers import HybridDecoderLayer, HybridStep
from spikingbrain.models.ops.moe import MoEFeedForward
from spikingbrain.models.ops.norm import RMSNorm
from spikingbrain.models.ops.rope import rope_cos_sin
from spikingbrain.neurons.emitter import token_rows, unobserved


class SpikingBrainMoEPreTrainedModel(PreTrainedModel):
    config_class = SpikingBrainMoEConfig
    base_model_prefix = "model"
    #: the model marks padding (and sink) rows of its spike records itself (token_rows)
    marks_token_rows = True
    _no_split_modules = ["HybridDecoderLayer"]
    _is_stateful = True

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if init_weights_(module, std):
            return
        if isinstance(module, HybridDecoderLayer) and hasattr(module, "branch_mix"):
            nn.init.zeros_(module.branch_mix)
        elif isinstance(module, SpikingBrainMoEModel):
            nn.init.normal_(module.sink_tokens, mean=0.0, std=std)


class SpikingBrainMoEModel(SpikingBrainMoEPreTrainedModel):
    """Embeddings, learnable sink tokens ``[num_sink_tokens, hidden]``, layers, final norm."""

    def __init__(self, config: SpikingBrainMoEConfig) -> None:
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.sink_tokens = nn.Parameter(torch.zeros(config.num_sink_tokens, config.hidden_size))
        self.layers = nn.ModuleList(HybridDecoderLayer(config, i)
                                    for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def new_cache(self) -> HybridCache:
        """An empty :class:`HybridCache` for this model's layers."""
        return HybridCache([self.config.layer_window(i) for i in range(len(self.layers))])

    def _rope(self, positions: torch.Tensor, dtype: torch.dtype):
        return rope_cos_sin(positions, self.config.head_dim, self.config.rope_theta, dtype=dtype)

    def _step(self, mode: str, x: torch.Tensor, layout: Layout | None,
              cache: HybridCache | None) -> HybridStep:
        n = self.config.num_sink_tokens
        if mode == "sinks":
            positions = torch.arange(n, device=x.device)
        else:
            positions = layout.shifted(n).positions(x.device)
            if mode == "full":
                sinks = torch.arange(n, device=x.device)
                if positions.dim() == 2:
                    sinks = sinks[None].expand(positions.shape[0], -1)
                positions = torch.cat([sinks, positions], -1)
        return HybridStep(mode, n, self._rope(positions, x.dtype), layout, cache,
                          self.config.decode_window)

    def _fill_sinks(self, cache: HybridCache) -> None:
        """Run the sink tokens alone through every layer (once per cache). They are
        input-independent and belong to no token, so spike observers do not see them."""
        cache.has_sinks = True
        if self.config.num_sink_tokens == 0:
            return
        x = self.sink_tokens[None]
        step = self._step("sinks", x, None, cache)
        with unobserved():
            for layer in self.layers:
                x = layer(x, step)

    def _forward_full(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        n = self.config.num_sink_tokens
        x = torch.cat([self.sink_tokens[None].expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        step = self._step("full", x, layout, None)
        valid = layout.valid
        rows = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        rows[:, :n] = False  # the sinks are no token: observers skip them
        if valid is not None:
            rows[:, n:] = valid
        with token_rows(rows):
            for layer in self.layers:
                x = layer(x, step)
        return x[:, n:]

    def _forward_cached(self, x: torch.Tensor, layout: Layout, cache: HybridCache
                        ) -> torch.Tensor:
        if not cache.has_sinks:
            self._fill_sinks(cache)
        size = self.config.prefill_chunk_tokens or x.shape[1]
        outs = []
        for s in range(0, x.shape[1], size):
            e = min(s + size, x.shape[1])
            chunk, lay = x[:, s:e], layout.chunk(s, e)
            step = self._step("tokens", chunk, lay, cache)
            with token_rows(lay.valid):
                for layer in self.layers:
                    chunk = layer(chunk, step)
            cache.positions.advance(lay, x.shape[0])
            cache.trim()
            outs.append(chunk)
        return torch.cat(outs, dim=1)

    def forward(self, input_ids: torch.LongTensor | None = None,
                attention_mask: torch.Tensor | None = None, cache: HybridCache | None = None,
                inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None,
                past_key_values: HybridCache | None = None,
                **kwargs) -> BaseModelOutputWithPast:
        check_inputs(input_ids, inputs_embeds, self.config.vocab_size)
        cache = pick_cache(cache, past_key_values, HybridCache)
        x = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        B, L = x.shape[:2]
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if cache is not None:
            cache.positions.check_batch(B)
        mask = new_token_mask(attention_mask, B, L, cache.seen_tokens if cache else 0)
        if cache is None and use_cache:
            cache = self.new_cache()
        layout = Layout.build(mask, None, L) if cache is None else cache.positions.layout(mask, L)
        if cache is None:
            x = self._forward_full(x, layout)
        else:
            x = self._forward_cached(x, layout, cache)
        x = carry_over_padding(x, layout.valid)  # a padded column repeats its last token
        return model_output(BaseModelOutputWithPast, last_hidden_state=self.norm(x),
                            cache=cache)


class SpikingBrainMoEForCausalLM(SpikingBrainMoEPreTrainedModel, GenerationMixin):
    """SpikingBrain-76B with its output head ``lm_head`` (tied to the embeddings when the
    config says ``tie_word_embeddings``)."""

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}

    def __init__(self, config: SpikingBrainMoEConfig) -> None:
        super().__init__(config)
        self.model = SpikingBrainMoEModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the model makes its own HybridCache

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embeddings

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def new_cache(self) -> HybridCache:
        """An empty generation cache (to pass to ``generate(cache=...)`` and continue later)."""
        return self.model.new_cache()

    def forward(self, input_ids: torch.LongTensor | None = None,
                attention_mask: torch.Tensor | None = None, cache: HybridCache | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int = 0,
                past_key_values: HybridCache | None = None,
                **kwargs) -> CausalLMOutputWithPast:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, cache=cache,
                         past_key_values=past_key_values, inputs_embeds=inputs_embeds,
                         use_cache=use_cache)
        hidden = out.last_hidden_state
        logits = self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)
        loss = None if labels is None else causal_lm_loss(logits, labels)
        return model_output(CausalLMOutputWithPast, loss=loss, logits=logits,
                            cache=cache_of(out))


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total parameters and parameters active per token (works on the meta device).

    Active = everything except the routed experts a token does not use: per MoE FFN the router,
    the shared experts and ``top_k`` of the ``n_experts`` routed experts.

    >>> from spikingbrain.models.hybrid.configuration import SpikingBrainMoEConfig
    >>> with torch.device("meta"):
    ...     m = SpikingBrainMoEForCausalLM(SpikingBrainMoEConfig.tiny())
    >>> c = count_parameters(m)
    >>> c["total"] > c["active"] > 0
    True
    """
    total = sum(p.numel() for p in model.parameters())
    inactive = 0
    for module in model.modules():
        if isinstance(module, MoEFeedForward):
            per_expert = sum(p.numel() for p in module.experts[0].parameters())
            inactive += (module.n_experts - module.top_k) * per_expert
    return {"total": total, "active": total - inactive}
