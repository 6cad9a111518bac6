"""Lava processes of the runner and their floating- and fixed-point process models.

Standard library + numpy; lava-nc is imported when :func:`lava_models` first runs (under
Python 3.10 with lava-nc 0.10.0), so this module imports anywhere. The processes' step
functions are plain module functions, so each piece stays small and readable.

- :class:`SpikeSource` replays a ``[neurons, steps]`` array (graded values allowed).
- :class:`Accumulator` keeps one layer's integer accumulators per token window.
- :class:`Encoder` finishes the previous layer's float output, computes Vth and the counts,
  and emits the next layer's spike train.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace

import numpy as np


def _sibling(name: str):
    """Module ``name`` of this folder, inside the package or run from the folder itself."""
    return import_module(f".{name}", __package__) if __package__ else import_module(name)


cm = _sibling("count_math")

__all__ = ["lava_models"]


def _slot(step: int, base: int, period: int, window: int, n_tokens: int):
    """(token, step within window) of Lava step ``step`` for a window starting at ``base``."""
    u = step - base
    if u < 0:
        return None
    j, t = divmod(u, period)
    if j >= n_tokens or t >= window:
        return None
    return j, t


def _source_step(self) -> None:
    """SpikeSource.run_spk: send this step's column (zeros after the end)."""
    col = self.time_step - 1
    if col < self.data.shape[1]:
        self.s_out.send(self.data[:, col])
    else:
        self.s_out.send(np.zeros(self.data.shape[0], dtype=self.data.dtype))


def _accumulate_step(self) -> None:
    """Accumulator.run_spk: add this step's input to the token window's accumulators."""
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


def _encode_step(self) -> None:
    """Encoder.run_spk: encode the previous layer's finished token, emit spikes, pass Vth on."""
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
        y = cm.finish_output(a, np.array([vth_prev]), self.scale_prev, self.bias_prev)
        counts, vth, n_sat = cm.encode_counts(y, k, None if max_count < 0 else max_count)
        scheme = cm.scheme_name(bool(p[4]), bool(p[5]), bool(p[6]))
        lo, hi = cm.count_limits(scheme, window)
        n_sat += int(((counts < lo) | (counts > hi)).sum())
        counts = np.clip(counts, lo, hi)  # a window too short saturates (reported)
        self.counts[j] = counts[0]
        self.vth[j] = vth[0]
        self.vth_prev[j] = vth_prev
        self.n_saturated[0] = self.n_saturated[0] + n_sat
        self.trains[j] = cm.to_rails(cm.expand_spikes(counts[0], scheme, window).T, scheme).T
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


def _lava_api() -> SimpleNamespace:
    """The lava-nc names the processes and models use."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.process.variable import Var
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    return SimpleNamespace(
        implements=implements, requires=requires, tag=tag, CPU=CPU, LoihiProtocol=LoihiProtocol,
        PyLoihiProcessModel=PyLoihiProcessModel, PyInPort=PyInPort, PyOutPort=PyOutPort,
        LavaPyType=LavaPyType, InPort=InPort, OutPort=OutPort, AbstractProcess=AbstractProcess,
        Var=Var)


def _process_classes(L: SimpleNamespace) -> tuple[type, type, type]:
    """``(SpikeSource, Accumulator, Encoder)``: the runner's Lava processes."""

    class SpikeSource(L.AbstractProcess):
        """Replays a ``[neurons, steps]`` spike array (graded values allowed), one column a
        step."""

        def __init__(self, *, data: np.ndarray, **kwargs) -> None:
            super().__init__(data=data, **kwargs)
            self.data = L.Var(shape=data.shape, init=data)
            self.s_out = L.OutPort(shape=data.shape[:1])

    class Accumulator(L.AbstractProcess):
        """Integer accumulators of one layer: per token window, sum (binary/ternary) or
        shift-and-add MSB first (bitwise; two's complement subtracts the first step)."""

        def __init__(self, *, size: int, n_tokens: int, base: int, period: int, window: int,
                     bitwise: bool, twos: bool, **kwargs) -> None:
            super().__init__(**kwargs)
            self.a_in = L.InPort(shape=(size,))
            self.s_out = L.OutPort(shape=(size,))
            self.acc = L.Var(shape=(size,), init=0)
            self.results = L.Var(shape=(n_tokens, size), init=0)
            self.params = L.Var(shape=(6,), init=np.array(
                [n_tokens, base, period, window, int(bitwise), int(twos)]))

    class Encoder(L.AbstractProcess):
        """Adaptive-threshold encoder between layers: finishes the previous layer's float
        output from its integer accumulators, computes Vth and counts, emits the spike train."""

        def __init__(self, *, n_in: int, n_out: int, rails: int, n_tokens: int, base: int,
                     period: int,
                     window: int, scheme: str, k: float, max_count: int | None,
                     scale_prev: np.ndarray, bias_prev: np.ndarray, vth_first: np.ndarray,
                     use_vth_port: bool, **kwargs) -> None:
            super().__init__(**kwargs)
            signed, bitwise, twos = cm.SCHEMES[scheme]
            self.a_in = L.InPort(shape=(n_in,))
            self.vth_in = L.InPort(shape=(1,))
            self.s_out = L.OutPort(shape=(rails * n_out,))
            self.vth_out = L.OutPort(shape=(1,))
            self.scale_prev = L.Var(shape=scale_prev.shape, init=scale_prev)
            self.bias_prev = L.Var(shape=bias_prev.shape, init=bias_prev)
            self.vth_prev = L.Var(shape=(n_tokens,), init=vth_first)
            self.counts = L.Var(shape=(n_tokens, n_out), init=0)
            self.vth = L.Var(shape=(n_tokens,), init=0)
            self.trains = L.Var(shape=(n_tokens, window, rails * n_out), init=0)
            self.params = L.Var(shape=(10,), init=np.array(
                [n_tokens, base, period, window, int(signed), int(bitwise), int(twos),
                 float(k), -1.0 if max_count is None else float(max_count),
                 float(use_vth_port)], dtype=np.float64))
            self.n_saturated = L.Var(shape=(1,), init=0)

    return SpikeSource, Accumulator, Encoder


