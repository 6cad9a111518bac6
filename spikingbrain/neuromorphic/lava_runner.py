"""Standalone Lava runner: simulate a spikingbrain Lava bundle on Lava's Loihi 2 simulator.

This file is executed by path in the Python 3.10 Lava environment (``.venv-lava``):

    python lava_runner.py BUNDLE.npz --out RESULTS.npz [--tags floating_pt,fixed_pt]

It imports only the standard library, numpy and (inside functions) ``lava``; it never imports
torch or spikingbrain. The bundle schema (docs/lava.md) is its only contract with the toolkit.
The pure-numpy parts (bundle reading and validation, the adaptive-threshold encoder between
chained layers, spike expansion, host-side float finishing, agreement) are importable under any
Python; the toolkit uses the very same functions to compute its chain reference, so both sides
follow one definition.

Network built for a chain of ``L`` spiking linear layers (``G`` groups of input columns each):

    SpikeSource ─► Dense(W+) ─┐                      (graded ±1 spikes when the scheme is signed)
                └► Dense(-W-) ─┴► Accumulator_1 ─► Encoder_2 ─► Dense(W+)/Dense(-W-) ─► Accumulator_2 ...

- Dense weights are block-expanded per group: row ``o*G + g`` holds ``W[o, i]`` for the
  columns ``i`` of group ``g`` (zero elsewhere), so each accumulator keeps
  ``acc[o, g] = sum_{i in g} W[o, i] * counts[i]`` separately.
- Mixed-sign weights are split into an excitatory and an inhibitory Dense feeding the same
  accumulator port: in fixed point Lava drops the least significant bit of mixed-sign weights.
- Dense delays by one step; token ``j`` of layer ``l`` occupies steps
  ``base_l + j*P + t`` (``t < T_l``) at its spike source, its accumulator receives them one step
  later; the next encoder starts at ``base_{l+1} = base_l + T_l + 1``. Tokens are pipelined with
  period ``P = max_l T_l``.
- Accumulators sum (binary, ternary) or shift-and-add most significant bit first (bitwise;
  two's complement: the first step is subtracted).
- The encoder finishes layer ``l`` on the fly (``y = vth * sum_g scale*acc + bias``, float64,
  groups added in ascending order), computes ``Vth = clamp(fsum|y|/n/k, 1e-5, 1e4)`` and
  ``counts = round_half_even(y / Vth)`` in float64, then expands the counts into spikes.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(
        os.path.abspath(__file__)):
    # run by path: our folder holds a module named lava.py (the toolkit side), which must not
    # shadow the lava-nc package
    sys.path.pop(0)

import argparse
import json
import math
import tempfile
import time
import zipfile
from dataclasses import dataclass

import numpy as np

BUNDLE_FORMAT = "spikingbrain-lava-bundle"
RESULTS_FORMAT = "spikingbrain-lava-results"
SCHEMA_VERSION = 1
TAGS = ("floating_pt", "fixed_pt")
VTH_MIN, VTH_MAX = 1e-5, 1e4

#: scheme name -> (signed, bitwise, twos_complement)
SCHEMES = {
    "binary": (False, False, False),
    "ternary": (True, False, False),
    "bitwise": (False, True, False),
    "bitwise_bidirectional": (True, True, False),
    "bitwise_twos_complement": (True, True, True),
}

#: exit status for a bad bundle / bad arguments (the toolkit raises ValueError for it)
EXIT_BAD_INPUT = 2


class BundleError(ValueError):
    """The bundle is unreadable, of another schema version, or inconsistent."""


# ----------------------------------------------------------------------------- numpy helpers
def value_range(scheme: str, T: int) -> tuple[int, int]:
    """Smallest and largest count a window of ``T`` steps holds for ``scheme``."""
    signed, bitwise, twos = SCHEMES[scheme]
    if not bitwise:
        return (-T if signed else 0, T)
    if twos:
        return (-(1 << (T - 1)), (1 << (T - 1)) - 1)
    top = (1 << T) - 1
    return (-top if signed else 0, top)


def count_limits(scheme: str, T: int) -> tuple[int, int]:
    """Range of counts a layer carries in a window of ``T`` steps: the scheme's range, made
    symmetric for unsigned schemes (negative counts ride on a negative-polarity train)."""
    lo, hi = value_range(scheme, T)
    return (-hi, hi) if not SCHEMES[scheme][0] else (lo, hi)


def expand_spikes(counts: np.ndarray, scheme: str, T: int) -> np.ndarray:
    """Spike train ``[T, *shape]`` (int8) of integer ``counts`` (most significant bit first).

    Same definition as ``spikingbrain.coding.encode``. For the unsigned schemes (binary,
    bitwise) a negative count is the scheme's train of ``|count|`` with polarity -1 (the
    converter's second, negative-polarity train), so entries are in {-1, 0, 1}.
    Counts must fit :func:`count_limits`.
    """
    c = np.asarray(counts, dtype=np.int64)
    signed, bitwise, twos = SCHEMES[scheme]
    lo, hi = count_limits(scheme, T)
    if not signed:
        signed = True
    if c.size and (c.min() < lo or c.max() > hi):
        raise ValueError(f"counts in [{c.min()}, {c.max()}] do not fit {scheme} with T={T}")
    steps = np.arange(T, dtype=np.int64).reshape((T,) + (1,) * c.ndim)
    if not bitwise:
        fires = steps < np.abs(c)[None]
        return np.where(fires, np.sign(c)[None], 0).astype(np.int8)
    shifts = (T - 1 - steps)
    if twos:
        return ((c[None] >> shifts) & 1).astype(np.int8)
    bits = (np.abs(c)[None] >> shifts) & 1
    return (bits * (np.sign(c)[None] if signed else 1)).astype(np.int8)


def finish_output(acc: np.ndarray, vth: np.ndarray, scale: np.ndarray,
                  bias: np.ndarray | None) -> np.ndarray:
    """Float64 layer output ``y [n, out] = vth * sum_g scale[o, g] * acc[n, o, g] + bias``.

    Groups are added sequentially in ascending order; every operation is an elementwise IEEE
    float64 operation, so the result is the same on every machine and numpy version.
    """
    acc = np.asarray(acc)
    scale = np.asarray(scale, dtype=np.float64)
    s = np.zeros(acc.shape[:-1], dtype=np.float64)
    for g in range(acc.shape[-1]):
        s = s + scale[:, g] * acc[..., g].astype(np.float64)
    y = np.asarray(vth, dtype=np.float64).reshape(-1, *([1] * (s.ndim - 1))) * s
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y


def encode_counts(y: np.ndarray, k: float, max_count: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Adaptive-threshold encoder in float64: ``(counts int64 [n, d], vth float64 [n], n_sat)``.

    ``Vth = clamp(fsum(|y|) / d / k, 1e-5, 1e4)`` per row (``math.fsum`` is correctly rounded,
    so the mean does not depend on summation order), ``counts = round_half_even(y / Vth)``,
    clamped to ``[-max_count, max_count]`` when ``max_count`` is set.
    """
    y = np.asarray(y, dtype=np.float64)
    n, d = y.shape
    vth = np.empty(n, dtype=np.float64)
    for r in range(n):
        mean = math.fsum(np.abs(y[r]).tolist()) / d
        vth[r] = min(max(mean / k, VTH_MIN), VTH_MAX)
    q = np.rint(y / vth[:, None])
    n_sat = 0
    if max_count is not None:
        n_sat = int((np.abs(q) > max_count).sum())
        q = np.clip(q, -max_count, max_count)
    return q.astype(np.int64), vth, n_sat


