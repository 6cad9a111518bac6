"""GPU energy measurement: integration on known power curves, the counter preferred, errors."""

import sys

import pytest

from spikingbrain.analysis.power import (
    NVMLUnavailable,
    PowerReadError,
    integrate,
    measure_energy,
    nvml_readers,
)


class FakeGPU:
    """A clock advanced by the readers and a power ramp P(t) = 100 + 50 t watts."""

    def __init__(self, dt=0.01):
        self.t, self.dt = 0.0, dt

    def clock(self):
        self.t += self.dt
        return self.t

    def power(self):
        return 100.0 + 50.0 * self.t


def test_trapezoids_are_exact_on_a_linear_ramp():
    samples = [(t / 10, 100 + 50 * t / 10) for t in range(11)]
    assert integrate(samples) == pytest.approx(100 * 1 + 25 * 1, rel=1e-12)
    assert integrate(samples[:1]) == 0.0


def test_measure_integrates_the_sampled_curve_and_prefers_the_counter():
    gpu = FakeGPU()
    m = measure_energy(lambda: sum(range(10_000)), tokens=4, read_power_w=gpu.power,
                       clock=gpu.clock, interval_s=0.0, min_samples=5)
    (t0, _), (t1, _) = m.samples[0], m.samples[-1]
    expected = 100 * (t1 - t0) + 25 * (t1 ** 2 - t0 ** 2)
    assert m.joules_sampled == pytest.approx(expected, rel=1e-9)
    assert m.joules_counter is None and m.joules == m.joules_sampled
    energy = iter([1000.0, 1012.5])
    m2 = measure_energy(lambda: None, tokens=5, read_power_w=gpu.power,
                        read_energy_j=lambda: next(energy), clock=gpu.clock, interval_s=0.0)
    assert m2.joules == 12.5 and m2.joules_per_token == 2.5
    assert m2.to_dict()["joules_counter"] == 12.5


def test_bad_token_count_and_missing_nvml(monkeypatch):
    with pytest.raises(ValueError, match="tokens must be a positive int"):
        measure_energy(lambda: None, tokens=0, read_power_w=lambda: 1.0)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(NVMLUnavailable, match="pip install nvidia-ml-py"):
        nvml_readers()


class NVMLError(Exception):
    pass


class FakeNVML:
    """A pynvml stand-in: GPUs by NVML index, each with a UUID, power (mW) and energy (mJ)."""

    NVMLError = NVMLError

    def __init__(self, uuids, power_mw, energy_mj=None):
        self.uuids, self.power_mw, self.energy_mj = uuids, power_mw, energy_mj

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.uuids)

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("handle", i)

    def nvmlDeviceGetUUID(self, h):
        return self.uuids[h[1]]

    def nvmlDeviceGetPowerUsage(self, h):
        return self.power_mw[h[1]]

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if self.energy_mj is None:
            raise NVMLError("not supported")
        return self.energy_mj[h[1]]


UUIDS = [b"GPU-00000000-aaaa-0000-0000-000000000000", "GPU-11111111-BBBB-1111-1111-111111111111",
         "GPU-22222222-cccc-2222-2222-222222222222"]


def test_nvml_handle_is_the_cuda_devices_uuid_not_nvmls_index(monkeypatch):
    """CUDA_VISIBLE_DEVICES=2: CUDA device 0 is NVML's GPU 2; its power is read, not GPU 0's."""
    from spikingbrain.analysis import power

    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(UUIDS, [100_000, 200_000, 300_000],
                                                        [5_000, 6_000, 7_000]))
    # torch prints the UUID without NVML's "GPU-" prefix
    monkeypatch.setattr(power, "_cuda_uuid", lambda i: {0: "22222222-cccc-2222-2222-222222222222",
                                                        1: "00000000-AAAA-0000-0000-000000000000"}[i])
    read_power, read_energy = nvml_readers(0)
    assert read_power() == 300.0 and read_energy() == 7.0
    assert nvml_readers(1)[0]() == 100.0  # a bytes UUID from NVML matches too
    monkeypatch.setattr(power, "_cuda_uuid", lambda i: "99999999-0000-0000-0000-000000000000")
    with pytest.raises(NVMLUnavailable, match="no NVML device has the UUID 99999999"):
        nvml_readers(0)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(UUIDS, [1, 2, 3]))  # no counter
    monkeypatch.setattr(power, "_cuda_uuid", lambda i: UUIDS[1])
    assert nvml_readers(0)[1] is None
    with pytest.raises(ValueError, match="device_index must be an int >= 0"):
        nvml_readers(-1)


def test_cuda_uuid_comes_from_torch_device_properties(monkeypatch):
    import types

    import torch

    from spikingbrain.analysis import power

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: types.SimpleNamespace(uuid=UUIDS[2 if i == 0 else 0]))
    assert power._cuda_uuid(0) == UUIDS[2]
    with pytest.raises(NVMLUnavailable, match=r"CUDA device 5 is not visible .*'2,0'"):
        power._cuda_uuid(5)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(NVMLUnavailable, match=r"0 device\(s\)"):
        power._cuda_uuid(0)


def test_a_failing_power_reader_raises_with_its_error_not_zero_joules(capfd):
    gpu, calls = FakeGPU(), []

    def flaky():
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST")
        return gpu.power()

    with pytest.raises(PowerReadError, match="after 2 sample") as err:
        measure_energy(lambda: None, tokens=1, read_power_w=flaky, clock=gpu.clock,
                       interval_s=0.0, min_samples=5)
    assert isinstance(err.value.__cause__, RuntimeError)
    assert "NVML_ERROR_GPU_IS_LOST" in str(err.value)
    assert "Traceback" not in capfd.readouterr().err  # no thread traceback on stderr


@pytest.mark.parametrize("bad", [float("nan"), -5.0, float("inf"), "12 W"])
def test_impossible_power_readings_raise(bad):
    gpu, readings = FakeGPU(), iter([250.0, bad])
    with pytest.raises(PowerReadError, match=r"power reading #2 \(W\)"):
        measure_energy(lambda: None, tokens=1, read_power_w=lambda: next(readings, 250.0),
                       clock=gpu.clock, interval_s=0.0, min_samples=3)


def test_energy_counter_going_down_or_failing_raises():
    gpu = FakeGPU()
    energy = iter([1000.0, 990.0])
    with pytest.raises(PowerReadError, match="went down from 1000.0 J to 990.0 J"):
        measure_energy(lambda: None, tokens=1, read_power_w=gpu.power,
                       read_energy_j=lambda: next(energy), clock=gpu.clock, interval_s=0.0)
    energy = iter([1000.0, float("nan")])
    with pytest.raises(PowerReadError, match="energy counter after the call is nan"):
        measure_energy(lambda: None, tokens=1, read_power_w=gpu.power,
                       read_energy_j=lambda: next(energy), clock=gpu.clock, interval_s=0.0)

    def broken():
        raise OSError("counter gone")

    with pytest.raises(PowerReadError, match="energy counter failed before the call") as err:
        measure_energy(lambda: None, tokens=1, read_power_w=gpu.power, read_energy_j=broken,
                       clock=gpu.clock, interval_s=0.0)
    assert isinstance(err.value.__cause__, OSError)
    energy = iter([1000.0, 1000.0])  # equal is fine: 0 J measured, not an error
    m = measure_energy(lambda: None, tokens=1, read_power_w=gpu.power,
                       read_energy_j=lambda: next(energy), clock=gpu.clock, interval_s=0.0)
    assert m.joules_counter == 0.0
