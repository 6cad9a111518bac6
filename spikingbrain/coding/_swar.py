"""SIMD-within-a-register fast paths for the coders (eight int8 lanes per int64 word).

A spike train ``[T, N]`` of int8 is viewed as ``[T, N/8]`` int64 words, so every elementwise
operation touches eight spikes at once. Used by :mod:`spikingbrain.coding.codec` when ``N`` is a
multiple of 8 and the counts fit the lanes; the portable path remains the reference and the
tests compare both bit for bit. Lane arithmetic never carries between bytes:

- bitwise encode: byte ``b`` of ``(m >> k) & L`` is bit ``k`` of lane ``b`` (``L = 0x01`` per byte);
- binary/ternary encode, 7-bit magnitudes: ``((m | 0x80) - (t+1)) >> 7 & 1`` is ``m > t`` per lane;
- negative spikes: ``(bits * 0xFF) & sign`` keeps 0x01 where ``sign`` is 0x01 and gives 0xFF (-1)
  where it is 0xFF (negative counts);
- decode: binary lanes are summed (at most 255 steps per block) and bitwise lanes combined by
  Horner's rule (at most 8 steps), all within a byte; ternary rows are added into int16.
"""

from __future__ import annotations

import torch

__all__ = [
    "LANES",
    "alphabet_ok",
    "usable",
    "blocks",
    "encode_bitwise",
    "encode_unary",
    "decode_unary",
    "decode_bitwise",
]

LANES = 8
#: Elements per block on the CPU: a block's int64 words (64 KiB per step) stay in cache while
#: every step is computed, instead of streaming the whole tensor through memory once per op.
CPU_BLOCK = 1 << 19
_L = 0x0101010101010101
_H = -0x7F7F7F7F7F7F7F80  # 0x8080808080808080 as a signed int64


def usable(numel: int) -> bool:
    """Whether ``numel`` elements per step can be viewed as whole int64 words."""
    return numel > 0 and numel % LANES == 0


def blocks(numel: int, device: torch.device) -> list[tuple[int, int]]:
    """``[start, stop)`` element ranges to process one after another (one range on a GPU)."""
    step = numel if device.type != "cpu" else CPU_BLOCK
    return [(a, min(a + step, numel)) for a in range(0, numel, step)]


def _words(t: torch.Tensor) -> torch.Tensor:
    """View a contiguous int8/uint8 tensor ``[..., N]`` as int64 ``[..., N/8]``."""
    return t.view(torch.int64)


def encode_bitwise(word: torch.Tensor, negmask: torch.Tensor | None, out: torch.Tensor) -> None:
    """Bitwise trains into ``out [T, N]`` (int8) from the T-bit words ``word [N]`` (int16/32/64).

    The words are cut into bytes, most significant first; each byte gives (up to) eight steps
    through its uint8 lanes. ``negmask`` (int64 words, 0xFF lanes for negative counts) turns
    spikes into -1 (sign-magnitude); ``None`` keeps 0/1 spikes (unsigned, two's complement).
    """
    T = out.shape[0]
    o = _words(out)
    # lanes of 0xFF for negative counts, 0x01 for the others: (bit * 0xFF) & sign_lanes
    sign_lanes = negmask | _L if negmask is not None else None
    for hi in range(T, 0, -8):  # steps [T-hi, T-hi+width) come from bits [hi-width, hi)
        width = min(8, hi)
        lo_bit = hi - width
        chunk = word if T <= 8 else (word >> lo_bit) & 0xFF
        m = _words(chunk.to(torch.uint8))
        for j in range(width):
            row = o[T - hi + j]
            torch.bitwise_right_shift(m, width - 1 - j, out=row)
            row.bitwise_and_(_L)
            if sign_lanes is not None:
                row.mul_(0xFF).bitwise_and_(sign_lanes)


def encode_unary(mag: torch.Tensor, negmask: torch.Tensor | None, out: torch.Tensor) -> None:
    """Binary/ternary trains into ``out [T, N]`` from uint8 lanes ``mag [N]`` (values and T <= 127)."""
    T = out.shape[0]
    o = _words(out)
    high = _words(mag) | _H
    sign_lanes = negmask | _L if negmask is not None else None
    for t in range(T):
        row = o[t]
        torch.sub(high, (t + 1) * _L, out=row)
        row.bitwise_right_shift_(7).bitwise_and_(_L)
        if sign_lanes is not None:
            row.mul_(0xFF).bitwise_and_(sign_lanes)


