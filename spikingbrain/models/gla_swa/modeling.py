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
from spikingbrain.models.gla_swa.cache import GLAswaCache
from spikingbrain.models.gla_swa.configuration import GLAswaConfig
from spikingbrain.models.gla_swa.layers import GLAswaBlock, Step
from spikingbrain.models.ops.norm import RMSNorm
from spikingbrain.models.ops.rope import rope_cos_sin
from spikingbrain.neurons.emitter import token_rows

__all__ = ["GLAswaCache", "GLAswaForCausalLM", "GLAswaModel", "GLAswaPreTrainedModel"]


class GLAswaPreTrainedModel(PreTrainedModel):
    config_class = GLAswaConfig
    base_model_prefix = "model"
    #: the model marks padding (and sink) rows of its spike records itself (token_rows)
    marks_token_rows = True
    _no_split_modules = ["GLAswaBlock"]
    supports_gradient_checkpointing = False

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:  # our own constant-memory cache
        return False

    def _init_weights(self, module: nn.Module) -> None:
        init_weights_(module, self.config.initializer_range)


class GLAswaModel(GLAswaPreTrainedModel):
    """Embeddings, the blocks and the final norm: ``input_ids [B, L] -> hidden [B, L, H]``.

    ``attention_mask [B, L]`` (1 = token, 0 = padding, anywhere in a row) makes every row's
    outputs equal those of the row alone; with a cache it may cover the cached tokens too.
    """

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

    def new_cache(self) -> GLAswaCache:
        """An empty generation cache for this model."""
        return GLAswaCache(self.config.sliding_window)

    def _run(self, x: torch.Tensor, layout: Layout, cache: GLAswaCache | None) -> torch.Tensor:
        rope = rope_cos_sin(layout.positions(x.device), self.config.head_dim,
                            self.config.rope_theta)
        step = Step(layout, rope, cache)
        with token_rows(layout.valid):
            for block in self.layers:
                x = block(x, step)
        if cache is not None:
            cache.positions.advance(layout, x.shape[0])
            cache.trim()
        return x

    def forward(self, input_ids: torch.LongTensor | None = None,
                attention_mask: torch.Tensor | None = None, cache: GLAswaCache | None = None,
                use_cache: bool | None = None, inputs_embeds: torch.Tensor | None = None,
                past_key_values: GLAswaCache | None = None,
                **kwargs) -> BaseModelOutputWithPast:
        check_inputs(input_ids, inputs_embeds, self.config.vocab_size)
        cache = pick_cache(cache, past_key_values, GLAswaCache)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        x = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        B, L = x.shape[:2]
        if cache is not None:
            cache.positions.check_batch(B)
        past = cache.seen_tokens if cache is not None else 0
        mask = new_token_mask(attention_mask, B, L, past)
        if use_cache and cache is None:
            cache = self.new_cache()
        layout = cache.positions.layout(mask, L) if cache is not None else Layout.build(
            mask, None, L)
        n = self.config.prefill_chunk_tokens
        if cache is not None and n and L > n:  # chunked prefill through the cache
            x = torch.cat([self._run(x[:, s:s + n], layout.chunk(s, min(s + n, L)), cache)
                           for s in range(0, L, n)], 1)
        else:
            x = self._run(x, layout, cache)
        x = carry_over_padding(x, layout.valid)  # a padded column repeats its last token
        return model_output(BaseModelOutputWithPast, last_hidden_state=self.norm(x),
                            cache=cache if use_cache else None)


class GLAswaForCausalLM(GLAswaPreTrainedModel, GenerationMixin):
    """SpikingBrain-7B with its (untied) language-model head.

    ``generate()`` runs the prompt once, then one token per step through the constant-memory
    cache (transformers' own input preparation: ``cache=`` / ``past_key_values=`` by version);
    padded batches (left or right) give every row its alone-generation; a cache from an earlier
    call continues a prompt.
    """

    #: with ``tie_word_embeddings`` (a tied source) the head is the embedding matrix
    _tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}

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

    def new_cache(self) -> GLAswaCache:
        """An empty generation cache (to pass to ``generate(cache=...)`` and continue later)."""
        return self.model.new_cache()

    def generate(self, *args, use_static: bool | None = None, **kwargs):
        """transformers' ``generate()``; on CUDA, plain greedy or temperature sampling runs
        through :class:`~spikingbrain.models.static_decode.StaticDecoder` (static buffers,
        one CUDA graph per step) instead. ``use_static``: force (True) or forbid (False) it;
        default: on CUDA when the arguments allow."""
        from spikingbrain.models.static_decode import static_generate

        if use_static is not False:
            out = static_generate(self, args, kwargs, force=bool(use_static))
            if out is not None:
                return out
        return super().generate(*args, **kwargs)

    def forward(self, input_ids: torch.LongTensor | None = None,
                attention_mask: torch.Tensor | None = None, cache: GLAswaCache | None = None,
                use_cache: bool | None = None, inputs_embeds: torch.Tensor | None = None,
                labels: torch.LongTensor | None = None, logits_to_keep: int = 0,
                past_key_values: GLAswaCache | None = None,
                **kwargs) -> CausalLMOutputWithPast:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, cache=cache,
                         past_key_values=past_key_values, use_cache=use_cache,
                         inputs_embeds=inputs_embeds)
        h = out.last_hidden_state
        logits = self.lm_head(h[:, -logits_to_keep:] if logits_to_keep else h)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return model_output(CausalLMOutputWithPast, loss=loss, logits=logits,
                            cache=cache_of(out))
