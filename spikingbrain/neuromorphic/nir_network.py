"""Export a feed-forward network of ``nn.Linear`` and IF / LIF / ALIF neurons to NIR
(``Affine``/``Linear`` and ``IF``/``LIF`` nodes); :func:`~.nir_export.to_nir` calls
:func:`network_to_nir` for an ``nn.Sequential`` that holds such modules.

>>> from torch import nn
>>> from spikingbrain.neurons.classic import IF
>>> g = network_to_nir(nn.Sequential(nn.Linear(3, 2), IF()), None)
>>> type(g.nodes["1"]).__name__
'IF'
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import nn

from spikingbrain.neuromorphic.nir_common import (
    clean_name,
    graph_meta,
    is_spiking_linear,
    nir_module,
    to_numpy,
)

__all__ = ["network_to_nir"]


def _classic_types() -> tuple[type, type, type]:
    from spikingbrain.neurons.classic import ALIF, IF, LIF

    return IF, LIF, ALIF


def _param_array(value: Any, n: int, what: str) -> np.ndarray:
    """A neuron parameter as an array ``[n]``: Python numbers as float64 (exact), tensors keep
    their dtype."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        try:
            t = torch.broadcast_to(t, (n,))
        except RuntimeError:
            raise ValueError(
                f"parameter {what} has shape {tuple(value.shape)}, which does not broadcast to "
                f"the layer's {n} neurons"
            ) from None
        return to_numpy(t.contiguous())
    return np.full(n, float(value), dtype=np.float64)


def _scalar_dt(dt: Any) -> float:
    if isinstance(dt, torch.Tensor):
        if dt.numel() == 0 or not bool((dt == dt.flatten()[0]).all()):
            raise ValueError("NIR export needs one time step dt for the whole network, got a "
                             "tensor dt with different values")
        return float(dt.flatten()[0])
    return float(dt)


def _neuron_node(module: nn.Module, n: int, name: str) -> tuple[Any, float]:
    nir = nir_module()
    IF, _, ALIF = _classic_types()
    p = module.params
    model = type(module).__name__
    meta: dict[str, Any] = {
        "spikingbrain_model": model, "reset": p.reset, "dt": _scalar_dt(p.dt),
        "fire": "v >= threshold", "surrogate": p.surrogate,
        "alpha": float("nan") if p.alpha is None else float(p.alpha),
        "detach_reset": int(p.detach_reset), "layer": name,
    }
    if p.reset == "soft":
        meta["note"] = ("soft reset (v -= threshold on a spike); NIR's IF/LIF reset to v_reset: "
                        "tools that ignore this entry simulate a hard reset")
    if isinstance(module, IF):
        node = nir.IF(r=_param_array(p.r, n, "r"), v_threshold=_param_array(p.v_th, n, "v_th"),
                      v_reset=_param_array(p.v_reset, n, "v_reset"), metadata=meta)
    else:
        if isinstance(module, ALIF):
            meta.update(tau_adapt=_param_array(p.tau_adapt, n, "tau_adapt"),
                        beta=_param_array(p.beta, n, "beta"),
                        note_adaptation=("NIR has no adaptive-threshold LIF: threshold "
                                         "v_th + beta * a, a[t] = (1 - dt/tau_adapt) a[t-1] + s[t]; "
                                         "tools that ignore this entry simulate a plain LIF"))
        node = nir.LIF(tau=_param_array(p.tau_mem, n, "tau_mem"), r=_param_array(p.r, n, "r"),
                       v_leak=_param_array(p.v_leak, n, "v_leak"),
                       v_threshold=_param_array(p.v_th, n, "v_th"),
                       v_reset=_param_array(p.v_reset, n, "v_reset"), metadata=meta)
    return node, meta["dt"]


def network_to_nir(net: nn.Sequential, input_size: int | None) -> Any:
    nir = nir_module()
    neuron_types = _classic_types()
    nodes: dict[str, Any] = {}
    order: list[str] = []
    size = input_size
    first_size = input_size
    dts: set[float] = set()
    for name, mod in net.named_children():
        if isinstance(mod, (nn.Identity, nn.Dropout)):
            continue
        if isinstance(mod, nn.Linear):
            if size is not None and mod.in_features != size:
                raise ValueError(f"module {name!r} takes {mod.in_features} inputs but receives "
                                 f"{size}")
            if first_size is None:
                first_size = mod.in_features
            w = to_numpy(mod.weight)
            node = (nir.Affine(weight=w, bias=to_numpy(mod.bias)) if mod.bias is not None
                    else nir.Linear(weight=w))
            size = mod.out_features
        elif isinstance(mod, neuron_types):
            if size is None:
                raise ValueError(
                    f"the network starts with neuron {name!r}: pass input_size= (the number of "
                    f"neurons) since no nn.Linear before it fixes it"
                )
            node, dt = _neuron_node(mod, size, name)
            dts.add(dt)
        elif is_spiking_linear(mod):
            raise TypeError(
                f"module {name!r} is a SpikingLinear inside a network of classic neurons; export "
                f"SpikingLinear chains on their own (nn.Sequential of SpikingLinear) with to_nir"
            )
        else:
            raise TypeError(
                f"module {name!r} of type {type(mod).__name__} has no NIR export; supported: "
                f"nn.Linear, IF, LIF, ALIF (and nn.Identity / nn.Dropout, skipped), or a chain "
                f"of SpikingLinear"
            )
        nodes[clean_name(name)] = node
        order.append(name)
    if not order:
        raise ValueError("the network has no exportable module")
    if len(dts) > 1:
        raise ValueError(f"the neurons use different time steps dt {sorted(dts)}; NIR export "
                         f"needs one dt for the network")
    nodes["input"] = nir.Input(input_type={"input": np.array([first_size])})
    nodes["output"] = nir.Output(output_type={"output": np.array([size])})
    names = ["input", *order, "output"]
    edges = list(itertools.pairwise(names))
    dt = dts.pop() if dts else 1.0
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph_meta("network", dt))
