"""Where a command's model runs: ``--device``, ``--dtype`` and ``--device-map``, in one place.

Every command that loads a model (``convert``, ``analyze``, ``sweep-k``, ``export nir|lava``,
``map``, ``generate``) takes the three options defined here (:data:`DEVICE_OPTION`,
:data:`DTYPE_OPTION`, :data:`DEVICE_MAP_OPTION`) and turns them into one :class:`Placement`,
validated before anything is loaded:

- ``--device``: ``auto`` (the default: ``cuda:0`` when CUDA is available, else ``cpu``),
  ``cpu``, ``cuda`` (= ``cuda:0``) or ``cuda:N``.
- ``--dtype``: ``auto`` (the default: bf16 on CUDA; on the CPU the folder's own dtype, so
  nothing is upcast on the host), ``bf16``, ``fp16`` or ``fp32``.
- ``--device-map auto``: accelerate's big-model dispatch, the layers spread over every visible
  GPU (needs CUDA and accelerate; ``--device`` is then ``auto`` or ``cuda``).

The loaders (:mod:`spikingbrain.converter.folder`, :func:`spikingbrain.converter.load_converted`)
read weights straight onto the device in the target dtype; :func:`place` moves an already
built model (the embedded MiniLM); :func:`input_device` says where token batches go.
Nothing here imports torch at module import time (``spikingbrain --help`` stays instant).

>>> p = Placement(device="cpu", dtype="fp32")
>>> p.device, p.dtype, p.describe()
('cpu', 'fp32', 'cpu, fp32')
>>> Placement(device="cpu").describe()
"cpu, the folder's own dtype"
>>> try:
...     Placement(device="tpu")
... except ValueError as err:
...     print(err)
--device must be auto, cpu, cuda or cuda:N (N a GPU index), got 'tpu'
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import typer

from spikingbrain.utils.cli_checks import UsageError

__all__ = [
    "DEVICE_MAP_OPTION",
    "DEVICE_OPTION",
    "DTYPE_NAMES",
    "DTYPE_OPTION",
    "Placement",
    "cast_floats",
    "from_pretrained_kwargs",
    "input_device",
    "inputs_follow_model",
    "modules_to_cpu",
    "place",
    "synchronize",
    "to_device",
]

#: ``--dtype`` names and the torch dtype each stands for (``auto`` is resolved by Placement).
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
_DTYPE_ALIASES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32",
                  "float": "fp32"}

DEVICE_OPTION = typer.Option(
    "auto", "--device", metavar="DEVICE",
    help="Where the model runs: auto (cuda:0 when CUDA is available, else cpu), cpu, cuda "
         "(= cuda:0) or cuda:N. Weights are read straight onto it.")
DTYPE_OPTION = typer.Option(
    "auto", "--dtype", metavar="DTYPE",
    help="Float dtype of the model: auto (bf16 on CUDA; on the CPU the folder's own dtype, "
         "nothing upcast), bf16, fp16 or fp32. INT8 codes and their scales of converted "
         "layers keep their stored dtypes.")
DEVICE_MAP_OPTION = typer.Option(
    None, "--device-map", metavar="auto",
    help="'auto': spread the model over every visible GPU with accelerate's big-model "
         "dispatch (needs CUDA and accelerate; --device must then be auto or cuda).")

_CUDA = re.compile(r"cuda(?::(\d+))?")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _no_cuda(what: str) -> UsageError:
    import torch

    return UsageError(f"{what}: CUDA is not available on this machine (torch {torch.__version__}"
                      f"{', a CPU-only build' if torch.version.cuda is None else ''}, no visible "
                      f"GPU); use --device cpu")


@dataclass(frozen=True)
class Placement:
    """A validated device, dtype and device map (the three options, resolved).

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; after construction always
            ``cpu`` or ``cuda:N`` (``auto`` and ``cuda`` resolved).
        dtype: ``auto``, ``bf16``, ``fp16`` or ``fp32`` (``bfloat16``/``float16``/``float32``
            accepted); after construction ``bf16``/``fp16``/``fp32``, or ``None`` for "the
            folder's own dtype" (``auto`` on the CPU).
        device_map: ``None`` or ``"auto"`` (accelerate's dispatch over the visible GPUs; then
            :attr:`device` is the first GPU, where token batches start).

    Raises:
        UsageError (a ValueError): an unknown value, a CUDA device without CUDA, a GPU index
        beyond the visible GPUs, or ``--device-map auto`` with ``--device cpu`` / ``cuda:N``.
    """

    device: str = "auto"
    dtype: str | None = "auto"
    device_map: str | None = None

    def __post_init__(self) -> None:
        dev = self._resolve_device(self.device, self.device_map)
        object.__setattr__(self, "device_map", self._check_map(self.device_map, self.device))
        object.__setattr__(self, "device", dev)
        object.__setattr__(self, "dtype", self._resolve_dtype(self.dtype, dev))

    @staticmethod
    def _check_map(device_map: Any, device: Any) -> str | None:
        if device_map is None or (isinstance(device_map, str) and not device_map.strip()):
            return None
        if not isinstance(device_map, str) or device_map.strip().lower() != "auto":
            raise UsageError(f"--device-map must be 'auto' (or left out), got {device_map!r}")
        if str(device).strip().lower() not in ("auto", "cuda"):
            raise UsageError(f"--device-map auto spreads the model over every visible GPU; "
                             f"leave --device out (or give cuda) instead of --device {device}")
        if not _cuda_available():
            raise _no_cuda("--device-map auto")
        from spikingbrain.utils.optional import require

        try:
            require("accelerate", extra="hf", purpose="--device-map auto")
        except ImportError as err:
            raise UsageError(str(err)) from None
        return "auto"

    @staticmethod
    def _resolve_device(device: Any, device_map: Any) -> str:
        if not isinstance(device, str):
            raise UsageError(f"--device must be a string such as cpu or cuda:0, got {device!r}")
        d = device.strip().lower()
        if d == "auto":
            return "cuda:0" if _cuda_available() else "cpu"
        if d == "cpu":
            return "cpu"
        m = _CUDA.fullmatch(d)
        if m is None:
            raise UsageError(f"--device must be auto, cpu, cuda or cuda:N (N a GPU index), "
                             f"got {device!r}")
        if not _cuda_available():
            raise _no_cuda(f"--device {device}")
        import torch

        index = int(m.group(1) or 0)
        n = torch.cuda.device_count()
        if index >= n:
            raise UsageError(f"--device {device}: this machine has {n} visible GPU(s) "
                             f"(cuda:0 .. cuda:{n - 1}); give one of them")
        return f"cuda:{index}"

    @staticmethod
    def _resolve_dtype(dtype: Any, device: str) -> str | None:
        if dtype is None:
            return None
        if not isinstance(dtype, str):
            raise UsageError(f"--dtype must be auto, bf16, fp16 or fp32, got {dtype!r}")
        d = dtype.strip().lower().removeprefix("torch.")
        d = _DTYPE_ALIASES.get(d, d)
        if d == "auto":
            return "bf16" if device.startswith("cuda") else None
        if d not in DTYPE_NAMES:
            raise UsageError(f"--dtype must be auto, bf16, fp16 or fp32, got {dtype!r}")
        return d

    # ---- derived values --------------------------------------------------------------
    @property
    def is_cuda(self) -> bool:
        """Whether the model runs on GPUs."""
        return self.device.startswith("cuda")

    @property
    def torch_device(self) -> Any:
        """:class:`torch.device` of :attr:`device`."""
        import torch

        return torch.device(self.device)

    @property
    def torch_dtype(self) -> Any:
        """The torch dtype, or ``None`` for the folder's own dtype."""

        from spikingbrain.utils.dtypes import dtype_from_name

        return None if self.dtype is None else dtype_from_name(DTYPE_NAMES[self.dtype])

    def describe(self) -> str:
        """One line for the user, e.g. ``"cuda:0, bf16"`` or ``"device map auto, bf16"``."""
        where = "device map auto over the visible GPUs" if self.device_map else self.device
        dtype = self.dtype or "the folder's own dtype"
        return f"{where}, {dtype}"


