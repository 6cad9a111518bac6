"""Shared test settings: hypothesis profiles and a CUDA device fixture."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

if not torch.cuda.is_available():  # the Triton kernels run on CPU tensors (interpreter)
    os.environ.setdefault("TRITON_INTERPRET", "1")

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=_devices())
def device(request) -> str:
    """Runs a test on the CPU and, where one exists, on CUDA."""
    return request.param


def _strict() -> bool:
    return os.environ.get("SPIKINGBRAIN_STRICT_SKIPS") == "1"


def _reason(report) -> str:
    return report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Under ``make test`` a module skipped while it is collected (a module-level
    ``pytest.importorskip`` whose import is missing) fails too: the runtest hook below never
    sees such modules, which would otherwise vanish from the run silently."""
    outcome = yield
    report = outcome.get_result()
    if _strict() and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped while collecting under make test, where it must run: " \
                          f"{_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``make test`` (SPIKINGBRAIN_STRICT_SKIPS=1) a skip is a failure.

    Every optional dependency (norse, spikingjelly, nir, the Lava environment) is installed by
    the Makefile, so a test that skips there hides a broken set-up. GPU tests are exempt: they
    are deselected on machines without CUDA.
    """
    outcome = yield
    report = outcome.get_result()
    if _strict() and report.skipped and item.get_closest_marker("gpu") is None:
        report.outcome = "failed"
        report.longrepr = f"skipped under make test, where it must run: {_reason(report)}"
