"""Lava bundles: the self-contained file the torch side hands to the Lava runner.

A bundle (one ``.npz``, no pickles) holds a chain of converted :class:`SpikingLinear` layers
(INT8 weight codes, scales, bias, group size, scheme, window ``T``, ``k``), the first layer's
input spike trains and activations for ``n`` tokens, and torch's reference results (input
counts, thresholds, integer accumulators, float outputs). The schema is documented in
``docs/lava.md``; :mod:`spikingbrain.neuromorphic.lava_runner` reads it under Python 3.10.

Chain semantics (exact by definition): layer ``l+1``'s input counts come from the
adaptive-threshold encoder applied to layer ``l``'s output computed in float64 from the exact
integer accumulators (:func:`~spikingbrain.neuromorphic.lava_runner.finish_output`,
:func:`~spikingbrain.neuromorphic.lava_runner.encode_counts`; ``math.fsum`` for the mean), the
same code the runner's encoder process runs. torch's own float32 chain can differ from it only
where ``x / Vth`` lies within float32 rounding of a half-integer; the bundle records how many
counts differ (``chain_count_mismatch_vs_float32``).

>>> import tempfile, pathlib, torch
>>> from torch import nn
>>> from spikingbrain.converter import SpikeConfig, SpikingLinear
>>> torch.manual_seed(0) is not None
True
>>> layer = SpikingLinear.from_linear(nn.Linear(8, 4), SpikeConfig(group_size=4, scheme="ternary"))
>>> path = pathlib.Path(tempfile.mkdtemp()) / "b.npz"
>>> _ = write_bundle([layer], torch.randn(3, 8), path)
>>> b = read_bundle(path)
>>> b.meta["n_tokens"], b.meta["layers"][0]["scheme"], b.arrays["ref.layer0.acc"].shape
(3, 'ternary', (3, 4, 2))
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from spikingbrain.neuromorphic import lava_runner as runner
from spikingbrain.utils import atomic_path

__all__ = ["SCHEMA_VERSION", "BundleError", "bundle_arrays", "read_bundle", "write_bundle"]

SCHEMA_VERSION = runner.SCHEMA_VERSION
BundleError = runner.BundleError


def _check_layers(layers: Sequence) -> list:
    if isinstance(layers, torch.nn.Module):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("write_bundle needs at least one SpikingLinear layer")
    for i, layer in enumerate(layers):
        for attr in ("qdata", "scale", "config", "group_size", "integer_accumulators"):
            if not hasattr(layer, attr):
                raise TypeError(
                    f"layers[{i}] is a {type(layer).__name__}, not a converted SpikingLinear "
                    f"(missing {attr!r}); convert it with spikingbrain.convert or "
                    f"SpikingLinear.from_linear"
                )
        if i and layer.in_features != layers[i - 1].out_features:
            raise ValueError(
                f"layers do not chain: layers[{i - 1}] has out_features="
                f"{layers[i - 1].out_features} but layers[{i}] has in_features="
                f"{layer.in_features}"
            )
    return layers


def _window(counts: np.ndarray, scheme: str, T: int | None) -> int:
    """Bundle window: the config's fixed ``T``, else the minimal window of these counts."""
    if T is not None:
        return int(T)
    from spikingbrain.coding import get_scheme

    mags = np.abs(counts)
    spec = get_scheme(scheme)
    if spec.signed:
        lo, hi = (int(counts.min()), int(counts.max())) if counts.size else (0, 0)
    else:  # unsigned: |count| on the positive or the negative-polarity train
        lo, hi = 0, int(mags.max()) if mags.size else 0
    return max(spec.min_steps(lo, hi), 1)


def _spike_train(counts: torch.Tensor, scheme: str, T: int) -> np.ndarray:
    """``[n, T, d]`` int8 trains from spikingbrain.coding.encode (unsigned schemes: the train
    of ``|count|`` with polarity -1 for negative counts)."""
    from spikingbrain.coding import decode, encode

    c = counts.to(torch.int64)
    if runner.SCHEMES[scheme][0]:
        s = encode(c, scheme, T)
        back = decode(s, scheme)
    else:
        s = encode(c.abs(), scheme, T) * c.sign().to(torch.int8).unsqueeze(0)
        back = decode(s.clamp_min(0), scheme) - decode((-s).clamp_min(0), scheme)
    if not torch.equal(back.to(torch.int64), c):  # cheap self-check of the expansion
        raise RuntimeError("spike expansion did not reproduce the counts")
    return s.permute(1, 0, 2).contiguous().numpy()