def group_bounds(in_features: int, group_size: int) -> list[tuple[int, int]]:
    """Column ranges ``[start, stop)`` of the weight groups (the last one may be shorter)."""
    return [(a, min(a + group_size, in_features)) for a in range(0, in_features, group_size)]


def integer_accumulators(qdata: np.ndarray, counts: np.ndarray, group_size: int) -> np.ndarray:
    """Numpy reference ``acc [n, out, G]`` (int64): ``sum_{i in g} qdata[o, i] * counts[n, i]``."""
    q = np.asarray(qdata, dtype=np.int64)
    c = np.asarray(counts, dtype=np.int64)
    parts = [c[:, a:b] @ q[:, a:b].T for a, b in group_bounds(q.shape[1], group_size)]
    return np.stack(parts, axis=-1)


def chain_reference(layers: list[dict], counts0: np.ndarray, vth0: np.ndarray) -> list[dict]:
    """Exact chain semantics: per layer the input counts, input Vth and integer accumulators.

    Layer ``l+1``'s input is the float64 encoder (:func:`encode_counts`) applied to layer ``l``'s
    float64 output (:func:`finish_output`). ``layers`` hold ``qdata``, ``scale``, ``bias``,
    ``group_size``, ``k``, ``max_count``.
    """
    out, counts, vth = [], np.asarray(counts0, dtype=np.int64), np.asarray(vth0, np.float64)
    for li, L in enumerate(layers):
        n_sat = 0
        if li > 0:
            prev = out[-1]
            y = finish_output(prev["acc"], prev["vth"], layers[li - 1]["scale"],
                              layers[li - 1]["bias"])
            counts, vth, n_sat = encode_counts(y, L["k"], L["max_count"])
        acc = integer_accumulators(L["qdata"], counts, L["group_size"])
        out.append({"counts": counts, "vth": vth, "acc": acc, "n_saturated": n_sat})
    return out


