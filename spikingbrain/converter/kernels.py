"""Exact integer accumulation of spike counts times INT8 weights, per weight group.

``acc[n, o, g] = sum_{i in group g} qdata[o, i] * counts[n, i]`` in int32, computed three ways:

- :func:`count_accumulators` (mode ``"count"``): one integer matmul per group with
  ``torch._int_mm`` (int8 x int8 -> int32). Operands that do not fit int8 (counts above 127 in
  magnitude, int16 weight codes) are split into base-128 digits, ``a = sum_j a_j 128**j`` with
  ``a_j`` in [-64, 63] (the top digit in int8), and the digit products are recombined in int32:
  nothing wraps as long as the true result fits int32. Where ``_int_mm`` is unavailable (other
  devices or shapes it refuses) a float64 matmul is used, exact while ``|acc| < 2**53``.
  On the CPU an fp32 GEMM can take its place (:func:`cpu_gemm_backend`, env
  ``SPIKINGBRAIN_CPU_GEMM``): it is used only when :func:`exact_float_dtype` proves every
  partial sum exact (``group_size * max|count| * max|code| <= 2**24``, fp64 up to ``2**53``).
- :func:`spike_accumulators` (mode ``"spike"``): the counts are expanded into a spike train with
  :func:`spikingbrain.coding.encode` and every time step is accumulated with its time weight:
  ``acc = sum_t w_t * (qdata @ s_t)``. Unsigned schemes carry negative counts on a second train
  of the same scheme with polarity -1. Integer arithmetic, so identical to the count mode.
- :func:`reference_accumulators`: a plain int64 einsum, the reference for the tests.

:func:`epilogue` turns accumulators into floats with a fixed order of operations shared by the
count and spike modes: ``y = ((acc * scale).sum(groups) * vth) + bias`` in ``compute_dtype``.

>>> q = torch.tensor([[1, -2, 3], [4, 5, -6]], dtype=torch.int8)
>>> c = torch.tensor([[2, 0, -1]])
>>> count_accumulators(c, q, group_size=2).tolist()
[[[2, -3], [8, 6]]]
>>> torch.equal(spike_accumulators(c, q, 2, "ternary"), count_accumulators(c, q, 2))
True
"""

from __future__ import annotations

import functools
import os
import time

import torch

from spikingbrain.coding import encode
from spikingbrain.coding.schemes import get_scheme
from spikingbrain.converter.quant import n_groups

__all__ = [
    "CodeAbsmaxCache",
    "count_accumulators",
    "cpu_gemm_backend",
    "exact_float_dtype",
    "epilogue",
    "exact_int_matmul",
    "int8_digits",
    "reference_accumulators",
    "spike_accumulators",
]

_BASE = 128


def int8_digits(t: torch.Tensor) -> list[torch.Tensor]:
    """Split an integer tensor into int8 digits with ``t = sum_j digits[j] * 128**j``.

    One digit (``t`` as int8) when ``t`` fits int8; otherwise balanced digits in [-64, 63]
    with the top digit in [-128, 127].

    >>> d = int8_digits(torch.tensor([300, -5, -1000]))
    >>> [x.tolist() for x in d]
    [[44, -5, 24], [2, 0, -8]]
    """
    if t.dtype == torch.int8:
        return [t]
    if t.numel() == 0:
        return [t.to(torch.int8)]
    lo, hi = torch.aminmax(t)
    if -128 <= int(lo) and int(hi) <= 127:
        return [t.to(torch.int8)]
    rest = t.to(torch.int64)
    digits = []
    while True:
        lo, hi = torch.aminmax(rest)
        if -128 <= int(lo) and int(hi) <= 127:
            digits.append(rest.to(torch.int8))
            return digits
        d = torch.remainder(rest + 64, _BASE) - 64
        digits.append(d.to(torch.int8))
        rest = torch.div(rest - d, _BASE, rounding_mode="floor")


