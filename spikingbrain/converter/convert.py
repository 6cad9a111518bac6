"""``convert(model, config)``: swap linear projections for :class:`SpikingLinear` in place.

Like torchao's ``quantize_``: modules are found by dotted name and replaced on their parent.
By default every ``nn.Linear`` and transformers ``Conv1D`` is converted except the output head
(a module named ``lm_head``, the model's ``get_output_embeddings()``, or any projection whose
weight is tied to the input embedding). Converting twice with the same config changes nothing;
a new config's input-side fields (k, scheme, T, max_count, mode) are applied to converted
layers, and a different weight quantisation raises ValueError (it needs the float weights).

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
>>> net = convert(net, SpikeConfig(granularity="channel"))
>>> [type(m).__name__ for m in net]
['SpikingLinear', 'ReLU', 'SpikingLinear']
>>> convert(net, SpikeConfig(granularity="channel")) is net  # idempotent
True
>>> convert(net, SpikeConfig(granularity="channel", k=2.5))[0].config.k  # input side: applied
2.5
>>> s = memory_summary(net)
>>> s.n_layers, s.converted_bytes < s.fp16_bytes
(2, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from spikingbrain.converter.config import SpikeConfig
from spikingbrain.converter.layer import SpikingLinear, is_conv1d, share_fallback_warnings

__all__ = [
    "MemorySummary",
    "convert",
    "is_convertible",
    "memory_summary",
    "model_footprint",
    "module_nbytes",
    "output_head_names",
    "set_mode",
    "spiking_layers",
]

FilterFn = Callable[[nn.Module, str], bool]


def _public_scales(module: nn.Module) -> torch.Tensor | None:
    """The ``scales`` buffer of a public W8ASpike ``QuantLinear`` (``weight_quantizer.scales``)."""
    wq = getattr(module, "weight_quantizer", None)
    s = getattr(wq, "scales", None) if wq is not None else None
    return s if isinstance(s, torch.Tensor) else None


def is_convertible(module: nn.Module) -> bool:
    """Whether ``module`` can become a :class:`SpikingLinear` (Linear, Conv1D, QuantLinear).

    >>> is_convertible(nn.Linear(2, 2)), is_convertible(nn.ReLU())
    (True, False)
    """
    return isinstance(module, nn.Linear) or is_conv1d(module)


def output_head_names(model: nn.Module) -> set[str]:
    """Dotted names of output-head projections that the default filter leaves in float.

    A module named ``lm_head``, the module returned by ``model.get_output_embeddings()``, and
    any linear whose weight is the same tensor as the input embedding's (tied heads).
    """
    heads: set[str] = set()
    out_emb = None
    in_w = None
    if hasattr(model, "get_output_embeddings"):
        try:
            out_emb = model.get_output_embeddings()
        except (NotImplementedError, AttributeError):  # pragma: no cover - model specific
            out_emb = None
    if hasattr(model, "get_input_embeddings"):
        try:
            emb = model.get_input_embeddings()
            in_w = getattr(emb, "weight", None)
        except (NotImplementedError, AttributeError):  # pragma: no cover - model specific
            in_w = None
    for name, mod in model.named_modules():
        if not is_convertible(mod):
            continue
        w = getattr(mod, "weight", None)
        if (name.split(".")[-1] == "lm_head" or (out_emb is not None and mod is out_emb)
                or (in_w is not None and w is not None and w.data_ptr() == in_w.data_ptr()
                    and w.shape in (in_w.shape, in_w.t().shape))):
            heads.add(name)
    return heads


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _lookup_scales(scales: Mapping[str, torch.Tensor] | None, name: str) -> torch.Tensor | None:
    if not scales:
        return None
    for key in (name, f"{name}.weight_quantizer.scales", f"{name}.scales"):
        if key in scales:
            return scales[key]
    return None


def convert(
    model: nn.Module,
    config: SpikeConfig | None = None,
    filter_fn: FilterFn | None = None,
    *,
    scales: Mapping[str, torch.Tensor] | None = None,
    clip_ratios: Mapping[str, torch.Tensor] | None = None,
    progress: Callable[[str], None] | None = None,
) -> nn.Module:
    """Replace linear projections of ``model`` by :class:`SpikingLinear`, in place.

    Args:
        model: any ``nn.Module`` (a bare ``nn.Linear`` is returned converted).
        config: the :class:`SpikeConfig` (default ``SpikeConfig()``).
        filter_fn: ``filter_fn(module, dotted_name) -> bool`` selects modules to convert; it
            replaces the default (every Linear/Conv1D but the output head). Selecting a module
            that is not a linear layer raises TypeError.
        scales: public W8ASpike scales by layer name (``name`` or
            ``name.weight_quantizer.scales``): those layers take codes ``round(W / scales)``
            (see :meth:`SpikingLinear.from_quantized`). Public ``QuantLinear`` modules are
            detected by their ``weight_quantizer.scales`` buffer without this argument.
        clip_ratios: per-layer ``[out, n_groups]`` clipping ratios (from :func:`calibrate`).
        progress: called with each layer's name after it is converted.

    Returns:
        ``model`` (converted in place), or the new layer when ``model`` itself is a linear.
    """
    explicit = config is not None
    config = SpikeConfig() if config is None else config
    if not isinstance(config, SpikeConfig):
        raise TypeError(f"config must be a SpikeConfig, got {type(config).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if explicit:
        _reconfigure_converted(model, config)
    if filter_fn is None:
        heads = output_head_names(model)

        def filter_fn(mod: nn.Module, name: str) -> bool:
            return is_convertible(mod) and name not in heads

    targets: list[tuple[str, nn.Module]] = []
    for name, mod in model.named_modules(remove_duplicate=False):
        if isinstance(mod, SpikingLinear) or _inside_spiking(name, targets):
            continue
        if not filter_fn(mod, name):
            continue
        if not is_convertible(mod):
            raise TypeError(
                f"filter_fn selected module '{name or '<root>'}' of type {type(mod).__name__}, "
                f"which cannot be converted: only nn.Linear and transformers' Conv1D become "
                f"SpikingLinear (return False for other modules)"
            )
        targets.append((name, mod))
    done: dict[int, SpikingLinear] = {}  # shared modules stay shared
    for name, mod in targets:
        new = done.get(id(mod))
        if new is None:
            new = _convert_one(mod, name, config, scales, clip_ratios)
            done[id(mod)] = new
        if name == "":
            return new
        _set_submodule(model, name, new)
        if progress is not None:
            progress(name)
    share_fallback_warnings(model)  # kernel fall-backs warn once per model
    return model


#: SpikeConfig fields fixed by the stored INT8 weights; the others act on the inputs only.
WEIGHT_FIELDS = ("granularity", "group_size", "remainder", "clip_weights")


def _reconfigure_converted(model: nn.Module, config: SpikeConfig) -> None:
    """Apply ``config`` to layers that are already converted: input-side fields (k, scheme, T,
    max_count, mode, compute_dtype) change in place; a config whose weight grouping differs
    from the stored codes' cannot be applied without the float weights and raises ValueError."""
    layers = spiking_layers(model) if not isinstance(model, SpikingLinear) else {"": model}
    for name, layer in layers.items():
        if layer.config == config:
            continue
        wanted = config.group_size_for(layer.in_features)
        if wanted != layer.group_size:
            raise ValueError(
                f"layer '{name or '<root>'}' is already converted with weight groups of "
                f"{layer.group_size} columns; the new config asks for {wanted}, which needs "
                f"the float weights: convert the float model instead (input-side fields such as "
                f"k, scheme, T, max_count and mode can be changed on a converted model)"
            )
        layer.config = config.replace(**{f: getattr(layer.config, f) for f in WEIGHT_FIELDS})


