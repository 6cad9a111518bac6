"""SpikingBrain-76B-A12B (``model_type`` "spikingbrain_moe"): parallel GLA + softmax attention,
sink tokens, MoE FFN. See docs/models.md."""

from spikingbrain.models.hybrid.cache import HybridCache
from spikingbrain.models.hybrid.configuration import SpikingBrainMoEConfig
from spikingbrain.models.hybrid.modeling import (
    SpikingBrainMoEForCausalLM,
    SpikingBrainMoEModel,
    SpikingBrainMoEPreTrainedModel,
    count_parameters,
)

__all__ = ["HybridCache", "SpikingBrainMoEConfig", "SpikingBrainMoEForCausalLM",
           "SpikingBrainMoEModel", "SpikingBrainMoEPreTrainedModel", "count_parameters",
           "register"]


def register() -> None:
    """Register the config and models with AutoConfig / AutoModel / AutoModelForCausalLM."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    AutoConfig.register("spikingbrain_moe", SpikingBrainMoEConfig, exist_ok=True)
    AutoModel.register(SpikingBrainMoEConfig, SpikingBrainMoEModel, exist_ok=True)
    AutoModelForCausalLM.register(SpikingBrainMoEConfig, SpikingBrainMoEForCausalLM,
                                  exist_ok=True)
