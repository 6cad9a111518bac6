"""What every NIR module of the toolkit shares: the format tag, the lazily imported ``nir``
package, graph metadata and tensor conversion (no import of the other NIR modules).

>>> graph_meta("network", 1.0)["format"]
'spikingbrain.nir'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from spikingbrain.utils.optional import require

__all__ = ["FORMAT", "FORMAT_VERSION", "clean_name", "graph_meta", "is_spiking_linear",
           "nir_module", "to_numpy", "toolkit_version"]

#: Value of the graph metadata entry ``format`` of graphs written by this toolkit.
FORMAT = "spikingbrain.nir"
#: Version of the node layout documented in docs/nir.md (bumped on incompatible changes).
FORMAT_VERSION = 1


def nir_module() -> Any:
    """The ``nir`` package (an optional dependency: a clear error says how to install it)."""
    return require("nir", extra="nir", purpose="NIR export")


def toolkit_version() -> str:
    from spikingbrain import __version__

    return __version__


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()  # exact: every bfloat16 value is a float32 value
    return t.numpy().copy()


def clean_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"layer names must be non-empty strings, got {name!r}")
    if "/" in name:
        raise ValueError(f"layer name {name!r} contains '/', which HDF5 (.nir files) forbids")
    return name


def graph_meta(kind: str, dt: float, **extra: Any) -> dict[str, Any]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "spikingbrain_version": toolkit_version(), "kind": kind, "dt": float(dt), **extra}


def is_spiking_linear(module: object) -> bool:
    from spikingbrain.converter.layer import SpikingLinear

    return isinstance(module, SpikingLinear)