def _inside_spiking(name: str, targets: list[tuple[str, nn.Module]]) -> bool:
    return bool(targets) and any(name.startswith(t + ".") for t, _ in targets if t)


def _convert_one(mod: nn.Module, name: str, config: SpikeConfig,
                 scales: Mapping[str, torch.Tensor] | None,
                 clip_ratios: Mapping[str, torch.Tensor] | None) -> SpikingLinear:
    s = _lookup_scales(scales, name)
    if s is None:
        s = _public_scales(mod)
    if s is not None:
        w = mod.weight.t() if is_conv1d(mod) else mod.weight
        return SpikingLinear.from_quantized(w.detach().float(), s, mod.bias, config)
    ratio = clip_ratios.get(name) if clip_ratios else None
    return SpikingLinear.from_linear(mod, config, clip_ratio=ratio)


def spiking_layers(model: nn.Module) -> dict[str, SpikingLinear]:
    """All :class:`SpikingLinear` modules of ``model`` by dotted name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, SpikingLinear)}


def set_mode(model: nn.Module, mode: str) -> nn.Module:
    """Switch every :class:`SpikingLinear` of ``model`` to ``mode`` (count / spike / fake).

    >>> net = convert(nn.Sequential(nn.Linear(4, 4)), SpikeConfig())
    >>> set_mode(net, "spike")[0].config.mode
    'spike'
    """
    layers = spiking_layers(model) if not isinstance(model, SpikingLinear) else {"": model}
    for layer in layers.values():
        layer.config = layer.config.replace(mode=mode)
    return model


def model_footprint(model: nn.Module) -> tuple[int, int]:
    """``(bytes, values)`` of all parameters and buffers of ``model``, shared tensors counted
    once (the NeuroBench footprint).

    >>> model_footprint(nn.Linear(4, 2))
    (40, 10)
    """
    seen: set[tuple[int, int]] = set()
    nbytes = nvalues = 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (t.data_ptr(), t.numel()) if t.device.type != "meta" else (id(t), t.numel())
        if key in seen:
            continue
        seen.add(key)
        nbytes += t.numel() * t.element_size()
        nvalues += t.numel()
    return nbytes, nvalues


def module_nbytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers (shared tensors counted once)."""
    return model_footprint(model)[0]


