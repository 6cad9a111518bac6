"""Spike coders on the GPU: one Triton kernel pass per encode or decode, every scheme.

:func:`encode_flat` turns flat integer counts ``[n]`` into an int8 train ``[T, n]``: each
program loads a block of counts once and writes its ``T`` steps. :func:`decode_flat` reads the
``T`` steps of a block once, sums ``w_t * s_t`` (Horner's scheme, most significant step first)
and checks the alphabet on the way (values allowed by the scheme; for sign-magnitude and
ternary trains one sign per element) into a flag the caller reads once.
:func:`spikingbrain.coding.encode` / :func:`~spikingbrain.coding.decode` call them for CUDA
tensors after their own argument checks, so errors and results are the CPU's.

CPU reference: the torch paths of :func:`spikingbrain.coding.encode` and
:func:`spikingbrain.coding.decode` (the tests compare the trains and counts bit for bit).

>>> import torch
>>> from spikingbrain.coding.schemes import get_scheme
>>> from spikingbrain.kernels.coding_triton import decode_flat, encode_flat
>>> spec = get_scheme("bitwise_bidirectional")
>>> s = encode_flat(torch.tensor([5, -3, 0], dtype=torch.int32), spec, 3)
>>> s.T.tolist()
[[1, 0, 1], [0, -1, -1], [0, 0, 0]]
>>> counts, bad = decode_flat(s, spec, torch.int32)
>>> counts.tolist(), int(bad)
([5, -3, 0], 0)
"""

from __future__ import annotations

import torch

from spikingbrain.coding.schemes import SchemeSpec
from spikingbrain.kernels.triton_support import import_triton, interpreting

triton, tl = import_triton()

__all__ = ["encode_flat", "decode_flat", "KIND"]

#: kernel kinds: unary unsigned (binary), unary signed (ternary), bits of the magnitude
#: (bitwise unsigned), signed bits of the magnitude (sign-magnitude), two's complement
KIND = {"binary": 0, "ternary": 1, "bitwise": 2, "bitwise_bidirectional": 3,
        "bitwise_twos_complement": 4}

_BLOCK = 2048


def _kind(spec: SchemeSpec) -> int:
    if not spec.bitwise:
        return 1 if spec.signed else 0
    if spec.twos_complement:
        return 4
    return 3 if spec.signed else 2


@triton.jit
def _encode_kernel(c_ptr, s_ptr, n, T, WIDE: tl.constexpr, KIND: tl.constexpr,
                   BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    n64 = n.to(tl.int64)  # T x n may pass 2**31
    ok = offs < n
    c = tl.load(c_ptr + offs, mask=ok, other=0)
    c = c.to(tl.int64) if WIDE else c.to(tl.int32)
    mag = tl.abs(c)
    sgn = tl.where(c < 0, -1, 1)
    for t in range(0, T):
        out = s_ptr + t * n64 + offs  # fresh each step: keeps the 16-byte alignment visible
        if KIND == 0:
            v = (mag > t).to(tl.int8)
        elif KIND == 1:
            v = tl.where(mag > t, sgn, 0).to(tl.int8)
        elif KIND == 2:
            v = ((mag >> (T - 1 - t)) & 1).to(tl.int8)
        elif KIND == 3:
            v = (((mag >> (T - 1 - t)) & 1) * sgn).to(tl.int8)
        else:  # arithmetic shift: bit T-1-t of the T-bit two's complement word
            v = ((c >> (T - 1 - t)) & 1).to(tl.int8)
        tl.store(out, v, mask=ok)


@triton.jit
def _decode_kernel(s_ptr, c_ptr, bad_ptr, n, T, WIDE: tl.constexpr, KIND: tl.constexpr,
                   BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    n64 = n.to(tl.int64)  # T x n may pass 2**31
    ok = offs < n
    if WIDE:
        acc = tl.zeros([BLOCK], dtype=tl.int64)
    else:
        acc = tl.zeros([BLOCK], dtype=tl.int32)
    lo = tl.zeros([BLOCK], dtype=tl.int32)
    hi = tl.zeros([BLOCK], dtype=tl.int32)
    for t in range(0, T):
        v = tl.load(s_ptr + t * n64 + offs, mask=ok, other=0).to(tl.int32)
        lo = tl.minimum(lo, v)
        hi = tl.maximum(hi, v)
        if KIND <= 1:
            acc += v
        elif KIND == 4:
            acc = acc * 2 + tl.where(t == 0, -v, v)
        else:
            acc = acc * 2 + v
    if KIND == 1 or KIND == 3:  # values in {-1, 0, 1}, one sign per element
        bad = (lo < -1) | (hi > 1) | ((lo < 0) & (hi > 0))
    else:  # values in {0, 1}
        bad = (lo < 0) | (hi > 1)
    tl.store(c_ptr + offs, acc.to(c_ptr.dtype.element_ty), mask=ok)
    any_bad = tl.max(bad.to(tl.int32), axis=0)
    if any_bad > 0:  # only a bad block touches the flag: no contention on clean trains
        tl.atomic_max(bad_ptr, any_bad)


def encode_flat(c: torch.Tensor, spec: SchemeSpec, T: int) -> torch.Tensor:
    """int8 train ``[T, n]`` of checked integer counts ``c [n]`` that fit the window."""
    n = c.numel()
    out = torch.empty(T, n, dtype=torch.int8, device=c.device)
    if n and T:
        block = 256 if interpreting() else _BLOCK
        _encode_kernel[(triton.cdiv(n, block),)](
            c, out, n, T, WIDE=c.dtype == torch.int64 or T > 30, KIND=_kind(spec), BLOCK=block,
            num_warps=4)
    return out


def decode_flat(s: torch.Tensor, spec: SchemeSpec, dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts ``[n]`` in ``dtype`` from an integer train ``[T, n]`` (contiguous), and a 0-dim
    int32 flag, non-zero when some value lies outside the alphabet or mixes signs."""
    T, n = s.shape
    out = torch.empty(n, dtype=dtype, device=s.device)
    bad = torch.zeros((), dtype=torch.int32, device=s.device)
    if n and T:
        block = 256 if interpreting() else _BLOCK
        _decode_kernel[(triton.cdiv(n, block),)](
            s, out, bad, n, T, WIDE=dtype == torch.int64, KIND=_kind(spec), BLOCK=block,
            num_warps=4)
    elif n:
        out.zero_()
    return out, bad
