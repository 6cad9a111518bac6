"""Gated linear attention (GLA): a naive recurrence, a chunked parallel form, and
flash-linear-attention's kernels on CUDA, with one signature.

Per head, with a key-dimension decay ``g_t = exp(log_g_t)`` in (0, 1]:

    S_t = diag(g_t) S_{t-1} + k_t^T v_t        (state [Dk, Dv])
    o_t = (scale * q_t) S_t                    (scale defaults to Dk ** -0.5)

All tensors are ``[B, H, L, D]`` (GQA repetition is the caller's); the state is
``[B, H, Dk, Dv]``. The naive and chunked forms compute in float32 (float64 stays float64)
and return the input dtype.

>>> torch.manual_seed(0) is not None
True
>>> q, k, v = (torch.randn(1, 2, 10, 4, dtype=torch.float64) for _ in range(3))
>>> log_g = -torch.rand(1, 2, 10, 4, dtype=torch.float64)
>>> o1, s1 = gla_naive(q, k, v, log_g, output_final_state=True)
>>> o2, s2 = gla_chunked(q, k, v, log_g, chunk_size=4, output_final_state=True)
>>> torch.allclose(o1, o2) and torch.allclose(s1, s2)
True
"""

from __future__ import annotations

import torch

__all__ = ["BACKENDS", "gla", "gla_chunked", "gla_naive", "gla_recurrent", "gla_step"]

BACKENDS = ("auto", "naive", "recurrent", "chunked", "fla")


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _check(q, k, v, log_g, initial_state) -> None:
    if q.dim() != 4 or k.shape != q.shape or log_g.shape != q.shape:
        raise ValueError(f"q, k and log_g must share one [B, H, L, Dk] shape, got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(log_g.shape)}")
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must be [B, H, L, Dv] with q's B, H, L, got {tuple(v.shape)}")
    if initial_state is not None and initial_state.shape != (*q.shape[:2], q.shape[-1],
                                                             v.shape[-1]):
        raise ValueError(f"initial_state must be [B, H, Dk, Dv], got "
                         f"{tuple(initial_state.shape)}")


def gla_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_g: torch.Tensor,
             state: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step: ``q, k, log_g [B, H, Dk]``, ``v [B, H, Dv]``, ``state [B, H, Dk, Dv]``
    (work dtype) -> ``(o [B, H, Dv], new state)``."""
    state = state * log_g.exp().unsqueeze(-1) + k.unsqueeze(-1) * v.unsqueeze(-2)
    o = torch.einsum("bhk,bhkv->bhv", q * scale, state)
    return o, state


def gla_naive(q, k, v, log_g, *, scale: float | None = None,
              initial_state: torch.Tensor | None = None, output_final_state: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The recurrence, one step at a time (the reference)."""
    _check(q, k, v, log_g, initial_state)
    B, H, L, Dk = q.shape
    wd = _work_dtype(q)
    scale = Dk ** -0.5 if scale is None else scale
    state = (q.new_zeros(B, H, Dk, v.shape[-1], dtype=wd) if initial_state is None
             else initial_state.to(wd))
    qf, kf, vf, gf = (t.to(wd) for t in (q, k, v, log_g))
    outs = []
    for t in range(L):
        o, state = gla_step(qf[:, :, t], kf[:, :, t], vf[:, :, t], gf[:, :, t], state, scale)
        outs.append(o)
    o = torch.stack(outs, 2) if outs else q.new_zeros(B, H, 0, v.shape[-1], dtype=wd)
    return o.to(q.dtype), (state if output_final_state else None)


#: Decoding runs the same step loop (L is 1 there).
gla_recurrent = gla_naive


