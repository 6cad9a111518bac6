"""Export spiking layers and IF / LIF / ALIF networks to NIR (the neuromorphic interchange format).

Three kinds of models export:

- a converted :class:`~spikingbrain.converter.SpikingLinear` (W8ASpike: int8 weight codes,
  per-group scales, spiking inputs with the data-dependent threshold ``Vth = mean|x| / k``),
  a chain of them (``nn.Sequential``), or several independent layers of a model
  (:func:`layers_to_nir`);
- a feed-forward network of ``nn.Linear`` and our :class:`~spikingbrain.neurons.classic.IF`,
  :class:`~spikingbrain.neurons.classic.LIF`, :class:`~spikingbrain.neurons.classic.ALIF`
  neurons in an ``nn.Sequential``.

NIR has no node for the adaptive threshold nor for bitwise time weights; they are represented
explicitly with standard nodes plus metadata (see ``docs/nir.md`` for the full table):

==================  =====================  ==================================================
node (per layer)    NIR type, shape        meaning
==================  =====================  ==================================================
``L.threshold``     Scale ``[1, in]``      ``x / Vth`` (placeholder ones; rule in metadata)
``L.regroup``       Conv1d ``[1, in]``     splits the spikes into weight groups ``[G, gs]``
                    -> ``[G, gs]``         (0/1 kernel, exact; last group zero-padded)
``L.codes``         Linear ``[G, out, gs]``  the int8 weight codes, bit for bit
``L.accumulate``    I or LI ``[G, out]``   sum over time (binary/ternary: ``I``); bitwise,
                                           most significant bit first: ``LI`` with
                                           ``tau = -dt, r = -1`` i.e. ``v <- 2 v + input``
``L.group_scale``   Scale ``[G, out]``     the float32 per-group weight scales
``L.vth``           Scale ``[G, out]``     ``* Vth`` (placeholder ones; rule in metadata)
``L.group_sum``     Conv1d ``[G, out]``    sum over the groups -> ``[1, out]``
                    -> ``[1, out]``
``L.bias``          LI ``[1, out]``        ``tau = dt, r = 0, v_leak = bias``: outputs the bias
==================  =====================  ==================================================

>>> import torch
>>> from torch import nn
>>> from spikingbrain.neurons.classic import LIF
>>> net = nn.Sequential(nn.Linear(3, 2), LIF(tau_mem=4.0, reset="hard"))
>>> g = to_nir(net)
>>> sorted(g.nodes), [type(g.nodes[k]).__name__ for k in ("0", "1")]
(['0', '1', 'input', 'output'], ['Affine', 'LIF'])
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spikingbrain.neuromorphic.nir_common import (
    FORMAT,
    FORMAT_VERSION,
    clean_name,
    graph_meta,
    is_spiking_linear,
    nir_module,
    to_numpy,
    toolkit_version,
)
from spikingbrain.neuromorphic.nir_events import nir_input_spikes, record_nir_data
from spikingbrain.neuromorphic.nir_network import network_to_nir
from spikingbrain.utils.atomic import atomic_path

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "data_path",
    "export_nir",
    "layers_to_nir",
    "nir_input_spikes",
    "spiking_linear_to_nir",
    "to_nir",
    "write_nir",
]

#: Parts of one exported SpikingLinear, in data-flow order (node ``f"{layer}.{part}"``).
LAYER_PARTS = ("threshold", "regroup", "codes", "accumulate", "group_scale", "vth", "group_sum",
               "bias")

THRESHOLD_RULE = (
    "Vth = clamp(mean(|x|) / k, 1e-5, 1e4) over the last dimension of each token; "
    "counts = round(x / Vth) (half to even), clamped to [-max_count, max_count] and, when T is "
    "fixed, to the window's range (symmetric for the unsigned schemes binary and bitwise, whose "
    "negative counts ride on a second train of negative spikes); spikes sent to the layer: "
    "spikingbrain.neuromorphic.nir_events.nir_input_spikes(counts, scheme, T)"
)


# --------------------------------------------------------------------------------- helpers


def _layer_meta(name: str, layer: nn.Module) -> dict[str, Any]:
    cfg = layer.config
    return {
        "spikingbrain_version": toolkit_version(),
        "layer": name,
        "in_features": int(layer.in_features),
        "out_features": int(layer.out_features),
        "group_size": int(layer.group_size),
        "n_groups": int(layer.n_groups),
        "qdata_dtype": str(layer.qdata.dtype).removeprefix("torch."),
        "bias_dtype": "none" if layer.bias is None else str(layer.bias.dtype).removeprefix("torch."),
        "n_out_of_range": int(getattr(layer, "n_out_of_range", 0)),
        "k": float(cfg.k),
        "scheme": cfg.scheme,
        "T": -1 if cfg.T is None else int(cfg.T),
        "max_count": -1 if cfg.max_count is None else int(cfg.max_count),
        "spike_config": json.dumps(cfg.to_dict(), sort_keys=True),
    }


def _accumulate_node(nir: Any, spec: Any, shape: tuple[int, int], dt: float, m: Any) -> Any:
    """The ``L.accumulate`` node: ``I`` (sum) or, for bitwise schemes, ``LI`` (shift-and-add)."""
    time_weights = ("1 per step" if not spec.bitwise else
                    "2**(T-1-t), most significant bit first" +
                    ("; step 0 is the sign (-2**(T-1)), sent as a negative spike"
                     if spec.twos_complement else ""))
    if spec.bitwise:
        return nir.LI(
            tau=np.full(shape, -dt), r=np.full(shape, -1.0), v_leak=np.zeros(shape),
            metadata=m("accumulate", rule="v[t] = 2 * v[t-1] + input[t] (shift-and-add)",
                       time_weights=time_weights, dt=float(dt), readout="last step of the window"),
        )
    return nir.I(
        r=np.full(shape, 1.0 / dt),
        metadata=m("accumulate", rule="v[t] = v[t-1] + input[t]", time_weights=time_weights,
                   dt=float(dt), readout="last step of the window"),
    )


def spiking_linear_to_nir(name: str, layer: nn.Module, dt: float = 1.0
                          ) -> tuple[dict[str, Any], list[tuple[str, str]], str, str]:
    """The NIR nodes of one :class:`~spikingbrain.converter.SpikingLinear`.

    Returns ``(nodes, edges, first, last)``: node names are ``f"{name}.{part}"`` (see the table
    in the module docstring); ``first`` takes float activations ``[1, in]`` of one token and
    ``last`` gives the layer output ``[1, out]`` (with ``L.bias`` also feeding the consumer of
    ``last`` when the layer has a bias: connect both, their outputs add).

    Use :func:`to_nir` / :func:`layers_to_nir` for complete graphs.
    """
    nir = nir_module()
    from spikingbrain.coding.schemes import get_scheme

    if not is_spiking_linear(layer):
        raise TypeError(f"expected a SpikingLinear, got {type(layer).__name__}")
    name = clean_name(name)
    cfg = layer.config
    spec = get_scheme(cfg.scheme)
    n_in, n_out, gs, G = layer.in_features, layer.out_features, layer.group_size, layer.n_groups
    pad = G * gs - n_in
    meta = _layer_meta(name, layer)

    def m(role: str, **extra: Any) -> dict[str, Any]:
        return {"spikingbrain_role": role, "layer": name, **extra}

    nodes: dict[str, Any] = {}
    # 1. the adaptive-threshold encoder: x / Vth, rounding and spike coding (metadata)
    nodes[f"{name}.threshold"] = nir.Scale(
        scale=np.ones((1, n_in), dtype=np.float32),
        metadata=m("threshold", op="adaptive_threshold_encoder", k=float(cfg.k),
                   scheme=cfg.scheme, T=meta["T"], max_count=meta["max_count"],
                   vth_min=1e-5, vth_max=1e4, rule=THRESHOLD_RULE,
                   note="data-dependent: scale is 1 / Vth of the current token (stored as ones)"),
    )
    # 2. regroup [1, in] -> [G, gs]: kernel tap g*gs + pad of channel g picks x[g*gs + j]
    kernel = np.zeros((G, 1, (G - 1) * gs + pad + 1), dtype=np.float32)
    kernel[np.arange(G), 0, np.arange(G) * gs + pad] = 1.0
    nodes[f"{name}.regroup"] = nir.Conv1d(
        input_shape=n_in, weight=kernel, stride=1, padding=pad, dilation=1, groups=1,
        bias=np.zeros(G, dtype=np.float32),
        metadata=m("regroup", note=f"out[g, j] = in[0, g*{gs} + j] (zero past {n_in})"),
    )
    # 3. integer weight codes, grouped: codes[g, o, j] = qdata[o, g*gs + j]
    q = layer.qdata.detach().cpu()
    qp = torch.zeros(n_out, G * gs, dtype=q.dtype)
    qp[:, :n_in] = q
    codes = qp.reshape(n_out, G, gs).permute(1, 0, 2).contiguous()
    nodes[f"{name}.codes"] = nir.Linear(weight=to_numpy(codes), metadata={**m("codes"), **meta})
    # 4. accumulate over the window (integers)
    shape = (G, n_out)
    nodes[f"{name}.accumulate"] = _accumulate_node(nir, spec, shape, dt, m)
    # 5. per-group weight scales, then * Vth, then sum over the groups
    nodes[f"{name}.group_scale"] = nir.Scale(
        scale=to_numpy(layer.scale.detach().float().t().contiguous()), metadata=m("group_scale"))
    nodes[f"{name}.vth"] = nir.Scale(
        scale=np.ones(shape, dtype=np.float32),
        metadata=m("vth", op="multiply_by_threshold", rule=THRESHOLD_RULE,
                   note="data-dependent: scale is Vth of the current token (stored as ones)"),
    )
    nodes[f"{name}.group_sum"] = nir.Conv1d(
        input_shape=n_out, weight=np.ones((1, G, 1), dtype=np.float32), stride=1, padding=0,
        dilation=1, groups=1, bias=np.zeros(1, dtype=np.float32),
        metadata=m("group_sum", order="torch: (acc * scale).sum(groups) * Vth + bias"),
    )
    edges = [(f"{name}.{a}", f"{name}.{b}") for a, b in itertools.pairwise(LAYER_PARTS[:-1])]
    if layer.bias is not None:
        nodes[f"{name}.bias"] = nir.LI(
            tau=np.full((1, n_out), float(dt)), r=np.zeros((1, n_out)),
            v_leak=to_numpy(layer.bias.detach()).reshape(1, n_out),
            metadata=m("bias", rule="tau = dt and r = 0: the output is v_leak = bias; add it to "
                                    "the group sum"),
        )
        edges.append((f"{name}.group_sum", f"{name}.bias"))
    return nodes, edges, f"{name}.threshold", f"{name}.group_sum"


def _layer_sinks(nodes: Mapping[str, Any], name: str, last: str) -> list[str]:
    return [last] + ([f"{name}.bias"] if f"{name}.bias" in nodes else [])


def layers_to_nir(layers: Mapping[str, nn.Module], chain: bool = False, dt: float = 1.0) -> Any:
    """A ``nir.NIRGraph`` of several SpikingLinear layers.

    Args:
        layers: ``{dotted name: SpikingLinear}`` in order.
        chain: connect each layer's output to the next layer's input (a feed-forward chain with
            one ``input`` and one ``output`` node); otherwise every layer gets its own
            ``f"{name}.input"`` / ``f"{name}.output"`` nodes (independent layers of a model).
        dt: the time step the accumulators are written for (NIR parameters are continuous).

    >>> import torch
    >>> from torch import nn
    >>> from spikingbrain.converter import SpikeConfig, SpikingLinear
    >>> layer = SpikingLinear.from_linear(nn.Linear(6, 4), SpikeConfig(group_size=4))
    >>> g = layers_to_nir({"fc": layer})
    >>> g.nodes["fc.codes"].weight.shape, g.nodes["fc.codes"].weight.dtype
    ((2, 4, 4), dtype('int8'))
    """
    nir = nir_module()
    if not isinstance(layers, Mapping) or not layers:
        raise ValueError("layers must be a non-empty mapping {name: SpikingLinear}")
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    prev_sinks: list[str] | None = None
    prev_out = None
    for name, layer in layers.items():
        if not is_spiking_linear(layer):
            raise TypeError(f"layer {name!r} is a {type(layer).__name__}, not a SpikingLinear")
        n, e, first, last = spiking_linear_to_nir(name, layer, dt)
        clash = set(n) & set(nodes)
        if clash:
            raise ValueError(f"duplicate node names {sorted(clash)}: layer names must be unique")
        nodes.update(n)
        edges.extend(e)
        sinks = _layer_sinks(n, name, last)
        if chain:
            if prev_sinks is None:
                nodes["input"] = nir.Input(input_type={"input": np.array([1, layer.in_features])})
                edges.append(("input", first))
            else:
                if prev_out != layer.in_features:
                    raise ValueError(
                        f"cannot chain: layer {name!r} takes {layer.in_features} inputs but the "
                        f"previous layer gives {prev_out}"
                    )
                edges.extend((s, first) for s in prev_sinks)
            prev_sinks, prev_out = sinks, layer.out_features
        else:
            nodes[f"{name}.input"] = nir.Input(
                input_type={"input": np.array([1, layer.in_features])})
            nodes[f"{name}.output"] = nir.Output(
                output_type={"output": np.array([1, layer.out_features])})
            edges.append((f"{name}.input", first))
            edges.extend((s, f"{name}.output") for s in sinks)
    if chain:
        assert prev_sinks is not None
        nodes["output"] = nir.Output(output_type={"output": np.array([1, prev_out])})
        edges.extend((s, "output") for s in prev_sinks)
    meta = graph_meta("spiking_linear_chain" if chain else "spiking_linear_layers", dt,
                       layers=json.dumps(list(layers)))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def to_nir(module: nn.Module, *, name: str = "layer", input_size: int | None = None,
           dt: float = 1.0) -> Any:
    """Export a model to a ``nir.NIRGraph``.

    Args:
        module: a SpikingLinear (node names ``f"{name}.*"``), an ``nn.Sequential`` of
            SpikingLinear (a chain; node names are the child names), or an ``nn.Sequential`` of
            ``nn.Linear`` / IF / LIF / ALIF (node names are the child names).
        name: node-name prefix of a single SpikingLinear.
        input_size: number of inputs when a neuron network starts with a neuron.
        dt: time step of the SpikingLinear accumulators (neuron networks take theirs from the
            neurons' ``dt``).

    Returns:
        ``nir.NIRGraph`` whose metadata holds ``format``, ``format_version``,
        ``spikingbrain_version``, ``kind`` and ``dt``.

    >>> import torch
    >>> from torch import nn
    >>> from spikingbrain.converter import SpikeConfig, SpikingLinear
    >>> g = to_nir(SpikingLinear.from_linear(nn.Linear(8, 3), SpikeConfig(scheme="ternary")))
    >>> type(g.nodes["layer.accumulate"]).__name__, g.metadata["kind"]
    ('I', 'spiking_linear_chain')
    """
    if is_spiking_linear(module):
        return layers_to_nir({name: module}, chain=True, dt=dt)
    if isinstance(module, nn.Sequential):
        children = list(module.named_children())
        if children and all(is_spiking_linear(m) for _, m in children):
            return layers_to_nir(dict(children), chain=True, dt=dt)
        return network_to_nir(module, input_size)
    raise TypeError(
        f"cannot export a {type(module).__name__} to NIR: pass a SpikingLinear, an nn.Sequential "
        f"of SpikingLinear, or an nn.Sequential of nn.Linear / IF / LIF / ALIF (for several "
        f"layers of a converted model use layers_to_nir)"
    )


# --------------------------------------------------------------------------------- files


def write_nir(graph: Any, path: str | os.PathLike, data: Any = None) -> list[Path]:
    """Write ``graph`` to a ``.nir`` file (HDF5) atomically; ``data`` (``nir.NIRGraphData``, e.g.
    from :func:`spikingbrain.neuromorphic.nir_events.record_nir_data`) goes to the sidecar
    ``<stem>.data.nir`` beside it. Returns the paths written (the graph first).

    Nothing is written half: both files are written to temporaries beside their targets and
    renamed only when both writes succeeded; a target that is a directory is refused before
    anything is written.
    """
    nir = nir_module()
    path = Path(path)
    if path.suffix != ".nir":
        raise ValueError(f"NIR files use the .nir suffix, got {path.name!r}")
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph must be a nir.NIRGraph, got {type(graph).__name__}")
    paths = [path]
    if data is not None:
        if not isinstance(data, nir.NIRGraphData):
            raise TypeError(f"data must be a nir.NIRGraphData, got {type(data).__name__}")
        missing = [k for k in data.nodes if k not in graph.nodes]
        if missing:
            raise ValueError(f"data refers to nodes that are not in the graph: {missing}")
        paths.append(data_path(path))
    for p in paths:
        if p.is_dir():
            raise ValueError(f"{p} is a directory; give a .nir file name")
    with contextlib.ExitStack() as stack:
        # both files are written to temporaries first; the renames happen only after both
        # writes succeeded, so a failing write leaves neither file behind
        tmp_graph = stack.enter_context(atomic_path(path))
        nir.write(tmp_graph, graph)
        if data is not None:
            tmp_data = stack.enter_context(atomic_path(paths[1]))
            nir.write_data(tmp_data, data)
    return paths


def data_path(path: str | os.PathLike) -> Path:
    """The sidecar file of recorded data for the graph file ``path``: ``<stem>.data.nir``.

    >>> data_path("out/layer.nir").as_posix()
    'out/layer.data.nir'
    """
    p = Path(path)
    return p.with_name(p.stem + ".data.nir")


def export_nir(module: nn.Module, path: str | os.PathLike, example_input: torch.Tensor | None = None,
               *, name: str = "layer", input_size: int | None = None, dt: float = 1.0
               ) -> list[Path]:
    """:func:`to_nir` + :func:`write_nir` in one call.

    With ``example_input`` (float activations ``[tokens, in]`` of a SpikingLinear or a chain of
    them) the thresholds, input spike events and outputs it produces are recorded in the sidecar
    ``<stem>.data.nir`` (see :mod:`spikingbrain.neuromorphic.nir_events`).

    Returns the files written (the graph first).

    >>> import tempfile, torch
    >>> from torch import nn
    >>> from spikingbrain.converter import SpikeConfig, SpikingLinear
    >>> fc = SpikingLinear.from_linear(nn.Linear(4, 2), SpikeConfig())
    >>> files = export_nir(fc, tempfile.mkdtemp() + "/fc.nir", torch.randn(3, 4))
    >>> [f.name for f in files]
    ['fc.nir', 'fc.data.nir']
    """
    graph = to_nir(module, name=name, input_size=input_size, dt=dt)
    data = None
    if example_input is not None:
        if is_spiking_linear(module):
            layers = {name: module}
        elif isinstance(module, nn.Sequential) and graph.metadata["kind"] != "network":
            layers = dict(module.named_children())
        else:
            raise TypeError("example_input is recorded for SpikingLinear exports only; record a "
                            "neuron network's activity yourself (nir.TimeGriddedData)")
        data = record_nir_data(layers, example_input, dt)
    return write_nir(graph, path, data)