def _lanes_to_int(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return words.view(torch.uint8).to(dtype)


def decode_unary(spikes: torch.Tensor, signed: bool, dtype: torch.dtype) -> torch.Tensor:
    """Sum a binary/ternary train ``[T, N]`` (int8 rows of N % 8 == 0 elements) over time."""
    T, n = spikes.shape
    if signed:
        # ternary: a plain int16 (int32 for long windows) += int8 row by row beats lane tricks
        acc = torch.zeros(n, dtype=torch.int16 if T < 2**15 else torch.int32,
                          device=spikes.device)
        for t in range(T):
            acc.add_(spikes[t])
        return acc.to(dtype)
    s = _words(spikes)
    total = torch.zeros(n, dtype=dtype, device=spikes.device)
    acc = torch.zeros(n // LANES, dtype=torch.int64, device=spikes.device)
    for start in range(0, T, 255):  # binary: eight lane sums per word, at most 255 each
        acc.zero_()
        for t in range(start, min(T, start + 255)):
            acc.add_(s[t])
        total += _lanes_to_int(acc, dtype)
    return total


def decode_bitwise(spikes: torch.Tensor, signed: bool, twos: bool, dtype: torch.dtype) -> torch.Tensor:
    """Horner's rule over a bitwise train ``[T, N]`` (int8 rows, N % 8 == 0), a byte at a time."""
    T, n = spikes.shape
    s = _words(spikes)
    acc = torch.empty(n // LANES, dtype=torch.int64, device=spikes.device)
    negany = torch.zeros_like(acc) if signed else None
    tmp = torch.empty_like(acc) if signed else None
    out = torch.zeros(n, dtype=dtype, device=spikes.device)
    for hi in range(T, 0, -8):  # the byte of bits [hi-width, hi) sits in steps [T-hi, T-hi+width)
        width = min(8, hi)
        acc.zero_()
        for t in range(T - hi, T - hi + width):
            if signed:
                torch.bitwise_and(s[t], _L, out=tmp)
                torch.add(tmp, acc, alpha=2, out=acc)
                negany.bitwise_or_(s[t])
            else:
                torch.add(s[t], acc, alpha=2, out=acc)
        byte = _lanes_to_int(acc, dtype)
        out += byte << (hi - width) if hi > width else byte
    if twos:  # the first step is the sign bit: its weight is -2**(T-1), not +2**(T-1)
        out -= spikes[0].to(dtype) << T
    elif signed:
        neg = _lanes_to_int(negany.bitwise_right_shift_(7).bitwise_and_(_L), dtype)
        out *= 1 - 2 * neg
    return out


def mixes_signs(spikes: torch.Tensor) -> bool:
    """Whether some element of a train ``[T, N]`` with values in {-1, 0, 1} has both +1 and
    -1 steps: its summed spikes then fall short of its number of non-zero steps. Two
    vectorised int8 reductions (int16 / int32 sums for long windows)."""
    T = spikes.shape[0]
    dt = torch.int8 if T < 2**7 else torch.int16 if T < 2**15 else torch.int32
    total = spikes.sum(0, dtype=dt)
    nonzero = spikes.abs().sum(0, dtype=dt)
    return bool((total.abs() != nonzero).any())


def alphabet_ok(spikes: torch.Tensor, signed: bool, one_sign: bool) -> bool:
    """Whether an int8 train ``[T, N]`` (N % 8 == 0) holds only {0, 1} (unsigned) or
    {-1, 0, 1} (signed) and, with ``one_sign``, one sign per element: checked on int64 words,
    eight lanes per operation over the whole ``[T, N/8]`` block.

    A valid signed lane is 0x00, 0x01 or 0xFF: its bits 1-7 equal its bit 7 repeated, and a
    lane with bit 7 set has bit 0 set too.
    """
    s = _words(spikes)
    if not signed:
        return not bool(s.bitwise_and(~_L).any())
    hi = torch.bitwise_right_shift(s, 7).bitwise_and_(_L)  # bit 7 of each lane, as 0x01
    bad = s.bitwise_and(~_L).bitwise_xor_(hi * 0xFE).bitwise_or_(s.bitwise_not().bitwise_and_(hi))
    if bool(bad.any()):
        return False
    if not one_sign or s.shape[0] < 2:
        return True
    neg = _or_rows(hi)
    pos = _or_rows(s.bitwise_and(_L).bitwise_and_(hi.bitwise_xor(_L)))
    return not bool(neg.bitwise_and_(pos).any())


def _or_rows(x: torch.Tensor) -> torch.Tensor:
    """Bitwise OR over the first dimension of an int64 ``[T, W]`` tensor."""
    out = x[0].clone()
    for t in range(1, x.shape[0]):
        out.bitwise_or_(x[t])
    return out
