"""Streaming conversion of a sharded float folder into a sharded converted folder.

``stream_convert(SRC, DST, config)`` reads a Hugging Face folder saved as sharded safetensors
(``model.safetensors.index.json``) one tensor at a time, one shard open at a time, quantises
every linear projection's weight to INT8 codes and scales exactly as
:meth:`SpikingLinear.from_linear` does (same :func:`quantize_weight`, same group size), and
writes one output shard per input shard. Nothing else is ever resident: peak host memory is
about one input shard's converted result plus the largest weight in float32, so a model of
any size converts on a machine smaller than the model (a 7B in bf16: see docs/converter.md).

The output is the converted-folder format of :mod:`spikingbrain.converter.serialize` with
sharded weights (schema version 3): ``model-XXXXX-of-YYYYY.safetensors``, a
``model.safetensors.index.json``, ``spikingbrain_converted.json`` recording every shard's
SHA-256, ``config.json`` and the tokenizer; :func:`~spikingbrain.converter.load_converted`
reads it. The tensors, their names, dtypes and the layer table are those that
``save_converted(convert(load_float_model(SRC), config))`` writes, so both load into the same
model bit for bit. The folder is built beside DST and swapped in, all or nothing.

>>> import tempfile, torch
>>> from spikingbrain.models.checkpoint import save_sharded
>>> from spikingbrain.models.gla_swa import GLAswaConfig, GLAswaForCausalLM
>>> torch.manual_seed(0) is not None
True
>>> m = GLAswaForCausalLM(GLAswaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
...     num_attention_heads=4, num_key_value_heads=2, intermediate_size=48, bos_token_id=1,
...     eos_token_id=2))
>>> src, dst = tempfile.mkdtemp() + "/float", tempfile.mkdtemp() + "/conv"
>>> _ = save_sharded(m, src, max_shard_size="50KB")
>>> s = stream_convert(src, dst, SpikeConfig(group_size=16))
>>> s.n_layers, s.n_shards == len(s.files) > 1
(16, True)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikingbrain.converter.config import SpikeConfig
from spikingbrain.converter.quant import quantize_weight
from spikingbrain.utils.dtypes import dtype_name

__all__ = ["StreamSummary", "can_stream", "stream_convert"]

INDEX = "model.safetensors.index.json"


@dataclass
class StreamSummary:
    """What :func:`stream_convert` wrote.

    Attributes:
        n_layers: converted linear layers.
        n_shards: output shards (one per input shard).
        files: the output shard names.
        float_bytes: bytes of the source tensors.
        converted_bytes: bytes of the output shards' tensors.
        class_name, dtype: the Hugging Face model class and the float dtype kept for the
            unconverted tensors (embeddings, norms, output head, biases).
    """

    n_layers: int
    n_shards: int
    files: list[str] = field(default_factory=list)
    float_bytes: int = 0
    converted_bytes: int = 0
    class_name: str = ""
    dtype: str = ""


def _config(src: Path) -> Any:
    from transformers import AutoConfig

    from spikingbrain.models import register

    register()
    return AutoConfig.from_pretrained(src, local_files_only=True)


def _is_causal(cfg: Any) -> bool:
    archs = getattr(cfg, "architectures", None) or []
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


def can_stream(src: str | os.PathLike, task: str = "auto") -> str | None:
    """``None`` when :func:`stream_convert` handles folder ``src``, else the reason it does
    not: the folder must hold sharded safetensors with an index and a ``config.json`` of a
    causal LM that transformers (with the SpikingBrain types registered) can build."""
    folder = Path(src)
    if not (folder / INDEX).is_file():
        return f"{folder} holds no {INDEX} (not a sharded safetensors folder)"
    if task not in ("auto", "causal-lm"):
        return f"task {task!r}: streaming writes causal LMs only"
    try:
        cfg = _config(folder)
    except (OSError, ValueError, KeyError) as err:
        return f"config.json cannot be read ({err})"
    if task == "auto" and not _is_causal(cfg):
        return "config.architectures names no causal LM"
    from transformers import AutoModelForCausalLM

    if type(cfg) not in AutoModelForCausalLM._model_mapping:
        return f"transformers has no causal-LM class for model_type {cfg.model_type!r}"
    return None


def _load_dtype(cfg: Any, src: Path, shards: list[Path]) -> torch.dtype:
    """The dtype ``from_pretrained`` (dtype "auto", transformers >= 5) loads the model in: the
    config's, else the first floating tensor's."""
    dt = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None)
    if isinstance(dt, str) and dt != "auto":
        dt = getattr(torch, dt)
    if isinstance(dt, torch.dtype):
        return dt
    from safetensors import safe_open

    for shard in shards:
        with safe_open(str(shard), framework="pt") as f:
            for name in f.keys():
                t = f.get_slice(name)
                if t.get_dtype().startswith(("F", "BF")):
                    return f.get_tensor(name).dtype
    return torch.float32


def _targets(model: nn.Module) -> dict[str, nn.Module]:
    """The layers :func:`convert` would convert: every Linear / Conv1D but the output head
    (a module named ``lm_head``, ``get_output_embeddings()``, or a weight tied to the input
    embedding). On the meta device tensors have no storage, so ties are found by identity
    (``convert``'s ``output_head_names`` compares storage pointers)."""
    from spikingbrain.converter.convert import is_convertible

    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") \
        else None
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    in_w = getattr(emb, "weight", None)
    return {n: m for n, m in model.named_modules()
            if is_convertible(m) and n.split(".")[-1] != "lm_head" and m is not out_emb
            and (in_w is None or getattr(m, "weight", None) is not in_w)}


def _aliases(model: nn.Module) -> dict[str, str]:
    """Tied tensors: every later name of a shared tensor -> its first name in state-dict
    order (what ``save_converted``'s de-duplication records)."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, t in model.state_dict(keep_vars=True).items():
        if id(t) in first:
            aliases[name] = first[id(t)]
        else:
            first[id(t)] = name
    return aliases


def _layer_entry(mod: nn.Module, config: SpikeConfig, bias_dtype: torch.dtype | None
                 ) -> dict[str, Any]:
    from spikingbrain.converter.layer import is_conv1d

    w = mod.weight
    out_f, in_f = (w.shape[1], w.shape[0]) if is_conv1d(mod) else tuple(w.shape)
    return {"in_features": in_f, "out_features": out_f,
            "group_size": config.group_size_for(in_f), "qdata_dtype": "int8",
            "bias": bias_dtype is not None,
            "bias_dtype": dtype_name(bias_dtype) if bias_dtype is not None else None,
            "n_out_of_range": 0, "config": config.to_dict()}


def stream_convert(src: str | os.PathLike, dst: str | os.PathLike,
                   config: SpikeConfig | None = None, *, tokenizer: bool = True,
                   progress: Callable[[str], None] | None = None) -> StreamSummary:
    """Convert the sharded float folder ``src`` into the converted folder ``dst``, streaming.

    Args:
        src: a folder with ``config.json``, sharded safetensors and their index
            (:func:`can_stream` says whether it qualifies).
        dst: the output folder (new, empty, or a previous converted save), written all or
            nothing.
        config: the :class:`SpikeConfig` (default ``SpikeConfig()``); calibration is not
            available here (it needs the whole model).
        tokenizer: copy the tokenizer of ``src`` (when it has one) with ``save_pretrained``.
        progress: called with each input shard's name once it is written.

    Returns:
        a :class:`StreamSummary`.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    from spikingbrain import __version__
    from spikingbrain.converter.folder import load_tokenizer
    from spikingbrain.converter.layer import is_conv1d
    from spikingbrain.converter.serialize import (
        FORMAT,
        META_FILE,
        SHARDED_SCHEMA_VERSION,
        ForeignFolderError,
        _meta_digest,
        _replaceable,
        _sha256,
        atomic_folder,
    )
    from spikingbrain.models.checkpoint import skeleton

    config = SpikeConfig() if config is None else config
    if not isinstance(config, SpikeConfig):
        raise TypeError(f"config must be a SpikeConfig, got {type(config).__name__}")
    src = Path(src)
    reason = can_stream(src)
    if reason is not None:
        raise ValueError(f"cannot stream-convert {src}: {reason}; use "
                         f"spikingbrain.converter.convert on the loaded model instead")
    cfg = _config(src)
    index = json.loads((src / INDEX).read_text(encoding="utf-8"))
    in_names = sorted(set(index.get("weight_map", {}).values()))
    shards = [src / f for f in in_names]
    missing = [s.name for s in shards if not s.is_file()]
    if not shards or missing:
        raise ValueError(f"{src / INDEX} names shards that are missing: {missing[:3]}")
    dtype = _load_dtype(cfg, src, shards)
    model = skeleton(cfg, dtype)  # meta device: names, shapes, tied tensors; no memory
    if getattr(cfg, "tie_word_embeddings", False):
        model.tie_weights()
    expected = {n: t for n, t in model.state_dict(keep_vars=True).items()}
    aliases = _aliases(model)
    targets = _targets(model)
    weight_of = {f"{n}.weight": n for n in targets}
    tok = load_tokenizer(src, required=False) if tokenizer else None
    summary = StreamSummary(0, len(shards), class_name=type(model).__name__,
                            dtype=dtype_name(dtype))
    out_names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
                 for i in range(len(shards))]
    layers: dict[str, dict[str, Any]] = {}
    written: set[str] = set()
    weight_map: dict[str, str] = {}
    digests: dict[str, str] = {}
    try:
        with atomic_folder(dst, _replaceable) as tmp:
            for shard, out_name in zip(shards, out_names):
                out: dict[str, torch.Tensor] = {}
                with safe_open(str(shard), framework="pt") as f:
                    for name in f.keys():
                        if name in aliases:  # a tied copy: stored once, under the first name
                            continue
                        if name not in expected:
                            raise ValueError(f"{shard.name}: tensor {name} is not part of the "
                                             f"{summary.class_name} built from config.json")
                        t = f.get_tensor(name)
                        summary.float_bytes += t.numel() * t.element_size()
                        if tuple(t.shape) != tuple(expected[name].shape):
                            raise ValueError(f"{shard.name}: tensor {name} has shape "
                                             f"{list(t.shape)} but config.json implies "
                                             f"{list(expected[name].shape)}")
                        if t.is_floating_point():
                            t = t.to(dtype)
                        layer = weight_of.get(name)
                        if layer is None:
                            out[name] = t.contiguous()
                            if name.endswith(".bias") and name[:-5] in targets:
                                layers.setdefault(name[:-5], {})["bias_dtype"] = t.dtype
                            continue
                        w = t.t() if is_conv1d(targets[layer]) else t
                        q, s = quantize_weight(w, config.group_size_for(w.shape[1]))
                        out[f"{layer}.qdata"], out[f"{layer}.scale"] = q, s
                        layers.setdefault(layer, {})["weight"] = True
                        del t, w
                written.update(out)
                save_file(out, str(tmp / out_name), metadata={"format": FORMAT})
                summary.converted_bytes += sum(v.numel() * v.element_size()
                                               for v in out.values())
                digests[out_name] = _sha256(tmp / out_name)
                weight_map.update({k: out_name for k in out})
                summary.files.append(out_name)
                del out
                if progress is not None:
                    progress(shard.name)
            table = {}
            for name, mod in targets.items():
                got = layers.get(name, {})
                has_bias = getattr(mod, "bias", None) is not None
                if "weight" not in got or (has_bias and "bias_dtype" not in got):
                    raise ValueError(f"{src} lacks the weight or bias of layer {name}")
                table[name] = _layer_entry(mod, config, got.get("bias_dtype"))
            want: set[str] = set()
            for k in expected:
                if k in aliases:
                    continue
                want |= {f"{weight_of[k]}.qdata", f"{weight_of[k]}.scale"} \
                    if k in weight_of else {k}
            lost = sorted(want - written)
            if lost:
                raise ValueError(f"{src} lacks tensors {lost[:4]} (of {len(lost)}) that "
                                 f"config.json implies")
            (tmp / INDEX).write_text(json.dumps(
                {"metadata": {"total_size": summary.converted_bytes}, "weight_map": weight_map},
                indent=2), encoding="utf-8")
            cfg.save_pretrained(tmp)
            if (src / "generation_config.json").is_file():
                shutil.copy2(src / "generation_config.json", tmp / "generation_config.json")
            if tok is not None:
                tok.save_pretrained(tmp)
            meta = {
                "format": FORMAT,
                "schema_version": SHARDED_SCHEMA_VERSION,
                "spikingbrain_version": __version__,
                "config": config.to_dict(),
                "weights": {"files": summary.files, "index": INDEX, "sha256": digests},
                "aliases": {a: t for a, t in aliases.items()},
                "hf": {"class_name": summary.class_name, "dtype": summary.dtype},
                "layers": table,
            }
            meta["meta_sha256"] = _meta_digest(meta)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    except ForeignFolderError:
        raise ValueError(f"{dst} already holds files that a conversion did not write; "
                         f"choose a new or empty folder") from None
    summary.n_layers = len(table)
    return summary
