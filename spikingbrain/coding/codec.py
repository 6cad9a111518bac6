"""Exact, vectorised spike encoding and decoding for every scheme.

``encode`` expands integer counts into a spike train ``[T, *shape]`` (int8) and ``decode``
sums it back, ``count = sum_t w_t * s_t`` with the scheme's time weights (see
:mod:`spikingbrain.coding.schemes`). Both work on any shape (also empty), on CPU and CUDA,
with one broadcast operation over time and elements (no Python loop over elements).
"""

from __future__ import annotations

import torch

from spikingbrain.coding import _swar
from spikingbrain.coding._validate import as_integer_counts, check_tensor
from spikingbrain.coding.schemes import SchemeSpec, get_scheme

__all__ = ["encode", "decode", "min_steps", "count_range"]

_OVERFLOW = ("error", "saturate")


def count_range(counts: torch.Tensor) -> tuple[int, int]:
    """Smallest and largest value of an integer tensor ((0, 0) when empty).

    >>> count_range(torch.tensor([3, -1, 2]))
    (-1, 3)
    """
    if counts.numel() == 0:
        return 0, 0
    lo, hi = torch.stack(torch.aminmax(counts)).tolist()  # one read-back on a GPU
    return int(lo), int(hi)


def min_steps(counts: torch.Tensor, scheme: str | SchemeSpec) -> int:
    """Minimal window ``T`` that encodes every count of ``counts`` exactly with ``scheme``.

    binary: ``max c``; ternary: ``max |c|``; bitwise (both signs): ``ceil(log2(max|c| + 1))``;
    two's complement: one more bit for the sign, at least 2.

    >>> min_steps(torch.tensor([5, -3]), "bitwise_bidirectional")
    3
    >>> min_steps(torch.tensor([5, -3]), "bitwise_twos_complement")
    4
    """
    spec = get_scheme(scheme)
    return spec.min_steps(*count_range(as_integer_counts(counts)))


def _work_dtype(lo: int, hi: int) -> torch.dtype:
    """Smallest signed integer dtype holding ``[lo, hi]`` (less memory traffic when encoding)."""
    for dt in (torch.int8, torch.int16, torch.int32):
        info = torch.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return dt
    return torch.int64


