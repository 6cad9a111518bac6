"""Checkpoints of the SpikingBrain models: sharded safetensors saves, shard-by-shard loading
into a model built on the meta device, and public W8ASpike folders.

A public W8ASpike folder (the 7B's ``W8ASpike`` release) holds the base model's names, every
projection as a ``QuantLinear`` with an fp32 ``weight`` and ``weight_quantizer.scales`` of shape
``[out, in / 128, 1]``. :func:`load_w8aspike_folder` turns each such projection into a
:class:`~spikingbrain.converter.SpikingLinear` with codes ``round(W / scales)`` exactly (codes
beyond int8 are kept exact in int16), shard by shard, never holding the model twice. The
loaded model is the public W8ASpike forward: the attention-path quantisation of the
sliding-window layers is switched on and the full-rank GLA gate of the release is detected.

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

__all__ = ["check_shapes", "header_shapes", "iter_checkpoint_tensors", "load_w8aspike_folder",
           "public_layout", "save_sharded", "set_tensor", "skeleton"]

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

    Before the model is built, the config is adapted to the folder (:func:`public_layout`):
    a folder with ``weight_quantizer.scales`` turns on ``attention_quant="w8aspike"`` (query
    spikes and int8 K/V inside the sliding-window layers, as the public W8ASpike code), and a
    full-rank ``attn.gk_proj.weight`` sets ``gate_low_rank_dim=None``. Then every tensor's
    shape is checked against the config (:func:`check_shapes`): a disagreement raises
    ValueError naming the tensor, the expected and the found shape.
    """
    from transformers import AutoConfig

    from spikingbrain.converter import SpikeConfig, SpikingLinear
    from spikingbrain.converter.layer import share_fallback_warnings
    from spikingbrain.models import register

    register()
    folder = Path(folder)
    cfg = AutoConfig.from_pretrained(folder, local_files_only=True)
    shapes = header_shapes(folder)
    quantized = {n[: -len(SCALES)] for n in shapes if n.endswith(SCALES)}
    public_layout(cfg, shapes, folder)
    model = skeleton(cfg, dtype)
    check_shapes(model, shapes, folder)
    spike_config = SpikeConfig() if spike_config is None else spike_config
    pending: dict[str, dict[str, torch.Tensor]] = {}  # layer -> weight/scales/bias seen so far
    for name, t in iter_checkpoint_tensors(folder, device):  # codes computed where they go
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


def header_shapes(folder: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of every tensor of a checkpoint folder, read from the safetensors
    headers only (no tensor data is loaded)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for shard in _shards(Path(folder)):
        with safe_open(str(shard), framework="pt") as f:
            for name in f.keys():
                shapes[name] = tuple(f.get_slice(name).get_shape())
    return shapes


FULL_GATE = "attn.gk_proj.weight"
LOW_RANK_GATE = "attn.gk_proj.0.weight"


def public_layout(cfg: Any, shapes: dict[str, tuple[int, ...]], where: Any = "") -> Any:
    """Adapt a ``gla_swa`` config to what a public W8ASpike folder holds, in place, before the
    model is built: the attention-path quantisation (``attention_quant="w8aspike"``) when the
    folder carries ``weight_quantizer.scales``, and the full-rank gate
    (``gate_low_rank_dim=None``) when its GLA layers hold one ``attn.gk_proj.weight``
    ``[kv_heads * head_dim, hidden]`` (plus bias) instead of the rank-16 pair
    ``attn.gk_proj.0`` / ``attn.gk_proj.1``. Other model types are returned unchanged.

    >>> from spikingbrain.models.gla_swa import GLAswaConfig
    >>> cfg = GLAswaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                    num_key_value_heads=2, intermediate_size=48)
    >>> shapes = {"model.layers.0.attn.gk_proj.weight": (16, 32),
    ...           "model.layers.0.attn.q_proj.weight_quantizer.scales": (32, 1, 1)}
    >>> c = public_layout(cfg, shapes)
    >>> c.gate_low_rank_dim, c.attention_quant
    (None, 'w8aspike')
    """
    if getattr(cfg, "model_type", None) != "gla_swa":
        return cfg
    full = [n for n in shapes if n.endswith(FULL_GATE)]
    low = [n for n in shapes if n.endswith(LOW_RANK_GATE)]
    if full and low:
        raise ValueError(f"{where} mixes full-rank GLA gates ({full[0]}) with low-rank ones "
                         f"({low[0]}); a checkpoint uses one layout")
    if full:
        want = (cfg.num_key_value_heads * cfg.head_dim, cfg.hidden_size)
        for n in full:
            if shapes[n] != want:
                raise ValueError(f"{where}: tensor {n} has shape {list(shapes[n])}, expected "
                                 f"{list(want)} (kv_heads x head_dim, hidden) for a full-rank "
                                 f"gate under config.json")
        cfg.gate_low_rank_dim = None
    if any(n.endswith(SCALES) for n in shapes):
        cfg.attention_quant = "w8aspike"
    return cfg


def _layer_count(names: Any) -> int:
    import re

    idx = [int(m.group(1)) for n in names if (m := re.match(r"model\.layers\.(\d+)\.", n))]
    return max(idx) + 1 if idx else 0


def check_shapes(model: nn.Module, shapes: dict[str, tuple[int, ...]], where: Any = "") -> None:
    """Check a folder's tensors (``shapes`` from :func:`header_shapes`) against the model
    built from its config.json (on the meta device): the number of layers, every tensor's
    shape (embeddings, projections, MLP, norms), the public ``weight_quantizer.scales``
    ``[out, n_groups, 1]``, and no tensor missing. Raises ValueError naming the tensor, the
    expected and the found shape."""
    expected = {n: tuple(t.shape) for n, t in model.state_dict(keep_vars=True).items()}
    cfg = getattr(model, "config", None)
    n_cfg = getattr(cfg, "num_hidden_layers", None)
    n_found = _layer_count(shapes)
    if n_cfg is not None and n_found and n_found != n_cfg:
        raise ValueError(f"{where} holds tensors of {n_found} layers but config.json says "
                         f"num_hidden_layers={n_cfg}: the config does not belong to these "
                         f"weights")
    for name, shape in shapes.items():
        if name.endswith(SCALES):
            owner = name[: -len(SCALES)] + ".weight"
            if owner not in expected:
                raise ValueError(f"{where}: tensor {name} belongs to no linear layer of the "
                                 f"model built from config.json")
            out, inp = expected[owner]
            ok = len(shape) in (2, 3) and shape[0] == out and shape[1] >= 1 and \
                inp % shape[1] == 0 and (len(shape) == 2 or shape[2] == 1)
            if not ok:
                raise ValueError(f"{where}: tensor {name} has shape {list(shape)}, expected "
                                 f"[{out}, n_groups, 1] with n_groups dividing {inp}")
            continue
        if name not in expected:
            raise ValueError(f"{where}: tensor {name} (shape {list(shape)}) is not part of the "
                             f"model built from config.json; the config does not match the "
                             f"weights")
        if shape != expected[name]:
            raise ValueError(f"{where}: tensor {name} has shape {list(shape)} but config.json "
                             f"implies {list(expected[name])}: the config does not match the "
                             f"weights")
    tied = getattr(cfg, "tie_word_embeddings", False)
    missing = [n for n in expected if n not in shapes and not (tied and n == "lm_head.weight")]
    if missing:
        raise ValueError(f"{where} lacks tensors {missing[:4]} (of {len(missing)} missing) "
                         f"that config.json implies, e.g. {missing[0]} of shape "
                         f"{list(expected[missing[0]])}")
