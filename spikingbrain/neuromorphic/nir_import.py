"""Import NIR graphs back into spikingbrain modules, and read ``.nir`` files with clear errors.

- Graphs written by :mod:`spikingbrain.neuromorphic.nir_export` for SpikingLinear layers come
  back as :class:`~spikingbrain.converter.SpikingLinear` (one layer), an ``nn.Sequential`` (a
  chain) or an ``nn.ModuleDict`` (independent layers; ``.`` in names becomes ``_``), with the
  int8 codes, scales, bias and :class:`~spikingbrain.converter.SpikeConfig` bit for bit.
- Feed-forward graphs of ``Affine`` / ``Linear`` / ``IF`` / ``LIF`` nodes (from any tool) come
  back as an ``nn.Sequential`` of ``nn.Linear`` and our IF / LIF (ALIF when our metadata says
  so) neurons in multi-step mode (input ``[T, batch, features]``).

Other node types raise ValueError naming the node and its type.

>>> import torch
>>> from torch import nn
>>> from spikingbrain.neurons.classic import IF
>>> from spikingbrain.neuromorphic.nir_export import to_nir
>>> net = from_nir(to_nir(nn.Sequential(nn.Linear(2, 3), IF(v_th=0.5))))
>>> [type(m).__name__ for m in net]
['Linear', 'IF']
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spikingbrain.neuromorphic.nir_common import FORMAT, FORMAT_VERSION
from spikingbrain.utils.dtypes import DTYPES, dtype_from_name
from spikingbrain.utils.optional import require

__all__ = ["SUPPORTED_NODES", "from_nir", "read_nir", "read_nir_data", "spiking_layers_from_nir"]

#: NIR node types :func:`from_nir` turns into modules in a neuron network.
SUPPORTED_NODES = ("Input", "Output", "Affine", "Linear", "IF", "LIF")



def _nir() -> Any:
    return require("nir", extra="nir", purpose="NIR import")


# ----------------------------------------------------------------------------- reading files


def _check_hdf5(path: Path, what: str) -> Any:
    h5py = require("h5py", extra="nir", purpose="reading NIR files")
    if not path.exists():
        raise FileNotFoundError(f"no such {what}: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    if not h5py.is_hdf5(path):
        raise ValueError(
            f"{path} is not a NIR file: NIR files are HDF5 and this file has no HDF5 signature "
            f"(a foreign or corrupt file); export one with spikingbrain export nir"
        )
    return h5py


def _known_types() -> set[str]:
    nir = _nir()
    return set(nir.ir.__all__) - {"typing"}


def _scan_types(group: Any, prefix: str, known: set[str]) -> None:
    """Raise ValueError naming the first node whose type nir cannot read."""
    for name, node in group["nodes"].items():
        full = f"{prefix}{name}"
        if "type" not in node:
            raise ValueError(f"node {full!r} has no 'type' entry: the file is corrupt")
        t = node["type"][()]
        t = t.decode("utf8") if isinstance(t, bytes) else str(t)
        if t not in known:
            raise ValueError(
                f"node {full!r} has type {t!r}, which nir {_nir().__version__} cannot read "
                f"(known types: {', '.join(sorted(known))})"
            )
        if t == "NIRGraph":
            _scan_types(node, f"{full}.", known)


def read_nir(path: str | os.PathLike) -> Any:
    """Read a ``.nir`` graph file with clear errors for foreign, corrupt or unknown content.

    Raises FileNotFoundError for a missing file and ValueError for a file that is not HDF5,
    an HDF5 file without a NIR graph (e.g. a ``.data.nir`` sidecar), a node type nir does not
    know (naming the node), or a graph nir cannot build (with nir's reason).
    """
    nir = _nir()
    path = Path(path)
    h5py = _check_hdf5(path, "NIR file")
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                hint = (" (it holds recorded NIR data: read it with read_nir_data)"
                        if f.attrs.get("__type__") == "NIRGraphData" else "")
                raise ValueError(f"{path} is HDF5 but holds no NIR graph ('node' group "
                                 f"missing){hint}")
            top = f["node"]
            if "type" not in top:
                raise ValueError(f"{path}: the NIR graph has no 'type' entry: the file is corrupt")
            if top["type"][()] in (b"NIRGraph", "NIRGraph"):
                if "nodes" not in top or "edges" not in top:
                    raise ValueError(f"{path}: the NIR graph lacks its nodes or edges: the file "
                                     f"is corrupt")
                _scan_types(top, "", _known_types())
    except OSError as err:
        raise ValueError(f"{path} is a corrupt HDF5/NIR file ({err})") from err
    try:
        return nir.read(path)
    except (ValueError, KeyError, TypeError, AssertionError, OSError) as err:
        raise ValueError(f"nir cannot build the graph in {path}: {type(err).__name__}: {err}"
                         ) from err


def read_nir_data(path: str | os.PathLike) -> Any:
    """Read a ``.data.nir`` sidecar (``nir.NIRGraphData``) with clear errors."""
    nir = _nir()
    path = Path(path)
    _check_hdf5(path, "NIR data file")
    try:
        return nir.read_data(str(path))
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"{path} is not a NIR data file ({type(err).__name__}: {err})") from err


# ----------------------------------------------------------------------------- helpers


def _meta(node: Any) -> dict[str, Any]:
    return dict(getattr(node, "metadata", None) or {})


def _py(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf8")
    if isinstance(v, np.generic):
        return v.item()
    return v


def _graph_kind(graph: Any) -> str | None:
    meta = _meta(graph)
    if _py(meta.get("format")) != FORMAT:
        return None
    version = int(_py(meta.get("format_version", 0)))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"the graph was written with spikingbrain NIR layout version {version}, newer than "
            f"this toolkit reads ({FORMAT_VERSION}); upgrade spikingbrain"
        )
    return str(_py(meta.get("kind")))


def _param(a: Any) -> float | torch.Tensor:
    """NIR array -> a Python float when uniform float64 (exact), else a tensor [n]."""
    arr = np.asarray(a)
    flat = arr.reshape(-1)
    if arr.dtype == np.float64 and flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    return torch.from_numpy(flat.copy())


# ----------------------------------------------------------------------------- spiking layers


def _need(graph: Any, name: str, part: str, types: tuple[str, ...]) -> Any:
    key = f"{name}.{part}"
    node = graph.nodes.get(key)
    if node is None:
        raise ValueError(f"layer {name!r}: node {key!r} is missing from the graph")
    if type(node).__name__ not in types:
        raise ValueError(f"layer {name!r}: node {key!r} is a {type(node).__name__}, expected "
                         f"{' or '.join(types)}")
    return node


def _layer_from_nodes(graph: Any, name: str) -> nn.Module:
    from spikingbrain.converter import SpikeConfig, SpikingLinear

    codes_node = _need(graph, name, "codes", ("Linear",))
    meta = {k: _py(v) for k, v in _meta(codes_node).items()}
    try:
        cfg = SpikeConfig.from_dict(json.loads(meta["spike_config"]))
        n_in, n_out = int(meta["in_features"]), int(meta["out_features"])
        gs, G = int(meta["group_size"]), int(meta["n_groups"])
        qdtype, bdtype = meta["qdata_dtype"], meta["bias_dtype"]
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"layer {name!r}: the metadata of node '{name}.codes' is incomplete or "
                         f"invalid ({type(err).__name__}: {err})") from err
    for part in ("threshold", "regroup", "accumulate", "vth", "group_sum"):
        _need(graph, name, part, ("Scale", "Conv1d", "I", "LI"))
    codes = np.asarray(codes_node.weight)
    if codes.shape != (G, n_out, gs):
        raise ValueError(f"layer {name!r}: codes have shape {codes.shape}, the metadata says "
                         f"{(G, n_out, gs)}")
    if qdtype not in ("int8", "int16") or codes.dtype != np.dtype(qdtype):
        raise ValueError(f"layer {name!r}: codes are {codes.dtype}, the metadata says {qdtype}; "
                         f"integer codes are required for an exact import")
    q = torch.from_numpy(codes.copy()).permute(1, 0, 2).reshape(n_out, G * gs)
    if bool((q[:, n_in:] != 0).any()):
        raise ValueError(f"layer {name!r}: the zero padding of the last weight group holds "
                         f"non-zero codes: the graph is corrupt")
    scale = np.asarray(_need(graph, name, "group_scale", ("Scale",)).scale)
    if scale.shape != (G, n_out):
        raise ValueError(f"layer {name!r}: group scales have shape {scale.shape}, expected "
                         f"{(G, n_out)}")
    has_bias = bdtype != "none"
    kwargs: dict[str, Any] = {"bias": has_bias, "qdata_dtype": dtype_from_name(qdtype),
                              "bias_dtype": DTYPES.get(bdtype, torch.float32)}
    layer = SpikingLinear(n_in, n_out, cfg, **kwargs)
    if layer.group_size != gs:  # imported public codes keep their own group size
        cfg = cfg.replace(granularity="group" if gs < n_in else "channel", group_size=gs,
                          remainder="partial")
        layer = SpikingLinear(n_in, n_out, cfg, **kwargs)
    if layer.group_size != gs or layer.n_groups != G:
        raise ValueError(f"layer {name!r}: the graph has {G} groups of {gs} inputs, which "
                         f"{n_in} inputs cannot hold")
    with torch.no_grad():
        layer.qdata.copy_(q[:, :n_in])
        layer.scale.copy_(torch.from_numpy(scale.T.copy()))
        if has_bias:
            b = np.asarray(_need(graph, name, "bias", ("LI",)).v_leak).reshape(-1)
            if b.shape != (n_out,):
                raise ValueError(f"layer {name!r}: bias has {b.shape[0]} values, expected {n_out}")
            layer.bias.copy_(torch.from_numpy(b.copy()))
    layer.n_out_of_range = int(meta.get("n_out_of_range", 0))
    return layer


def spiking_layers_from_nir(graph: Any) -> dict[str, nn.Module]:
    """``{layer name: SpikingLinear}`` of a graph written by :func:`~.nir_export.to_nir` /
    :func:`~.nir_export.layers_to_nir` (in export order)."""
    kind = _graph_kind(graph)
    if kind not in ("spiking_linear_chain", "spiking_linear_layers"):
        raise ValueError("the graph holds no spikingbrain SpikingLinear layers (its metadata has no "
                         f"format={FORMAT!r} with a spiking_linear kind); use from_nir for "
                         f"neuron networks")
    try:
        names = json.loads(_py(graph.metadata["layers"]))
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError("the graph metadata 'layers' (the layer names) is missing or invalid"
                         ) from err
    return {n: _layer_from_nodes(graph, n) for n in names}


# ----------------------------------------------------------------------------- networks


def _topo_chain(graph: Any) -> list[str]:
    """Node names from the single Input to the single Output of a feed-forward chain."""
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    pred: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        if a not in succ or b not in succ:
            raise ValueError(f"edge ({a!r}, {b!r}) refers to a node that is not in the graph")
        succ[a].append(b)
        pred[b].append(a)
    inputs = [k for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
    if len(inputs) != 1:
        raise ValueError(f"spikingbrain imports feed-forward chains with one Input node; the graph "
                         f"has {len(inputs)}: {inputs}")
    order, cur, seen = [], inputs[0], set()
    while True:
        if cur in seen:
            raise ValueError(f"the graph has a cycle through node {cur!r}; recurrent graphs are "
                             f"not supported")
        seen.add(cur)
        order.append(cur)
        nxt = succ[cur]
        if not nxt:
            break
        if len(nxt) > 1 or len(pred[nxt[0]]) > 1:
            raise ValueError(f"node {cur!r} branches or merges ({nxt}); spikingbrain imports "
                             f"feed-forward chains only")
        cur = nxt[0]
    if len(order) != len(graph.nodes):
        rest = sorted(set(graph.nodes) - set(order))
        raise ValueError(f"nodes {rest} are not on the path from the Input to the Output")
    return order


def _neuron_module(name: str, node: Any, dt: float, step_mode: str) -> nn.Module:
    from spikingbrain.neurons.classic import ALIF, IF, LIF

    meta = {k: _py(v) for k, v in _meta(node).items()}
    common: dict[str, Any] = {
        "v_th": _param(node.v_threshold), "v_reset": _param(node.v_reset),
        "r": _param(node.r), "dt": float(meta.get("dt", dt)),
        "reset": meta.get("reset", "hard"),
    }
    if "surrogate" in meta:
        alpha = meta.get("alpha")
        common.update(surrogate=meta["surrogate"],
                      alpha=None if alpha is None or np.isnan(alpha) else float(alpha),
                      detach_reset=bool(meta.get("detach_reset", 0)))
    try:
        if type(node).__name__ == "IF":
            return IF(step_mode=step_mode, **common)
        common.update(tau_mem=_param(node.tau), v_leak=_param(node.v_leak))
        if meta.get("spikingbrain_model") == "ALIF":
            return ALIF(step_mode=step_mode, tau_adapt=_param(meta["tau_adapt"]),
                        beta=_param(meta["beta"]), **common)
        return LIF(step_mode=step_mode, **common)
    except (ValueError, TypeError) as err:
        raise ValueError(f"node {name!r} ({type(node).__name__}) has parameters our neurons "
                         f"reject: {err}") from err


def _network_from_nir(graph: Any, dt: float | None, step_mode: str) -> nn.Sequential:
    gdt = float(_py(_meta(graph).get("dt", 1.0))) if dt is None else float(dt)
    mods: OrderedDict[str, nn.Module] = OrderedDict()
    for name in _topo_chain(graph):
        node = graph.nodes[name]
        t = type(node).__name__
        if t in ("Input", "Output"):
            continue
        key = name.replace(".", "_")
        if t in ("Affine", "Linear"):
            w = torch.from_numpy(np.asarray(node.weight).copy())
            if w.dim() != 2:
                raise ValueError(f"node {name!r} ({t}) has a {w.dim()}-D weight; only 2-D "
                                 f"weights import as nn.Linear")
            has_bias = t == "Affine" and node.bias is not None
            lin = nn.Linear(w.shape[1], w.shape[0], bias=has_bias, dtype=w.dtype)
            with torch.no_grad():
                lin.weight.copy_(w)
                if has_bias:
                    lin.bias.copy_(torch.from_numpy(np.asarray(node.bias).copy()))
            mods[key] = lin
        elif t in ("IF", "LIF"):
            mods[key] = _neuron_module(name, node, gdt, step_mode)
        else:
            raise ValueError(
                f"node {name!r} has type {t}, which spikingbrain's NIR import does not support "
                f"(supported: {', '.join(SUPPORTED_NODES)}, and SpikingLinear graphs written by "
                f"spikingbrain)"
            )
    return nn.Sequential(mods)


def from_nir(graph: Any, *, dt: float | None = None, step_mode: str = "m") -> nn.Module:
    """Build spikingbrain modules from a NIR graph (or the path of a ``.nir`` file).

    Args:
        graph: ``nir.NIRGraph`` or a path (read with :func:`read_nir`).
        dt: time step for neuron networks (default: the graph's metadata ``dt``, else 1.0;
            NIR parameters are continuous-time, our neurons step forward Euler with ``dt``).
        step_mode: step mode of imported neurons (``"m"``: input ``[T, ...]``).

    Returns:
        a SpikingLinear, an ``nn.Sequential`` (chain of SpikingLinear, or a neuron network) or an
        ``nn.ModuleDict`` (independent SpikingLinear layers).
    """
    nir = _nir()
    if isinstance(graph, (str, os.PathLike)):
        graph = read_nir(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph must be a nir.NIRGraph or a path, got {type(graph).__name__}")
    kind = _graph_kind(graph)
    if kind in ("spiking_linear_chain", "spiking_linear_layers"):
        layers = spiking_layers_from_nir(graph)
        if len(layers) == 1:
            return next(iter(layers.values()))
        named = OrderedDict((n.replace(".", "_"), m) for n, m in layers.items())
        return nn.Sequential(named) if kind == "spiking_linear_chain" else nn.ModuleDict(named)
    return _network_from_nir(graph, dt, step_mode)