def _epilogue(layer, acc: torch.Tensor, vth: torch.Tensor) -> torch.Tensor:
    """torch's count-mode float output for given accumulators and thresholds."""
    from spikingbrain.converter.kernels import epilogue

    return epilogue(acc, layer.scale, vth.reshape(-1, 1), layer.bias, layer.config.compute_dtype)


def _checked_accumulators(layer, counts: torch.Tensor, name: str) -> torch.Tensor:
    """torch's int32 accumulators ``[n, out, G]``, checked against the plain int64 reference."""
    acc = layer.integer_accumulators(counts).to(torch.int32)
    ref64 = runner.integer_accumulators(layer.qdata.cpu().numpy(), counts.numpy(),
                                        layer.group_size)
    if not np.array_equal(acc.numpy(), ref64):
        raise RuntimeError(
            f"layer {name!r}: torch's SpikingLinear.integer_accumulators disagrees with "
            f"a plain int64 reference on {int((acc.numpy() != ref64).sum())} values; the "
            f"bundle would carry a wrong reference (a converter bug: please report it)")
    return acc


def _layer_arrays(li: int, layer, acc: torch.Tensor, counts: torch.Tensor, vth: torch.Tensor,
                  y_ref: torch.Tensor) -> dict[str, np.ndarray]:
    """Layer ``li``'s weights and torch's reference results as bundle arrays."""
    arrays: dict[str, np.ndarray] = {}
    qd = layer.qdata.detach().cpu()
    arrays[f"layer{li}.qdata"] = qd.numpy().astype(np.int8 if qd.dtype == torch.int8
                                                   else np.int16)
    arrays[f"layer{li}.scale"] = layer.scale.detach().float().cpu().numpy()
    if layer.bias is not None:
        arrays[f"layer{li}.bias"] = layer.bias.detach().float().cpu().numpy()
    arrays[f"ref.layer{li}.acc"] = acc.numpy()
    arrays[f"ref.layer{li}.counts"] = counts.numpy().astype(np.int64)
    arrays[f"ref.layer{li}.vth"] = vth.numpy()
    arrays[f"ref.layer{li}.y"] = y_ref.detach().float().cpu().numpy()
    return arrays


def _chain_input(p, layer, prev_acc: torch.Tensor, prev_vth: torch.Tensor,
                 y_float32: torch.Tensor) -> tuple:
    """Layer ``layer``'s input counts and Vth from the previous layer ``p`` by the exact chain
    encoder (module docstring), torch's own float32 chain output and how many counts differ
    between the two: ``(counts, vth, y_float32, n_mismatch)``."""
    cfg = layer.config
    y64 = runner.finish_output(prev_acc.numpy(), prev_vth.numpy(), p.scale.numpy(),
                               None if p.bias is None else p.bias.float().numpy())
    c64, v64, _ = runner.encode_counts(y64, cfg.k, cfg.max_count)
    if cfg.T is not None:
        lo, hi = runner.count_limits(cfg.scheme, cfg.T)
        c64 = np.clip(c64, lo, hi)
    counts = torch.from_numpy(c64)
    with torch.no_grad():
        c32, _, _ = layer.spike_counts(y_float32)
        y_float32 = layer(y_float32)
    return counts, torch.from_numpy(v64), y_float32, int((c32.to(torch.int64) != counts).sum())