def _int_mm_ok(a: torch.Tensor, b_t: torch.Tensor) -> bool:
    """Whether ``torch._int_mm(a [m, k], b_t.t() [k, n])`` applies.

    On CPU (torch 2.13, checked exhaustively for small shapes) any shape with int8 operands
    works except an inner dimension ``k = 1`` with a transposed right operand, which returns
    garbage: those groups use the float fallback. On CUDA the kernel needs ``m > 16`` and
    ``k``, ``n`` multiples of 8.
    """
    if not hasattr(torch, "_int_mm"):
        return False
    if a.device.type == "cpu":
        return _int_mm_exact_on_cpu()
    if a.device.type == "cuda":
        m, k = a.shape
        n = b_t.shape[0]
        return m > 16 and k % 8 == 0 and n % 8 == 0
    return False


def _int_mm_shape_ok(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``torch._int_mm(a [m, k], b [n, k].T)`` is exact for these shapes: an inner
    dimension of at least 2 on CPU (1 gives garbage), and ``m > 16``, ``k`` and ``n``
    multiples of 8 on CUDA. Other shapes take the exact float path."""
    m, k = a.shape
    if a.device.type == "cuda":
        return m > 16 and k % 8 == 0 and b.shape[0] % 8 == 0 and k > 0
    return k >= 2


def _digit_matmul(a_d: list[torch.Tensor], b_d: list[torch.Tensor], a_offset: int = 0
                  ) -> torch.Tensor:
    """``sum_ij 128**(i+j+a_offset) * a_d[i] @ b_d[j].T`` in int32 with ``torch._int_mm``
    where its shape rules allow (:func:`_int_mm_shape_ok`), else exactly in float64."""
    acc = None
    for i, ai in enumerate(a_d):
        for j, bj in enumerate(b_d):
            p = torch._int_mm(ai, bj.t()) if _int_mm_shape_ok(ai, bj) else _float_matmul(ai, bj)
            if i + j + a_offset:
                p = p * (_BASE ** (i + j + a_offset))
            acc = p if acc is None else acc + p
    return acc


def _float_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.to(torch.float64) @ b.to(torch.float64).t()).to(torch.int32)


def exact_int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact ``a [m, k] @ b [n, k].T`` for integer tensors, as int32 ``[m, n]``.

    Uses ``torch._int_mm`` on int8 digits (see :func:`int8_digits`); falls back to a float64
    matmul (exact while partial sums stay below 2**53) where ``_int_mm`` does not apply.

    >>> a = torch.tensor([[200, -3]]); b = torch.tensor([[100, 7]], dtype=torch.int16)
    >>> exact_int_matmul(a, b).tolist()
    [[19979]]
    """
    return _grouped_matmul(a, b, a.shape[1]).squeeze(-1)


def _grouped_matmul(a: torch.Tensor, b: torch.Tensor, group_size: int,
                    col_absmax: torch.Tensor | None = None,
                    code_absmax: int | None = None) -> torch.Tensor:
    m, k = a.shape
    n = b.shape[0]
    G = n_groups(k, group_size)
    if m == 0 or n == 0 or k == 0:
        return torch.zeros(m, n, G, dtype=torch.int32, device=a.device)
    sl = [slice(g * group_size, (g + 1) * group_size) for g in range(G)]
    if a.device.type == "cpu" and cpu_gemm_backend() == "float":
        count_max = _absmax(a) if col_absmax is None else int(col_absmax.max())
        code_max = _code_absmax(b) if code_absmax is None else int(code_absmax)
        dtype = exact_float_dtype(min(group_size, k), count_max, code_max)
        if dtype is not None:
            return _grouped_float_mm(a, b, sl, dtype)
    if _int_mm_ok(a, b):
        return _grouped_int_mm(a, b, sl, group_size, col_absmax)
    a = _as_int(a)
    return torch.stack([_float_matmul(a[:, s], b[:, s]) for s in sl], dim=-1)


# ---------------------------------------------------------------- exact float GEMM on the CPU
#: environment variable choosing the CPU count-mode GEMM: "int", "float" or "auto" (default)
CPU_GEMM_ENV = "SPIKINGBRAIN_CPU_GEMM"
_CPU_GEMM_CHOICES = ("auto", "int", "float")
_measured_backend: str | None = None


def exact_float_dtype(group_size: int, count_absmax: float, code_absmax: float
                      ) -> torch.dtype | None:
    """The narrowest float dtype whose GEMM gives the integer accumulators exactly, or None.

    Every partial sum of ``group_size`` products ``count * code`` is an integer of magnitude at
    most ``bound = group_size * max|count| * max|code|``. All integers up to ``2**24`` (fp32)
    or ``2**53`` (fp64) are representable, so any summation order (blocking, FMA) is exact
    while ``bound <= 2**24`` (fp32) or ``<= 2**53`` (fp64). fp32 is offered only while fp32
    matmuls run in IEEE fp32 (``torch.get_float32_matmul_precision() == "highest"`` and no
    oneDNN bf16/tf32 down-conversion); otherwise fp64 takes its place.

    >>> exact_float_dtype(128, 127, 1024)
    torch.float32
    >>> exact_float_dtype(128, 128, 1025)
    torch.float64
    >>> exact_float_dtype(2**20, 2**20, 2**20) is None
    True
    """
    # factors of at least 1: zero codes must not let huge counts into fp32 (inf * 0 = nan)
    bound = max(int(group_size), 1) * max(int(count_absmax), 1) * max(int(code_absmax), 1)
    if bound <= 2**24 and _fp32_matmul_is_ieee():
        return torch.float32
    if bound <= 2**53:
        return torch.float64
    return None


def _fp32_matmul_is_ieee() -> bool:
    """Whether CPU fp32 matmuls are plain IEEE fp32 (no bf16 / tf32 down-conversion)."""
    if torch.get_float32_matmul_precision() != "highest":
        return False
    mk = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    prec = getattr(mk, "fp32_precision", "ieee")
    return prec in ("ieee", "none")


def _absmax(t: torch.Tensor) -> int:
    if t.numel() == 0:
        return 0
    lo, hi = torch.aminmax(t)
    return int(max(-float(lo), float(hi)))


def _code_absmax(q: torch.Tensor) -> int:
    """max |code|: the dtype's bound for int8 codes (no scan), else a scan of ``q``."""
    return 128 if q.dtype == torch.int8 else _absmax(q)


class CodeAbsmaxCache:
    """Remembers the code range ``(min, max)`` of one weight tensor between calls: ``max
    |qdata|`` for the exact CPU float GEMM (the call), the range for the GPU kernels' check
    that int16 codes fit two int8 digits (:meth:`code_range`).

    int8 codes need no scan (their dtype's range is used); wider codes are scanned once per
    storage and version (``data_ptr``, ``_version``), so in-place updates through the tensor
    (``copy_``, ``load_state_dict``) are seen. Writes through ``.data`` bypass the version
    counter: call :meth:`clear` after such an edit.

    >>> q = torch.tensor([[300, -7]], dtype=torch.int16)
    >>> cache = CodeAbsmaxCache()
    >>> cache(q), cache.code_range(q)
    (300, (-7, 300))
    >>> q.mul_(2) is not None and cache(q)
    600
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._range = (0, 0)

    def code_range(self, qdata: torch.Tensor) -> tuple[int, int]:
        """``(min, max)`` of the codes (``(-128, 127)`` for int8, without a scan)."""
        if qdata.dtype == torch.int8:
            return -128, 127
        key = (qdata.data_ptr(), qdata._version, qdata.dtype, tuple(qdata.shape))
        if key != self._key:
            if qdata.numel():
                lo, hi = torch.stack(torch.aminmax(qdata)).tolist()
            else:
                lo = hi = 0
            self._range, self._key = (int(lo), int(hi)), key
        return self._range

    def __call__(self, qdata: torch.Tensor) -> int:
        lo, hi = self.code_range(qdata)
        return max(-lo, hi)

    def clear(self) -> None:
        """Forget the cached value (after writing codes through ``.data``)."""
        self._key = None


def cpu_gemm_backend() -> str:
    """``"int"`` (``torch._int_mm``) or ``"float"`` (exact fp32/fp64 GEMM) for CPU count mode.

    Set by ``SPIKINGBRAIN_CPU_GEMM`` = ``int`` | ``float`` | ``auto`` (default). ``auto`` decides
    once per process: ``int`` where torch runs ``_int_mm`` on oneDNN with AVX512-VNNI, ``float``
    where ``_int_mm`` would be inexact (oneDNN limited below VNNI by ``ONEDNN_MAX_CPU_ISA``: then
    ``int`` also avoids it and uses fp64), elsewhere a quick timing of both on a
    128 x 128 @ 128 x 256 product (``float`` only when at least 2x faster: on CPUs without
    VNNI ``_int_mm`` can be an order of magnitude slower than fp32).

    >>> cpu_gemm_backend() in ("int", "float")
    True
    """
    global _measured_backend
    choice = os.environ.get(CPU_GEMM_ENV, "auto").strip().lower() or "auto"
    if choice not in _CPU_GEMM_CHOICES:
        raise ValueError(f"{CPU_GEMM_ENV}={os.environ.get(CPU_GEMM_ENV)!r} is not valid; "
                         f"use one of {', '.join(_CPU_GEMM_CHOICES)}")
    if choice != "auto":
        return choice
    if _measured_backend is None:
        _measured_backend = _measure_cpu_gemm()
    return _measured_backend


#: oneDNN ISA limits below VNNI: its int8 GEMM then sums u8*s8 pairs in saturating int16
_PRE_VNNI_ISAS = ("SSE41", "AVX", "AVX2", "AVX512_CORE")


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset:
    """The CPU's /proc/cpuinfo flags (empty where there is no such file)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _onednn_isa() -> str:
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        if os.environ.get(var):
            return os.environ[var].strip().upper()
    return "ALL"


def _int_mm_uses_onednn() -> bool:
    """torch hands CPU ``_int_mm`` to oneDNN only on CPUs with AVX512-VNNI; elsewhere it runs
    its exact but slow reference loop (pytorch PR 136942, after issue 136746)."""
    return "avx512_vnni" in _cpu_flags()


def _int_mm_exact_on_cpu() -> bool:
    """False where CPU ``_int_mm`` returns wrong sums: torch calls oneDNN (VNNI CPU) while
    ``ONEDNN_MAX_CPU_ISA`` limits oneDNN to a pre-VNNI ISA (AVX2, AVX512_CORE, ...), whose
    int8 kernels saturate int16 partial sums (checked: 2 * 127 * 127 gives 255)."""
    return not (_int_mm_uses_onednn() and _onednn_isa() in _PRE_VNNI_ISAS)


def _measure_cpu_gemm(m: int = 128, k: int = 128, n: int = 256, repeats: int = 7,
                      margin: float = 2.0) -> str:
    """``"float"`` where ``_int_mm`` is not exact (:func:`_int_mm_exact_on_cpu`), ``"int"``
    where torch runs it on oneDNN with VNNI (:func:`_int_mm_uses_onednn`); elsewhere times
    ``_int_mm`` against an fp32 matmul (including the int8 -> fp32 weight conversion the float
    path pays), interleaved, best of ``repeats``, and returns ``"float"`` only when it is at
    least ``margin`` times faster (the slow ``_int_mm`` CPUs are ~10x off, so noise on a busy
    machine does not flip the choice). A few milliseconds."""
    if not hasattr(torch, "_int_mm") or not _int_mm_exact_on_cpu():
        return "float"
    if _int_mm_uses_onednn() and _onednn_isa() == "ALL":
        return "int"
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-8, 9, (m, k), generator=g, dtype=torch.int8)
    b = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
    af = a.float()
    fns = {"int": lambda: torch._int_mm(a, b.t()),
           "float": lambda: torch.mm(af, b.float().t()).to(torch.int32)}
    best = {}
    with torch.no_grad():
        for fn in fns.values():
            fn()  # first calls build oneDNN kernels
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                best[name] = min(best.get(name, dt), dt)
    return "float" if best["float"] * margin < best["int"] else "int"


