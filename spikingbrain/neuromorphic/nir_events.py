"""Event streams and recorded activity as NIR data (``nir.ValuedEventData`` / ``NIRGraphData``).

nir 1.0.8 has event data types (``EventData``, ``ValuedEventData``, ``TimeGriddedData``) that
attach to graph nodes through ``NIRNodeData`` / ``NIRGraphData`` and are written by
``nir.write_data`` to their own HDF5 file. We store them in the sidecar ``<stem>.data.nir``
next to the graph file (see :func:`spikingbrain.neuromorphic.nir_export.write_nir`).

Mapping of a :class:`~spikingbrain.coding.events.SpikeEvents` stream of shape
``(T, samples, neurons)`` (tokens are samples) to ``ValuedEventData``:

- ``idx[s, e]`` neuron index, ``time[s, e] = t * dt``, ``value[s, e]`` spike value (+1/-1 or a
  graded integer), one row per sample, padded with ``idx = -1``, ``time = inf``, ``value = 0``;
- ``n_neurons`` = neurons, ``t_max = T * dt``.

The conversion is exact both ways (:func:`events_to_nir`, :func:`events_from_nir`).

>>> import torch
>>> from spikingbrain.coding.events import to_events
>>> spikes = torch.tensor([[[1, 0, -1]], [[0, 1, 0]]], dtype=torch.int8)   # T=2, 1 token
>>> ev = to_events(spikes, scheme="ternary")
>>> data = events_to_nir(ev)
>>> data.idx.tolist(), data.time.tolist(), data.value.tolist()
([[0, 2, 1]], [[0.0, 0.0, 1.0]], [[1.0, -1.0, 1.0]])
>>> torch.equal(events_from_nir(data).to_dense(), spikes)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from spikingbrain.neurons.emitter import is_observed, token_rows_of
from spikingbrain.utils.optional import require

__all__ = ["events_from_nir", "events_to_nir", "layer_nir_data", "nir_input_spikes",
           "record_nir_data"]


def _nir() -> Any:
    return require("nir", extra="nir", purpose="NIR event data")


def events_to_nir(events: Any, dt: float = 1.0) -> Any:
    """``SpikeEvents`` of shape ``(T, samples, neurons)`` (or ``(T, neurons)``: one sample) ->
    ``nir.ValuedEventData`` (see the module docstring for the layout)."""
    from spikingbrain.coding.events import SpikeEvents

    nir = _nir()
    if not isinstance(events, SpikeEvents):
        raise TypeError(f"events must be SpikeEvents, got {type(events).__name__}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number, got {dt!r}")
    shape = events.shape
    if len(shape) == 2:
        shape = (shape[0], 1, shape[1])
    if len(shape) != 3:
        raise ValueError(f"events must have shape (T, samples, neurons) or (T, neurons), got {shape}")
    T, S, N = shape
    t = events.times.cpu().numpy()
    sample, neuron = np.divmod(events.indices.cpu().numpy(), max(N, 1))
    value = events.polarity.cpu().numpy()
    counts = np.bincount(sample, minlength=S) if len(t) else np.zeros(S, dtype=np.int64)
    width = int(counts.max()) if S else 0
    idx = np.full((S, width), -1, dtype=np.int64)
    time = np.full((S, width), np.inf, dtype=np.float64)
    val = np.zeros((S, width), dtype=np.float64)
    # events are sorted by (t, flat index); a stable sort by sample keeps time order per sample
    order = np.argsort(sample, kind="stable")
    pos = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = sample[order]
    idx[rows, pos] = neuron[order]
    time[rows, pos] = t[order] * float(dt)
    val[rows, pos] = value[order]
    return nir.ValuedEventData(idx=idx, time=time, value=val, n_neurons=int(N),
                               t_max=float(T) * float(dt))


def events_from_nir(data: Any, dt: float = 1.0, scheme: str | None = None) -> Any:
    """``nir.EventData`` / ``ValuedEventData`` -> ``SpikeEvents`` of shape
    ``(T, samples, neurons)`` with ``T = round(t_max / dt)``; plain ``EventData`` has value 1.

    Raises ValueError when times are not on the ``dt`` grid or values are not non-zero integers.
    """
    from spikingbrain.coding.events import SpikeEvents

    nir = _nir()
    if not isinstance(data, nir.EventData):
        raise TypeError(f"data must be a nir.EventData, got {type(data).__name__}")
    idx = np.asarray(data.idx)
    time = np.asarray(data.time, dtype=np.float64)
    value = np.asarray(data.value) if isinstance(data, nir.ValuedEventData) else np.ones(idx.shape)
    S, N = idx.shape[0], int(data.n_neurons)
    T = round(float(data.t_max) / dt)
    rows, cols = np.nonzero(idx >= 0)
    steps = time[rows, cols] / dt
    t = np.round(steps)
    if not np.allclose(steps, t, rtol=0, atol=1e-6) or (len(t) and (t.min() < 0 or t.max() >= T)):
        raise ValueError(f"event times are not on the grid of dt={dt} within [0, t_max)")
    v = value[rows, cols]
    if not np.all(v == np.round(v)) or np.any(v == 0) or np.any(np.abs(v) > 127):
        raise ValueError("event values must be non-zero integers in [-127, 127]")
    flat = rows.astype(np.int64) * N + idx[rows, cols].astype(np.int64)
    key = t.astype(np.int64) * (S * N) + flat
    order = np.argsort(key, kind="stable")
    return SpikeEvents(
        torch.from_numpy(t.astype(np.int64)[order]), torch.from_numpy(flat[order]),
        torch.from_numpy(v[order].astype(np.int8)), (T, S, N), scheme,
    )


def _gridded(x: torch.Tensor) -> Any:
    """``[tokens, n]`` floats -> ``TimeGriddedData [tokens, 1, n]`` (one step per token)."""
    nir = _nir()
    a = x.detach().cpu()
    if a.dtype in (torch.float16, torch.bfloat16):
        a = a.float()
    return nir.TimeGriddedData(a.reshape(a.shape[0], 1, -1).numpy().copy(), dt=1.0)


def layer_nir_data(name: str, layer: nn.Module, x: torch.Tensor, dt: float = 1.0) -> dict[str, Any]:
    """Recorded activity of one exported SpikingLinear for inputs ``x [..., in]``.

    Returns ``{node name: nir.NIRNodeData}``:

    - ``f"{name}.threshold"``: ``input`` (``x`` per token, ``TimeGriddedData [tokens, 1, in]``)
      and ``vth`` (``[tokens, 1, 1]``);
    - ``f"{name}.regroup"``: ``spikes``, the layer's input spike train as ``ValuedEventData``
      (samples = tokens; the values :func:`nir_input_spikes`
      sends, so decoding with ``|w_t|`` gives the counts);
    - ``f"{name}.group_sum"``: ``output``, the layer's output ``y`` (bias included).
    """
    nir = _nir()
    from spikingbrain.coding.events import to_events

    x = x.detach().reshape(-1, layer.in_features)
    with torch.no_grad():
        counts, vth, _ = layer.spike_counts(x)
        y = layer(x)
    spikes = nir_input_spikes(counts.to(torch.int64), layer.config.scheme, layer.config.T)
    ev = to_events(spikes)
    return {
        f"{name}.threshold": nir.NIRNodeData({"input": _gridded(x), "vth": _gridded(vth)}),
        f"{name}.regroup": nir.NIRNodeData({"spikes": events_to_nir(ev, dt)}),
        f"{name}.group_sum": nir.NIRNodeData({"output": _gridded(y)}),
    }


def capture_layer_inputs(layers: Mapping[str, nn.Module],
                         run: Callable[[], Any] | torch.Tensor) -> dict[str, torch.Tensor]:
    """Run once and keep each listed layer's first real token rows ``[n, in]``: a model's sink
    pass (input-independent, no token) is unobserved and padding / sink rows are dropped by the
    model's own row mask. ``run``: a callable that runs the model, or a tensor fed to the
    first layer and then through the layers in order (a chain).

    >>> from torch import nn
    >>> from spikingbrain.converter import SpikeConfig, SpikingLinear
    >>> fc = SpikingLinear.from_linear(nn.Linear(4, 2), SpikeConfig(scheme="ternary"))
    >>> capture_layer_inputs({"fc": fc}, torch.randn(3, 4))["fc"].shape
    torch.Size([3, 4])
    """
    if not layers:
        raise ValueError("layers must name at least one SpikingLinear")
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for name, layer in layers.items():
        def hook(mod: nn.Module, args: tuple, out: Any, name: str = name) -> None:
            if name not in seen and is_observed():
                rows = token_rows_of(args[0].detach())
                if rows.shape[0]:
                    seen[name] = rows
        handles.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():
            if isinstance(run, torch.Tensor):
                h = run
                for layer in layers.values():
                    h = layer(h)
            else:
                run()
    finally:
        for hd in handles:
            hd.remove()
    missing = [n for n in layers if n not in seen]
    if missing:
        raise ValueError(f"the run did not call the layers {missing}; nothing to record for them")
    return seen


def record_nir_data(layers: Mapping[str, nn.Module], run: Callable[[], Any] | torch.Tensor,
                    dt: float = 1.0) -> Any:
    """Run a model once and record every listed SpikingLinear's activity as ``nir.NIRGraphData``.

    Args:
        layers: ``{name: SpikingLinear}`` (the names used in the exported graph).
        run: a callable that runs the model (e.g. ``lambda: model(**batch)``), or a tensor fed
            to the first layer and then through the layers in order (a chain).
        dt: time step of the event times.

    >>> import torch
    >>> from torch import nn
    >>> from spikingbrain.converter import SpikeConfig, SpikingLinear
    >>> fc = SpikingLinear.from_linear(nn.Linear(4, 2), SpikeConfig(scheme="ternary"))
    >>> data = record_nir_data({"fc": fc}, torch.randn(3, 4))
    >>> sorted(data.nodes)
    ['fc.group_sum', 'fc.regroup', 'fc.threshold']
    """
    nir = _nir()
    seen = capture_layer_inputs(layers, run)
    nodes: dict[str, Any] = {}
    for name, layer in layers.items():
        nodes.update(layer_nir_data(name, layer, seen[name], dt))
    return nir.NIRGraphData(nodes)


def nir_input_spikes(counts: torch.Tensor, scheme: str, T: int | None = None) -> torch.Tensor:
    """The spike train an exported layer's ``L.regroup`` node receives: int8 ``[T, ...]``.

    Per time step, the signed spikes that the NIR accumulator adds with weight ``|w_t|`` (1 for
    binary/ternary, ``2**(T-1-t)`` for the bitwise schemes): unsigned schemes send the positive
    train minus the negative train (values in {-1, 0, 1}); two's complement sends its sign step
    ``t = 0`` (weight ``-2**(T-1)``) as a negative spike. So ``counts = sum_t |w_t| * s[t]``.

    >>> nir_input_spikes(torch.tensor([5, -3]), "bitwise_twos_complement").tolist()
    [[0, -1], [1, 1], [0, 0], [1, 1]]
    >>> nir_input_spikes(torch.tensor([2, -1]), "binary").tolist()
    [[1, -1], [1, 0]]
    """
    from spikingbrain.converter.kernels import spike_trains

    out: torch.Tensor | None = None
    for spikes, weights in spike_trains(counts, scheme, T):
        signs = torch.sign(weights).to(torch.int8).view(-1, *([1] * (spikes.dim() - 1)))
        part = spikes.to(torch.int8) * signs
        out = part if out is None else out + part
    assert out is not None  # spike_trains returns at least one train
    return out
