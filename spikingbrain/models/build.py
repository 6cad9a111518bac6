"""Full-size models with random weights built directly on a device: no float copy on the host.

For GPU runs of SpikingBrain-7B / -76B without their weights. The model is constructed on the
meta device in the target dtype, then every tensor is allocated on its device and filled in
place. :func:`random_w8aspike_model` replaces every projection (all ``nn.Linear`` but the output
head) by a :class:`~spikingbrain.converter.SpikingLinear` created on the device with random
INT8 codes and scales, so a 76B model takes its INT8 size (about 1 byte per weight), never its
bf16 size.

>>> from spikingbrain.models.gla_swa import GLAswaConfig
>>> cfg = GLAswaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
...                    num_key_value_heads=2, intermediate_size=48, bos_token_id=1, eos_token_id=2)
>>> m = random_w8aspike_model(cfg, device="cpu", dtype=torch.float32)
>>> type(m.model.layers[0].mlp.up_proj).__name__, m.model.layers[0].mlp.up_proj.qdata.dtype
('SpikingLinear', torch.int8)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["random_model", "random_w8aspike_model"]


def _fill_(name: str, t: torch.Tensor, std: float, gen: torch.Generator) -> None:
    with torch.no_grad():
        leaf = name.rsplit(".", 1)[-1]
        if "norm" in name and leaf == "weight":
            t.fill_(1.0)
        elif leaf == "bias":
            t.zero_()
        elif t.is_floating_point():
            t.normal_(0.0, std, generator=gen)
        else:
            t.zero_()


def _materialise(model: nn.Module, device: torch.device | str, std: float, seed: int,
                 device_of: Any = None) -> None:
    """Allocate every meta tensor on its device (``device_of(name)`` or ``device``) and fill it."""
    gens: dict[str, torch.Generator] = {}
    for mod_name, mod in model.named_modules():
        for kind in ("_parameters", "_buffers"):
            for leaf, t in list(getattr(mod, kind).items()):
                if t is None or t.device.type != "meta":
                    continue
                name = f"{mod_name}.{leaf}" if mod_name else leaf
                dev = torch.device(device_of(name) if device_of else device)
                new = torch.empty(t.shape, dtype=t.dtype, device=dev)
                g = gens.setdefault(str(dev), torch.Generator(dev).manual_seed(seed))
                _fill_(name, new, std, g)
                if kind == "_parameters":
                    mod._parameters[leaf] = nn.Parameter(new, requires_grad=False)
                else:
                    mod._buffers[leaf] = new


def _meta_model(config: Any, dtype: torch.dtype) -> nn.Module:
    from spikingbrain.models.checkpoint import skeleton

    return skeleton(config, dtype)


def random_model(config: Any, *, dtype: torch.dtype = torch.bfloat16,
                 device: str | torch.device = "cuda", device_map: str | dict | None = None,
                 max_memory: dict | None = None, seed: int = 0) -> nn.Module:
    """A causal LM of ``config`` with random weights (normal, std ``initializer_range``) built
    on ``device``; with ``device_map`` (``"auto"`` or a dict) spread over several GPUs through
    accelerate (every block whole on one device) and dispatched."""
    model = _meta_model(config, dtype)
    std = float(getattr(config, "initializer_range", 0.02))
    if device_map is None:
        _materialise(model, device, std, seed)
        return model.eval()
    from accelerate import dispatch_model, infer_auto_device_map

    if isinstance(device_map, str):
        device_map = infer_auto_device_map(model, max_memory=max_memory, dtype=dtype,
                                           no_split_module_classes=model._no_split_modules)

    def device_of(name: str) -> Any:
        best = ""
        for prefix in device_map:
            if (name == prefix or name.startswith(prefix + ".") or prefix == "") and \
                    len(prefix) >= len(best):
                best = prefix
        return device_map[best]

    _materialise(model, device, std, seed, device_of)
    return dispatch_model(model.eval(), device_map=device_map)


def random_w8aspike_model(config: Any, spike_config: Any = None, *,
                          device: str | torch.device = "cuda",
                          dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> nn.Module:
    """A converted (W8ASpike) causal LM of ``config`` with random INT8 codes, built on
    ``device``: projections become SpikingLinear layers allocated there directly (codes
    uniform in [-127, 127], scales ~ U(0.5, 1.5) / 127 * 0.05); embeddings, norms and the
    float output head in ``dtype``."""
    from spikingbrain.converter import SpikeConfig, SpikingLinear
    from spikingbrain.converter.convert import output_head_names

    spike_config = SpikeConfig() if spike_config is None else spike_config
    model = _meta_model(config, dtype)
    heads = output_head_names(model)
    gen = torch.Generator(torch.device(device)).manual_seed(seed)
    targets = [(n, m) for n, m in model.named_modules()
               if isinstance(m, nn.Linear) and n not in heads]
    for name, lin in targets:
        sl = SpikingLinear(lin.in_features, lin.out_features, spike_config,
                           bias=lin.bias is not None, bias_dtype=dtype, device=device)
        with torch.no_grad():
            sl.qdata.copy_(torch.randint(-127, 128, sl.qdata.shape, generator=gen,
                                         device=device, dtype=torch.int8))
            sl.scale.uniform_(0.5, 1.5, generator=gen).mul_(0.05 / 127)
            if sl.bias is not None:
                sl.bias.zero_()
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, sl)
    _materialise(model, device, float(getattr(config, "initializer_range", 0.02)), seed)
    return model.eval()