# ----------------------------------------------------------------------------- bundle I/O
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
        _req(L["scheme"] in SCHEMES, f"{what}: layers[{li}] has unknown scheme {L['scheme']!r}; "
             f"known: {', '.join(SCHEMES)}")
        for key in ("in_features", "out_features", "group_size", "n_groups", "T"):
            _req(isinstance(L[key], int) and L[key] >= 1,
                 f"{what}: layers[{li}].{key} must be a positive int, got {L[key]!r}")
        _req(len(group_bounds(L["in_features"], L["group_size"])) == L["n_groups"],
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
    twos = SCHEMES[meta["layers"][0]["scheme"]][2]
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


# ----------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class Schedule:
    """Time layout of a run: layer ``l``'s spikes for token ``j``, step ``t`` enter Dense at
    Lava step ``base[l] + j*period + t`` (Lava counts steps from 1)."""

    base: tuple[int, ...]
    period: int
    windows: tuple[int, ...]
    n_tokens: int

    @classmethod
    def build(cls, windows: list[int], n_tokens: int) -> Schedule:
        base = [1]
        for T in windows[:-1]:
            base.append(base[-1] + T + 1)
        return cls(tuple(base), max(windows), tuple(windows), n_tokens)

    @property
    def num_steps(self) -> int:
        """Steps to run: the last accumulator receives its last input at this step."""
        return self.base[-1] + (self.n_tokens - 1) * self.period + self.windows[-1]


def to_rails(spikes: np.ndarray, scheme: str) -> np.ndarray:
    """Spikes ``[d, ...]`` as sent into Dense: unchanged for signed schemes (graded ±1 or
    {0, 1}); for unsigned schemes two binary rails ``[2d, ...]`` (positive, then negative)."""
    if SCHEMES[scheme][0]:
        return spikes
    return np.concatenate([spikes > 0, spikes < 0]).astype(spikes.dtype)


def source_schedule(spikes: np.ndarray, scheme: str, sched: Schedule) -> np.ndarray:
    """Lay the bundle's ``[n, T, d]`` input trains out as a replay array ``[d or 2d, steps]``."""
    n, T, d = spikes.shape
    rails = 1 if SCHEMES[scheme][0] else 2
    data = np.zeros((rails * d, sched.num_steps), dtype=np.int32)
    for j in range(n):
        start = sched.base[0] + j * sched.period - 1
        data[:, start:start + T] = to_rails(spikes[j].T.astype(np.int32), scheme)
    return data


def expand_weights(qdata: np.ndarray, group_size: int, scheme: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Block-expanded excitatory and inhibitory weights ``[out*G, in]`` (``[out*G, 2*in]`` for
    the two rails of unsigned schemes: ``[W | -W]``), int32.

    Row ``o*G + g`` carries ``W[o, i]`` for the columns of group ``g`` (zero elsewhere);
    ``W = Wexc + Winh`` with ``Wexc >= 0 >= Winh``.
    """
    q = np.asarray(qdata, dtype=np.int32)
    out, d = q.shape
    bounds = group_bounds(d, group_size)
    W = np.zeros((out, len(bounds), d), dtype=np.int32)
    for g, (a, b) in enumerate(bounds):
        W[:, g, a:b] = q[:, a:b]
    W = W.reshape(out * len(bounds), d)
    if not SCHEMES[scheme][0]:
        W = np.concatenate([W, -W], axis=1)
    return np.maximum(W, 0), np.minimum(W, 0)


# ----------------------------------------------------------------------------- Lava network
def _lava_classes():
    """Define the Lava processes and their models (imports lava; cached)."""
    global _LAVA
    if _LAVA is not None:
        return _LAVA
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.process.variable import Var
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    class SpikeSource(AbstractProcess):
        """Replays a ``[neurons, steps]`` spike array (graded values allowed), one column per step."""

        def __init__(self, *, data: np.ndarray, **kwargs) -> None:
            super().__init__(data=data, **kwargs)
            self.data = Var(shape=data.shape, init=data)
            self.s_out = OutPort(shape=data.shape[:1])

    class Accumulator(AbstractProcess):
        """Integer accumulators of one layer: per token window, sum (binary/ternary) or
        shift-and-add MSB first (bitwise; two's complement subtracts the first step)."""

        def __init__(self, *, size: int, n_tokens: int, base: int, period: int, window: int,
                     bitwise: bool, twos: bool, **kwargs) -> None:
            super().__init__(**kwargs)
            self.a_in = InPort(shape=(size,))
            self.s_out = OutPort(shape=(size,))
            self.acc = Var(shape=(size,), init=0)
            self.results = Var(shape=(n_tokens, size), init=0)
            self.params = Var(shape=(6,), init=np.array(
                [n_tokens, base, period, window, int(bitwise), int(twos)]))

    class Encoder(AbstractProcess):
        """Adaptive-threshold encoder between layers: finishes the previous layer's float
        output from its integer accumulators, computes Vth and counts, emits the spike train."""

        def __init__(self, *, n_in: int, n_out: int, rails: int, n_tokens: int, base: int,
                     period: int,
                     window: int, scheme: str, k: float, max_count: int | None,
                     scale_prev: np.ndarray, bias_prev: np.ndarray, vth_first: np.ndarray,
                     use_vth_port: bool, **kwargs) -> None:
            super().__init__(**kwargs)
            signed, bitwise, twos = SCHEMES[scheme]
            self.a_in = InPort(shape=(n_in,))
            self.vth_in = InPort(shape=(1,))
            self.s_out = OutPort(shape=(rails * n_out,))
            self.vth_out = OutPort(shape=(1,))
            self.scale_prev = Var(shape=scale_prev.shape, init=scale_prev)
            self.bias_prev = Var(shape=bias_prev.shape, init=bias_prev)
            self.vth_prev = Var(shape=(n_tokens,), init=vth_first)
            self.counts = Var(shape=(n_tokens, n_out), init=0)
            self.vth = Var(shape=(n_tokens,), init=0)
            self.trains = Var(shape=(n_tokens, window, rails * n_out), init=0)
            self.params = Var(shape=(10,), init=np.array(
                [n_tokens, base, period, window, int(signed), int(bitwise), int(twos),
                 float(k), -1.0 if max_count is None else float(max_count),
                 float(use_vth_port)], dtype=np.float64))
            self.n_saturated = Var(shape=(1,), init=0)

    class _SourceModel(PyLoihiProcessModel):
        def run_spk(self) -> None:
            col = self.time_step - 1
            if col < self.data.shape[1]:
                self.s_out.send(self.data[:, col])
            else:
                self.s_out.send(np.zeros(self.data.shape[0], dtype=self.data.dtype))

    @implements(proc=SpikeSource, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class SourceFloat(_SourceModel):
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
        data: np.ndarray = LavaPyType(np.ndarray, float)

    @implements(proc=SpikeSource, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class SourceFixed(_SourceModel):
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=2)
        data: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=2)

    def _slot(step: int, base: int, period: int, window: int, n_tokens: int):
        """(token, step within window) of Lava step ``step`` for a window starting at ``base``."""
        u = step - base
        if u < 0:
            return None
        j, t = divmod(u, period)
        if j >= n_tokens or t >= window:
            return None
        return j, t

    class _AccModel(PyLoihiProcessModel):
        def run_spk(self) -> None:
            x = self.a_in.recv()
            n, base, period, window, bitwise, twos = (int(v) for v in self.params)
            slot = _slot(self.time_step, base + 1, period, window, n)  # Dense delays by one step
            if slot is not None:
                j, t = slot
                if t == 0:
                    self.acc = (-x if twos else x).astype(self.acc.dtype)
                elif bitwise:
                    self.acc = self.acc * 2 + x  # shift-and-add, most significant bit first
                else:
                    self.acc = self.acc + x
                if t == window - 1:
                    self.results[j] = self.acc
            self.s_out.send(self.acc)

    @implements(proc=Accumulator, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class AccFloat(_AccModel):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
        acc: np.ndarray = LavaPyType(np.ndarray, float)
        results: np.ndarray = LavaPyType(np.ndarray, float)
        params: np.ndarray = LavaPyType(np.ndarray, np.int64)

    @implements(proc=Accumulator, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class AccFixed(_AccModel):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=32)
        acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
        results: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
        params: np.ndarray = LavaPyType(np.ndarray, np.int64)

    class _EncModel(PyLoihiProcessModel):
        def run_spk(self) -> None:
            acc = self.a_in.recv()
            vth_in = self.vth_in.recv()
            p = self.params
            n, base, period, window = (int(v) for v in p[:4])
            k, max_count, use_port = float(p[7]), int(p[8]), bool(p[9])
            step = self.time_step
            # 1. the previous layer's accumulators of token j arrive one step before the window
            u = step - (base - 1)
            if u >= 0 and u % period == 0 and u // period < n:
                j = u // period
                G = self.scale_prev.shape[1]
                vth_prev = float(vth_in[0]) if use_port else float(self.vth_prev[j])
                a = np.asarray(acc).reshape(1, -1, G)
                y = finish_output(a, np.array([vth_prev]), self.scale_prev, self.bias_prev)
                counts, vth, n_sat = encode_counts(y, k, None if max_count < 0 else max_count)
                scheme = _scheme_name(bool(p[4]), bool(p[5]), bool(p[6]))
                lo, hi = count_limits(scheme, window)
                n_sat += int(((counts < lo) | (counts > hi)).sum())
                counts = np.clip(counts, lo, hi)  # a window too short saturates (reported)
                self.counts[j] = counts[0]
                self.vth[j] = vth[0]
                self.vth_prev[j] = vth_prev
                self.n_saturated[0] = self.n_saturated[0] + n_sat
                self.trains[j] = to_rails(expand_spikes(counts[0], scheme, window).T, scheme).T
            # 2. emit the spike train of the token whose window is running
            slot = _slot(step, base, period, window, n)
            if slot is None:
                self.s_out.send(np.zeros(self.s_out.shape, dtype=self.trains.dtype))
            else:
                self.s_out.send(self.trains[slot[0], slot[1]])
            # 3. hand this layer's Vth on when its accumulator finishes token j
            slot_end = _slot(step, base + 1, period, window, n)
            v = 0.0
            if slot_end is not None and slot_end[1] == window - 1:
                v = float(self.vth[slot_end[0]])
            self.vth_out.send(np.array([v]))

    @implements(proc=Encoder, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class EncFloat(_EncModel):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
        vth_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
        vth_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
        scale_prev: np.ndarray = LavaPyType(np.ndarray, float)
        bias_prev: np.ndarray = LavaPyType(np.ndarray, float)
        vth_prev: np.ndarray = LavaPyType(np.ndarray, float)
        counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
        vth: np.ndarray = LavaPyType(np.ndarray, float)
        trains: np.ndarray = LavaPyType(np.ndarray, float)
        params: np.ndarray = LavaPyType(np.ndarray, float)
        n_saturated: np.ndarray = LavaPyType(np.ndarray, np.int64)

    # The encoder is a float computation by definition (Vth = mean|y|/k); its fixed-point model
    # keeps float64 arithmetic on the CPU and exchanges integers with the Dense/accumulators.
    @implements(proc=Encoder, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class EncFixed(_EncModel):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=32)
        vth_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=2)
        vth_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
        scale_prev: np.ndarray = LavaPyType(np.ndarray, float)
        bias_prev: np.ndarray = LavaPyType(np.ndarray, float)
        vth_prev: np.ndarray = LavaPyType(np.ndarray, float)
        counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
        vth: np.ndarray = LavaPyType(np.ndarray, float)
        trains: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=2)
        params: np.ndarray = LavaPyType(np.ndarray, float)
        n_saturated: np.ndarray = LavaPyType(np.ndarray, np.int64)

    models = {
        "floating_pt": {SpikeSource: SourceFloat, Accumulator: AccFloat, Encoder: EncFloat},
        "fixed_pt": {SpikeSource: SourceFixed, Accumulator: AccFixed, Encoder: EncFixed},
    }
    _LAVA = {"SpikeSource": SpikeSource, "Accumulator": Accumulator, "Encoder": Encoder,
             "models": models}
    return _LAVA


_LAVA = None


def _scheme_name(signed: bool, bitwise: bool, twos: bool) -> str:
    for name, flags in SCHEMES.items():
        if flags == (signed, bitwise, twos):
            return name
    raise ValueError("no such scheme")


def lava_version() -> str:
    """Installed lava-nc version (``"unknown"`` if the metadata is missing)."""
    try:
        from importlib.metadata import version

        return version("lava-nc")
    except Exception:  # noqa: BLE001  # pragma: no cover
        return "unknown"


def run_lava(bundle: Bundle, tag: str) -> dict:
    """Build the Lava network of ``bundle``, run it with ``Loihi2SimCfg(select_tag=tag)``.

    Returns a dict with per layer ``acc`` (int64 ``[n, out, G]``), ``counts`` (int64 ``[n, in]``),
    ``vth`` (float64 ``[n]``) and ``y`` (float64 ``[n, out]``, finished on the host), plus
    ``num_steps``, ``build_s``, ``run_s`` and ``n_saturated``.
    """
    if tag not in TAGS:
        raise ValueError(f"unknown tag {tag!r}; choose from {TAGS}")
    t0 = time.perf_counter()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense

    C = _lava_classes()
    layers = bundle.layers
    n = bundle.meta["n_tokens"]
    sched = Schedule.build([L["T"] for L in layers], n)
    if tag == "fixed_pt":
        for li, L in enumerate(layers):
            qmax = int(np.abs(L["qdata"].astype(np.int32)).max(initial=0))
            if qmax > 255:
                raise BundleError(
                    f"layer {li} has weight codes up to |{qmax}|; Lava's fixed-point Dense holds "
                    f"single-signed weights up to 255: run with --tags floating_pt only")
    src = C["SpikeSource"](data=source_schedule(bundle.arrays["input.spikes"],
                                                layers[0]["scheme"], sched))
    prev_out, accs, encs = src.s_out, [], []
    for li, L in enumerate(layers):
        signed = SCHEMES[L["scheme"]][0]
        if li > 0:
            P = layers[li - 1]
            enc = C["Encoder"](
                n_in=P["out_features"] * P["n_groups"], n_out=L["in_features"], n_tokens=n,
                rails=1 if signed else 2,
                base=sched.base[li], period=sched.period, window=L["T"], scheme=L["scheme"],
                k=float(L["k"]), max_count=L["max_count"],
                scale_prev=np.asarray(P["scale"], np.float64),
                bias_prev=(np.zeros(P["out_features"]) if P["bias"] is None
                           else np.asarray(P["bias"], np.float64)),
                vth_first=np.asarray(bundle.arrays["input.vth"], np.float64),
                use_vth_port=li > 1)
            accs[-1].s_out.connect(enc.a_in)
            if li > 1:
                encs[-1].vth_out.connect(enc.vth_in)
            encs.append(enc)
            prev_out = enc.s_out
        w_exc, w_inh = expand_weights(L["qdata"], L["group_size"], L["scheme"])
        acc = C["Accumulator"](size=w_exc.shape[0], n_tokens=n, base=sched.base[li],
                               period=sched.period, window=L["T"],
                               bitwise=SCHEMES[L["scheme"]][1], twos=SCHEMES[L["scheme"]][2])
        # graded +1/-1 spikes (ternary, bitwise_bidirectional) need num_message_bits > 0
        bits = 8 if signed and not SCHEMES[L["scheme"]][2] else 0
        for W in (w_exc, w_inh):
            dense = Dense(weights=W, num_message_bits=bits)
            prev_out.connect(dense.s_in)
            dense.a_out.connect(acc.a_in)
        accs.append(acc)
    # custom processes get their models by instance (Lava keys this map by process object)
    models = C["models"][tag]
    proc_map = {p: models[type(p)] for p in [src, *accs, *encs]}
    run_cfg = Loihi2SimCfg(select_tag=tag, exception_proc_model_map=proc_map)
    t1 = time.perf_counter()
    src.run(condition=RunSteps(num_steps=sched.num_steps), run_cfg=run_cfg)
    t2 = time.perf_counter()
    try:
        out: dict = {"num_steps": sched.num_steps, "layers": []}
        n_sat = 0
        for li, L in enumerate(layers):
            raw = np.asarray(accs[li].results.get())
            acc_i = np.rint(raw).astype(np.int64)
            if not np.array_equal(acc_i, raw):  # float model: values must be whole numbers
                raise RuntimeError(f"layer {li}: Lava accumulators are not integers")
            acc_i = acc_i.reshape(n, L["out_features"], L["n_groups"])
            if li == 0:
                counts = np.asarray(bundle.arrays["input.counts"], np.int64)
                vth = np.asarray(bundle.arrays["input.vth"], np.float64)
            else:
                counts = np.rint(np.asarray(encs[li - 1].counts.get())).astype(np.int64)
                vth = np.asarray(encs[li - 1].vth.get(), np.float64)
                n_sat += int(np.asarray(encs[li - 1].n_saturated.get())[0])
            y = finish_output(acc_i, vth, L["scale"], L["bias"])
            out["layers"].append({"acc": acc_i, "counts": counts, "vth": vth, "y": y})
        out["n_saturated"] = n_sat
    finally:
        src.stop()
    t3 = time.perf_counter()
    out.update(build_s=t1 - t0, run_s=t2 - t1, read_s=t3 - t2)
    return out


# ----------------------------------------------------------------------------- agreement
def agreement(bundle: Bundle, results: dict) -> list[dict]:
    """Per layer: exact-match counts of integer accumulators and input counts vs the bundle's
    torch reference, max |acc difference|, max |y difference| (float64 vs torch float32)."""
    rows = []
    for li, lay in enumerate(results["layers"]):
        ref_acc = bundle.arrays[f"ref.layer{li}.acc"].astype(np.int64)
        ref_cnt = bundle.arrays[f"ref.layer{li}.counts"].astype(np.int64)
        ref_y = bundle.arrays[f"ref.layer{li}.y"].astype(np.float64)
        acc = lay["acc"]
        rows.append({
            "layer": li,
            "name": bundle.meta["layers"][li]["name"],
            "acc_equal": int((acc == ref_acc).sum()),
            "acc_total": int(ref_acc.size),
            "acc_max_abs_diff": int(np.abs(acc - ref_acc).max(initial=0)),
            "counts_equal": int((lay["counts"] == ref_cnt).sum()),
            "counts_total": int(ref_cnt.size),
            "y_max_abs_diff": float(np.abs(lay["y"] - ref_y).max(initial=0.0)),
            "y_max_abs_ref": float(np.abs(ref_y).max(initial=0.0)),
        })
    return rows


def results_arrays(per_tag: dict) -> tuple[dict, dict]:
    """Flatten ``{tag: run_lava(...) output}`` into (arrays, meta) for the results file."""
    arrays, meta = {}, {"format": RESULTS_FORMAT, "schema_version": SCHEMA_VERSION,
                        "lava_version": lava_version(), "python": sys.version.split()[0],
                        "tags": list(per_tag), "runs": {}}
    for tag, res in per_tag.items():
        meta["runs"][tag] = {key: res[key] for key in
                             ("num_steps", "build_s", "run_s", "read_s", "n_saturated")}
        for li, lay in enumerate(res["layers"]):
            for key, val in lay.items():
                arrays[f"{tag}.layer{li}.{key}"] = val
    return arrays, meta


def run_bundle(bundle_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
               tags: tuple[str, ...] = TAGS) -> tuple[dict, dict]:
    """Load, validate and simulate a bundle for each tag; write the results file atomically.

    Returns ``(per_tag_results, results_meta)``.
    """
    bad = [t for t in tags if t not in TAGS]
    if bad or not tags:
        raise BundleError(f"unknown tags {bad or tags}; choose from {', '.join(TAGS)}")
    bundle = load_bundle(bundle_path)
    per_tag = {tag: run_lava(bundle, tag) for tag in tags}
    arrays, meta = results_arrays(per_tag)
    meta["bundle"] = os.path.abspath(os.fspath(bundle_path))
    meta["agreement"] = {tag: agreement(bundle, per_tag[tag]) for tag in tags}
    if out_path is not None:
        save_npz_atomic(out_path, arrays, meta)
    return per_tag, meta


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python lava_runner.py BUNDLE --out RESULTS [--tags a,b]``."""
    ap = argparse.ArgumentParser(description="Simulate a spikingbrain Lava bundle on Lava "
                                 "(Loihi 2 simulator) and write a results .npz.")
    ap.add_argument("bundle", help="bundle .npz written by spikingbrain export lava")
    ap.add_argument("--out", required=True, help="results .npz to write (atomically)")
    ap.add_argument("--tags", default=",".join(TAGS),
                    help="comma-separated Loihi2SimCfg tags: floating_pt, fixed_pt")
    args = ap.parse_args(argv)
    tags = tuple(t.strip() for t in args.tags.split(",") if t.strip())
    try:
        _, meta = run_bundle(args.bundle, args.out, tags)
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for tag, rows in meta["agreement"].items():
        for r in rows:
            print(f"{tag} layer {r['layer']} ({r['name']}): accumulators equal "
                  f"{r['acc_equal']}/{r['acc_total']}, max |diff| {r['acc_max_abs_diff']}; "
                  f"run {meta['runs'][tag]['run_s']:.2f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover - executed in the Lava environment
    sys.exit(main())
