"""Save and load converted models: ``model.safetensors`` + ``spikingbrain_converted.json``.

The JSON file records the format name, :data:`SCHEMA_VERSION`, the package version, the
default :class:`SpikeConfig`, every converted layer (shape, group size, qdata/bias dtypes and
its own config), tied-tensor aliases, the safetensors file's SHA-256, and for Hugging Face
models the model class (the folder then also holds ``config.json``). A save builds the
whole folder beside the target and swaps it in atomically, so a folder is either complete or
still shows the previous save.

Loading rebuilds the model in one of two ways:

- ``load_converted(folder, model=skeleton)``: ``skeleton`` is a freshly built float model of
  the same architecture (its weights are overwritten); the recorded layers are swapped for
  empty :class:`SpikingLinear` shells, then the state dict is loaded strictly.
- ``load_converted(folder)``: for Hugging Face models, the model class is built from the
  folder's ``config.json`` with transformers, then as above.

>>> import tempfile, torch
>>> from torch import nn
>>> from spikingbrain.converter import SpikeConfig, convert
>>> net = convert(nn.Sequential(nn.Linear(8, 4)), SpikeConfig())
>>> d = tempfile.mkdtemp()
>>> save_converted(net, d)
>>> again = load_converted(d, model=nn.Sequential(nn.Linear(8, 4)))
>>> x = torch.randn(3, 8)
>>> torch.equal(again(x), net(x))
True
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikingbrain.converter.config import SpikeConfig
from spikingbrain.converter.convert import spiking_layers
from spikingbrain.converter.layer import SpikingLinear, is_conv1d, share_fallback_warnings
from spikingbrain.utils.atomic import ForeignFolderError, atomic_folder, recover_folder
from spikingbrain.utils.dtypes import DTYPES, dtype_from_name, dtype_name

__all__ = [
    "FORMAT",
    "META_FILE",
    "SCHEMA_VERSION",
    "SHARDED_SCHEMA_VERSION",
    "WEIGHTS_FILE",
    "load_converted",
    "read_metadata",
    "save_converted",
]

#: Version of the folder layout; bumped when a change would break older readers.
SCHEMA_VERSION = 2
#: The layout with sharded weights (``weights.files`` + an index), written by
#: :func:`spikingbrain.converter.stream.stream_convert`; single-file saves keep version 2.
SHARDED_SCHEMA_VERSION = 3
FORMAT = "spikingbrain.converted"
META_FILE = "spikingbrain_converted.json"
WEIGHTS_FILE = "model.safetensors"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _dedup_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """State dict without shared tensors (safetensors refuses them) and the aliases."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride())) if t.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        tensors[name] = t.detach().contiguous().cpu()
    return tensors, aliases


def _hf_info(model: nn.Module) -> dict[str, Any] | None:
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "save_pretrained") or not hasattr(model, "state_dict"):
        return None
    floats = [p.dtype for p in model.parameters() if p.is_floating_point()]
    return {"class_name": type(model).__name__,
            "dtype": dtype_name(floats[0]) if floats else "float32"}


#: Environment variable naming a save stage at which the process signals itself: the
#: fault-injection point of the all-or-nothing tests. ``STAGE`` sends SIGKILL, ``STAGE:INT``
#: SIGINT (Ctrl-C). Stages: "weights", "config", "tokenizer", "meta", "synced".
KILL_AT_ENV = "SPIKINGBRAIN_TEST_KILL_AT"


def _stage(name: str) -> None:
    want = os.environ.get(KILL_AT_ENV, "")
    if want.split(":")[0] == name:  # pragma: no cover - runs in a signalled subprocess
        import signal

        os.kill(os.getpid(), signal.SIGINT if want.endswith(":INT") else signal.SIGKILL)


def _meta_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of everything in the metadata but the digest itself."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _replaceable(folder: Path) -> bool:
    """Only a previous save (it has the metadata file) may be replaced."""
    return (folder / META_FILE).is_file()