def from_pretrained_kwargs(placement: Placement) -> dict[str, Any]:
    """Keyword arguments for transformers' ``from_pretrained``: load in the target dtype
    straight onto the device (no fp32 host copy).

    >>> from_pretrained_kwargs(Placement(device="cpu"))
    {'dtype': 'auto'}
    """
    import transformers

    dtype = placement.torch_dtype or "auto"
    major = int(transformers.__version__.split(".")[0])
    kw: dict[str, Any] = {"dtype": dtype} if major >= 5 else \
        {"torch_dtype": dtype, "low_cpu_mem_usage": True}
    if placement.device_map is not None:
        kw["device_map"] = placement.device_map
    elif placement.is_cuda:
        kw["device_map"] = {"": placement.device}
    return kw


def _keeps_dtype(module: Any) -> bool:
    """Converted layers (INT8 codes + fp32 scales) keep their stored dtypes."""
    return hasattr(module, "qdata")


def cast_floats(model: Any, dtype: Any) -> Any:
    """Cast every float parameter and buffer of ``model`` to ``dtype`` in place, except those
    of converted layers (their scales stay fp32, their bias as stored); returns ``model``.

    >>> import torch
    >>> from torch import nn
    >>> net = cast_floats(nn.Linear(2, 2), torch.bfloat16)
    >>> net.weight.dtype
    torch.bfloat16
    """
    if dtype is None:
        return model
    for mod in model.modules():
        if _keeps_dtype(mod):
            continue
        for name, p in mod.named_parameters(recurse=False):
            if p.is_floating_point() and p.dtype != dtype:
                p.data = p.data.to(dtype)
        for name, b in mod.named_buffers(recurse=False):
            if b is not None and b.is_floating_point() and b.dtype != dtype:
                mod._buffers[name] = b.to(dtype)
    return model