def bundle_arrays(layers: Sequence, x: torch.Tensor, names: Sequence[str] | None = None
                  ) -> tuple[dict, dict[str, np.ndarray]]:
    """Compute a bundle's ``(meta, arrays)`` without writing it (see :func:`write_bundle`)."""
    from spikingbrain import __version__

    layers = _check_layers(layers)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor of activations [n_tokens, in]")
    if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] != layers[0].in_features:
        raise ValueError(
            f"x must have shape [n_tokens >= 1, {layers[0].in_features}], got {tuple(x.shape)}"
        )
    if names is None:
        names = [f"layer{i}" for i in range(len(layers))]
    if len(names) != len(layers):
        raise ValueError(f"got {len(names)} names for {len(layers)} layers")
    n = x.shape[0]
    arrays: dict[str, np.ndarray] = {}
    meta_layers = []
    records = []
    first = layers[0]
    handle = first.add_spike_observer(lambda mod, rec: records.append(rec))
    try:
        with torch.no_grad():
            y_torch = first(x.float())
    finally:
        handle.remove()
    if len(records) != 1:
        raise RuntimeError(f"layers[0] emitted {len(records)} spike records, expected 1")
    counts = records[0].counts.to(torch.int64)
    vth = records[0].vth.reshape(-1).to(torch.float32)
    chain_mismatch = []
    prev_acc = prev_vth = None
    y_float32 = y_torch  # torch's own float32 chain, for the mismatch statistic
    for li, layer in enumerate(layers):
        cfg = layer.config
        if li > 0:
            counts, vth, y_float32, mismatch = _chain_input(layers[li - 1], layer, prev_acc,
                                                            prev_vth, y_float32)
            chain_mismatch.append(mismatch)
        acc = _checked_accumulators(layer, counts, names[li])
        y_ref = y_torch if li == 0 else _epilogue(layer, acc, vth.to(torch.float32))
        T = _window(counts.numpy(), cfg.scheme, cfg.T)
        arrays.update(_layer_arrays(li, layer, acc, counts, vth, y_ref))
        if li == 0:
            arrays["input.spikes"] = _spike_train(counts, cfg.scheme, T)
            arrays["input.counts"] = counts.numpy().astype(np.int64)
            arrays["input.vth"] = vth.numpy()
            arrays["input.x"] = x.detach().float().cpu().numpy()
        meta_layers.append({
            "name": str(names[li]), "in_features": int(layer.in_features),
            "out_features": int(layer.out_features), "group_size": int(layer.group_size),
            "n_groups": int(layer.scale.shape[1]), "scheme": cfg.scheme, "T": T,
            "k": float(cfg.k), "max_count": cfg.max_count, "has_bias": layer.bias is not None,
            "config": cfg.to_dict(),
        })
        prev_acc, prev_vth = acc, vth
    meta = {
        "format": runner.BUNDLE_FORMAT, "schema_version": SCHEMA_VERSION,
        "spikingbrain_version": __version__, "n_tokens": int(n), "layers": meta_layers,
        "chain_count_mismatch_vs_float32": chain_mismatch,
    }
    runner.validate_meta(json.loads(json.dumps(meta)))
    return meta, arrays


def write_bundle(layers: Sequence, x: torch.Tensor, path: str | os.PathLike,
                 names: Sequence[str] | None = None) -> Path:
    """Write a Lava bundle for a chain of converted layers and the first layer's inputs.

    Args:
        layers: one :class:`~spikingbrain.converter.SpikingLinear` or a chain of them
            (``layers[i].out_features == layers[i+1].in_features``; no nonlinearity between).
        x: float activations ``[n_tokens, in_features]`` entering the first layer; each row is
            an independent token.
        path: the ``.npz`` file to write (atomically: nothing is left half-written).
        names: optional layer names stored in the bundle.

    Returns:
        the bundle path. The references are torch's count-mode results: ``ref.layer0.*`` from
        ``layers[0](x)``; later layers from the exact chain encoder (module docstring).
    """
    meta, arrays = bundle_arrays(layers, x, names)
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"bundle path must end in .npz, got {str(path)!r}")
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        f.flush()
        os.fsync(f.fileno())
    return path


def read_bundle(path: str | os.PathLike) -> runner.Bundle:
    """Read and validate a bundle (``.meta`` dict, ``.arrays`` name -> numpy array).

    Raises :class:`BundleError` (a ValueError) for a missing, corrupt, incomplete bundle or
    one of another schema version, with a message that says what to do.
    """
    return runner.load_bundle(path)
