"""Configuration of SpikingBrain-76B-A12B (``model_type`` "spikingbrain_moe").

Defaults are the full size from the report (section 2.2; DESIGN.md section 4). Layer indices in
this config are 0-based: the report's full-attention layers 7, 14, 21, 28 (1-based) are
``full_attention_layers = [6, 13, 20, 27]`` and its dense FFN layers 1, 2, 3, 5, 7, 9, 11 are
``dense_ffn_layers = [0, 1, 2, 4, 6, 8, 10]``. Every choice the report leaves open is a field
(see docs/models.md, "SpikingBrain-76B"):

- ``branch_combine``: how the two RMS-normalised branch outputs are combined:
  ``"mix"`` (default; learnable per-channel ``m = sigmoid(branch_mix)``, ``m * gla + (1 - m) *
  softmax``, ``branch_mix`` starts at 0 so the mix starts as the mean), ``"mean"``, ``"sum"``.
- ``sink_gla``: how the sink tokens meet the GLA branch: ``"prefix"`` (default; the sinks are
  the first steps of every layer's GLA recurrence, so the state after them is a learned,
  input-independent initial state for the real tokens) or ``"separate"`` (the tokens' GLA
  starts from a zero state; sinks run their own recurrence).
- ``moe_alpha``: routed and shared expert outputs are scaled by it at every forward (default
  1.0: upcycling folds its scale into the expert weights once); ``norm_topk_prob``
  renormalises the top-k routing weights.
- ``decode_window``: ``"flash"`` (default: a decoded token sees ``sliding_window + 1`` keys,
  as in prefill) or ``"public"`` (``sliding_window`` keys, the public 7B cache's rule).

>>> cfg = SpikingBrainMoEConfig.tiny()
>>> cfg.model_type, cfg.layer_has_moe(0), cfg.layer_has_moe(2), cfg.layer_window(3)
('spikingbrain_moe', False, True, None)
"""

from __future__ import annotations

from transformers import PretrainedConfig

from spikingbrain.models._common import check_decode_window

_COMBINES = ("mix", "mean", "sum")
_SINK_GLA = ("prefix", "separate")


class SpikingBrainMoEConfig(PretrainedConfig):
    """SpikingBrain-76B: parallel GLA + softmax attention per layer, sink tokens, MoE FFN."""

    model_type = "spikingbrain_moe"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(self, vocab_size: int = 152064, hidden_size: int = 3584,
                 num_hidden_layers: int = 28, num_attention_heads: int = 28,
                 num_key_value_heads: int = 4, head_dim: int | None = None,
                 intermediate_size: int = 18944, moe_intermediate_size: int | None = None,
                 rms_norm_eps: float = 1e-6, rope_theta: float = 1e6,
                 max_position_embeddings: int = 131072, sliding_window: int = 4096,
                 full_attention_layers: list[int] | None = None,
                 dense_ffn_layers: list[int] | None = None, n_routed_experts: int = 16,
                 num_experts_per_tok: int = 1, n_shared_experts: int = 1,
                 moe_alpha: float | None = None, norm_topk_prob: bool = False,
                 num_sink_tokens: int = 128, sink_gla: str = "prefix",
                 branch_combine: str = "mix", attention_bias: bool = True,
                 decode_window: str = "flash",
                 gla_backend: str = "auto", gla_chunk_size: int = 64,
                 prefill_chunk_tokens: int | None = None, initializer_range: float = 0.02,
                 tie_word_embeddings: bool = False, bos_token_id: int = 151643,
                 eos_token_id: int = 151643, pad_token_id: int | None = None,
                 use_cache: bool = True, **kwargs) -> None:
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.num_hidden_layers, self.num_attention_heads = num_hidden_layers, num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim if head_dim is not None else hidden_size // num_attention_heads
        self.intermediate_size = intermediate_size
        self.moe_intermediate_size = moe_intermediate_size or intermediate_size
        self.rms_norm_eps, self.rope_theta = rms_norm_eps, rope_theta
        self.max_position_embeddings, self.sliding_window = max_position_embeddings, sliding_window
        self.full_attention_layers = list(
            [6, 13, 20, 27] if full_attention_layers is None else full_attention_layers)
        self.dense_ffn_layers = list(
            [0, 1, 2, 4, 6, 8, 10] if dense_ffn_layers is None else dense_ffn_layers)
        self.n_routed_experts, self.num_experts_per_tok = n_routed_experts, num_experts_per_tok
        self.n_shared_experts = n_shared_experts
        self.moe_alpha = 1.0 if moe_alpha is None else float(moe_alpha)
        self.decode_window = decode_window
        self.norm_topk_prob, self.num_sink_tokens = norm_topk_prob, num_sink_tokens
        self.sink_gla, self.branch_combine = sink_gla, branch_combine
        self.attention_bias, self.gla_backend = attention_bias, gla_backend
        self.gla_chunk_size, self.prefill_chunk_tokens = gla_chunk_size, prefill_chunk_tokens
        self.initializer_range, self.use_cache = initializer_range, use_cache
        self._validate()
        super().__init__(tie_word_embeddings=tie_word_embeddings, bos_token_id=bos_token_id,
                         eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)

    def _validate(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "intermediate_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even (RoPE rotates pairs of channels), got "
                             f"{self.head_dim}")
        check_decode_window(self.decode_window)
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads ({self.num_attention_heads}) must be a "
                             f"multiple of num_key_value_heads ({self.num_key_value_heads})")
        if self.branch_combine not in _COMBINES:
            raise ValueError(f"branch_combine must be one of {_COMBINES}, got "
                             f"{self.branch_combine!r}")
        if self.sink_gla not in _SINK_GLA:
            raise ValueError(f"sink_gla must be one of {_SINK_GLA}, got {self.sink_gla!r}")
        for name in ("full_attention_layers", "dense_ffn_layers"):
            bad = [i for i in getattr(self, name) if not 0 <= i < self.num_hidden_layers]
            if bad:
                raise ValueError(f"{name} holds 0-based layer indices in [0, "
                                 f"{self.num_hidden_layers}); got {bad}")
        if self.sliding_window < 1 or self.num_sink_tokens < 0:
            raise ValueError("sliding_window must be >= 1 and num_sink_tokens >= 0")
        if not 1 <= self.num_experts_per_tok <= self.n_routed_experts:
            raise ValueError(f"need 1 <= num_experts_per_tok ({self.num_experts_per_tok}) <= "
                             f"n_routed_experts ({self.n_routed_experts})")
        if self.prefill_chunk_tokens is not None and self.prefill_chunk_tokens < 1:
            raise ValueError("prefill_chunk_tokens must be a positive number of tokens or None")

    def layer_window(self, layer: int) -> int | None:
        """Sliding window of layer ``layer`` (0-based); None for full attention."""
        return None if layer in self.full_attention_layers else self.sliding_window

    def layer_has_moe(self, layer: int) -> bool:
        """True where layer ``layer`` (0-based) has the MoE FFN, False for a dense FFN."""
        return layer not in self.dense_ffn_layers

    @classmethod
    def tiny(cls, **overrides) -> SpikingBrainMoEConfig:
        """A tiny configuration for tests (4 layers, hidden 32, window 5, 3 sinks, 4 experts)."""
        fields = dict(vocab_size=97, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=48, sliding_window=5,
                      full_attention_layers=[3], dense_ffn_layers=[0], n_routed_experts=4,
                      num_sink_tokens=3, gla_chunk_size=4, max_position_embeddings=4096,
                      bos_token_id=1, eos_token_id=2)
        fields.update(overrides)
        return cls(**fields)
