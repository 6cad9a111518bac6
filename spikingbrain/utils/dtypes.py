"""One table between torch dtypes and the names stored in files (JSON metadata, NIR, bundles).

>>> dtype_from_name("bfloat16"), dtype_name(torch.int8)
(torch.bfloat16, 'int8')
>>> dtype_from_name("torch.float32")
torch.float32
>>> dtype_from_name("complex64")
Traceback (most recent call last):
...
ValueError: unknown dtype name 'complex64'; known: int8, int16, int32, int64, float16, bfloat16, float32, float64
"""

from __future__ import annotations

import torch

__all__ = ["DTYPES", "FLOAT_DTYPES", "dtype_from_name", "dtype_name"]

#: Every dtype a spikingbrain file may name, by its short name.
DTYPES: dict[str, torch.dtype] = {
    str(d).removeprefix("torch."): d
    for d in (torch.int8, torch.int16, torch.int32, torch.int64, torch.float16, torch.bfloat16,
              torch.float32, torch.float64)
}
#: The float dtypes (e.g. a compute dtype).
FLOAT_DTYPES: dict[str, torch.dtype] = {k: v for k, v in DTYPES.items() if v.is_floating_point}


def dtype_name(dtype: torch.dtype) -> str:
    """Short name of a torch dtype (``torch.int8`` -> ``"int8"``)."""
    return str(dtype).removeprefix("torch.")


def dtype_from_name(name: str, table: dict[str, torch.dtype] = DTYPES) -> torch.dtype:
    """The dtype called ``name`` (a ``torch.`` prefix is accepted); ValueError otherwise."""
    key = str(name).removeprefix("torch.")
    if key not in table:
        raise ValueError(f"unknown dtype name {name!r}; known: {', '.join(table)}")
    return table[key]