@dataclass
class MemorySummary:
    """Weight memory of the converted layers against the same layers in fp16.

    Attributes:
        n_layers: converted layers.
        converted_bytes: bytes of their ``qdata`` + ``scale`` + ``bias``.
        fp16_bytes: bytes the same weights and biases take in fp16 (2 bytes per value).
        n_params: weight values of the converted layers.
        n_out_of_range: imported weight codes outside [-128, 127] (kept exact or clipped).
        n_int16_layers: layers holding int16 codes.
        model_bytes: bytes of all parameters and buffers of the model as it is now.
    """

    n_layers: int
    converted_bytes: int
    fp16_bytes: int
    n_params: int
    n_out_of_range: int
    n_int16_layers: int
    model_bytes: int

    @property
    def ratio(self) -> float:
        """``converted_bytes / fp16_bytes`` (0.5 would be pure int8 vs fp16)."""
        return self.converted_bytes / self.fp16_bytes if self.fp16_bytes else float("nan")


def memory_summary(model: nn.Module) -> MemorySummary:
    """Measure the converted layers' memory (see :class:`MemorySummary`)."""
    layers = spiking_layers(model) if not isinstance(model, SpikingLinear) else {"": model}
    uniq = {id(m): m for m in layers.values()}.values()
    conv = sum(m.weight_nbytes() for m in uniq)
    fp16 = sum(2 * (m.qdata.numel() + (m.bias.numel() if m.bias is not None else 0))
               for m in uniq)
    return MemorySummary(
        n_layers=len(layers),
        converted_bytes=conv,
        fp16_bytes=fp16,
        n_params=sum(m.qdata.numel() for m in uniq),
        n_out_of_range=sum(m.n_out_of_range for m in uniq),
        n_int16_layers=sum(m.qdata.dtype == torch.int16 for m in uniq),
        model_bytes=module_nbytes(model),
    )
