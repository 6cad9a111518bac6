"""Pick converted layers by name for an export, and check that picked layers form a chain.

One function for every exporter (NIR and Lava): :func:`select_layers` matches globs over the
dotted names of a model's :class:`~spikingbrain.converter.SpikingLinear` layers, in model order.
An export that *connects* the picked layers (a Lava bundle, ``export nir --chain``) also calls
:func:`check_chain`: shapes must connect (``out_features`` of one = ``in_features`` of the next)
AND each layer must lie downstream of the previous one in the model's data flow. Parallel
siblings such as ``query``/``key``/``value`` (same input, outputs used side by side) have
matching shapes but are not a chain; they are refused with a message that says to export them
one at a time (or, for NIR, as independent layers: the default).

The data-flow test runs the model once: each picked layer's output is replaced by a fresh
tensor that requires a gradient, and layer ``i+1`` is downstream of layer ``i`` when its input
has a gradient with respect to that tensor. Other spiking layers cut the path (their counts are
integers), so a picked pair with an unpicked spiking layer between them is not a chain either.

>>> import torch
>>> from torch import nn
>>> from spikingbrain.converter import SpikeConfig, convert
>>> net = convert(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4)), SpikeConfig(group_size=4))
>>> list(select_layers(net, "*"))
['0', '2']
>>> check_chain(net, select_layers(net, "*"), lambda: net(torch.randn(2, 4)))
>>> par = nn.ModuleDict({"q": net[0], "k": net[2]})
>>> def run():
...     x = torch.randn(2, 4)
...     return par["q"](x) + par["k"](x)
>>> try:
...     check_chain(par, select_layers(par, "*"), run)
... except ValueError as err:
...     print(str(err)[:44])
the layers do not form a sequential chain: k
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["check_chain", "select_layers"]


class _Stop(Exception):
    """Raised inside the model once the last picked layer has seen its input."""


def select_layers(model: Any, pattern: str) -> dict[str, Any]:
    """``{name: SpikingLinear}`` whose dotted module name matches the glob ``pattern``
    (comma-separated globs allowed), in model order.

    Raises ValueError when nothing matches (the message lists some layer names).
    """
    from spikingbrain.converter import spiking_layers

    layers = spiking_layers(model)
    pats = [p.strip() for p in str(pattern).split(",") if p.strip()]
    if not pats:
        raise ValueError("--layers is empty; give a glob such as 'encoder.layer.0.*'")
    chosen = {n: m for n, m in layers.items() if any(fnmatch.fnmatchcase(n, p) for p in pats)}
    if not chosen:
        some = ", ".join(list(layers)[:6]) or "(the model has no converted layer)"
        raise ValueError(f"no converted layer matches {pattern!r}; layer names look like: {some}")
    return chosen


def _check_shapes(chosen: Mapping[str, Any]) -> None:
    items = list(chosen.items())
    for (n0, a), (n1, b) in zip(items, items[1:]):
        if a.out_features != b.in_features:
            raise ValueError(
                f"the layers do not form a chain: {n0} gives {a.out_features} features but "
                f"{n1} takes {b.in_features}; pick one layer, or consecutive layers whose "
                f"shapes connect")


def check_chain(model: Any, chosen: Mapping[str, Any], run: Callable[[], Any]) -> None:
    """Raise ValueError unless the layers of ``chosen`` (in order) form a sequential chain.

    ``run`` runs ``model`` once on any input. A single layer is always a chain (``run`` is not
    called). See the module docstring for the data-flow test.
    """
    import torch

    _check_shapes(chosen)
    if len(chosen) < 2:
        return
    names = list(chosen)
    outs: dict[str, torch.Tensor] = {}
    ins: dict[str, torch.Tensor] = {}

    def pre_hook(name: str):
        def hook(mod, args):
            ins[name] = args[0]
            if name == names[-1]:
                raise _Stop
        return hook

    def out_hook(name: str):
        def hook(mod, args, out):
            leaf = out.detach().requires_grad_(True)
            outs[name] = leaf
            return leaf + 0  # a non-leaf, so that in-place operations downstream are allowed
        return hook

    handles = []
    try:
        for name, mod in chosen.items():
            handles.append(mod.register_forward_pre_hook(pre_hook(name)))
            handles.append(mod.register_forward_hook(out_hook(name)))
        with torch.enable_grad():
            try:
                run()
            except _Stop:
                pass
            _check_flow(names, ins, outs)
    finally:
        for h in handles:
            h.remove()


def _check_flow(names: list[str], ins: Mapping, outs: Mapping) -> None:
    import torch

    for a, b in zip(names, names[1:]):
        x_b, y_a = ins.get(b), outs.get(a)
        ok = x_b is not None and y_a is not None and x_b.requires_grad
        if ok:
            grad = torch.autograd.grad(x_b.float().sum(), y_a, allow_unused=True,
                                       retain_graph=True)[0]
            ok = grad is not None
        if not ok:
            raise ValueError(
                f"the layers do not form a sequential chain: {b} does not take its input from "
                f"{a} in the model's data flow (parallel siblings such as query/key/value, or "
                f"another spiking layer between them); export such layers one at a time "
                f"(one --layers name per export)")
