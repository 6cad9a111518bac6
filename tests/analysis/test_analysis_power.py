"""GPU energy measurement: integration on known power curves, the counter preferred, errors."""

import sys

import pytest

from spikingbrain.analysis.power import NVMLUnavailable, integrate, measure_energy, nvml_readers


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
