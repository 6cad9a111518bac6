"""Atomic file writes: write to a temporary file in the target folder, then rename.

Nothing is ever left half-written: if the writer raises, the temporary file is removed and
the target keeps its previous content.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_write(d / "a.txt", "w") as f:
...     _ = f.write("hello")
>>> (d / "a.txt").read_text()
'hello'
>>> with atomic_path(d / "b.bin") as tmp:
...     _ = tmp.write_bytes(b"xy")  # any library that writes to a path
>>> (d / "b.bin").read_bytes()
b'xy'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_path"]


def _umask() -> int:
    """The process umask, read without changing it (Linux ``/proc/self/status``); where that
    is unavailable, the conventional 0o022."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        pass
    return 0o022  # pragma: no cover


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success its content is synced to disk and it
    replaces ``path`` atomically (the folder entry is synced too).

    ``suffix`` defaults to the target's suffix (some writers, like ``numpy.savez``, append
    their own suffix when it is missing).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=target.suffix if suffix is None else suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp_path
        _fsync_path(tmp_path)
        os.replace(tmp_path, target)
        _fsync_path(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path`` atomically."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write only writes; mode must start with 'w', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
        f.flush()
