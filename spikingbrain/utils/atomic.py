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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["ForeignFolderError", "atomic_folder", "atomic_path", "atomic_write",
           "recover_folder"]


class ForeignFolderError(ValueError):
    """The target folder holds files that the writer may not replace."""


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


def _fsync_tree(folder: Path) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    _fsync_path(folder)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the
    system cannot."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # pragma: no cover - not Linux / old glibc
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _aside(folder: Path, what: str) -> Path:
    return folder.parent / f".{folder.name}.{what}-{os.getpid()}-{os.urandom(4).hex()}"


def recover_folder(path: str | os.PathLike) -> None:
    """Finish what an :func:`atomic_folder` killed between its two renames left (systems
    without an atomic exchange): if ``path`` is missing but its previous content was moved
    aside, move it back; remove abandoned staging folders."""
    import shutil

    folder = Path(path)
    if not folder.parent.is_dir():
        return
    old = sorted(folder.parent.glob(f".{folder.name}.old-*"))
    if not folder.exists() and old:
        os.rename(old[-1], folder)
        old = old[:-1]
    for p in old + sorted(folder.parent.glob(f".{folder.name}.saving-*")):
        shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, replaceable: Callable[[Path], bool] | None = None,
                  on_synced: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; on success it replaces ``path`` whole.

    The staging folder is synced to disk, then swapped with the old folder in one atomic
    exchange (Linux ``renameat2``; elsewhere two renames, which :func:`recover_folder` can
    finish), and the old content is removed. If the block raises or the process dies, ``path``
    keeps its previous content (abandoned staging folders are hidden, ``.NAME.saving-*``, and
    removed by the next call). An existing non-empty ``path`` is replaced only when
    ``replaceable(path)`` says so (default: never), so a folder of other files is not lost.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "out"
    >>> with atomic_folder(d) as tmp:
    ...     _ = (tmp / "a.txt").write_text("new")
    >>> sorted(p.name for p in d.iterdir())
    ['a.txt']
    """
    import shutil

    folder = Path(path)
    recover_folder(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (replaceable and replaceable(folder)):
        raise ForeignFolderError(f"{folder} already holds other files; refusing to replace "
                                 f"them: choose a new or empty folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = _aside(folder, "saving")
    staging.mkdir()
    try:
        yield staging
        _fsync_tree(staging)
        if on_synced is not None:
            on_synced()
        if folder.exists() and _exchange(staging, folder):
            _fsync_path(folder.parent)
            shutil.rmtree(staging)  # now the previous content
        elif folder.exists():  # pragma: no cover - systems without renameat2
            old = _aside(folder, "old")
            os.rename(folder, old)
            os.rename(staging, folder)
            _fsync_path(folder.parent)
            shutil.rmtree(old)
        else:
            os.rename(staging, folder)
            _fsync_path(folder.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