def _steps_view(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """Reshape a ``[T]`` vector to ``[T, 1, ..., 1]`` for broadcasting against ``[*shape]``."""
    return values.view(-1, *([1] * ndim))


def encode(
    counts: torch.Tensor,
    scheme: str | SchemeSpec,
    T: int | None = None,
    overflow: str = "error",
    fast: bool = True,
) -> torch.Tensor:
    """Expand integer spike counts into a spike train.

    Args:
        counts: integer tensor ``[*shape]`` (an integer-valued float tensor is accepted).
        scheme: ``"binary"``, ``"ternary"``, ``"bitwise"``, ``"bitwise_bidirectional"`` or
            ``"bitwise_twos_complement"``.
        T: window length; ``None`` picks the minimal one for these counts.
        overflow: with a fixed ``T``, ``"error"`` (default) rejects counts that do not fit,
            ``"saturate"`` clamps them to the window's range.
        fast: use the eight-lane fast path where it applies (same result; ``False`` forces the
            portable broadcast path, which the tests compare against).

    Returns:
        int8 spikes ``[T, *shape]``; step 0 carries the most significant bit for the bitwise
        schemes. ``decode(encode(c, s), s) == c``.

    >>> c = torch.tensor([3, -2, 0])
    >>> encode(c, "ternary").tolist()
    [[1, -1, 0], [1, -1, 0], [1, 0, 0]]
    >>> encode(torch.tensor([5, 2]), "bitwise").T.tolist()
    [[1, 0, 1], [0, 1, 0]]
    >>> encode(torch.tensor([-3]), "bitwise_twos_complement").flatten().tolist()
    [1, 0, 1]
    >>> encode(torch.tensor([9]), "bitwise", T=3, overflow="saturate").flatten().tolist()
    [1, 1, 1]
    """
    spec = get_scheme(scheme)
    if overflow not in _OVERFLOW:
        raise ValueError(f"overflow must be one of {_OVERFLOW}, got {overflow!r}")
    c = as_integer_counts(counts)
    lo, hi = count_range(c)
    if lo < 0 and not spec.signed:
        raise ValueError(spec.negative_message(lo))
    if T is None:
        T = spec.min_steps(lo, hi)
    spec.check_window(T)
    rlo, rhi = spec.value_range(T)
    if lo < rlo or hi > rhi:
        if overflow == "error":
            raise ValueError(
                f"counts in [{lo}, {hi}] do not fit scheme '{spec.name}' with T={T} "
                f"(representable range [{rlo}, {rhi}]); use T >= {spec.min_steps(lo, hi)}, "
                f"T=None for the minimal window, or overflow='saturate' to clamp"
            )
        c = c.clamp(rlo, rhi)
        lo, hi = max(lo, rlo), min(hi, rhi)
    c = c.to(_work_dtype(min(lo, -1), max(hi, -lo, T)))  # |lo| too: abs(-128) overflows int8
    if T == 0 or c.numel() == 0:
        return torch.zeros((T, *c.shape), dtype=torch.int8, device=c.device)
    if fast and c.is_cuda and (gpu := _gpu_coders()) is not None:
        return gpu.encode_flat(c.reshape(-1).contiguous(), spec, T).view(T, *c.shape)
    if fast and spec.bitwise and T <= 7 and c.dtype == torch.int8:
        return _encode_short_bitwise(c.reshape(-1), spec, T).view(T, *c.shape)
    if fast and _swar.usable(c.numel()):
        return _encode_swar(c.reshape(-1), spec, T).view(T, *c.shape)
    return _encode_portable(c, spec, T)


def _encode_short_bitwise(c: torch.Tensor, spec: SchemeSpec, T: int) -> torch.Tensor:
    """Bitwise trains of at most 7 steps from int8 counts, computed in int8 lanes (vectorised
    32 to a register): step t is bit ``T-1-t`` of ``|c|`` (signed ``(b ^ n) - n`` with
    ``n = c >> 7``) or, for two's complement, of ``c`` itself."""
    out = torch.empty((T, c.numel()), dtype=torch.int8, device=c.device)
    for a, b in _swar.blocks(c.numel(), c.device):  # cache-sized blocks on the CPU
        part = c[a:b]
        src = part if spec.twos_complement else part.abs()
        neg = part >> 7 if spec.signed and not spec.twos_complement else None
        for t in range(T):
            row = out[t, a:b]
            torch.bitwise_right_shift(src, T - 1 - t, out=row)
            row.bitwise_and_(1)
            if neg is not None:
                row.bitwise_xor_(neg).sub_(neg)
    return out


def _decode_short_bitwise(block: torch.Tensor, spec: SchemeSpec, check_sign: bool
                          ) -> tuple[torch.Tensor, bool]:
    """Horner's rule in int8 lanes for bitwise trains of at most 7 steps (values already
    checked to lie in the alphabet): ``acc = 2 acc + s[t]`` is the count itself (two's
    complement starts from ``-s[0]``). ``check_sign`` (sign-magnitude): a second Horner sum
    of ``|s[t]|`` gives the magnitude, which an element with mixed signs does not reach.
    Returns the int8 counts and whether some element mixes signs."""
    acc = block[0].neg() if spec.twos_complement else block[0].clone()
    mag = block[0].abs() if check_sign else None
    tmp = torch.empty_like(acc) if check_sign else None
    for t in range(1, block.shape[0]):
        torch.add(block[t], acc, alpha=2, out=acc)
        if check_sign:
            torch.bitwise_and(block[t], 1, out=tmp)
            torch.add(tmp, mag, alpha=2, out=mag)
    # mag >= |acc| lane by lane, equal unless the element mixes signs; an int8 max is
    # vectorised on every CPU class, whereas ``(x != y).any()`` reduces a bool tensor
    # element by element (about 15x slower)
    return acc, check_sign and int(mag.sub_(acc.abs()).max()) > 0


_GPU_CODERS: list = []


def _gpu_coders():
    """The Triton coders (:mod:`spikingbrain.kernels.coding_triton`) for CUDA tensors, or
    None where triton is not installed (the torch paths then run on the GPU)."""
    if not _GPU_CODERS:
        try:
            from spikingbrain.kernels import coding_triton
        except ImportError:
            coding_triton = None
        _GPU_CODERS.append(coding_triton)
    return _GPU_CODERS[0]


def _encode_portable(c: torch.Tensor, spec: SchemeSpec, T: int) -> torch.Tensor:
    """Broadcast encoder for any shape and window (the reference for the fast path)."""
    nd = c.dim()
    if not spec.bitwise:
        steps = _steps_view(torch.arange(T, dtype=c.dtype, device=c.device), nd)
        if not spec.signed:
            return (steps < c.unsqueeze(0)).view(torch.int8)
        fires = steps < c.abs().unsqueeze(0)
        return torch.where(fires, c.sign().to(torch.int8).unsqueeze(0), 0).to(torch.int8)
    shifts = _steps_view(torch.arange(T - 1, -1, -1, dtype=c.dtype, device=c.device), nd)
    if spec.twos_complement:
        # arithmetic shift: bit k of the T-bit two's complement word, sign bit at step 0
        return torch.bitwise_and(torch.bitwise_right_shift(c.unsqueeze(0), shifts), 1).to(
            torch.int8
        )
    bits = torch.bitwise_and(torch.bitwise_right_shift(c.abs().unsqueeze(0), shifts), 1)
    bits = bits.to(torch.int8)
    if spec.signed:
        bits = bits * c.sign().to(torch.int8).unsqueeze(0)
    return bits


def _encode_swar(c: torch.Tensor, spec: SchemeSpec, T: int) -> torch.Tensor:
    """Eight-lane encoder for flat counts ``[N]`` (N % 8 == 0), block by block; see :mod:`._swar`."""
    out = torch.empty((T, c.numel()), dtype=torch.int8, device=c.device)
    for a, b in _swar.blocks(c.numel(), c.device):
        _encode_swar_block(c[a:b], spec, out[:, a:b])
    return out


def _encode_swar_block(c: torch.Tensor, spec: SchemeSpec, out: torch.Tensor) -> None:
    T = out.shape[0]
    negmask = None
    if spec.signed and not spec.twos_complement:
        negmask = (c < 0).to(torch.int8).neg_().view(torch.int64)
    if spec.bitwise:
        if spec.twos_complement:  # the T-bit two's complement word, in a dtype wide enough
            word = c.to(_work_dtype(0, 1 << T)) & ((1 << T) - 1)
        else:
            word = c.abs()
        _swar.encode_bitwise(word, negmask, out)
        return
    mag = c.abs()
    head = min(T, 127)
    _swar.encode_unary(mag.clamp_max(127).to(torch.uint8), negmask, out[:head])
    if T > head:  # the few counts above 127 fill the later steps
        out[head:].zero_()
        big = torch.nonzero(mag > head).flatten()
        if big.numel():
            out[head:, big] = _encode_portable(c[big], spec, T)[head:]


def _check_alphabet(spikes: torch.Tensor, spec: SchemeSpec) -> None:
    if spikes.numel() == 0:
        return
    lo, hi = count_range(spikes)
    alo, ahi = min(spec.alphabet), max(spec.alphabet)
    if lo < alo or hi > ahi:
        raise ValueError(
            f"spikes for scheme '{spec.name}' must take values in {set(spec.alphabet)}, "
            f"found values in [{lo}, {hi}]"
            + (
                f"; signed trains need scheme '{spec.unsigned_alternative}'"
                if lo < 0 and spec.unsigned_alternative
                else ""
            )
        )
    if spec.signed and not spec.twos_complement and lo < 0 < hi and spikes.dim() > 1:
        # sign-magnitude and ternary trains carry one sign per element: mixed signs were
        # never produced by encode and have no defined count
        mixed = (spikes.amax(0) > 0) & (spikes.amin(0) < 0)
        if bool(mixed.any()):
            first = [int(i) for i in torch.nonzero(mixed)[0]]
            raise ValueError(
                f"spikes for scheme '{spec.name}' must carry one sign per element (all non-zero "
                f"spikes of an element +1, or all -1); {int(mixed.sum())} element(s) mix +1 and "
                f"-1, the first at index {first}; the train is corrupt or was built for another "
                f"scheme"
            )


def decode(
    spikes: torch.Tensor,
    scheme: str | SchemeSpec,
    dtype: torch.dtype | None = None,
    validate: bool = True,
    fast: bool = True,
) -> torch.Tensor:
    """Sum a spike train back into integer counts: ``count = sum_t w_t * spikes[t]``.

    Args:
        spikes: ``[T, *shape]`` spike train (int8 from :func:`encode`; any integer or
            integer-valued float tensor is accepted).
        scheme: the scheme the train was encoded with.
        dtype: output dtype; default int32, or int64 when the window's range needs it.
        validate: check that spike values belong to the scheme's alphabet (with
            ``validate=False`` a train outside the alphabet decodes to unspecified values).
        fast: use the eight-lane fast path where it applies (same result).

    Returns:
        integer counts ``[*shape]``.

    >>> s = encode(torch.tensor([[7, -4], [0, 1]]), "bitwise_bidirectional")
    >>> decode(s, "bitwise_bidirectional").tolist()
    [[7, -4], [0, 1]]
    """
    spec = get_scheme(scheme)
    check_tensor(spikes, "spikes")
    if spikes.dim() == 0:
        raise ValueError("spikes must have a leading time dimension: shape [T, *shape]")
    if spikes.dtype == torch.bool:
        spikes = spikes.view(torch.int8) if spikes.is_contiguous() else spikes.to(torch.int8)
    s = as_integer_counts(spikes, "spikes")
    T = s.shape[0]
    spec.check_window(T)
    rlo, rhi = spec.value_range(T)
    if dtype is None:
        fits32 = torch.iinfo(torch.int32).min <= rlo and rhi <= torch.iinfo(torch.int32).max
        dtype = torch.int32 if fits32 else torch.int64
    elif dtype.is_floating_point or dtype == torch.bool or dtype.is_complex:
        raise TypeError(f"dtype must be an integer dtype, got {dtype}")
    elif rlo < torch.iinfo(dtype).min or rhi > torch.iinfo(dtype).max:
        raise ValueError(
            f"counts of scheme '{spec.name}' with T={T} span [{rlo}, {rhi}], which does not "
            f"fit {dtype}; pass dtype=torch.int64"
        )
    n = s[0].numel() if T else 0
    if fast and T and s.is_cuda and s.dtype == torch.int8 and (gpu := _gpu_coders()) is not None:
        out, bad = gpu.decode_flat(s.reshape(T, n).contiguous(), spec, dtype)
        if validate and int(bad):  # one read-back; the detailed message comes from the check
            _check_alphabet(s, spec)
        return out.view(s.shape[1:])
    if fast and T and s.dtype == torch.int8 and _swar.usable(n):
        flat = s.reshape(T, n).contiguous()
        out = torch.empty(n, dtype=dtype, device=s.device)
        one_sign = spec.signed and not spec.twos_complement
        mixed_possible = False
        if validate:  # the alphabet from one vectorised min/max pass over the int8 train
            lo, hi = count_range(flat)
            if lo < min(spec.alphabet) or hi > max(spec.alphabet):
                _check_alphabet(s, spec)  # raises with the detailed message
            mixed_possible = one_sign and lo < 0 < hi and s.dim() > 1
        short = spec.bitwise and T <= 7  # every count fits one int8 lane
        for a, b in _swar.blocks(n, s.device):
            block = flat[:, a:b]
            if short:
                out[a:b], mixed = _decode_short_bitwise(block, spec, mixed_possible)
                if mixed:
                    _check_alphabet(s, spec)  # raises with the element that mixes signs
                continue
            if mixed_possible and _swar.mixes_signs(block):
                _check_alphabet(s, spec)  # raises with the element that mixes signs
            if spec.bitwise:
                out[a:b] = _swar.decode_bitwise(block, spec.signed, spec.twos_complement, dtype)
            else:
                out[a:b] = _swar.decode_unary(block, spec.signed, dtype)
        return out.view(s.shape[1:])
    if validate:
        _check_alphabet(s, spec)
    if T == 0:
        return torch.zeros(s.shape[1:], dtype=dtype, device=s.device)
    if not spec.bitwise:
        return s.sum(0, dtype=dtype)
    # Horner's scheme, most significant step first, in the smallest exact dtype
    acc = s[0].to(_work_dtype(rlo, rhi))
    if spec.twos_complement:
        acc = -acc
    for t in range(1, T):
        acc = acc * 2 + s[t]
    return acc.to(dtype)
