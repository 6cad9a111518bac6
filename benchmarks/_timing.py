"""Wall-clock timing shared by the benchmark scripts (device-synchronised on CUDA)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def measure(fn: Callable[[], object], device: str, repeats: int = 5, warmup: bool = True,
            reduce: Callable[[list[float]], float] = statistics.median) -> float:
    """Seconds per call of ``fn``: ``reduce`` (median by default) over ``repeats`` calls."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return reduce(times)
