"""Lazy import of optional heavy dependencies with an install hint.

>>> require("math").sqrt(4.0)
2.0
>>> require("no_such_pkg_xyz", extra="nir", purpose="NIR export")
Traceback (most recent call last):
...
ImportError: NIR export needs the optional package 'no_such_pkg_xyz', which is not installed; install it with: pip install 'spikingbrain[nir]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str | None = None, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise ImportError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if err.name is not None and not module.startswith(err.name) and err.name != module:
            raise
        what = purpose or "this feature"
        how = f"pip install 'spikingbrain[{extra}]'" if extra else f"pip install {module}"
        raise ImportError(
            f"{what} needs the optional package '{module}', which is not installed; "
            f"install it with: {how}"
        ) from err