def _grouped_float_mm(a: torch.Tensor, b: torch.Tensor, sl: list[slice], dtype: torch.dtype
                      ) -> torch.Tensor:
    """Per-group ``a[:, g] @ b[:, g].T`` as a float GEMM in ``dtype`` (exact by the caller's
    bound, :func:`exact_float_dtype`), stored group-major and returned as ``[m, n, G]`` int32."""
    af = a if a.dtype == dtype else a.to(dtype)
    bf = b.to(dtype)
    out = torch.empty(len(sl), a.shape[0], b.shape[0], dtype=torch.int32, device=a.device)
    buf = torch.empty(a.shape[0], b.shape[0], dtype=dtype, device=a.device)
    for g, s in enumerate(sl):
        torch.mm(af[:, s], bf[:, s].t(), out=buf)
        out[g].copy_(buf)
    return out.permute(1, 2, 0)


def _grouped_int_mm(a: torch.Tensor, b: torch.Tensor, sl: list[slice], group_size: int,
                    col_absmax: torch.Tensor | None = None) -> torch.Tensor:
    """int8 ``_int_mm`` per group. Input columns holding a value beyond int8 (activation
    outliers) are split into base-128 digits; the low digit stays in the dense int8 operand and
    the higher digits of those few columns add small extra matmuls."""
    b_d = int8_digits(b)
    if a.dtype == torch.int8:
        a8, extra = a, None
    else:
        col_max = a.abs().amax(dim=0) if col_absmax is None else col_absmax
        cols = torch.nonzero(col_max > 127).flatten()
        if cols.numel() == 0:
            a8, extra = a.to(torch.int8), None
        else:
            digits = int8_digits(_as_int(a[:, cols]))
            a_low = a.clone()
            a_low[:, cols] = digits[0].to(a.dtype)
            a8 = a_low.to(torch.int8)
            extra = (cols, digits[1:]) if len(digits) > 1 else None
    # one contiguous [m, n] block per group, returned as a [m, n, G] view (no stacking copy)
    out = torch.empty(len(sl), a.shape[0], b.shape[0], dtype=torch.int32, device=a.device)
    for g, s in enumerate(sl):
        acc = _digit_matmul([a8[:, s]], [d[:, s] for d in b_d])
        if extra is not None:
            cols, high = extra
            in_g = cols[(cols >= g * group_size) & (cols < (g + 1) * group_size)]
            if in_g.numel():
                pos = torch.searchsorted(cols, in_g)
                hi_d = [d[:, pos] for d in high]
                b_cols = [d[:, in_g] for d in b_d]
                acc = acc + _digit_matmul(hi_d, b_cols, a_offset=1)
        out[g] = acc
    return out.permute(1, 2, 0)