def _write_folder(model: nn.Module, layers: dict[str, SpikingLinear], folder: Path,
                  tokenizer: Any) -> None:
    from safetensors.torch import save_file

    from spikingbrain import __version__

    tensors, aliases = _dedup_state(model)
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT})
    digest = _sha256(folder / WEIGHTS_FILE)
    _stage("weights")
    hf = _hf_info(model)
    if hf is not None:
        model.config.save_pretrained(folder)  # config.json
        gen = getattr(model, "generation_config", None)
        if gen is not None and hasattr(gen, "save_pretrained"):
            try:
                gen.save_pretrained(folder)
            except (ValueError, OSError) as err:  # pragma: no cover - not ours to fix
                warnings.warn(f"generation config not saved: {err}", stacklevel=3)
    _stage("config")
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    _stage("tokenizer")
    first = next(iter(layers.values())).config
    meta = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "spikingbrain_version": __version__,
        "config": first.to_dict(),
        "weights": {"file": WEIGHTS_FILE, "sha256": digest},
        "aliases": aliases,
        "hf": hf,
        "layers": {
            name: {
                "in_features": m.in_features,
                "out_features": m.out_features,
                "group_size": m.group_size,
                "qdata_dtype": dtype_name(m.qdata.dtype),
                "bias": m.bias is not None,
                "bias_dtype": dtype_name(m.bias.dtype) if m.bias is not None else None,
                "n_out_of_range": m.n_out_of_range,
                "config": m.config.to_dict(),
            }
            for name, m in layers.items()
        },
    }
    meta["meta_sha256"] = _meta_digest(meta)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    _stage("meta")