def place(model: Any, placement: Placement) -> Any:
    """Move an already built model to ``placement`` (device or accelerate dispatch) and cast
    its float tensors (see :func:`cast_floats`); returns the model.

    >>> import torch
    >>> from torch import nn
    >>> place(nn.Linear(2, 2), Placement(device="cpu", dtype="fp16")).weight.dtype
    torch.float16
    """
    if placement.device_map is not None:
        cast_floats(model, placement.torch_dtype)
        return dispatch(model)
    model = model.to(placement.torch_device)
    return cast_floats(model, placement.torch_dtype)


def dispatch(model: Any, device_map: Mapping[str, Any] | None = None) -> Any:
    """Spread ``model`` over the visible GPUs with accelerate (``device_map`` computed with
    ``infer_auto_device_map`` when not given; blocks in ``_no_split_modules`` stay whole)."""
    import accelerate

    if device_map is None:
        device_map = auto_device_map(model)
    return accelerate.dispatch_model(model, device_map=dict(device_map))


def auto_device_map(model: Any) -> dict[str, Any]:
    """accelerate's balanced device map of ``model`` (parameters may be on the meta device)."""
    import accelerate

    no_split = list(getattr(model, "_no_split_modules", None) or [])
    max_memory = accelerate.utils.get_balanced_memory(model, no_split_module_classes=no_split)
    return accelerate.infer_auto_device_map(model, max_memory=max_memory,
                                            no_split_module_classes=no_split)


def input_device(model: Any) -> Any:
    """Where token batches go: the input embedding's device (under a device map the first
    block's), else the first parameter's or buffer's, else the CPU.

    >>> from torch import nn
    >>> input_device(nn.Linear(2, 2))
    device(type='cpu')
    """
    import torch

    get = getattr(model, "get_input_embeddings", None)
    if callable(get):
        try:
            emb = get()
        except (NotImplementedError, AttributeError):
            emb = None
        w = getattr(emb, "weight", None)
        if isinstance(w, torch.Tensor) and w.device.type != "meta":
            return w.device
    for t in list(model.parameters()) + list(model.buffers()):
        if t.device.type != "meta":
            return t.device
    return torch.device("cpu")


def to_device(batch: Any, device: Any) -> Any:
    """``batch`` (a tensor, a mapping such as a tokenizer's BatchEncoding, a list or tuple) with
    every tensor moved to ``device``; other values unchanged."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        if callable(getattr(batch, "to", None)):  # transformers' BatchEncoding
            return batch.to(device)
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@contextlib.contextmanager
def inputs_follow_model(model: Any) -> Iterator[None]:
    """Within the block, tensors passed to ``model(...)`` are moved to :func:`input_device`
    first (for library code that tokenises on the CPU and calls the model)."""
    device = input_device(model)
    if device.type == "cpu":
        yield
        return

    def hook(_mod: Any, args: tuple, kwargs: dict) -> tuple:
        return to_device(args, device), to_device(kwargs, device)

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def modules_to_cpu(modules: Mapping[str, Any] | Iterable[Any]) -> Any:
    """Bring modules (e.g. the layers selected for export) back to the CPU in place: an
    accelerate hook is removed first; returns the argument."""
    items = modules.values() if isinstance(modules, Mapping) else modules
    for m in items:
        if hasattr(m, "_hf_hook"):
            from accelerate.hooks import remove_hook_from_module

            remove_hook_from_module(m, recurse=True)
        m.to("cpu")
    return modules


def synchronize(device: Any) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU (for timings)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
