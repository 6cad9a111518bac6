"""Write a SpikingBrain-7B checkpoint folder in the PUBLIC layout from random weights.

Two layouts, each as sharded safetensors with ``model.safetensors.index.json`` and a
``config.json`` that names its fields as the public release does (no ``gate_low_rank_dim``, no
``attention_quant``: the loader must detect both from the tensors):

- ``--kind w8aspike`` (the ``W8ASpike`` release): every projection a QuantLinear, i.e. an fp32
  ``weight``, ``weight_quantizer.scales [out, in / group, 1]`` and the biases; the GLA gate is
  ONE full-rank ``attn.gk_proj`` (hidden -> kv_heads x head_dim, with bias); the float
  ``lm_head`` has no scales. A fraction ``--beyond`` of all weight codes ``round(W / scales)``
  lies outside int8 (chosen groups get a scale below absmax / 127, so their top ``r`` codes
  reach 128..~160, as in the public checkpoint where about 1 % do).
- ``--kind float`` (the base model): the same names, the rank-16 gate pair
  ``attn.gk_proj.0`` / ``attn.gk_proj.1``, no scales, in ``--dtype`` (bf16 by default).

The folder is written shard by shard (``--layers-per-shard`` decoder layers per shard, default
one; the embeddings and the head in their own shards), each layer generated in float32 and
kept in the target dtype, so the full size (about 30 GB in fp32, 15 GB in bf16) never sits in
memory: peak memory is about one shard. It is built beside OUT and renamed into place, all or
nothing.

Run::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/public_w8aspike_folder.py --size tiny --out /tmp/w8
    PYTHONPATH=$PWD .venv/bin/python benchmarks/public_w8aspike_folder.py --size full \\
        --out /data/w8 --beyond 0.01
    PYTHONPATH=$PWD .venv/bin/python benchmarks/public_w8aspike_folder.py --size full \\
        --kind float --dtype bf16 --out /data/float7b

Prints a JSON summary (files, bytes, fraction of codes beyond int8).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch

#: the public config.json of SpikingBrain-7B, field names as released (DESIGN.md section 4)
FULL: dict[str, Any] = dict(vocab_size=152064, hidden_size=3584, num_hidden_layers=28,
                            num_attention_heads=28, num_key_value_heads=4,
                            intermediate_size=18944, sliding_window=4096)
#: a tiny model of the same structure (every width a multiple of the 128-column group)
TINY: dict[str, Any] = dict(vocab_size=256, hidden_size=128, num_hidden_layers=4,
                            num_attention_heads=4, num_key_value_heads=2,
                            intermediate_size=256, sliding_window=8)
SIZES = {"tiny": TINY, "full": FULL}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def public_config(size: dict[str, Any], dtype: str = "float32") -> dict[str, Any]:
    """config.json of the public release for the given widths (public field names only)."""
    return {"architectures": ["GLAswaForCausalLM"], "model_type": "gla_swa",
            "attn_mode": "chunk", "bos_token_id": 151643 if size["vocab_size"] > 151643 else 1,
            "eos_token_id": 151643 if size["vocab_size"] > 151643 else 2, "conv_size": 4,
            "elementwise_affine": True, "fuse_cross_entropy": True, "hidden_act": "swish",
            "initializer_range": 0.02, "max_position_embeddings": 131072, "norm_eps": 1e-06,
            "rope_theta": 1000000.0, "tie_word_embeddings": False, "torch_dtype": dtype,
            "use_cache": True, "use_short_conv": False, **size}


def _scales(w: torch.Tensor, group: int, beyond: float, gen: torch.Generator
            ) -> torch.Tensor:
    """``[out, in / group, 1]`` scales: absmax / 127, and for chosen groups the scale that puts
    their ``r`` largest codes beyond [-128, 127] (``r * chosen = beyond * numel`` on average)."""
    out, inp = w.shape
    g = w.view(out, inp // group, group).abs()
    absmax = g.amax(-1)
    s = absmax / 127
    if beyond > 0:
        r = max(1, math.ceil(beyond * group))
        p = min(1.0, beyond * group / r)  # fraction of groups shrunk
        top = g.topk(r, dim=-1).values[..., -1]  # the r-th largest |w| of every group
        pick = torch.rand(absmax.shape, generator=gen) < p
        s = torch.where(pick, top / 128.75, s)  # round(|w| / s) >= 129 for the r largest
    return torch.where(s > 0, s, torch.ones_like(s)).unsqueeze(-1).contiguous()


def _linear(gen: torch.Generator, out: int, inp: int) -> torch.Tensor:
    return torch.randn(out, inp, generator=gen) / math.sqrt(inp)


def layer_tensors(cfg: dict[str, Any], i: int, kind: str, seed: int = 0,
                  gate_rank: int = 16) -> dict[str, torch.Tensor]:
    """Float32 tensors of decoder layer ``i`` (odd: sliding-window, even: GLA), seeded by
    ``(seed, i)`` so each shard is reproducible on its own."""
    gen = torch.Generator().manual_seed(seed * 1000 + i + 1)
    h, d = cfg["hidden_size"], cfg["hidden_size"] // cfg["num_attention_heads"]
    hq, hk, f = cfg["num_attention_heads"] * d, cfg["num_key_value_heads"] * d, \
        cfg["intermediate_size"]
    p = f"model.layers.{i}."
    t: dict[str, torch.Tensor] = {
        p + "attn_norm.weight": 1 + 0.1 * torch.randn(h, generator=gen),
        p + "mlp_norm.weight": 1 + 0.1 * torch.randn(h, generator=gen),
        p + "attn.q_proj.weight": _linear(gen, hq, h),
        p + "attn.q_proj.bias": 0.1 * torch.randn(hq, generator=gen),
        p + "attn.k_proj.weight": _linear(gen, hk, h),
        p + "attn.k_proj.bias": 0.1 * torch.randn(hk, generator=gen),
        p + "attn.v_proj.weight": _linear(gen, hk, h),
        p + "attn.v_proj.bias": 0.1 * torch.randn(hk, generator=gen),
        p + "attn.o_proj.weight": _linear(gen, h, hq),
        p + "mlp.gate_proj.weight": _linear(gen, f, h),
        p + "mlp.up_proj.weight": _linear(gen, f, h),
        p + "mlp.down_proj.weight": _linear(gen, h, f),
    }
    if i % 2 == 0:  # GLA
        t[p + "attn.g_norm.weight"] = 1 + 0.1 * torch.randn(d, generator=gen)
        if kind == "w8aspike":
            t[p + "attn.gk_proj.weight"] = _linear(gen, hk, h)
            t[p + "attn.gk_proj.bias"] = 2 + torch.randn(hk, generator=gen)
        else:
            t[p + "attn.gk_proj.0.weight"] = _linear(gen, gate_rank, h)
            t[p + "attn.gk_proj.1.weight"] = _linear(gen, hk, gate_rank)
            t[p + "attn.gk_proj.1.bias"] = 2 + torch.randn(hk, generator=gen)
    return t


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})


def write_folder(out: str | os.PathLike, size: str | dict[str, Any] = "tiny",
                 kind: str = "w8aspike", beyond: float = 0.01, group: int = 128,
                 dtype: str = "fp32", seed: int = 0, layers_per_shard: int = 1
                 ) -> dict[str, Any]:
    """Write the folder (see the module docstring); returns a summary
    ``{"files", "bytes", "codes", "beyond_int8", "fraction_beyond"}``.

    >>> import tempfile
    >>> s = write_folder(tempfile.mkdtemp() + "/w8", "tiny", beyond=0.01)
    >>> s["fraction_beyond"] > 0.005, len(s["files"])
    (True, 6)
    """
    from spikingbrain.utils.atomic import atomic_folder

    if kind not in ("w8aspike", "float"):
        raise ValueError(f"kind must be 'w8aspike' or 'float', got {kind!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if kind == "w8aspike" and dtype != "fp32":
        raise ValueError("the public W8ASpike folder stores fp32 weights; use --dtype fp32")
    if not 0 <= beyond < 0.5:
        raise ValueError(f"beyond must lie in [0, 0.5), got {beyond}")
    cfg = dict(SIZES[size]) if isinstance(size, str) else dict(size)
    n = cfg["num_hidden_layers"]
    for w in (cfg["hidden_size"], cfg["intermediate_size"]):
        if kind == "w8aspike" and w % group:
            raise ValueError(f"width {w} is not a multiple of the group size {group}")
    torch_dtype = DTYPES[dtype]
    if layers_per_shard < 1:
        raise ValueError(f"layers_per_shard must be >= 1, got {layers_per_shard}")
    n_mid = math.ceil(n / layers_per_shard)
    total = n_mid + 2
    names = [f"model-{j + 1:05d}-of-{total:05d}.safetensors" for j in range(total)]
    weight_map: dict[str, str] = {}
    stats = {"codes": 0, "beyond_int8": 0, "bytes": 0}
    gen = torch.Generator().manual_seed(seed)
    public_dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[dtype]

    def emit(tensors: dict[str, torch.Tensor], fname: str, folder: Path,
             layers: range = range(0)) -> None:
        out_t: dict[str, torch.Tensor] = {}

        def add(name: str, t: torch.Tensor) -> None:
            out_t[name] = t.to(torch_dtype)
            if kind == "w8aspike" and name.endswith(".weight") and t.dim() == 2 and \
                    not name.startswith(("model.embeddings", "lm_head")):
                s = _scales(t, group, beyond, gen)
                out_t[name[: -len(".weight")] + ".weight_quantizer.scales"] = s
                codes = torch.round(t.view(t.shape[0], -1, group) / s)
                stats["codes"] += codes.numel()
                stats["beyond_int8"] += int(((codes < -128) | (codes > 127)).sum())
                del codes

        for name, t in tensors.items():
            add(name, t)
        for i in layers:  # one layer at a time in float32, kept in the target dtype
            for name, t in layer_tensors(cfg, i, kind, seed).items():
                add(name, t)
        _save(out_t, folder / fname)
        stats["bytes"] += (folder / fname).stat().st_size
        weight_map.update({k: fname for k in out_t})

    target = Path(out)
    with atomic_folder(target) as tmp:
        g0 = torch.Generator().manual_seed(seed * 1000)
        emit({"model.embeddings.weight": torch.randn(cfg["vocab_size"], cfg["hidden_size"],
                                                     generator=g0)}, names[0], tmp)
        for j in range(n_mid):
            emit({}, names[j + 1], tmp, layers=range(j * layers_per_shard,
                                                      min(n, (j + 1) * layers_per_shard)))
        g1 = torch.Generator().manual_seed(seed * 1000 + 999_999)
        emit({"model.norm.weight": 1 + 0.1 * torch.randn(cfg["hidden_size"], generator=g1),
              "lm_head.weight": _linear(g1, cfg["vocab_size"], cfg["hidden_size"])},
             names[-1], tmp)
        index = {"metadata": {"total_size": stats["bytes"]}, "weight_map": weight_map}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
        (tmp / "config.json").write_text(json.dumps(public_config(cfg, public_dtype), indent=2))
    frac = stats["beyond_int8"] / stats["codes"] if stats["codes"] else 0.0
    return {"folder": str(target), "kind": kind, "files": names, **stats,
            "fraction_beyond": frac}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--kind", choices=["w8aspike", "float"], default="w8aspike")
    ap.add_argument("--out", required=True, help="output folder (new or empty)")
    ap.add_argument("--beyond", type=float, default=0.01,
                    help="fraction of weight codes beyond int8 (w8aspike only)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                    help="weight dtype (w8aspike: fp32; float: bf16 by default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers-per-shard", type=int, default=1,
                    help="decoder layers per shard (8 at full size in bf16: ~3.8 GB shards)")
    a = ap.parse_args(argv)
    dtype = a.dtype or ("fp32" if a.kind == "w8aspike" else "bf16")
    try:
        summary = write_folder(a.out, a.size, a.kind, a.beyond, dtype=dtype, seed=a.seed,
                               layers_per_shard=a.layers_per_shard)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary.pop("files")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