def save_converted(model: nn.Module, path: str | os.PathLike, tokenizer: Any = None) -> None:
    """Save a converted model into folder ``path``, all or nothing.

    Writes ``model.safetensors`` (all parameters and buffers; tied tensors once),
    ``spikingbrain_converted.json`` (checksums of the weights and of its own content), for
    Hugging Face models ``config.json`` (and the generation config), and the ``tokenizer``'s
    files when one is given. The whole folder is built beside the target, synced to disk, then
    swapped in with one atomic exchange: a save that is interrupted at any point leaves the
    previous save (or nothing) in place, never a mix. A folder holding files that no save
    wrote (e.g. a float model) is refused.
    """
    layers = spiking_layers(model)
    if not layers:
        raise ValueError("the model has no SpikingLinear layer; convert it first with "
                         "spikingbrain.converter.convert(model, SpikeConfig(...))")
    try:
        with atomic_folder(path, _replaceable, on_synced=lambda: _stage("synced")) as staging:
            _write_folder(model, layers, staging, tokenizer)
    except ForeignFolderError:
        raise ValueError(
            f"{path} already holds files that save_converted did not write (e.g. a float "
            f"model); refusing to replace them: choose a new or empty folder"
        ) from None


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``spikingbrain_converted.json`` of folder ``path``.

    Raises FileNotFoundError when the folder holds no converted model and ValueError for a
    foreign, corrupt or newer-schema file.
    """
    folder = Path(path)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{folder} holds no converted model ({META_FILE} is missing); write one with "
            f"spikingbrain.converter.save_converted or `spikingbrain convert`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{meta_path} is not valid JSON ({err}); the file is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(
            f"{meta_path} is not a spikingbrain converted-model file (format "
            f"{meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r})"
        )
    version = meta.get("schema_version")
    if not isinstance(version, int):
        raise ValueError(f"{meta_path} has no valid schema_version")
    if version > SHARDED_SCHEMA_VERSION:
        raise ValueError(
            f"{meta_path} uses schema version {version}, newer than this spikingbrain "
            f"understands ({SCHEMA_VERSION}); it was written by spikingbrain "
            f"{meta.get('spikingbrain_version')}: upgrade spikingbrain to load it"
        )
    for key in ("layers", "weights", "config"):
        if key not in meta:
            raise ValueError(f"{meta_path} lacks the '{key}' entry; the file is corrupt")
    if meta.get("meta_sha256") != _meta_digest(meta):
        raise ValueError(
            f"{meta_path} does not match its own checksum (meta_sha256 missing or wrong): the "
            f"layer table or config was edited or damaged; convert the model again"
        )
    return meta


def _build_hf(folder: Path, meta: dict[str, Any], dtype: torch.dtype | None = None,
              empty: bool = False) -> nn.Module:
    """The Hugging Face model class of ``folder`` in ``dtype`` (default: the saved one);
    ``empty``: parameters on the meta device (nothing allocated, filled by the state dict),
    buffers real (non-persistent ones such as RoPE frequencies are computed at build)."""
    hf = meta.get("hf")
    if not hf:
        raise ValueError(
            f"{folder} holds a converted plain PyTorch model: pass the float architecture, "
            f"load_converted(folder, model=build_my_model())"
        )
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} lacks config.json, needed to rebuild the "
                                f"Hugging Face model {hf.get('class_name')}")
    from spikingbrain.utils.optional import require

    transformers = require("transformers", extra="hf", purpose="loading Hugging Face models")
    from spikingbrain.utils.model_types import ensure_registered, find_model_class

    ensure_registered()  # model types beyond transformers' own (utils/model_types.py)
    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    cls = getattr(transformers, hf["class_name"], None) or find_model_class(hf["class_name"])
    if cls is None:
        raise ValueError(f"transformers has no model class {hf['class_name']!r}; pass "
                         f"model=... to load_converted")
    if empty:
        accelerate = require("accelerate", extra="hf", purpose="loading onto a device")
        with accelerate.init_empty_weights(include_buffers=False):
            model = cls(config)
    else:
        model = cls(config)
    if dtype is None:
        dtype = DTYPES.get(hf.get("dtype", "float32"), torch.float32)
    return model.to(dtype).eval()


def _shell(spec: dict[str, Any], where: str, device: Any = None) -> SpikingLinear:
    try:
        cfg = SpikeConfig.from_dict(spec["config"])
        qd = dtype_from_name(spec["qdata_dtype"])
        bd = dtype_from_name(spec["bias_dtype"]) if spec["bias"] else torch.float32
        layer = SpikingLinear(spec["in_features"], spec["out_features"], cfg,
                              bias=spec["bias"], qdata_dtype=qd, bias_dtype=bd, device=device)
    except (KeyError, TypeError) as err:
        raise ValueError(f"layer entry {where} is malformed ({err!r}); the file is corrupt") \
            from None
    if layer.group_size != spec["group_size"]:
        # imported layers keep their own group size
        layer = SpikingLinear(spec["in_features"], spec["out_features"],
                              cfg.replace(granularity="group", group_size=spec["group_size"],
                                          remainder="partial"),
                              bias=spec["bias"], qdata_dtype=qd, bias_dtype=bd, device=device)
    layer.n_out_of_range = int(spec.get("n_out_of_range", 0))
    return layer


def _weight_files(folder: Path, meta: dict[str, Any], verify: bool) -> list[Path]:
    """The weight files of a save: one file, or the shards of a sharded save (schema 3),
    each present and (``verify``) matching its recorded SHA-256."""
    weights = meta["weights"]
    if "files" in weights:
        names = list(weights["files"])
        digests = weights.get("sha256") or {}
    else:
        names = [weights.get("file", WEIGHTS_FILE)]
        digests = {names[0]: weights.get("sha256")}
    files = []
    for name in names:
        wfile = folder / name
        if not wfile.is_file():
            raise FileNotFoundError(f"{wfile} is missing; the converted model is incomplete")
        if verify and not digests.get(name):
            raise ValueError(f"{META_FILE} records no checksum of {name}; the file is corrupt "
                             f"(pass verify=False to load it unchecked)")
        if verify and _sha256(wfile) != digests[name]:
            raise ValueError(
                f"{wfile} does not match the checksum recorded in {META_FILE}: the file is "
                f"corrupt or was replaced (pass verify=False to skip the check)"
            )
        files.append(wfile)
    return files


def _read_state(wfile: Path, want: dict[str, torch.Tensor], device_of: Any) -> dict:
    """Read the safetensors file one tensor at a time, each straight to ``device_of(name)`` in
    the dtype of ``want[name]`` (float tensors only; integer codes keep their dtype)."""
    from safetensors import SafetensorError, safe_open

    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(wfile), framework="pt", device="cpu") as f:
            for key in f.keys():
                t = f.get_tensor(key)
                ref = want.get(key)
                dtype = ref.dtype if ref is not None and ref.is_floating_point() and \
                    t.is_floating_point() else t.dtype
                state[key] = t.to(device=device_of(key), dtype=dtype)
                del t
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{wfile} is not a readable safetensors file ({err}); it is corrupt") \
            from None
    return state


def _device_of(device: Any, device_map: dict[str, Any] | None):
    """``name -> device``: the longest device-map prefix of ``name``, else ``device``."""
    if not device_map:
        return lambda _name: device

    def of(name: str) -> Any:
        best, dev = -1, device
        for prefix, d in device_map.items():
            if (not prefix or name == prefix or name.startswith(prefix + ".")) and \
                    len(prefix) > best:
                best, dev = len(prefix), d
        return dev

    return of


def load_converted(path: str | os.PathLike, model: nn.Module | None = None, *,
                   verify: bool = True, device: Any = None, dtype: torch.dtype | None = None,
                   device_map: str | None = None) -> nn.Module:
    """Load a model written by :func:`save_converted` (outputs identical bit for bit).

    Args:
        path: the folder.
        model: a float skeleton of the same architecture; ``None`` rebuilds a Hugging Face
            model from the folder's ``config.json`` with its parameters on the meta device
            (nothing allocated twice: every tensor is read once, straight to its device).
        verify: check the safetensors file's SHA-256 against the recorded one (every shard's,
            for the sharded saves of :func:`spikingbrain.converter.stream.stream_convert`).
        device: where the model goes (default: the CPU); tensors are read one at a time
            straight onto it.
        dtype: float dtype of everything but the converted layers' codes, scales and biases
            (default: the saved dtype).
        device_map: ``"auto"``: spread a rebuilt Hugging Face model over the visible GPUs
            (accelerate's balanced map; ``device`` is ignored).

    Returns:
        the converted model in eval mode.
    """
    folder = Path(path)
    recover_folder(folder)
    meta = read_metadata(folder)
    wfiles = _weight_files(folder, meta, verify)
    if device_map not in (None, "auto"):
        raise ValueError(f"device_map must be None or 'auto', got {device_map!r}")
    build = model is None
    if build:
        model = _build_hf(folder, meta, dtype, empty=True)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shell_device = "meta" if build else None
    for name, spec in meta["layers"].items():
        try:
            old = model.get_submodule(name) if name else model
        except AttributeError:
            raise ValueError(
                f"the saved model has a converted layer '{name}' that the given model lacks: "
                f"the architecture (or its config) does not match the saved one"
            ) from None
        shape = None
        if isinstance(old, (SpikingLinear, nn.Linear)):
            shape = (old.out_features, old.in_features)
        elif is_conv1d(old):
            shape = (old.weight.shape[1], old.weight.shape[0])
        if shape != (spec["out_features"], spec["in_features"]):
            raise ValueError(
                f"layer '{name}' is {type(old).__name__} with [out, in] = {shape} in the given "
                f"model but was saved as {[spec['out_features'], spec['in_features']]}: the "
                f"model configuration does not match the saved one"
            )
        shell = _shell(spec, name, shell_device)
        if not name:
            model = shell
        else:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, shell)
    want = model.state_dict()
    dmap = None
    if build and device_map == "auto":
        from spikingbrain.utils.placement import auto_device_map

        dmap = auto_device_map(model)
    target = torch.device(device) if device is not None and build else torch.device("cpu")
    state: dict[str, torch.Tensor] = {}
    for wfile in wfiles:  # one shard (or the one file) at a time, straight to the device
        state.update(_read_state(wfile, want, _device_of(target, dmap)))
    for alias, tgt in meta.get("aliases", {}).items():
        if tgt not in state:
            raise ValueError(f"alias {alias} -> {tgt} points to a missing tensor; corrupt file")
        state[alias] = state[tgt]
    try:
        model.load_state_dict(state, strict=True, assign=build)
    except RuntimeError as err:
        raise ValueError(
            f"the saved tensors do not fit the model (architecture or config mismatch): {err}"
        ) from None
    del state
    if dmap is not None:
        from spikingbrain.utils.placement import dispatch

        model = dispatch(model, dmap)
    elif build:
        model = model.to(target)  # the non-persistent buffers built on the CPU
    elif device is not None or dtype is not None:
        from spikingbrain.utils.placement import cast_floats

        model = cast_floats(model.to(device) if device is not None else model, dtype)
    if build and hasattr(model, "tie_weights") and getattr(model, "config", None) is not None:
        _retie(model)
    share_fallback_warnings(model)  # kernel fall-backs warn once per model
    return model.eval()


def _retie(model: nn.Module) -> None:
    """After ``assign`` loading, tied parameters are two Parameter objects over one storage;
    make them one object again (as a freshly built model has them)."""
    seen: dict[tuple, nn.Parameter] = {}
    for mod in model.modules():
        for pname, p in list(mod.named_parameters(recurse=False)):
            key = (p.data_ptr(), p.dtype, tuple(p.shape), p.device) \
                if p.numel() and p.device.type != "meta" else None
            if key is None:
                continue
            if key in seen and seen[key] is not p:
                setattr(mod, pname, seen[key])
            else:
                seen.setdefault(key, p)
