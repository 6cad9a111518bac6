"""The bundle and results file formats: constants, validation, reading and atomic writing.

A bundle is one ``.npz`` (no pickles) with a JSON ``meta`` entry; ``docs/lava.md`` documents
the schema. Standard library + numpy only (see :mod:`count_math`).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import import_module

import numpy as np

__all__ = ["BUNDLE_FORMAT", "EXIT_BAD_INPUT", "RESULTS_FORMAT", "SCHEMA_VERSION", "TAGS", "Bundle",
           "BundleError", "load_bundle", "required_arrays", "save_npz_atomic", "validate_meta"]


def _sibling(name: str):
    """Module ``name`` of this folder, inside the package or run from the folder itself."""
    return import_module(f".{name}", __package__) if __package__ else import_module(name)


cm = _sibling("count_math")

BUNDLE_FORMAT = "spikingbrain-lava-bundle"
RESULTS_FORMAT = "spikingbrain-lava-results"
SCHEMA_VERSION = 1
TAGS = ("floating_pt", "fixed_pt")

#: exit status for a bad bundle / bad arguments (the toolkit raises ValueError for it)
EXIT_BAD_INPUT = 2


class BundleError(ValueError):
    """The bundle is unreadable, of another schema version, or inconsistent."""


@dataclass
class Bundle:
    """A validated bundle: ``meta`` (dict) and ``arrays`` (name -> numpy array)."""

    meta: dict
    arrays: dict

    @property
    def layers(self) -> list[dict]:
        """Per layer: meta entries plus ``qdata``, ``scale``, ``bias`` arrays."""
        res = []
        for li, m in enumerate(self.meta["layers"]):
            d = dict(m)
            d["qdata"] = self.arrays[f"layer{li}.qdata"]
            d["scale"] = self.arrays[f"layer{li}.scale"]
            d["bias"] = self.arrays.get(f"layer{li}.bias")
            res.append(d)
        return res


def _req(cond: bool, msg: str) -> None:
    if not cond:
        raise BundleError(msg)


def required_arrays(meta: dict) -> dict[str, tuple[tuple, tuple[str, ...]]]:
    """Array name -> (shape, allowed dtype kinds) that a bundle with ``meta`` must hold."""
    n = meta["n_tokens"]
    req: dict[str, tuple[tuple, tuple[str, ...]]] = {}
    layers = meta["layers"]
    first = layers[0]
    req["input.spikes"] = ((n, first["T"], first["in_features"]), ("int8",))
    req["input.counts"] = ((n, first["in_features"]), ("int32", "int64"))
    req["input.vth"] = ((n,), ("float32", "float64"))
    for li, L in enumerate(layers):
        o, i, G = L["out_features"], L["in_features"], L["n_groups"]
        req[f"layer{li}.qdata"] = ((o, i), ("int8", "int16"))
        req[f"layer{li}.scale"] = ((o, G), ("float32", "float64"))
        if L["has_bias"]:
            req[f"layer{li}.bias"] = ((o,), ("float32", "float64"))
        req[f"ref.layer{li}.acc"] = ((n, o, G), ("int32", "int64"))
        req[f"ref.layer{li}.counts"] = ((n, i), ("int32", "int64"))
        req[f"ref.layer{li}.vth"] = ((n,), ("float32", "float64"))
        req[f"ref.layer{li}.y"] = ((n, o), ("float32", "float64"))
    return req


def validate_meta(meta: object, what: str = "bundle") -> dict:
    """Check the JSON metadata of a bundle; raise BundleError saying what is wrong."""
    _req(isinstance(meta, dict), f"{what} metadata must be a JSON object")
    _req(meta.get("format") == BUNDLE_FORMAT,
         f"{what} is not a spikingbrain Lava bundle (format {meta.get('format')!r}, "
         f"expected {BUNDLE_FORMAT!r})")
    ver = meta.get("schema_version")
    _req(ver == SCHEMA_VERSION,
         f"{what} has schema version {ver!r}, but this runner reads version {SCHEMA_VERSION}; "
         f"re-export it with the installed spikingbrain (spikingbrain export lava ...)")
    for key in ("n_tokens", "layers", "spikingbrain_version"):
        _req(key in meta, f"{what} metadata misses the key {key!r}")
    n = meta["n_tokens"]
    _req(isinstance(n, int) and n >= 1, f"{what}: n_tokens must be a positive int, got {n!r}")
    layers = meta["layers"]
    _req(isinstance(layers, list) and len(layers) >= 1, f"{what}: 'layers' must be a non-empty list")
    keys = ("name", "in_features", "out_features", "group_size", "n_groups", "scheme", "T", "k",
            "max_count", "has_bias")
    for li, L in enumerate(layers):
        _req(isinstance(L, dict), f"{what}: layers[{li}] must be an object")
        for key in keys:
            _req(key in L, f"{what}: layers[{li}] misses the key {key!r}")
        _req(L["scheme"] in cm.SCHEMES,
             f"{what}: layers[{li}] has unknown scheme {L['scheme']!r}; "
             f"known: {', '.join(cm.SCHEMES)}")
        for key in ("in_features", "out_features", "group_size", "n_groups", "T"):
            _req(isinstance(L[key], int) and L[key] >= 1,
                 f"{what}: layers[{li}].{key} must be a positive int, got {L[key]!r}")
        _req(len(cm.group_bounds(L["in_features"], L["group_size"])) == L["n_groups"],
             f"{what}: layers[{li}]: n_groups != ceil(in_features / group_size)")
        _req(isinstance(L["k"], (int, float)) and L["k"] > 0,
             f"{what}: layers[{li}].k must be positive")
        if li > 0:
            _req(L["in_features"] == layers[li - 1]["out_features"],
                 f"{what}: layers[{li}].in_features != layers[{li - 1}].out_features")
    return meta


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and validate a bundle file (``.npz``); raise BundleError with a clear message."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BundleError(f"bundle {path!r} does not exist (write one with "
                          f"'spikingbrain export lava' or spikingbrain.neuromorphic.bundle)")
    _req(zipfile.is_zipfile(path), f"bundle {path!r} is corrupt or not an .npz bundle (a renamed "
         f".npy or another file?); write one with 'spikingbrain export lava'")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as err:
        raise BundleError(f"bundle {path!r} is corrupt or not an .npz file ({err}); "
                          f"re-export it") from None
    _req("meta" in arrays, f"bundle {path!r} has no 'meta' entry: not a spikingbrain Lava bundle")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as err:
        raise BundleError(f"bundle {path!r} has unreadable metadata ({err}); re-export it") from None
    validate_meta(meta, f"bundle {path!r}")
    for name, (shape, kinds) in required_arrays(meta).items():
        _req(name in arrays, f"bundle {path!r} misses the array {name!r}; re-export it")
        a = arrays[name]
        _req(tuple(a.shape) == tuple(shape),
             f"bundle {path!r}: array {name!r} has shape {tuple(a.shape)}, expected {tuple(shape)}")
        _req(a.dtype.name in kinds,
             f"bundle {path!r}: array {name!r} has dtype {a.dtype}, expected one of {kinds}")
    s = arrays["input.spikes"]
    twos = cm.SCHEMES[meta["layers"][0]["scheme"]][2]
    _req(int(s.min(initial=0)) >= (0 if twos else -1) and int(s.max(initial=0)) <= 1,
         f"bundle {path!r}: input spikes hold values outside {{{'0' if twos else '-1, 0'}, 1}}")
    return Bundle(meta, arrays)


def save_npz_atomic(path: str | os.PathLike, arrays: dict, meta: dict) -> None:
    """Write ``arrays`` plus ``meta`` (JSON) to ``path`` atomically (temp file, then rename)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".npz", dir=folder)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
