"""Small shared helpers: atomic file writes and lazy optional imports."""

from spikingbrain.utils.atomic import atomic_path, atomic_write
from spikingbrain.utils.optional import require

__all__ = ["atomic_write", "atomic_path", "require"]
