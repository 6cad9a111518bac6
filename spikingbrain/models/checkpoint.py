"""Checkpoints of the SpikingBrain models: sharded safetensors saves, shard-by-shard loading
into a model built on the meta device, and public W8ASpike folders.

A public W8ASpike folder (the 7B's ``W8ASpike`` release) holds the base model's names, every
projection as a ``QuantLinear`` with an fp32 ``weight`` and ``weight_quantizer.scales`` of shape
``[out, in / 128, 1]``. :func:`load_w8aspike_folder` turns each such projection into a
:class:`~spikingbrain.converter.SpikingLinear` with codes ``round(W / scales)`` exactly (codes
beyond int8 are kept exact in int16), shard by shard, never holding the model twice.

>>> import tempfile
>>> from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM
>>> m = GLAswaForCausalLM(GLAswaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
...     num_attention_heads=4, num_key_value_heads=2, intermediate_size=48, bos_token_id=1,
...     eos_token_id=2))
>>> d = tempfile.mkdtemp() + "/ckpt"
>>> files = save_sharded(m, d, max_shard_size="50KB")
>>> len(files) > 2 and (Path(d) / "model.safetensors.index.json").is_file()
True
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["iter_checkpoint_tensors", "load_w8aspike_folder", "save_sharded", "set_tensor",
           "skeleton"]

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
SCALES = ".weight_quantizer.scales"


def save_sharded(model: nn.Module, folder: str | os.PathLike,
                 max_shard_size: str | int = "5GB") -> list[Path]:
    """``save_pretrained`` into ``folder`` as sharded safetensors with an index, all or
    nothing (built beside the folder and swapped in). Returns the files written."""
    from spikingbrain.utils.atomic import atomic_folder

    target = Path(folder)
    with atomic_folder(target, lambda p: (p / "config.json").is_file()) as tmp:
        model.save_pretrained(tmp, max_shard_size=max_shard_size, safe_serialization=True)
    return sorted(target.iterdir())


def _shards(folder: Path) -> list[Path]:
    """The checked shard files (clear errors for malformed indexes and truncated shards)."""
    from spikingbrain.utils.safetensors_check import check_safetensors_folder

    return check_safetensors_folder(folder)


def iter_checkpoint_tensors(folder: str | os.PathLike, device: str | torch.device = "cpu"
                            ) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of every tensor, one shard open at a time."""
    from safetensors import safe_open

    for shard in _shards(Path(folder)):
        with safe_open(str(shard), framework="pt", device=str(device)) as f:
            for name in f.keys():
                yield name, f.get_tensor(name)


def skeleton(config: Any, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """The causal-LM model of ``config`` built on the meta device (no memory), in ``dtype``."""
    from transformers import AutoModelForCausalLM

    from spikingbrain.models import register

    register()
    # the class itself under a meta device (from_config may allocate and initialise on the
    # host in some transformers versions)
    cls = AutoModelForCausalLM._model_mapping[type(config)]
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = cls(config)
    finally:
        torch.set_default_dtype(old)
    leaked = [n for n, t in list(model.named_parameters()) + list(model.named_buffers())
              if t.device.type != "meta"]
    if leaked:
        raise RuntimeError(f"building on the meta device allocated {leaked[:3]}")
    return model


def set_tensor(model: nn.Module, name: str, value: nn.Module | torch.Tensor,
               requires_grad: bool = False) -> None:
    """Put ``value`` (a module, or a tensor as parameter / buffer) at dotted ``name``,
    replacing a meta placeholder without allocating anything else."""
    parent, _, child = name.rpartition(".")
    mod = model.get_submodule(parent) if parent else model
    if isinstance(value, nn.Module):
        setattr(mod, child, value)
    elif isinstance(getattr(mod, child), nn.Parameter):
        setattr(mod, child, nn.Parameter(value, requires_grad=requires_grad))
    else:
        mod.register_buffer(child, value)


def load_w8aspike_folder(folder: str | os.PathLike, spike_config: Any = None, *,
                         device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Load a public W8ASpike checkpoint folder into a converted model.

    Projections that carry ``weight_quantizer.scales`` become SpikingLinear layers with their
    exact codes (``spike_config`` gives k, scheme and mode; the group size comes from the
    scales); every other tensor (embeddings, norms, the float ``lm_head``) is loaded in
    ``dtype``. The model is built on the meta device and filled shard by shard.
    """
    from transformers import AutoConfig

    from spikingbrain.converter import SpikeConfig, SpikingLinear
    from spikingbrain.converter.layer import share_fallback_warnings
    from spikingbrain.models import register

    register()
    folder = Path(folder)
    cfg = AutoConfig.from_pretrained(folder, local_files_only=True)
    model = skeleton(cfg, dtype)
    spike_config = SpikeConfig() if spike_config is None else spike_config
    pending: dict[str, dict[str, torch.Tensor]] = {}  # layer -> weight/scales/bias seen so far
    quantized = {n[: -len(SCALES)] for shard in _shards(folder)
                 for n in _names(shard) if n.endswith(SCALES)}
    for name, t in iter_checkpoint_tensors(folder):
        layer, _, leaf = name.rpartition(".")
        owner = name[: -len(SCALES)] if name.endswith(SCALES) else layer
        if owner in quantized:
            part = "scales" if name.endswith(SCALES) else leaf
            pending.setdefault(owner, {})[part] = t
            got = pending[owner]
            lin = model.get_submodule(owner)
            if "weight" in got and "scales" in got and ("bias" in got or lin.bias is None):
                sl = SpikingLinear.from_quantized(got["weight"].float(), got["scales"],
                                                  got.get("bias"), spike_config)
                if sl.bias is not None:
                    sl.bias.data = sl.bias.data.to(dtype)
                set_tensor(model, owner, sl.to(device))
                del pending[owner]
            continue
        set_tensor(model, name, t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype))
    if pending:
        raise ValueError(f"incomplete quantised layers in {folder}: {sorted(pending)[:4]}")
    missing = [n for n, p in list(model.named_parameters()) + list(model.named_buffers())
               if p.device.type == "meta"]
    if missing:
        raise ValueError(f"{folder} lacks tensors for {missing[:4]} (of {len(missing)})")
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    share_fallback_warnings(model)  # kernel fall-backs warn once per model
    return model.eval()


def _names(shard: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(shard), framework="pt") as f:
        return list(f.keys())
