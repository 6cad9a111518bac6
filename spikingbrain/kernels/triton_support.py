"""Lazy Triton import, with the interpreter switched on where no CUDA device exists.

Triton compiles kernels for CUDA devices only. On a machine without one (CI, laptops) its
interpreter runs the same kernel source on CPU tensors with numpy, bit for bit for integer
arithmetic: that is how the test-suite checks the GPU kernels. The interpreter must be chosen
before ``triton`` is first imported (``TRITON_INTERPRET=1``), so every kernel module imports
Triton through :func:`import_triton`.

CPU reference: none (no kernels here); each kernel module names its own.

>>> from spikingbrain.kernels.triton_support import triton_status
>>> triton_status()["interpreter"] in (True, False)
True
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

__all__ = ["import_triton", "interpreting", "triton_status", "TritonUnavailable"]


class TritonUnavailable(ImportError):
    """Triton is not installed (``pip install triton``) or cannot run on this machine."""


def _cuda_present() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def import_triton() -> tuple[Any, Any]:
    """``(triton, triton.language)``; on a machine without CUDA, in interpreter mode.

    Raises:
        TritonUnavailable: triton is not installed, or it was imported elsewhere without the
            interpreter on a machine that has no CUDA device.
    """
    if "triton" not in sys.modules:
        if importlib.util.find_spec("triton") is None:
            raise TritonUnavailable(
                "the GPU kernels need triton: `pip install triton` (CUDA builds of torch ship it)"
            )
        if not _cuda_present():
            os.environ.setdefault("TRITON_INTERPRET", "1")
    import triton
    import triton.language as tl

    if not _cuda_present() and not interpreting():
        raise TritonUnavailable(
            "triton was imported before spikingbrain could switch on its interpreter and this "
            "machine has no CUDA device: set TRITON_INTERPRET=1 before starting Python"
        )
    if interpreting():
        _patch_interpreter_scalars()
    return triton, tl


def interpreting() -> bool:
    """Whether Triton kernels run under the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


_PATCHED = False


def _patch_interpreter_scalars() -> None:
    """Let the interpreter use kernel scalar arguments as loop bounds with numpy >= 2.3.

    The interpreter holds a scalar argument as a one-element array and converts it with
    ``int(array)``, which numpy 2.3+ refuses for arrays of rank 1 (``range(0, K, BK)`` over a
    kernel argument fails). Index through the first element instead; compiled kernels are
    unaffected.
    """
    global _PATCHED
    if _PATCHED:
        return
    import triton.runtime.interpreter as interp

    original = interp._patch_lang_tensor

    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    interp._patch_lang_tensor = patched
    _PATCHED = True


def triton_status() -> dict[str, Any]:
    """What the kernels would run on: ``{"installed", "version", "interpreter", "cuda"}``."""
    installed = "triton" in sys.modules or importlib.util.find_spec("triton") is not None
    version = None
    if installed:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as _v

        try:
            version = _v("triton")
        except PackageNotFoundError:
            version = None
    return {"installed": installed, "version": version,
            "interpreter": interpreting() or (installed and not _cuda_present()),
            "cuda": _cuda_present()}