#: per process: port/variable name -> (kind, floating_pt type, fixed_pt type); a type is a dtype
#: or ``(dtype, precision in bits)``. The encoder is a float computation by definition
#: (Vth = mean|y|/k): its fixed-point model keeps float64 arithmetic on the CPU and exchanges
#: integers with the Dense processes and accumulators.
_SOURCE_VARS = {
    "s_out": ("out", float, (np.int32, 2)),
    "data": ("var", float, (np.int32, 2)),
}
_ACCUMULATOR_VARS = {
    "a_in": ("in", float, (np.int32, 24)),
    "s_out": ("out", float, (np.int64, 32)),
    "acc": ("var", float, (np.int64, 32)),
    "results": ("var", float, (np.int64, 32)),
    "params": ("var", np.int64, np.int64),
}
_ENCODER_VARS = {
    "a_in": ("in", float, (np.int64, 32)),
    "vth_in": ("in", float, float),
    "s_out": ("out", float, (np.int32, 2)),
    "vth_out": ("out", float, float),
    **{name: ("var", float, float) for name in ("scale_prev", "bias_prev", "vth_prev", "vth",
                                                  "params")},
    "counts": ("var", np.int64, np.int64),
    "trains": ("var", float, (np.int32, 2)),
    "n_saturated": ("var", np.int64, np.int64),
}
_TAGS = ("floating_pt", "fixed_pt")


def _lava_type(L: SimpleNamespace, kind: str, spec: object) -> object:
    """``LavaPyType`` of a port (``kind`` "in"/"out") or a variable ("var")."""
    dtype, precision = spec if isinstance(spec, tuple) else (spec, None)
    container = {"in": L.PyInPort.VEC_DENSE, "out": L.PyOutPort.VEC_DENSE, "var": np.ndarray}[kind]
    if precision is None:
        return L.LavaPyType(container, dtype)
    return L.LavaPyType(container, dtype, precision=precision)


def _models(L: SimpleNamespace, proc: type, run_spk, table: dict) -> dict[str, type]:
    """``{tag: process model class}`` of ``proc`` for both tags, built from ``table``."""
    models = {}
    for i, tag in enumerate(_TAGS):
        attrs = {name: _lava_type(L, kind, specs[i]) for name, (kind, *specs) in table.items()}
        attrs.update(run_spk=run_spk, __module__=__name__)
        cls = type(f"{proc.__name__}_{tag}", (L.PyLoihiProcessModel,), attrs)
        cls = L.implements(proc=proc, protocol=L.LoihiProtocol)(L.requires(L.CPU)(L.tag(tag)(cls)))
        models[tag] = cls
    return models


_CACHE: dict = {}


def lava_models() -> SimpleNamespace:
    """The processes and, per tag, ``models[tag][process class] -> model class`` (imports
    lava-nc on the first call; cached)."""
    if not _CACHE:
        L = _lava_api()
        procs = _process_classes(L)
        per_proc = [_models(L, proc, run, table) for proc, run, table in zip(
            procs, (_source_step, _accumulate_step, _encode_step),
            (_SOURCE_VARS, _ACCUMULATOR_VARS, _ENCODER_VARS))]
        _CACHE["ns"] = SimpleNamespace(
            SpikeSource=procs[0], Accumulator=procs[1], Encoder=procs[2],
            models={tag: {proc: m[tag] for proc, m in zip(procs, per_proc)} for tag in _TAGS})
    return _CACHE["ns"]
