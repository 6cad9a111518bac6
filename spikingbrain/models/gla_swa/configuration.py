"""Configuration of SpikingBrain-7B (``model_type`` ``"gla_swa"``, public class name
``GLAswaConfig``), with the public config.json's field names.

Defaults are the full-size SpikingBrain-7B (DESIGN.md section 4): hidden 3584, 28 layers, 28
query / 4 key-value heads of 128, SwiGLU FFN 18944, vocabulary 152064, RoPE theta 1e6, sliding
window 4096; odd layers are sliding-window attention, even layers gated linear attention.

>>> cfg = GLAswaConfig()
>>> cfg.attn_layers[:3], cfg.head_dim, cfg.layer_kind(0), cfg.layer_kind(1)
([1, 3, 5], 128, 'gla', 'swa')
>>> GLAswaConfig(num_hidden_layers=2, attn_layers=[0, 5])
Traceback (most recent call last):
...
ValueError: attn_layers must hold layer indices in [0, 2), got [0, 5]
"""

from __future__ import annotations

from transformers import PretrainedConfig

from spikingbrain.models._common import check_decode_window

__all__ = ["GLAswaConfig"]


class GLAswaConfig(PretrainedConfig):
    """SpikingBrain-7B configuration.

    Fields beyond the public ones (all with the public model's behaviour as default):
        attn_layers: indices of the sliding-window softmax-attention layers (default: the odd
            ones, as the public code computes); every other layer is GLA.
        gate_low_rank_dim, gate_logit_normalizer: GLA gate ``log g = logsigmoid(gk_proj(x)) /
            gate_logit_normalizer`` with ``gk_proj`` of rank ``gate_low_rank_dim`` (16, 16);
            ``gate_low_rank_dim=None`` makes ``gk_proj`` one full-rank linear (hidden ->
            kv_heads x head_dim, with bias), the layout of the public W8ASpike checkpoint.
        decode_window: ``"public"`` (default) or ``"flash"``. Prefill always follows
            flash-attention's window (a query sees ``sliding_window + 1`` keys). A token decoded
            one at a time through the cache sees ``sliding_window`` keys with ``"public"``
            (what the public SpikingBrain-7B cache keeps, so a loaded public checkpoint
            generates as the public code does) and ``sliding_window + 1`` with ``"flash"``
            (decoding then equals a full forward at every length).
        attention_quant: ``None`` (float attention) or ``"w8aspike"``: inside every
            sliding-window layer, after RoPE, the query is spiked per (token, head) with
            ``k = 3`` and K and V are fake-quantised to int8 per (token, head), as the public
            W8ASpike code does (set by the public-checkpoint loader).
        moe_layers, n_routed_experts, num_experts_per_tok, n_shared_experts, moe_alpha,
            norm_topk_prob: an upcycled 7B (:func:`spikingbrain.models.upcycle`) has MoE FFNs
            at ``moe_layers`` (default none: the dense 7B).
        prefill_chunk_tokens: a prompt longer than this is run through the cache in chunks of
            this many tokens (0: never), so long inputs fit in memory.
        gla_backend: ``auto`` (flash-linear-attention on CUDA when installed, else the chunked
            PyTorch form), ``chunked``, ``recurrent`` or ``fla``.
    """

    model_type = "gla_swa"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(self, vocab_size: int = 152064, hidden_size: int = 3584,
                 num_hidden_layers: int = 28, attn_mode: str = "chunk",
                 num_attention_heads: int = 28, num_key_value_heads: int = 4,
                 use_short_conv: bool = False, conv_size: int = 4,
                 intermediate_size: int = 18944, hidden_act: str = "swish",
                 max_position_embeddings: int = 131072, sliding_window: int = 4096,
                 elementwise_affine: bool = True, norm_eps: float = 1e-6,
                 rope_theta: float = 1000000.0, attention_dropout: float = 0.0,
                 use_cache: bool = True, pad_token_id: int | None = None,
                 bos_token_id: int = 151643, eos_token_id: int = 151643,
                 tie_word_embeddings: bool = False, initializer_range: float = 0.02,
                 attn_layers: list[int] | None = None, gate_low_rank_dim: int = 16,
                 gate_logit_normalizer: float = 16.0, prefill_chunk_tokens: int = 8192,
                 gla_backend: str = "auto", decode_window: str = "public",
                 attention_quant: str | None = None, moe_layers: list[int] | None = None,
                 n_routed_experts: int = 16, num_experts_per_tok: int = 1,
                 n_shared_experts: int = 1, moe_alpha: float = 1.0,
                 norm_topk_prob: bool = False, **kwargs) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.attn_mode = attn_mode
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.use_short_conv = use_short_conv
        self.conv_size = conv_size
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.sliding_window = sliding_window
        self.elementwise_affine = elementwise_affine
        self.norm_eps = norm_eps
        self.rope_theta = rope_theta
        self.attention_dropout = attention_dropout
        self.use_cache = use_cache
        self.initializer_range = initializer_range
        self.attn_layers = (list(range(1, num_hidden_layers, 2)) if attn_layers is None
                            else [int(i) for i in attn_layers])
        self.gate_low_rank_dim = gate_low_rank_dim
        self.gate_logit_normalizer = gate_logit_normalizer
        self.prefill_chunk_tokens = prefill_chunk_tokens
        self.gla_backend = gla_backend
        self.decode_window = decode_window
        self.attention_quant = attention_quant
        self.moe_layers = sorted(int(i) for i in (moe_layers or []))
        self.n_routed_experts, self.num_experts_per_tok = n_routed_experts, num_experts_per_tok
        self.n_shared_experts, self.moe_alpha = n_shared_experts, float(moe_alpha)
        self.norm_topk_prob = norm_topk_prob
        kwargs.pop("fuse_cross_entropy", None)  # training-kernel switches of the public code
        for key in ("enable_spike", "spike_dynamic_scale", "spike_bitwidth"):
            kwargs.pop(key, None)
        self._validate()
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id,
                         eos_token_id=eos_token_id, tie_word_embeddings=tie_word_embeddings,
                         **kwargs)

    def _validate(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of "
                             f"num_attention_heads {self.num_attention_heads}")
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError(f"head_dim = hidden_size / num_attention_heads = "
                             f"{self.hidden_size // self.num_attention_heads} must be even "
                             "(RoPE rotates pairs of channels)")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} must be a multiple "
                             f"of num_key_value_heads {self.num_key_value_heads}")
        if any(not 0 <= i < self.num_hidden_layers for i in self.attn_layers):
            raise ValueError(f"attn_layers must hold layer indices in [0, "
                             f"{self.num_hidden_layers}), got {self.attn_layers}")
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ValueError(f"sliding_window must be >= 1 or None, got {self.sliding_window}")
        if self.use_short_conv:
            raise ValueError("use_short_conv=True is not supported (SpikingBrain-7B does not use "
                             "it)")
        check_decode_window(self.decode_window)
        if self.attention_quant not in (None, "w8aspike"):
            raise ValueError(f"attention_quant must be None or 'w8aspike', got "
                             f"{self.attention_quant!r}")
        if self.gate_low_rank_dim is not None and self.gate_low_rank_dim < 1:
            raise ValueError(f"gate_low_rank_dim must be >= 1, or None for a full-rank gate, "
                             f"got {self.gate_low_rank_dim}")
        if any(not 0 <= i < self.num_hidden_layers for i in self.moe_layers):
            raise ValueError(f"moe_layers must hold layer indices in [0, "
                             f"{self.num_hidden_layers}), got {self.moe_layers}")
        if self.moe_layers and not 1 <= self.num_experts_per_tok <= self.n_routed_experts:
            raise ValueError(f"need 1 <= num_experts_per_tok ({self.num_experts_per_tok}) <= "
                             f"n_routed_experts ({self.n_routed_experts})")
        if self.gla_backend not in ("auto", "chunked", "recurrent", "naive", "fla"):
            raise ValueError(f"gla_backend must be auto, chunked, recurrent or fla, got "
                             f"{self.gla_backend!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def layer_kind(self, i: int) -> str:
        """``"swa"`` (sliding-window softmax attention) or ``"gla"`` for layer ``i``."""
        return "swa" if i in self.attn_layers else "gla"
