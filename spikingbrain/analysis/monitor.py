"""Streaming spike monitor: hook every spike-emitting module and accumulate exact totals.

``with monitor(model) as m: model(x)`` subscribes to every
:class:`~spikingbrain.neurons.emitter.SpikeEmitter` in ``model`` (``SpikingLinear``,
``AdaptiveThreshold``, ...) and folds each call's counts into a few on-device integer tensors
per layer (a histogram of the clamped signed counts, spike and slot totals, per-channel
activity). No activations are stored and nothing is copied to the host during the forward
passes; :meth:`SpikeMonitor.stats` reads the totals once (after an ``all_reduce`` over ranks
when ``torch.distributed`` is initialised) and returns a :class:`~.stats.ModelStats`.

>>> import torch
>>> from torch import nn
>>> from spikingbrain.neurons import AdaptiveThreshold
>>> model = nn.Sequential(AdaptiveThreshold(k=3.0), nn.Identity())
>>> with monitor(model) as m:
...     _ = model(torch.tensor([[0.3, -0.9, 0.0, 1.8]]))
>>> st = m.stats().layers[0]
>>> st.name, st.elements, st.spikes, st.silent_fraction   # counts [1, -4, 0, 7]
('0', 4, 5, 0.25)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from spikingbrain.analysis.stats import (
    DEFAULT_HIST_RANGE,
    LayerStats,
    ModelStats,
    popcount,
    spikes_per_count,
    window_for,
)
from spikingbrain.coding import get_scheme
from spikingbrain.converter.convert import model_footprint
from spikingbrain.neurons.emitter import ObserverHandle, SpikeEmitter, SpikeRecord

__all__ = ["SpikeMonitor", "model_footprint", "monitor"]

# indices of the scalar totals in _Acc.sums
_SUMS = ("calls", "tokens", "elements", "slots", "window_sum", "saturated", "neg_T",
         "tail_spikes", "spike_calls_nonzero", "count_calls_nonzero")


@dataclass
class _Acc:
    """On-device accumulators of one layer."""

    name: str
    kind: str
    fan_out: int | None
    trains: int = 1
    groups: int | None = None
    channels: int = 0
    scheme: str = ""
    T_config: int | None = None
    max_count: int | None = None
    sums: torch.Tensor | None = None
    window_max: torch.Tensor | None = None
    hist: torch.Tensor | None = None
    chan: torch.Tensor | None = None
    sample: torch.Tensor | None = None
    sample_vth: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)


class SpikeMonitor:
    """Accumulates spike statistics of every :class:`SpikeEmitter` in a model.

    Args:
        model: any module; every ``SpikeEmitter`` submodule (or ``model`` itself) is watched.
        hist_range: counts are histogrammed exactly in ``[-hist_range, hist_range]``.
        sample: ``{layer name: (tokens, channels)}``: keep the counts of the first ``tokens``
            tokens and ``channels`` channels of that layer's first call (for raster plots).
        layers: optional filter, only layer names for which it returns True are watched.

    Use :func:`monitor` as a context manager, or call :meth:`attach` / :meth:`detach`.
    Padding tokens are excluded with :meth:`set_token_mask`.
    """

    def __init__(
        self,
        model: nn.Module,
        hist_range: int = DEFAULT_HIST_RANGE,
        sample: dict[str, tuple[int, int]] | None = None,
        layers=None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(hist_range, bool) or not isinstance(hist_range, int) or hist_range < 17:
            raise ValueError(f"hist_range must be an int >= 17, got {hist_range!r}")
        self.model = model
        self.hist_range = hist_range
        self.sample = dict(sample or {})
        self._acc: dict[int, _Acc] = {}
        self._order: list[int] = []
        self._handles: list[ObserverHandle] = []
        self._mask: torch.Tensor | None = None
        self._mask_index: torch.Tensor | None = None
        self._modules_by_id: dict[int, nn.Module] = {}
        for name, mod in model.named_modules():
            if isinstance(mod, SpikeEmitter) and (layers is None or layers(name)):
                fan_out = getattr(mod, "out_features", None)
                self._acc[id(mod)] = _Acc(
                    name=name or type(mod).__name__, kind=type(mod).__name__,
                    fan_out=int(fan_out) if fan_out is not None else None,
                )
                self._order.append(id(mod))
                self._modules_by_id[id(mod)] = mod
        unknown = set(self.sample) - {a.name for a in self._acc.values()}
        if unknown:
            raise ValueError(
                f"sample names unknown layers {sorted(unknown)}; spiking layers are "
                f"{self.layer_names[:8]}{' ...' if len(self._acc) > 8 else ''}"
            )
        self.footprint_bytes, self.n_parameters = model_footprint(model)

    @property
    def layer_names(self) -> list[str]:
        """Names of the watched layers, in module order."""
        return [self._acc[i].name for i in self._order]

    # ---- lifecycle ---------------------------------------------------------------------
    def attach(self) -> SpikeMonitor:
        """Subscribe to every watched layer (idempotent)."""
        if not self._handles:
            for i in self._order:
                self._handles.append(self._modules_by_id[i].add_spike_observer(self._observe))
        return self

    def detach(self) -> None:
        """Unsubscribe from every layer; the accumulated totals are kept."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def reset(self) -> None:
        """Forget all accumulated totals."""
        for acc in self._acc.values():
            acc.sums = acc.window_max = acc.hist = acc.chan = acc.sample = None

    @contextlib.contextmanager
    def token_mask(self, mask: torch.Tensor | None) -> Iterator[None]:
        """Within the block, exclude tokens where ``mask`` is False (e.g. an attention mask).

        The mask applies to every record whose leading shape equals ``mask.shape`` (for
        example ``[batch, seq]``); records of another shape are counted whole.
        """
        old = self._mask
        self.set_token_mask(mask)
        try:
            yield
        finally:
            self.set_token_mask(old)

    def set_token_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or clear with None) the token mask, see :meth:`token_mask`."""
        if mask is not None:
            if not isinstance(mask, torch.Tensor):
                raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
            mask = mask.detach().bool()
            # rows of the kept tokens, found once per mask: every layer then works on the
            # real tokens only (padding can be most of a batch)
            self._mask_index = mask.reshape(-1).nonzero().squeeze(1)
        self._mask = mask

    # ---- the observer ------------------------------------------------------------------
    def _init_acc(self, acc: _Acc, rec: SpikeRecord, C: int, device: torch.device,
                  module: nn.Module | None = None) -> None:
        acc.channels = C
        spec = get_scheme(rec.scheme)
        acc.scheme = spec.name
        # a converted layer runs an unsigned scheme's negative counts on a second train
        acc.trains = 2 if (not spec.signed and hasattr(module, "qdata")) else 1
        n_groups = getattr(module, "n_groups", None)
        acc.groups = int(n_groups) if isinstance(n_groups, int) else None
        acc.T_config = rec.T
        acc.max_count = rec.max_count
        acc.sums = torch.zeros(len(_SUMS), dtype=torch.int64, device=device)
        acc.window_max = torch.zeros((), dtype=torch.int64, device=device)
        acc.hist = torch.zeros(2 * self.hist_range + 4, dtype=torch.int64, device=device)
        acc.chan = torch.zeros(C, dtype=torch.int64, device=device)

    @torch.no_grad()
    def _observe(self, module: nn.Module, rec: SpikeRecord) -> None:
        acc = self._acc[id(module)]
        counts = rec.counts.detach()
        C = counts.shape[-1] if counts.dim() else 1
        if acc.sums is None:
            self._init_acc(acc, rec, C, counts.device, module)
        spec = get_scheme(acc.scheme)
        H = self.hist_range
        dev = counts.device
        flat = counts.reshape(-1, C)
        mask = self._mask
        lead = tuple(counts.shape[:-1])
        rows = rec.row_mask  # set by the model: False for padding and sink rows
        if mask is not None and lead == tuple(mask.shape):
            if rows is None:
                flat = flat.index_select(0, self._mask_index.to(dev))
            else:
                flat = flat[mask.reshape(-1).to(dev) & rows.to(dev)]
        elif rows is not None:
            flat = flat[rows.to(dev)]
        elif mask is not None:
            # narrow exception: inputs shaped like a leading part of the mask ([batch] for a
            # [batch, seq] mask) are per-sequence summaries (a pooler), not tokens: kept whole
            if not (len(lead) < mask.dim() and lead == tuple(mask.shape[:len(lead)])):
                raise ValueError(
                    f"token mask of shape {tuple(mask.shape)} does not match the token shape "
                    f"{lead} of layer '{acc.name}' (its input is {tuple(counts.shape)}); give "
                    f"a mask shaped like the layer inputs' leading dimensions (e.g. the "
                    f"attention mask [batch, seq]), or no mask"
                )
        ci = flat.to(torch.int32)
        tokens = ci.shape[0]
        elements = tokens * C
        # one histogram of the signed counts carries almost every statistic:
        # bin 0 / 2H+2 hold everything below -H / above H (bin 2H+3 is unused)
        idx = ci.clamp(-(H + 1), H + 1).add_(H + 1)
        b = torch.bincount(idx.view(-1), minlength=2 * H + 4)
        acc.hist += b
        if ci.numel():
            lo, hi = torch.aminmax(ci)
            lo, hi = lo.to(torch.int64), hi.to(torch.int64)
        else:
            lo = hi = torch.zeros((), dtype=torch.int64, device=dev)
        acc.chan += torch.count_nonzero(ci, dim=0)
        amax = torch.maximum(lo.abs(), hi.abs())
        if rec.T is not None:
            T: torch.Tensor | int = int(rec.T)
        elif spec.signed:
            T = window_for(lo, hi, spec.name)
        else:
            T = window_for(torch.zeros_like(amax), amax, spec.name)
        nonzero = elements - b[H + 1]
        is_spike = amax <= 1
        neg_T = T * b[1 : H + 1].sum() if spec.twos_complement else 0
        tail = torch.zeros((), dtype=torch.int64, device=dev)
        if dev.type != "cpu" or bool(b[0] + b[2 * H + 2]):
            # counts beyond the histogram: their spikes are counted element by element
            # (on CPU only when there are any; on accelerators always, to avoid a sync)
            cw = torch.where(ci.abs() > H, ci, 0).to(torch.int64)
            if not spec.signed:
                cw = cw.abs()
            if rec.T is not None:
                wlo, whi = spec.value_range(int(rec.T))
                cw = cw.clamp(wlo, whi)
            tail = spikes_per_count(cw, spec.name, T).sum()
        sat = rec.n_saturated
        if not isinstance(sat, torch.Tensor):
            sat = torch.tensor(int(sat), dtype=torch.int64)
        vals = torch.stack([
            torch.as_tensor(v, dtype=torch.int64, device=dev).reshape(())
            for v in (1, tokens, elements, acc.trains * T * elements, T, sat.to(dev), neg_T, tail,
                      torch.where(is_spike, nonzero, 0), torch.where(is_spike, 0, nonzero))
        ])
        acc.sums += vals
        torch.maximum(acc.window_max, torch.as_tensor(T, device=dev), out=acc.window_max)
        if acc.name in self.sample and acc.sample is None:
            nt, nc = self.sample[acc.name]
            acc.sample = ci[:nt, :nc].cpu()

    # ---- results -----------------------------------------------------------------------
    def samples(self) -> dict[str, torch.Tensor]:
        """Captured count samples ``{layer: int32 [tokens, channels]}`` (see ``sample``)."""
        return {a.name: a.sample for a in self._acc.values() if a.sample is not None}

    def _reduce(self) -> None:
        """Sum (and max) every accumulator over the ranks of torch.distributed, in place."""
        import torch.distributed as dist

        accs = [self._acc[i] for i in self._order]
        # layers unseen on some rank: agree on their channel counts and configuration, taken
        # from a rank that saw them
        dev = next((a.sums.device for a in accs if a.sums is not None), torch.device("cpu"))
        if dist.get_backend() == "nccl" and dev.type == "cpu":
            dev = torch.device("cuda", torch.cuda.current_device())
        meta = [None if a.sums is None else (a.channels, a.scheme, a.trains, a.groups,
                                             a.T_config, a.max_count) for a in accs]
        everyone: list = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, meta)
        parts, maxes, reduced = [], [], []
        for j, a in enumerate(accs):
            seen = next((m[j] for m in everyone if m[j] is not None), None)
            if seen is None:  # no rank saw it: left unseen, as in a single process
                continue
            reduced.append(a)
            if a.sums is None:
                a.channels, a.scheme, a.trains, a.groups, a.T_config, a.max_count = seen
                C = a.channels
                a.sums = torch.zeros(len(_SUMS), dtype=torch.int64, device=dev)
                a.window_max = torch.zeros((), dtype=torch.int64, device=dev)
                a.hist = torch.zeros(2 * self.hist_range + 4, dtype=torch.int64, device=dev)
                a.chan = torch.zeros(C, dtype=torch.int64, device=dev)
            parts += [a.sums.to(dev), a.hist.to(dev), a.chan.to(dev)]
            maxes.append(a.window_max.to(dev).reshape(1))
        if not reduced:
            return
        flat, mx = torch.cat(parts), torch.cat(maxes)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        if mx.numel():
            dist.all_reduce(mx, op=dist.ReduceOp.MAX)
        off = 0
        for j, a in enumerate(reduced):
            for attr in ("sums", "hist", "chan"):
                t = getattr(a, attr)
                setattr(a, attr, flat[off : off + t.numel()].view_as(t).to(t.device).clone())
                off += t.numel()
            a.window_max = mx[j].clone()

    def stats(self, reduce: bool = True) -> ModelStats:
        """Read the totals (one host synchronisation) as :class:`~.stats.ModelStats`.

        With ``reduce`` and an initialised ``torch.distributed``, totals are first summed
        over all ranks (every rank must call ``stats``; each then holds the global totals,
        and the local accumulators are replaced by them).
        """
        import torch.distributed as dist

        if reduce and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            self._reduce()
        layers = []
        for i in self._order:
            a = self._acc[i]
            mod = self._modules_by_id[i]
            scheme = a.scheme or get_scheme(getattr(mod, "scheme", None) or _config_scheme(mod)).name
            st = LayerStats(name=a.name, scheme=scheme, kind=a.kind, fan_out=a.fan_out,
                            T_config=a.T_config, max_count=a.max_count, channels=a.channels,
                            hist_range=self.hist_range, trains=a.trains, groups=a.groups)
            if a.sums is not None:
                _fill(st, dict(zip(_SUMS, a.sums.tolist())), a.hist[:-1].cpu(), self.hist_range)
                st.window_max = int(a.window_max)
                st.channel_nonzero = a.chan.tolist()
            layers.append(st)
        return ModelStats(layers=layers, footprint_bytes=self.footprint_bytes,
                          n_parameters=self.n_parameters)


def _spike_tables(scheme: str, T: int | None, H: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes per count value ``v`` in ``[-H, H]`` (``tab``) and, for two's complement,
    ``popcount(|v| - 1)`` of negative values (``neg``), for a window ``T`` (None: minimal)."""
    spec = get_scheme(scheme)
    v = torch.arange(-H, H + 1, dtype=torch.int64)
    if not spec.signed:
        v = v.abs()
    if T is not None:
        lo, hi = spec.value_range(T)
        v = v.clamp(lo, hi)
    if spec.twos_complement:
        tab = torch.where(v >= 0, popcount(v.clamp(min=0)), 0)
        neg = torch.where(v < 0, popcount((-v - 1).clamp(min=0)), 0)
        return tab, neg
    return spikes_per_count(v, spec.name), torch.zeros_like(v)


