"""Measured GPU energy: sample the board power through NVML while code runs, integrate it.

:func:`measure_energy` runs a callable while a background thread samples the GPU's power
(``nvmlDeviceGetPowerUsage``) and integrates the samples over time (trapezoids); where the
driver exposes the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, Volta and
later) its difference over the call is reported beside it. NVML (``pip install
nvidia-ml-py``) is imported only when a measurement starts; the readers can be injected, so
the integration is tested without a GPU.

A measurement never returns a silent wrong figure: a failing reader (in the sampling thread or
the counter), a NaN, infinite or negative power reading and an energy counter that goes down
raise :class:`PowerReadError` carrying the cause. The GPU is the CUDA device ``device_index``
as torch numbers it (so ``CUDA_VISIBLE_DEVICES`` is respected): its NVML handle is the one
whose UUID equals the CUDA device's UUID, not NVML's own index.

>>> import itertools
>>> clock = itertools.count(0.0, 0.5)          # a fake clock: 0, 0.5, 1.0, ... seconds
>>> m = measure_energy(lambda: None, tokens=10, read_power_w=lambda: 300.0,
...                    clock=lambda: next(clock), interval_s=0.0, min_samples=3)
>>> m.joules_sampled > 0, m.joules_per_token == m.joules / 10
(True, True)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EnergyMeasurement", "NVMLUnavailable", "PowerReadError", "integrate",
           "measure_energy", "nvml_readers"]


class NVMLUnavailable(RuntimeError):
    """NVML cannot be used here (no nvidia-ml-py, no NVIDIA driver or no such GPU)."""


class PowerReadError(RuntimeError):
    """A power or energy reading failed or was impossible (NaN, negative, a counter going
    down); the measurement has no valid figure. ``__cause__`` is the reader's own error."""


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


def _bare_uuid(uuid: Any) -> str:
    """A GPU UUID without NVML's ``GPU-`` / ``MIG-`` prefix, lower case.

    >>> _bare_uuid(b"GPU-5A2F0C3E-0000-1111-2222-333344445555")
    '5a2f0c3e-0000-1111-2222-333344445555'
    """
    u = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    u = u.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if u.startswith(prefix):
            u = u[len(prefix):]
    return u


def _cuda_uuid(device_index: int) -> str:
    """The UUID of CUDA device ``device_index`` as torch numbers the devices (after
    ``CUDA_VISIBLE_DEVICES``)."""
    import os

    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not 0 <= device_index < n:
        raise NVMLUnavailable(
            f"CUDA device {device_index} is not visible to torch ({n} device(s); "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}): no GPU to "
            f"measure")
    return str(torch.cuda.get_device_properties(device_index).uuid)


def nvml_readers(device_index: int = 0) -> tuple[Callable[[], float],
                                                  Callable[[], float] | None]:
    """``(power in W, total energy in J or None)`` readers of CUDA device ``device_index``.

    The NVML handle is found by UUID (``torch.cuda.get_device_properties(i).uuid`` against
    ``nvmlDeviceGetUUID``): NVML numbers every GPU of the host and ignores
    ``CUDA_VISIBLE_DEVICES``, so its index ``i`` may be another process's GPU.
    """
    if isinstance(device_index, bool) or not isinstance(device_index, int) or device_index < 0:
        raise ValueError(f"device_index must be an int >= 0 (a CUDA device), got "
                         f"{device_index!r}")
    try:
        import pynvml
    except ImportError:
        raise NVMLUnavailable("measuring GPU energy needs NVML: pip install nvidia-ml-py") \
            from None
    want = _bare_uuid(_cuda_uuid(device_index))
    try:
        pynvml.nvmlInit()
        seen = []
        h = None
        for i in range(pynvml.nvmlDeviceGetCount()):
            cand = pynvml.nvmlDeviceGetHandleByIndex(i)
            u = _bare_uuid(pynvml.nvmlDeviceGetUUID(cand))
            seen.append(u)
            if u == want:
                h = cand
                break
    except pynvml.NVMLError as err:
        raise NVMLUnavailable(f"NVML cannot list the GPUs: {err} (is an NVIDIA driver "
                              f"present?)") from None
    if h is None:
        raise NVMLUnavailable(f"no NVML device has the UUID {want} of CUDA device "
                              f"{device_index} (NVML sees {seen})")

    def power() -> float:
        return pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0

    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(h)

        def energy() -> float:
            return pynvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0
    except pynvml.NVMLError:
        energy = None
    return power, energy


def _checked(value: Any, what: str) -> float:
    """``value`` as a finite float >= 0, else :class:`PowerReadError` naming ``what``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PowerReadError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise PowerReadError(f"{what} is {v!r}: a reading must be a finite number >= 0 (a "
                             f"faulty sensor or driver; the measurement is void)")
    return v


def _read_energy(read: Callable[[], float], when: str) -> float:
    try:
        value = read()
    except Exception as err:
        raise PowerReadError(f"the energy counter failed {when}: {err!r}") from err
    return _checked(value, f"the energy counter {when}")


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
        device_index: the CUDA device (torch's numbering) whose NVML readers are used.
        read_power_w / read_energy_j: injected readers; default NVML's for ``device_index``.

    Raises:
        PowerReadError: a reader failed (its error is the ``__cause__``), a power reading was
            NaN, infinite or negative, or the energy counter went down; never a 0 J or NaN
            result in their place.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive int, got {tokens!r}")
    if read_power_w is None:
        read_power_w, counter = nvml_readers(device_index)
        read_energy_j = read_energy_j or counter
    samples: list[tuple[float, float]] = []
    failure: list[BaseException] = []
    stop = threading.Event()

    def sample() -> None:
        try:
            while not stop.is_set() or len(samples) < min_samples:
                t, w = clock(), read_power_w()
                samples.append((t, _checked(w, f"power reading #{len(samples) + 1} (W)")))
                if stop.wait(interval_s) and len(samples) >= min_samples:
                    break
        except BaseException as err:  # reported by the caller, not printed by threading
            failure.append(err)

    if synchronize:
        synchronize()
    e0 = _read_energy(read_energy_j, "before the call") if read_energy_j else None
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
    if failure:
        err = failure[0]
        if isinstance(err, PowerReadError):  # an impossible reading: its own message
            raise err
        raise PowerReadError(f"the power reader failed in the sampling thread after "
                             f"{len(samples)} sample(s): {err!r}") from err
    e1 = _read_energy(read_energy_j, "after the call") if read_energy_j else None
    joules_counter = None
    if e0 is not None and e1 is not None:
        if e1 < e0:
            raise PowerReadError(f"the energy counter went down from {e0!r} J to {e1!r} J "
                                 f"over the call (a reset or a wrapped counter): no valid "
                                 f"energy figure")
        joules_counter = e1 - e0
    return EnergyMeasurement(t1 - t0, tokens, integrate(samples), joules_counter, samples)
