"""Model types the toolkit adds to transformers' Auto classes, as a table of module names.

The converter is generic: it opens any Hugging Face folder and never imports a model family.
Families that transformers does not know (SpikingBrain-7B ``gla_swa``, SpikingBrain-76B
``spikingbrain_moe``) are listed here with the module whose ``register()`` makes them known;
:func:`ensure_registered` imports those modules only when a folder is opened, so
``import spikingbrain.converter`` stays light. Another package adds its own family with
:func:`add_model_family`.

>>> "gla_swa" in MODEL_TYPES and "spikingbrain_moe" in MODEL_TYPES
True
>>> find_model_class("GLAswaForCausalLM").__name__
'GLAswaForCausalLM'
>>> find_model_class("NoSuchModel") is None
True
"""

from __future__ import annotations

import importlib

__all__ = ["MODEL_TYPES", "QUANTIZED_FOLDER_LOADERS", "add_model_family", "ensure_registered",
           "find_model_class", "quantized_folder_loader"]

#: model_type -> module with a ``register()`` function (and the model classes)
MODEL_TYPES: dict[str, str] = {
    "gla_swa": "spikingbrain.models",
    "spikingbrain_moe": "spikingbrain.models",
}
#: folders of pre-quantised checkpoints, recognised by a tensor-name suffix, and the function
#: (``module:function``) that loads them into a converted model: the public SpikingBrain-7B
#: W8ASpike release (fp32 weights plus ``weight_quantizer.scales``)
QUANTIZED_FOLDER_LOADERS: dict[str, str] = {
    ".weight_quantizer.scales": "spikingbrain.models.checkpoint:load_w8aspike_folder",
}
#: modules searched for model classes by name (converted folders record the class name)
_CLASS_MODULES: list[str] = ["spikingbrain.models.gla_swa", "spikingbrain.models.hybrid"]


def add_model_family(model_type: str, module: str, class_modules: list[str] | None = None
                     ) -> None:
    """Make ``model_type`` openable: ``module.register()`` is called before folders load."""
    MODEL_TYPES[model_type] = module
    for m in class_modules or [module]:
        if m not in _CLASS_MODULES:
            _CLASS_MODULES.append(m)


def ensure_registered() -> None:
    """Call ``register()`` of every listed family (idempotent)."""
    for module in dict.fromkeys(MODEL_TYPES.values()):
        importlib.import_module(module).register()


def find_model_class(name: str) -> type | None:
    """A listed family's model class by its name, or None."""
    for module in _CLASS_MODULES:
        cls = getattr(importlib.import_module(module), name, None)
        if isinstance(cls, type):
            return cls
    return None


def quantized_folder_loader(suffix: str):
    """The loader function registered for checkpoints whose tensors end in ``suffix``.

    >>> quantized_folder_loader(".weight_quantizer.scales").__name__
    'load_w8aspike_folder'
    """
    module, _, fn = QUANTIZED_FOLDER_LOADERS[suffix].partition(":")
    return getattr(importlib.import_module(module), fn)