def _fill(st: LayerStats, sums: dict[str, int], hist: torch.Tensor, H: int) -> None:
    """Derive the LayerStats totals from the accumulated sums and the ``[2H+3]`` histogram."""
    for k in ("calls", "tokens", "elements", "slots", "window_sum", "saturated",
              "spike_calls_nonzero", "count_calls_nonzero"):
        setattr(st, k, int(sums[k]))
    inner = hist[1:-1]  # values -H..H
    tab, neg = _spike_tables(st.scheme, st.T_config, H)
    spikes = int((inner * tab).sum()) + int(sums["tail_spikes"])
    if get_scheme(st.scheme).twos_complement:
        # a negative v in a T-bit word has T - popcount(|v| - 1) ones
        spikes += int(sums["neg_T"]) - int((inner * neg).sum())
    st.spikes = spikes
    st.beyond_hist = int(hist[0] + hist[-1])
    if not get_scheme(st.scheme).signed:
        st.negative_unsigned = int(hist[: H + 1].sum())
    folded = inner.clone()
    folded[0] += hist[0]
    folded[-1] += hist[-1]
    st.hist = folded.tolist()


def _config_scheme(mod: nn.Module) -> str:
    cfg = getattr(mod, "config", None)
    return getattr(cfg, "scheme", None) or "bitwise_bidirectional"


@contextlib.contextmanager
def monitor(
    model: nn.Module,
    hist_range: int = DEFAULT_HIST_RANGE,
    sample: dict[str, tuple[int, int]] | None = None,
    layers=None,
) -> Iterator[SpikeMonitor]:
    """Watch every spiking layer of ``model`` inside a ``with`` block.

    Yields a :class:`SpikeMonitor`; its totals stay readable after the block
    (``m.stats()``). Arguments as for :class:`SpikeMonitor`.
    """
    m = SpikeMonitor(model, hist_range=hist_range, sample=sample, layers=layers)
    m.attach()
    try:
        yield m
    finally:
        m.detach()
