"""Measured GPU energy: sample the board power through NVML while code runs, integrate it.

:func:`measure_energy` runs a callable while a background thread samples the GPU's power
(``nvmlDeviceGetPowerUsage``) and integrates the samples over time (trapezoids); where the
driver exposes the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, Volta and
later) its difference over the call is reported beside it. NVML (``pip install
nvidia-ml-py``) is imported only when a measurement starts; the readers can be injected, so
the integration is tested without a GPU.

>>> import itertools
>>> clock = itertools.count(0.0, 0.5)          # a fake clock: 0, 0.5, 1.0, ... seconds
>>> m = measure_energy(lambda: None, tokens=10, read_power_w=lambda: 300.0,
...                    clock=lambda: next(clock), interval_s=0.0, min_samples=3)
>>> m.joules_sampled > 0, m.joules_per_token == m.joules / 10
(True, True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EnergyMeasurement", "NVMLUnavailable", "integrate", "measure_energy", "nvml_readers"]


class NVMLUnavailable(RuntimeError):
    """NVML cannot be used here (no nvidia-ml-py, no NVIDIA driver or no such GPU)."""


def integrate(samples: list[tuple[float, float]]) -> float:
    """Joules from ``(seconds, watts)`` samples by the trapezoid rule (0 for < 2 samples).

    >>> integrate([(0.0, 100.0), (1.0, 200.0), (3.0, 200.0)])
    550.0
    """
    pts = sorted(samples)
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(pts, pts[1:]))


@dataclass
class EnergyMeasurement:
    """Energy of one measured call: sampled (trapezoids) and, where available, from the
    driver's energy counter, which is preferred for ``joules``."""

    seconds: float
    tokens: int
    joules_sampled: float
    joules_counter: float | None
    samples: list[tuple[float, float]] = field(default_factory=list, repr=False)

    @property
    def joules(self) -> float:
        return self.joules_counter if self.joules_counter is not None else self.joules_sampled

    @property
    def joules_per_token(self) -> float:
        return self.joules / self.tokens if self.tokens else float("nan")

    @property
    def mean_power_w(self) -> float:
        return self.joules / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "tokens": self.tokens, "joules": self.joules,
                "joules_sampled": self.joules_sampled, "joules_counter": self.joules_counter,
                "joules_per_token": self.joules_per_token, "mean_power_w": self.mean_power_w,
                "n_samples": len(self.samples)}


def nvml_readers(device_index: int = 0) -> tuple[Callable[[], float],
                                                  Callable[[], float] | None]:
    """``(power in W, total energy in J or None)`` readers of GPU ``device_index``."""
    try:
        import pynvml
    except ImportError:
        raise NVMLUnavailable("measuring GPU energy needs NVML: pip install nvidia-ml-py") \
            from None
    try:
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(device_index)
    except pynvml.NVMLError as err:
        raise NVMLUnavailable(f"NVML cannot open GPU {device_index}: {err} (is an NVIDIA "
                              f"driver present?)") from None

    def power() -> float:
        return pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0

    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(h)

        def energy() -> float:
            return pynvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0
    except pynvml.NVMLError:
        energy = None
    return power, energy


def measure_energy(fn: Callable[[], Any], tokens: int, *, device_index: int = 0,
                   interval_s: float = 0.005, read_power_w: Callable[[], float] | None = None,
                   read_energy_j: Callable[[], float] | None = None,
                   synchronize: Callable[[], None] | None = None,
                   clock: Callable[[], float] = time.perf_counter,
                   min_samples: int = 2) -> EnergyMeasurement:
    """Run ``fn()`` once while sampling power; the energy it took, per token.

    Args:
        fn: the work (e.g. a model's forward); ``synchronize`` (e.g.
            ``torch.cuda.synchronize``) runs before the clock starts and before it stops, so
            asynchronous GPU work is inside the window.
        tokens: tokens the call processes (for J per token), >= 1.
        read_power_w / read_energy_j: injected readers; default NVML's for ``device_index``.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive int, got {tokens!r}")
    if read_power_w is None:
        read_power_w, counter = nvml_readers(device_index)
        read_energy_j = read_energy_j or counter
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set() or len(samples) < min_samples:
            samples.append((clock(), read_power_w()))
            if stop.wait(interval_s) and len(samples) >= min_samples:
                break

    if synchronize:
        synchronize()
    e0 = read_energy_j() if read_energy_j else None
    t0 = clock()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
        if synchronize:
            synchronize()
    finally:
        t1 = clock()
        stop.set()
        thread.join()
    e1 = read_energy_j() if read_energy_j else None
    joules_counter = (e1 - e0) if e0 is not None and e1 is not None else None
    return EnergyMeasurement(t1 - t0, tokens, integrate(samples), joules_counter, samples)
