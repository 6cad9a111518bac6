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
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from spikingbrain.models.gla_swa.modeling import check_right_padding, init_weights_
from spikingbrain.models.hybrid.cache import HybridCache
from spikingbrain.models.hybrid.configuration import SpikingBrainMoEConfig
from spikingbrain.models.hybrid.layers import HybridDecoderLayer
from spikingbrain.models.ops.moe import MoEFeedForward
from spikingbrain.models.ops.norm import RMSNorm


class SpikingBrainMoEPreTrainedModel(PreTrainedModel):
    config_class = SpikingBrainMoEConfig
    base_model_prefix = "model"
    _no_split_modules = ["HybridDecoderLayer"]
    _is_stateful = True
    #: experts see gathered token subsets and the sinks are extra tokens: a token mask shaped
    #: like the batch cannot apply to them (the analysis runs one sequence at a time)
    gathers_tokens = True

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

    def _fill_sinks(self, cache: HybridCache) -> None:
        n = self.config.num_sink_tokens
        cache.has_sinks = True
        if n == 0:
            return
        x = self.sink_tokens[None]
        positions = torch.arange(n, device=x.device)
        for layer in self.layers:
            x = layer(x, positions, n, cache, store_sinks=True)

    def _forward_full(self, x: torch.Tensor) -> torch.Tensor:
        n = self.config.num_sink_tokens
        x = torch.cat([self.sink_tokens[None].expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        positions = torch.arange(x.shape[1], device=x.device)
        for layer in self.layers:
            x = layer(x, positions, n)
        return x[:, n:]

    def _forward_cached(self, x: torch.Tensor, cache: HybridCache) -> torch.Tensor:
        if not cache.has_sinks:
            self._fill_sinks(cache)
        n = self.config.num_sink_tokens
        step = self.config.prefill_chunk_tokens or x.shape[1]
        outs = []
        for chunk in torch.split(x, step, dim=1):
            start = n + cache.seen_tokens
            positions = torch.arange(start, start + chunk.shape[1], device=x.device)
            for layer in self.layers:
                chunk = layer(chunk, positions, n, cache)
            cache.seen_tokens += chunk.shape[1]
            outs.append(chunk)
        return torch.cat(outs, dim=1)

    def forward(self, input_ids: torch.LongTensor | None = None,
                attention_mask: torch.Tensor | None = None,
                past_key_values: HybridCache | None = None,
                inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None,
                **kwargs) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        check_right_padding(attention_mask)
        if past_key_values is not None and not isinstance(past_key_values, HybridCache):
            raise TypeError(f"past_key_values must be a HybridCache (model.model.new_cache()), "
                            f"got {type(past_key_values).__name__}")
        x = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if past_key_values is None and use_cache:
            past_key_values = self.new_cache()
        if past_key_values is None:
            x = self._forward_full(x)
        else:
            x = self._forward_cached(x, past_key_values)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(x),
                                       past_key_values=past_key_values)


class SpikingBrainMoEForCausalLM(SpikingBrainMoEPreTrainedModel, GenerationMixin):
    """SpikingBrain-76B with its untied output head ``lm_head``."""

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

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor,
                                      past_key_values: HybridCache | None = None,
                                      attention_mask: torch.Tensor | None = None,
                                      use_cache: bool = True, **kwargs) -> dict:
        if past_key_values is not None and past_key_values.seen_tokens:
            input_ids = input_ids[:, past_key_values.seen_tokens:]
        return {"input_ids": input_ids, "past_key_values": past_key_values,
                "use_cache": use_cache, "logits_to_keep": 1}

    def forward(self, input_ids: torch.LongTensor | None = None,
                attention_mask: torch.Tensor | None = None,
                past_key_values: HybridCache | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int = 0,
                **kwargs) -> CausalLMOutputWithPast:
        out = self.model(input_ids, attention_mask, past_key_values, inputs_embeds, use_cache)
        hidden = out.last_hidden_state
        logits = self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                   ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits,
                                      past_key_values=out.past_key_values)


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
