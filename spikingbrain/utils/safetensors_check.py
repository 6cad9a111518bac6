"""Clear errors for broken safetensors folders before anything loads them: a malformed or
inconsistent ``model.safetensors.index.json``, a shard that is missing, and a shard that is
truncated or not safetensors at all (checked from the header alone, without reading tensors).

>>> import tempfile, torch
>>> from pathlib import Path
>>> from safetensors.torch import save_file
>>> d = Path(tempfile.mkdtemp())
>>> save_file({"w": torch.zeros(4)}, str(d / "model.safetensors"))
>>> [p.name for p in check_safetensors_folder(d)]
['model.safetensors']
>>> data = (d / "model.safetensors").read_bytes()
>>> _ = (d / "model.safetensors").write_bytes(data[:-3])
>>> check_safetensors_folder(d)
Traceback (most recent call last):
...
ValueError: .../model.safetensors is truncated: its header promises 16 bytes of tensor data, the file holds 13; copy or download it again
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

__all__ = ["check_safetensors_folder", "check_shard", "INDEX", "SINGLE"]

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def check_shard(path: Path) -> set[str]:
    """The tensor names of one safetensors file; ValueError if it is truncated or foreign."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is not a safetensors file (only {size} bytes); copy or "
                             "download it again")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 * 2**20:
            raise ValueError(f"{path} is not a safetensors file, or is truncated (header of "
                             f"{n} bytes in a file of {size}); copy or download it again")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} has a corrupt safetensors header ({err}); copy or "
                             "download it again") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} has a corrupt safetensors header (not a JSON object)")
    end = 0
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(spec["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError):
            raise ValueError(f"{path}: tensor {name!r} has no valid data_offsets; the file is "
                             "corrupt") from None
    if 8 + n + end > size:
        raise ValueError(f"{path} is truncated: its header promises {end} bytes of tensor "
                         f"data, the file holds {size - 8 - n}; copy or download it again")
    return {k for k in header if k != "__metadata__"}


def check_safetensors_folder(folder: str | os.PathLike) -> list[Path]:
    """The shard files of ``folder`` (an index or one ``model.safetensors``), every one
    checked; ValueError (or FileNotFoundError) saying what is broken and what to do."""
    folder = Path(folder)
    index = folder / INDEX
    if index.is_file():
        try:
            data = json.loads(index.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{index} is not valid JSON ({err}); restore the index file of "
                             "this checkpoint") from None
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not weight_map or not all(
                isinstance(v, str) for v in weight_map.values()):
            raise ValueError(f"{index} has no 'weight_map' of tensor name -> shard file; "
                             "restore the index file of this checkpoint")
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} lacks the shards {missing[:3]} named in {INDEX}; "
                                    "copy the whole checkpoint folder")
        for s in shards:
            names = check_shard(folder / s)
            absent = [k for k, v in weight_map.items() if v == s and k not in names]
            if absent:
                raise ValueError(f"{folder / s} lacks tensors {absent[:3]} that {INDEX} places "
                                 "there; the index and the shards disagree")
        return [folder / s for s in shards]
    if (folder / SINGLE).is_file():
        check_shard(folder / SINGLE)
        return [folder / SINGLE]
    raise FileNotFoundError(f"{folder} holds no {SINGLE} and no {INDEX}")