def _as_int(counts: torch.Tensor) -> torch.Tensor:
    if counts.is_floating_point():
        return counts.to(torch.int32)
    return counts


def count_accumulators(counts: torch.Tensor, qdata: torch.Tensor, group_size: int,
                       col_absmax: torch.Tensor | None = None,
                       code_absmax: int | None = None) -> torch.Tensor:
    """Per-group integer accumulators ``[N, out, n_groups]`` (int32) of counts ``[N, in]``.

    ``counts`` are integers (or integer-valued floats, converted exactly); ``qdata [out, in]``
    int8 or int16; ``col_absmax [in]`` optionally gives ``counts.abs().amax(0)`` when the
    caller already has it; ``code_absmax`` optionally gives an upper bound of ``|qdata|``
    (e.g. from a :class:`CodeAbsmaxCache`; default: 128 for int8, else a scan).

    On the CPU the GEMM is ``torch._int_mm`` or, where :func:`cpu_gemm_backend` says
    ``"float"``, an fp32 (fp64) GEMM chosen by :func:`exact_float_dtype` only when it is exact;
    otherwise the integer path runs. Every path gives the same integers.
    """
    if counts.is_floating_point() and counts.numel() and (
            col_absmax is None or float(col_absmax.max()) >= 2**31):
        counts = _as_int(counts)
    return _grouped_matmul(counts, qdata, group_size, col_absmax, code_absmax)


