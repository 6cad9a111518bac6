"""SpikingBrain-7B as a Hugging Face model (``GLAswaForCausalLM``), running anywhere torch runs.

Parameter names are the public checkpoint's (``model.embeddings.weight``, ``model.norm.weight``,
``lm_head.weight``, ``model.layers.i.{attn_norm, attn, mlp_norm, mlp}...``), so
``from_pretrained`` loads a public folder. Generation keeps constant memory: a GLA state per
linear layer and the last ``sliding_window`` keys per softmax layer (:class:`GLAswaCache`);
prompts longer than ``prefill_chunk_tokens`` run through the cache in chunks.

>>> cfg = GLAswaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
...                    num_key_value_heads=2, intermediate_size=48, sliding_window=8,
...                    bos_token_id=1, eos_token_id=2)
>>> model = GLAswaForCausalLM(cfg).eval()
>>> [b.kind for b in model.model.layers]
['gla', 'swa']
>>> model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False).shape
torch.Size([1, 7])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from spikingbrain.models.gla_swa.cache import GLAswaCache
from spikingbrain.models.gla_swa.configuration import GLAswaConfig
from spikingbrain.models.gla_swa.layers import GLAswaBlock
from spikingbrain.models.ops.norm import RMSNorm
from spikingbrain.models.ops.rope import rope_cos_sin

__all__ = ["GLAswaCache", "GLAswaForCausalLM", "GLAswaModel", "GLAswaPreTrainedModel"]


class GLAswaPreTrainedModel(PreTrainedModel):
    config_class = GLAswaConfig
    base_model_prefix = "model"
    _no_split_modules = ["GLAswaBlock"]
    supports_gradient_checkpointing = False

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:  # our own constant-memory cache
        return False

    def _init_weights(self, module: nn.Module) -> None:
        init_weights_(module, self.config.initializer_range)


def init_weights_(module: nn.Module, std: float) -> bool:
    """The SpikingBrain models' initialisation of one module (normal linear and embedding
    weights, zero biases, unit norms); whether the module was one of those kinds."""
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


def check_right_padding(attention_mask: torch.Tensor | None) -> None:
    """Right padding is harmless (causal layers never look ahead, so the real tokens' outputs
    are those of an unpadded run); left padding would feed padding into the GLA state and the
    windows, so it raises ValueError."""
    if attention_mask is None or bool(attention_mask.all()):
        return
    m = attention_mask.long()
    if bool((m[:, 1:] > m[:, :-1]).any()):
        raise ValueError("SpikingBrain-7B takes right-padded batches only (pad after the "
                         "tokens: tokenizer.padding_side = 'right')")


class GLAswaModel(GLAswaPreTrainedModel):
    """Embeddings, the blocks and the final norm: ``input_ids [B, L] -> hidden [B, L, H]``."""

    def __init__(self, config: GLAswaConfig) -> None:
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(GLAswaBlock(config, i)
                                    for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def _run(self, x: torch.Tensor, cache: GLAswaCache | None) -> torch.Tensor:
        start = cache.seen_tokens if cache is not None else 0
        pos = torch.arange(start, start + x.shape[1], device=x.device)
        rope = rope_cos_sin(pos, self.config.head_dim, self.config.rope_theta)
        for block in self.layers:
            x = block(x, rope, cache)
        if cache is not None:
            cache.seen_tokens += x.shape[1]
        return x

    def forward(self, input_ids: torch.LongTensor | None = None,
                attention_mask: torch.Tensor | None = None,
                past_key_values: GLAswaCache | None = None, use_cache: bool | None = None,
                inputs_embeds: torch.Tensor | None = None, **kwargs) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        check_right_padding(attention_mask)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        x = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        cache = past_key_values
        if use_cache and cache is None:
            cache = GLAswaCache(self.config.sliding_window)
        n = self.config.prefill_chunk_tokens
        if cache is not None and n and x.shape[1] > n:  # chunked prefill through the cache
            x = torch.cat([self._run(x[:, s:s + n], cache) for s in range(0, x.shape[1], n)], 1)
        else:
            x = self._run(x, cache)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(x),
                                       past_key_values=cache if use_cache else None)


class GLAswaForCausalLM(GLAswaPreTrainedModel, GenerationMixin):
    """SpikingBrain-7B with its (untied) language-model head."""

    _tied_weights_keys: list[str] = []

    def __init__(self, config: GLAswaConfig) -> None:
        super().__init__(config)
        self.model = GLAswaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embeddings

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None,
                                      attention_mask=None, inputs_embeds=None, use_cache=True,
                                      **kwargs):
        if past_key_values is not None and past_key_values.seen_tokens:
            input_ids = input_ids[:, past_key_values.seen_tokens:]
            inputs_embeds = None
        out = {"past_key_values": past_key_values, "use_cache": use_cache,
               "logits_to_keep": 1}
        if inputs_embeds is not None:
            out["inputs_embeds"] = inputs_embeds
        else:
            out["input_ids"] = input_ids
        return out

    def forward(self, input_ids: torch.LongTensor | None = None,
                attention_mask: torch.Tensor | None = None,
                past_key_values: GLAswaCache | None = None, use_cache: bool | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                logits_to_keep: int = 0, **kwargs) -> CausalLMOutputWithPast:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         past_key_values=past_key_values, use_cache=use_cache,
                         inputs_embeds=inputs_embeds)
        h = out.last_hidden_state
        logits = self.lm_head(h[:, -logits_to_keep:] if logits_to_keep else h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(),
                                   labels[:, 1:].flatten().to(logits.device), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits,
                                      past_key_values=out.past_key_values)
