"""Event streams: dense spike trains ``[T, *shape]`` <-> events ``(time, flat index, polarity)``.

An event stream lists the non-zero spikes of a train in time order (then flat index order), the
address-event representation neuromorphic hardware consumes. Conversion is exact both ways and
keeps the shape; streams save to and load from ``.npz`` atomically.

>>> import torch
>>> spikes = torch.tensor([[[0, 1], [-1, 0]], [[0, 0], [1, 0]]], dtype=torch.int8)
>>> ev = to_events(spikes, scheme="ternary")
>>> ev.times.tolist(), ev.indices.tolist(), ev.polarity.tolist()
([0, 0, 1], [1, 2, 2], [1, -1, 1])
>>> torch.equal(from_events(ev), spikes)
True
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikingbrain.coding._validate import as_integer_counts, check_tensor
from spikingbrain.coding.schemes import get_scheme
from spikingbrain.utils.atomic import atomic_path

__all__ = ["SpikeEvents", "to_events", "from_events", "save_events", "load_events"]

EVENTS_FORMAT = "spikingbrain.events"
EVENTS_VERSION = 1


@dataclass(frozen=True)
class SpikeEvents:
    """A spike train as an event list.

    Attributes:
        times: int64 ``[E]`` time step of each event, non-decreasing.
        indices: int64 ``[E]`` flat (row-major) index into ``shape[1:]``.
        polarity: int8 ``[E]`` spike value (+1/-1, or a graded integer), never 0.
        shape: ``(T, *neuron_shape)`` of the dense train.
        scheme: the coding scheme of the train, if known.
    """

    times: torch.Tensor
    indices: torch.Tensor
    polarity: torch.Tensor
    shape: tuple[int, ...]
    scheme: str | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) < 1 or any(s < 0 for s in shape):
            raise ValueError(f"shape must be (T, *neuron_shape) with sizes >= 0, got {shape}")
        object.__setattr__(self, "shape", shape)
        for name, dt in (("times", torch.int64), ("indices", torch.int64), ("polarity", torch.int8)):
            value = check_tensor(getattr(self, name), name)
            if value.dtype != dt or value.dim() != 1:
                raise TypeError(f"{name} must be a 1-D {dt} tensor, got {value.dtype} {tuple(value.shape)}")
        n = self.times.numel()
        if self.indices.numel() != n or self.polarity.numel() != n:
            raise ValueError(
                f"times, indices and polarity must have one entry per event, got lengths "
                f"{n}, {self.indices.numel()}, {self.polarity.numel()}"
            )
        if self.scheme is not None:
            get_scheme(self.scheme)
        if n == 0:
            return
        T, size = shape[0], math.prod(shape[1:])
        if int(self.times.min()) < 0 or int(self.times.max()) >= T:
            raise ValueError(f"event times must lie in [0, {T}) for a window of T={T}")
        if int(self.indices.min()) < 0 or int(self.indices.max()) >= size:
            raise ValueError(f"event indices must lie in [0, {size}) for neuron shape {shape[1:]}")
        if bool((self.polarity == 0).any()):
            raise ValueError("events must have non-zero polarity (a zero is no event)")
        key = self.times * max(size, 1) + self.indices
        if n > 1 and not bool((key[1:] > key[:-1]).all()):
            raise ValueError(
                "events must be sorted by (time, index) without duplicates; build them with "
                "to_events() or sort them first"
            )

    def __len__(self) -> int:
        return self.times.numel()

    @property
    def num_neurons(self) -> int:
        """Number of neurons (elements of one time step)."""
        return math.prod(self.shape[1:])

    def to_dense(self) -> torch.Tensor:
        """The dense int8 train ``[T, *neuron_shape]`` (same as :func:`from_events`)."""
        return from_events(self)


def to_events(spikes: torch.Tensor, scheme: str | None = None) -> SpikeEvents:
    """Events of a dense spike train ``[T, *shape]`` (int8 values, non-zero entries only).

    >>> ev = to_events(torch.tensor([[1, 0, 1]], dtype=torch.int8))
    >>> len(ev), ev.shape
    (2, (1, 3))
    """
    s = as_integer_counts(check_tensor(spikes, "spikes"), "spikes")
    if s.dim() == 0:
        raise ValueError("spikes must have a leading time dimension: shape [T, *shape]")
    if s.numel() and (int(s.min()) < -128 or int(s.max()) > 127):
        raise ValueError("spike values must fit int8 to be stored as event polarity")
    flat = s.reshape(s.shape[0], math.prod(s.shape[1:]))
    t, idx = torch.nonzero(flat, as_tuple=True)
    return SpikeEvents(t, idx, flat[t, idx].to(torch.int8), tuple(s.shape), scheme)


def from_events(events: SpikeEvents, device: torch.device | str | None = None) -> torch.Tensor:
    """Dense int8 spike train ``[T, *shape]`` from an event stream."""
    if not isinstance(events, SpikeEvents):
        raise TypeError(f"events must be SpikeEvents, got {type(events).__name__}")
    device = device if device is not None else events.times.device
    T = events.shape[0]
    dense = torch.zeros(T, events.num_neurons, dtype=torch.int8, device=device)
    dense[events.times.to(device), events.indices.to(device)] = events.polarity.to(device)
    return dense.reshape(events.shape)


def save_events(events: SpikeEvents, path: str | os.PathLike) -> Path:
    """Write an event stream to a ``.npz`` file atomically; returns the path written.

    >>> import tempfile
    >>> ev = to_events(torch.tensor([[0, -1], [1, 0]], dtype=torch.int8), scheme="ternary")
    >>> p = save_events(ev, tempfile.mkdtemp() + "/ev.npz")
    >>> back = load_events(p)
    >>> torch.equal(back.to_dense(), ev.to_dense()), back.scheme
    (True, 'ternary')
    """
    if not isinstance(events, SpikeEvents):
        raise TypeError(f"events must be SpikeEvents, got {type(events).__name__}")
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"event files use the .npz suffix, got {path.name!r}")
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            format=np.array(EVENTS_FORMAT),
            version=np.array(EVENTS_VERSION),
            times=events.times.cpu().numpy(),
            indices=events.indices.cpu().numpy(),
            polarity=events.polarity.cpu().numpy(),
            shape=np.array(events.shape, dtype=np.int64),
            scheme=np.array(events.scheme or ""),
        )
    return path


def load_events(path: str | os.PathLike) -> SpikeEvents:
    """Read an event stream written by :func:`save_events`, checking format and version."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give an event file written by save_events")
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npz event file ({err})") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path} holds a single numpy array (a .npy file), not a spikingbrain event file "
            f"(.npz written by save_events)"
        )
    try:
        with data:
            fields = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npz event file ({err})") from err
    if str(fields.get("format", "")) != EVENTS_FORMAT:
        raise ValueError(f"{path} is not a spikingbrain event file (no '{EVENTS_FORMAT}' marker)")
    version = int(fields["version"])
    if version > EVENTS_VERSION:
        raise ValueError(
            f"{path} uses event format version {version}, newer than this spikingbrain reads "
            f"({EVENTS_VERSION}); upgrade spikingbrain"
        )
    missing = {"times", "indices", "polarity", "shape", "scheme"} - set(fields)
    if missing:
        raise ValueError(f"{path} is missing fields {sorted(missing)}; the file is corrupt")
    scheme = str(fields["scheme"]) or None
    arrays = {name: _integer_field(path, fields, name, dt)
              for name, dt in (("times", np.int64), ("indices", np.int64),
                               ("polarity", np.int8), ("shape", np.int64))}
    try:
        return SpikeEvents(
            torch.from_numpy(arrays["times"]), torch.from_numpy(arrays["indices"]),
            torch.from_numpy(arrays["polarity"]), tuple(int(v) for v in arrays["shape"]), scheme,
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path} is a corrupt event file: {err}") from err


def _integer_field(path: Path, fields: dict, name: str, dtype: type) -> np.ndarray:
    """Field ``name`` as a 1-D ``dtype`` array; values that do not fit raise (never wrap)."""
    a = np.asarray(fields[name])
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{path} is a corrupt event file: '{name}' must be a 1-D integer array, got "
            f"{a.dtype} with shape {a.shape}"
        )
    info = np.iinfo(dtype)
    if a.size and (int(a.min()) < info.min or int(a.max()) > info.max):
        raise ValueError(
            f"{path} is a corrupt event file: '{name}' holds values in [{int(a.min())}, "
            f"{int(a.max())}], outside {np.dtype(dtype).name}"
        )
    return a.astype(dtype)