def gla_chunked(q, k, v, log_g, *, scale: float | None = None,
                initial_state: torch.Tensor | None = None, output_final_state: bool = False,
                chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunk-parallel form: within a chunk of ``C`` steps every output is a masked matrix
    product, and the state is carried from chunk to chunk.

    With ``b_i`` the cumulative log decay inside the chunk (inclusive), a query at ``i`` sees
    the carried state decayed by ``exp(b_i)`` and key ``j <= i`` decayed by
    ``exp(b_i - b_j) <= 1``; those decays are formed as differences of cumulative sums, never
    as ``exp(-b_j)`` alone, so nothing overflows however strong the decay.
    """
    _check(q, k, v, log_g, initial_state)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    B, H, L, Dk = q.shape
    Dv = v.shape[-1]
    wd = _work_dtype(q)
    scale = Dk ** -0.5 if scale is None else scale
    state = (q.new_zeros(B, H, Dk, Dv, dtype=wd) if initial_state is None
             else initial_state.to(wd))
    qf, kf, vf, gf = (t.to(wd) for t in (q, k, v, log_g))
    outs = []
    for s in range(0, L, chunk_size):
        e = min(s + chunk_size, L)
        C = e - s
        qc, kc, vc = qf[:, :, s:e] * scale, kf[:, :, s:e], vf[:, :, s:e]
        b = gf[:, :, s:e].cumsum(2)  # [B, H, C, Dk]
        inter = torch.einsum("bhik,bhkv->bhiv", qc * b.exp(), state)
        decay = (b.unsqueeze(3) - b.unsqueeze(2))  # [B, H, i, j, Dk] = b_i - b_j
        causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
        decay = decay.masked_fill(~causal[:, :, None], float("-inf")).exp()
        scores = torch.einsum("bhik,bhijk,bhjk->bhij", qc, decay, kc)
        outs.append(inter + scores @ vc)
        last = b[:, :, -1:]  # b_C
        state = state * last.squeeze(2).exp().unsqueeze(-1) + torch.einsum(
            "bhjk,bhjv->bhkv", kc * (last - b).exp(), vc)
    o = torch.cat(outs, 2) if outs else q.new_zeros(B, H, 0, Dv, dtype=wd)
    return o.to(q.dtype), (state if output_final_state else None)


#: flash-linear-attention releases whose ``chunk_gla`` / ``fused_recurrent_gla`` take
#: ``[B, L, H, D]`` tensors by default, as :func:`_fla_gla` passes them (tested: 0.6.x)
FLA_TESTED = ((0, 6),)


def _fla_version() -> str | None:
    """The installed flash-linear-attention version (None when ``fla`` is not installed)."""
    import importlib.util

    if importlib.util.find_spec("fla") is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("fla-core", "flash-linear-attention"):  # 0.6 ships the module in fla-core
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    import fla

    return str(getattr(fla, "__version__", "unknown"))


def _fla_unsupported(ver: str | None) -> str | None:
    """Why the installed fla cannot be used (None when it can)."""
    if ver is None:
        return "flash-linear-attention is not installed (pip install flash-linear-attention)"
    try:
        major, minor = (int(p) for p in ver.split(".")[:2])
    except ValueError:
        major = minor = -1
    if (major, minor) not in FLA_TESTED:
        tested = ", ".join(f"{a}.{b}.x" for a, b in FLA_TESTED)
        return (f"flash-linear-attention {ver} is installed; its kernels' tensor layout "
                f"changed between releases and only {tested} ([B, L, H, D]) is tested here "
                f"(pip install 'flash-linear-attention>=0.6,<0.7')")
    return None


def _fla_gla(q, k, v, log_g, *, scale, initial_state, output_final_state, recurrent: bool):
    """flash-linear-attention's kernels ([B, L, H, D] layout there; a release other than
    :data:`FLA_TESTED` raises, since its layout may differ)."""
    why = _fla_unsupported(_fla_version())
    if why is not None:
        raise RuntimeError(f"backend='fla' cannot run: {why}; use backend='auto' or "
                           f"'chunked'")
    from fla.ops.gla import chunk_gla, fused_recurrent_gla

    t = [x.transpose(1, 2).contiguous() for x in (q, k, v, log_g)]
    h0 = None if initial_state is None else initial_state.float().contiguous()
    if recurrent:
        o, s = fused_recurrent_gla(t[0], t[1], t[2], gk=t[3], scale=scale, initial_state=h0,
                                   output_final_state=output_final_state)
    else:
        o, s = chunk_gla(t[0], t[1], t[2], t[3], scale=scale, initial_state=h0,
                         output_final_state=output_final_state)
    return o.transpose(1, 2), s


_FLA_WARNED: set = set()


def _fla_available() -> bool:
    """Whether ``backend="auto"`` may use fla: installed and a tested release. An installed
    release of another version warns once (with the reason) and is not used."""
    ver = _fla_version()
    if ver is None:
        return False
    why = _fla_unsupported(ver)
    if why is not None:
        if ver not in _FLA_WARNED:
            _FLA_WARNED.add(ver)
            import warnings

            warnings.warn(f"GLA takes the PyTorch chunked path on CUDA, not fla: {why}",
                          RuntimeWarning, stacklevel=3)
        return False
    return True


def gla(q, k, v, log_g, *, scale: float | None = None,
        initial_state: torch.Tensor | None = None, output_final_state: bool = False,
        backend: str = "auto", chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """GLA with a chosen ``backend``: ``naive``/``recurrent`` (step loop), ``chunked`` (pure
    PyTorch, the CPU path), ``fla`` (flash-linear-attention on CUDA), ``auto`` (fla on CUDA
    when installed, the step loop for one token, else chunked)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if q.is_cuda and _fla_available():
            backend = "fla"
        else:
            backend = "recurrent" if q.shape[2] == 1 else "chunked"
    if backend == "fla":
        Dk = q.shape[-1]
        return _fla_gla(q, k, v, log_g, scale=Dk ** -0.5 if scale is None else scale,
                        initial_state=initial_state, output_final_state=output_final_state,
                        recurrent=q.shape[2] == 1)
    if backend in ("naive", "recurrent"):
        return gla_naive(q, k, v, log_g, scale=scale, initial_state=initial_state,
                         output_final_state=output_final_state)
    return gla_chunked(q, k, v, log_g, scale=scale, initial_state=initial_state,
                       output_final_state=output_final_state, chunk_size=chunk_size)
