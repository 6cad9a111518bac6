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

from types import SimpleNamespace

import numpy as np

if __package__:  # inside the spikingbrain package
    from .count_math import (
        SCHEMES,
        count_limits,
        encode_counts,
        expand_spikes,
        finish_output,
        scheme_name,
        to_rails,
    )
else:  # run from this folder without the package (the Lava environment)
    from count_math import (  # type: ignore[no-redef]
        SCHEMES,
        count_limits,
        encode_counts,
        expand_spikes,
        finish_output,
        scheme_name,
        to_rails,
    )

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
        y = finish_output(a, np.array([vth_prev]), self.scale_prev, self.bias_prev)
        counts, vth, n_sat = encode_counts(y, k, None if max_count < 0 else max_count)
        scheme = scheme_name(bool(p[4]), bool(p[5]), bool(p[6]))
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
            signed, bitwise, twos = SCHEMES[scheme]
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


def _source_models(L: SimpleNamespace, SpikeSource: type) -> tuple[type, type]:
    """Floating- and fixed-point models of SpikeSource."""

    @L.implements(proc=SpikeSource, protocol=L.LoihiProtocol)
    @L.requires(L.CPU)
    @L.tag("floating_pt")
    class SourceFloat(L.PyLoihiProcessModel):
        run_spk = _source_step
        s_out: L.PyOutPort = L.LavaPyType(L.PyOutPort.VEC_DENSE, float)
        data: np.ndarray = L.LavaPyType(np.ndarray, float)

    @L.implements(proc=SpikeSource, protocol=L.LoihiProtocol)
    @L.requires(L.CPU)
    @L.tag("fixed_pt")
    class SourceFixed(L.PyLoihiProcessModel):
        run_spk = _source_step
        s_out: L.PyOutPort = L.LavaPyType(L.PyOutPort.VEC_DENSE, np.int32, precision=2)
        data: np.ndarray = L.LavaPyType(np.ndarray, np.int32, precision=2)

    return SourceFloat, SourceFixed


def _accumulator_models(L: SimpleNamespace, Accumulator: type) -> tuple[type, type]:
    """Floating- and fixed-point models of Accumulator."""

    @L.implements(proc=Accumulator, protocol=L.LoihiProtocol)
    @L.requires(L.CPU)
    @L.tag("floating_pt")
    class AccFloat(L.PyLoihiProcessModel):
        run_spk = _accumulate_step
        a_in: L.PyInPort = L.LavaPyType(L.PyInPort.VEC_DENSE, float)
        s_out: L.PyOutPort = L.LavaPyType(L.PyOutPort.VEC_DENSE, float)
        acc: np.ndarray = L.LavaPyType(np.ndarray, float)
        results: np.ndarray = L.LavaPyType(np.ndarray, float)
        params: np.ndarray = L.LavaPyType(np.ndarray, np.int64)

    @L.implements(proc=Accumulator, protocol=L.LoihiProtocol)
    @L.requires(L.CPU)
    @L.tag("fixed_pt")
    class AccFixed(L.PyLoihiProcessModel):
        run_spk = _accumulate_step
        a_in: L.PyInPort = L.LavaPyType(L.PyInPort.VEC_DENSE, np.int32, precision=24)
        s_out: L.PyOutPort = L.LavaPyType(L.PyOutPort.VEC_DENSE, np.int64, precision=32)
        acc: np.ndarray = L.LavaPyType(np.ndarray, np.int64, precision=32)
        results: np.ndarray = L.LavaPyType(np.ndarray, np.int64, precision=32)
        params: np.ndarray = L.LavaPyType(np.ndarray, np.int64)

    return AccFloat, AccFixed


def _encoder_models(L: SimpleNamespace, Encoder: type) -> tuple[type, type]:
    """Floating- and fixed-point models of Encoder."""

    @L.implements(proc=Encoder, protocol=L.LoihiProtocol)
    @L.requires(L.CPU)
    @L.tag("floating_pt")
    class EncFloat(L.PyLoihiProcessModel):
        run_spk = _encode_step
        a_in: L.PyInPort = L.LavaPyType(L.PyInPort.VEC_DENSE, float)
        vth_in: L.PyInPort = L.LavaPyType(L.PyInPort.VEC_DENSE, float)
        s_out: L.PyOutPort = L.LavaPyType(L.PyOutPort.VEC_DENSE, float)
        vth_out: L.PyOutPort = L.LavaPyType(L.PyOutPort.VEC_DENSE, float)
        scale_prev: np.ndarray = L.LavaPyType(np.ndarray, float)
        bias_prev: np.ndarray = L.LavaPyType(np.ndarray, float)
        vth_prev: np.ndarray = L.LavaPyType(np.ndarray, float)
        counts: np.ndarray = L.LavaPyType(np.ndarray, np.int64)
        vth: np.ndarray = L.LavaPyType(np.ndarray, float)
        trains: np.ndarray = L.LavaPyType(np.ndarray, float)
        params: np.ndarray = L.LavaPyType(np.ndarray, float)
        n_saturated: np.ndarray = L.LavaPyType(np.ndarray, np.int64)

    # The encoder is a float computation by definition (Vth = mean|y|/k); its fixed-point model
    # keeps float64 arithmetic on the CPU and exchanges integers with the Dense/accumulators.
    @L.implements(proc=Encoder, protocol=L.LoihiProtocol)
    @L.requires(L.CPU)
    @L.tag("fixed_pt")
    class EncFixed(L.PyLoihiProcessModel):
        run_spk = _encode_step
        a_in: L.PyInPort = L.LavaPyType(L.PyInPort.VEC_DENSE, np.int64, precision=32)
        vth_in: L.PyInPort = L.LavaPyType(L.PyInPort.VEC_DENSE, float)
        s_out: L.PyOutPort = L.LavaPyType(L.PyOutPort.VEC_DENSE, np.int32, precision=2)
        vth_out: L.PyOutPort = L.LavaPyType(L.PyOutPort.VEC_DENSE, float)
        scale_prev: np.ndarray = L.LavaPyType(np.ndarray, float)
        bias_prev: np.ndarray = L.LavaPyType(np.ndarray, float)
        vth_prev: np.ndarray = L.LavaPyType(np.ndarray, float)
        counts: np.ndarray = L.LavaPyType(np.ndarray, np.int64)
        vth: np.ndarray = L.LavaPyType(np.ndarray, float)
        trains: np.ndarray = L.LavaPyType(np.ndarray, np.int32, precision=2)
        params: np.ndarray = L.LavaPyType(np.ndarray, float)
        n_saturated: np.ndarray = L.LavaPyType(np.ndarray, np.int64)

    return EncFloat, EncFixed


_CACHE: dict = {}


def lava_models() -> SimpleNamespace:
    """The processes and, per tag, ``models[tag][process class] -> model class`` (imports
    lava-nc on the first call; cached)."""
    if not _CACHE:
        L = _lava_api()
        SpikeSource, Accumulator, Encoder = _process_classes(L)
        src_f, src_x = _source_models(L, SpikeSource)
        acc_f, acc_x = _accumulator_models(L, Accumulator)
        enc_f, enc_x = _encoder_models(L, Encoder)
        _CACHE["ns"] = SimpleNamespace(
            SpikeSource=SpikeSource, Accumulator=Accumulator, Encoder=Encoder,
            models={"floating_pt": {SpikeSource: src_f, Accumulator: acc_f, Encoder: enc_f},
                    "fixed_pt": {SpikeSource: src_x, Accumulator: acc_x, Encoder: enc_x}})
    return _CACHE["ns"]
