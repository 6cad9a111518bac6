"""SpikingBrain-7B (``model_type`` ``"gla_swa"``): configuration, layers, cache and model."""

from spikingbrain.models.gla_swa.cache import GLAswaCache
from spikingbrain.models.gla_swa.configuration import GLAswaConfig
from spikingbrain.models.gla_swa.modeling import (
    GLAswaForCausalLM,
    GLAswaModel,
    GLAswaPreTrainedModel,
)

__all__ = ["GLAswaCache", "GLAswaConfig", "GLAswaForCausalLM", "GLAswaModel",
           "GLAswaPreTrainedModel"]
