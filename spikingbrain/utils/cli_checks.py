"""Argument checks shared by every ``spikingbrain`` command.

Each check runs before a command loads a model. A bad argument ends the command with one line
on standard error, ``spikingbrain: error: <what was wrong and what to do>``, and exit code 2
(the usage-error code), never a traceback.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> check_finite(3.0, "--k", positive=True)
3.0
>>> check_out_dir(d / "report", "--out") == d / "report"
True
>>> try:
...     check_finite(float("nan"), "--k")
... except UsageError as err:
...     print(err)
--k must be a finite number, got nan
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

__all__ = [
    "EMBEDDED",
    "UsageError",
    "check_existing_dir",
    "check_finite",
    "check_out_dir",
    "check_out_file",
    "check_text_file",
    "read_text_lines",
    "fail",
    "usage_errors",
    "with_usage_errors",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The MODEL_DIR name of the embedded all-MiniLM-L6-v2 (every command accepts it).
EMBEDDED = "minilm"


class UsageError(ValueError):
    """A bad command-line argument (or input file): the message says what to do."""


def fail(message: str) -> NoReturn:
    """Print ``spikingbrain: error: message`` on stderr and exit with code 2."""
    import typer

    typer.echo(f"spikingbrain: error: {message}", err=True)
    raise typer.Exit(code=2)


@contextmanager
def usage_errors() -> Iterator[None]:
    """Turn :class:`UsageError` raised inside the block into :func:`fail`."""
    try:
        yield
    except UsageError as err:
        fail(str(err))


def with_usage_errors(fn: F) -> F:
    """Decorator form of :func:`usage_errors` for command functions."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with usage_errors():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_finite(value: float, option: str, *, positive: bool = False,
                 minimum: float | None = None) -> float:
    """``value`` as a float; a NaN/Inf, a non-positive value (``positive``) or one below
    ``minimum`` raises :class:`UsageError` naming ``option``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{option} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise UsageError(f"{option} must be a finite number, got {value!r}")
    if positive and v <= 0:
        raise UsageError(f"{option} must be > 0, got {value!r}")
    if minimum is not None and v < minimum:
        raise UsageError(f"{option} must be >= {minimum}, got {value!r}")
    return v


def check_text_file(path: str | os.PathLike, option: str = "--text") -> Path:
    """An existing, non-empty UTF-8 text file with at least one non-blank line."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{option} {p}: no such file")
    if p.is_dir():
        raise UsageError(f"{option} {p} is a directory; give a text file with one sentence per line")
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise UsageError(f"{option} {p}: cannot read it ({err.strerror})") from None
    if b"\x00" in raw:
        raise UsageError(f"{option} {p} is a binary file; give UTF-8 text, one sentence per line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{option} {p} is not UTF-8 text; save it as UTF-8") from None
    if not any(line.strip() for line in text.splitlines()):
        raise UsageError(f"{option} {p} is empty; give at least one line of text")
    return p


def read_text_lines(path: str | os.PathLike, option: str = "--text") -> list[str]:
    """The non-blank lines of a text file (stripped), after :func:`check_text_file`."""
    p = check_text_file(path, option)
    return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _check_writable_parent(p: Path, option: str) -> None:
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {p}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {p}: cannot write in {parent} (permission denied)")


def check_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """A directory that exists and is writable, or that can be created."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{option} {p} is a file; give a directory (it is created if missing)")
    if p.exists():
        if not os.access(p, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {p}: the directory is not writable")
    else:
        _check_writable_parent(p, option)
    return p


def check_out_file(path: str | os.PathLike, option: str = "--out",
                   suffix: str | None = None) -> Path:
    """A file path whose folder is writable; ``suffix`` (e.g. ``".npz"``) is appended when
    missing. An existing directory at that path raises :class:`UsageError`."""
    p = Path(path)
    if suffix is not None and p.suffix != suffix:
        p = p.with_name(p.name + suffix)
    if p.is_dir():
        raise UsageError(f"{option} {p} is a directory; give a file name")
    _check_writable_parent(p, option)
    if p.exists() and not os.access(p, os.W_OK):
        raise UsageError(f"{option} {p}: the file is not writable")
    return p


def check_existing_dir(path: str | os.PathLike, option: str) -> Path:
    """An existing directory."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{option} {p}: no such directory")
    if not p.is_dir():
        raise UsageError(f"{option} {p} is a file; give a directory")
    return p
