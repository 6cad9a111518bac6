"""SpikingBrain-7B and -76B as ordinary Hugging Face models that run anywhere torch runs.

- :mod:`spikingbrain.models.gla_swa`: SpikingBrain-7B (``model_type`` ``"gla_swa"``), the
  public checkpoint's names; :mod:`spikingbrain.models.hybrid`: SpikingBrain-76B-A12B
  (``"spikingbrain_moe"``, the report's architecture).
- :mod:`spikingbrain.models.ops`: GLA, sliding-window attention with sinks, MoE, RoPE, RMSNorm,
  each with a naive reference.
- :func:`from_transformer` (Qwen2 -> 7B by attention map transfer), :func:`upcycle` (dense ->
  MoE), :mod:`~spikingbrain.models.checkpoint` (sharded saves, public W8ASpike folders),
  :mod:`~spikingbrain.models.build` (random full-size models built directly on a device).

:func:`register` makes both model types known to transformers' Auto classes, so
``AutoModelForCausalLM.from_pretrained`` takes their folders (every spikingbrain command that
loads a MODEL_DIR calls it).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["GLAswaConfig", "GLAswaForCausalLM", "SpikingBrainMoEConfig",
           "SpikingBrainMoEForCausalLM", "from_transformer", "model_class", "register",
           "upcycle"]

_LAZY = {
    "GLAswaConfig": "spikingbrain.models.gla_swa",
    "GLAswaForCausalLM": "spikingbrain.models.gla_swa",
    "SpikingBrainMoEConfig": "spikingbrain.models.hybrid",
    "SpikingBrainMoEForCausalLM": "spikingbrain.models.hybrid",
    "from_transformer": "spikingbrain.models.from_transformer",
    "upcycle": "spikingbrain.models.upcycle",
}


def register() -> None:
    """Register ``gla_swa`` and ``spikingbrain_moe`` with AutoConfig, AutoModel and
    AutoModelForCausalLM (idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from spikingbrain.models import hybrid
    from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM, GLAswaModel

    AutoConfig.register("gla_swa", GLAswaConfig, exist_ok=True)
    AutoModel.register(GLAswaConfig, GLAswaModel, exist_ok=True)
    AutoModelForCausalLM.register(GLAswaConfig, GLAswaForCausalLM, exist_ok=True)
    hybrid.register()


def model_class(name: str) -> type | None:
    """A SpikingBrain model class by its name (``GLAswaForCausalLM``, ``SpikingBrainMoEModel``
    ...), or None."""
    for module in ("spikingbrain.models.gla_swa", "spikingbrain.models.hybrid"):
        cls = getattr(importlib.import_module(module), name, None)
        if isinstance(cls, type):
            return cls
    return None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spikingbrain.models' has no attribute {name!r}")