def spike_trains(counts: torch.Tensor, scheme: str, T: int | None = None
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Spike trains and time weights that reproduce integer ``counts`` under ``scheme``.

    Returns a list of ``(spikes int8 [T, *shape], weights int64 [T])`` pairs with
    ``counts = sum over pairs of sum_t weights[t] * spikes[t]``: one pair for signed schemes;
    for unsigned schemes one for ``max(c, 0)`` and one (weights negated) for ``max(-c, 0)``.

    >>> [(s.flatten().tolist(), w.tolist()) for s, w in spike_trains(torch.tensor([-2]), "binary")]
    [([0, 0], [1, 1]), ([1, 1], [-1, -1])]
    """
    spec = get_scheme(scheme)
    c = _as_int(counts)
    if spec.signed:
        s = encode(c, spec, T)
        return [(s, spec.time_weights(s.shape[0], device=c.device))]
    pos, neg = c.clamp_min(0), (-c).clamp_min(0)
    if T is None:  # one window for both polarities
        T = spec.min_steps(0, max(int(pos.max()) if pos.numel() else 0,
                                  int(neg.max()) if neg.numel() else 0))
    sp, sn = encode(pos, spec, T), encode(neg, spec, T)
    w = spec.time_weights(T, device=c.device)
    return [(sp, w), (sn, -w)]


def spike_accumulators(counts: torch.Tensor, qdata: torch.Tensor, group_size: int,
                       scheme: str, T: int | None = None) -> torch.Tensor:
    """Event-driven accumulators: the same ``[N, out, n_groups]`` int32 result as
    :func:`count_accumulators`, computed from spike trains one time step at a time.

    Each step multiplies spikes in {-1, 0, 1} (or {0, 1}) by the int8 weights and adds the
    result times the step's weight ``w_t`` (a power of two for the bitwise schemes).
    """
    out_f, in_f = qdata.shape
    N = counts.shape[0]
    # group-major storage, the layout count_accumulators produces, seen as [N, out, G]
    acc = torch.zeros(n_groups(in_f, group_size), N, out_f, dtype=torch.int32,
                      device=qdata.device).permute(1, 2, 0)
    for spikes, weights in spike_trains(counts, scheme, T):
        for t in range(spikes.shape[0]):
            w = int(weights[t])
            if abs(w) >= 2**31 and not bool(spikes[t].any()):
                continue  # leading steps of a window wider than int32 counts: all silent
            acc.add_(count_accumulators(spikes[t], qdata, group_size), alpha=w)
    return acc


def reference_accumulators(counts: torch.Tensor, qdata: torch.Tensor, group_size: int
                           ) -> torch.Tensor:
    """Plain int64 reference ``[N, out, n_groups]`` (slow; for tests)."""
    c = _as_int(counts).to(torch.int64)
    q = qdata.to(torch.int64)
    G = n_groups(q.shape[1], group_size)
    parts = [c[:, g * group_size:(g + 1) * group_size] @ q[:, g * group_size:(g + 1) * group_size].t()
             for g in range(G)]
    return torch.stack(parts, -1)


def epilogue(acc: torch.Tensor, scale: torch.Tensor, vth: torch.Tensor,
             bias: torch.Tensor | None, compute_dtype: torch.dtype) -> torch.Tensor:
    """Float output ``[N, out]`` from accumulators ``[N, out, G]``, ``scale [out, G]``, ``vth [N, 1]``.

    Fixed order: ``y = acc[..., 0] * scale[:, 0]``, then ``y += acc[..., g] * scale[:, g]``
    for g = 1, 2, ... in turn, then ``y * vth``, then ``+ bias``, all in ``compute_dtype``.

    >>> acc = torch.tensor([[[2, -3], [8, 6]]], dtype=torch.int32)
    >>> epilogue(acc, torch.tensor([[0.5, 1.0], [1.0, 0.25]]), torch.tensor([[2.0]]),
    ...          None, torch.float32).tolist()
    [[-4.0, 19.0]]
    """
    sc = scale.to(compute_dtype)
    y = acc[..., 0].to(compute_dtype).mul_(sc[:, 0])
    for g in range(1, acc.shape[-1]):  # group by group: each acc[..., g] is one block
        y.addcmul_(acc[..., g].to(compute_dtype), sc[:, g])
    y.mul_(vth.to(compute_dtype))
    if bias is not None:
        y.add_(bias.to(compute_dtype))
    return y
