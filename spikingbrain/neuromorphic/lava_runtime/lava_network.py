"""The Lava network of a bundle: time schedule, weight expansion, build, run and read-back.

Standard library + numpy; ``lava`` is imported inside :func:`run_lava` only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import import_module

import numpy as np

__all__ = ["Schedule", "build_network", "expand_weights", "lava_version", "run_lava",
           "source_schedule"]


def _sibling(name: str):
    """Module ``name`` of this folder, inside the package or run from the folder itself."""
    return import_module(f".{name}", __package__) if __package__ else import_module(name)


fmt = _sibling("bundle_format")
cm = _sibling("count_math")


@dataclass(frozen=True)
class Schedule:
    """Time layout of a run: layer ``l``'s spikes for token ``j``, step ``t`` enter Dense at
    Lava step ``base[l] + j*period + t`` (Lava counts steps from 1)."""

    base: tuple[int, ...]
    period: int
    windows: tuple[int, ...]
    n_tokens: int

    @classmethod
    def build(cls, windows: list[int], n_tokens: int) -> Schedule:
        base = [1]
        for T in windows[:-1]:
            base.append(base[-1] + T + 1)
        return cls(tuple(base), max(windows), tuple(windows), n_tokens)

    @property
    def num_steps(self) -> int:
        """Steps to run: the last accumulator receives its last input at this step."""
        return self.base[-1] + (self.n_tokens - 1) * self.period + self.windows[-1]


def source_schedule(spikes: np.ndarray, scheme: str, sched: Schedule) -> np.ndarray:
    """Lay the bundle's ``[n, T, d]`` input trains out as a replay array ``[d or 2d, steps]``."""
    n, T, d = spikes.shape
    rails = 1 if cm.SCHEMES[scheme][0] else 2
    data = np.zeros((rails * d, sched.num_steps), dtype=np.int32)
    for j in range(n):
        start = sched.base[0] + j * sched.period - 1
        data[:, start:start + T] = cm.to_rails(spikes[j].T.astype(np.int32), scheme)
    return data


def expand_weights(qdata: np.ndarray, group_size: int, scheme: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Block-expanded excitatory and inhibitory weights ``[out*G, in]`` (``[out*G, 2*in]`` for
    the two rails of unsigned schemes: ``[W | -W]``), int32.

    Row ``o*G + g`` carries ``W[o, i]`` for the columns of group ``g`` (zero elsewhere);
    ``W = Wexc + Winh`` with ``Wexc >= 0 >= Winh``.
    """
    q = np.asarray(qdata, dtype=np.int32)
    out, d = q.shape
    bounds = cm.group_bounds(d, group_size)
    W = np.zeros((out, len(bounds), d), dtype=np.int32)
    for g, (a, b) in enumerate(bounds):
        W[:, g, a:b] = q[:, a:b]
    W = W.reshape(out * len(bounds), d)
    if not cm.SCHEMES[scheme][0]:
        W = np.concatenate([W, -W], axis=1)
    return np.maximum(W, 0), np.minimum(W, 0)


def lava_version() -> str:
    """Installed lava-nc version (``"unknown"`` if the metadata is missing)."""
    try:
        from importlib.metadata import version

        return version("lava-nc")
    except Exception:  # noqa: BLE001  # pragma: no cover
        return "unknown"


def _processes():
    """The Lava processes and their models (imports lava-nc)."""
    return _sibling("lava_processes").lava_models()


def _check_fixed_point(layers: list[dict]) -> None:
    for li, L in enumerate(layers):
        qmax = int(np.abs(L["qdata"].astype(np.int32)).max(initial=0))
        if qmax > 255:
            raise fmt.BundleError(
                f"layer {li} has weight codes up to |{qmax}|; Lava's fixed-point Dense holds "
                f"single-signed weights up to 255: run with --tags floating_pt only")


def _encoder(procs, bundle: fmt.Bundle, li: int, sched: Schedule):
    """The Encoder process that turns layer ``li - 1``'s accumulators into layer ``li``'s
    spikes."""
    P, L = bundle.layers[li - 1], bundle.layers[li]
    return procs.Encoder(
        n_in=P["out_features"] * P["n_groups"], n_out=L["in_features"],
        n_tokens=bundle.meta["n_tokens"], rails=1 if cm.SCHEMES[L["scheme"]][0] else 2,
        base=sched.base[li], period=sched.period, window=L["T"], scheme=L["scheme"],
        k=float(L["k"]), max_count=L["max_count"],
        scale_prev=np.asarray(P["scale"], np.float64),
        bias_prev=(np.zeros(P["out_features"]) if P["bias"] is None
                   else np.asarray(P["bias"], np.float64)),
        vth_first=np.asarray(bundle.arrays["input.vth"], np.float64),
        use_vth_port=li > 1)


def build_network(bundle: fmt.Bundle, sched: Schedule) -> tuple:
    """Processes of the bundle's chain, connected: ``(source, accumulators, encoders)``."""
    from lava.proc.dense.process import Dense

    procs = _processes()
    layers = bundle.layers
    n = bundle.meta["n_tokens"]
    src = procs.SpikeSource(data=source_schedule(bundle.arrays["input.spikes"],
                                                 layers[0]["scheme"], sched))
    prev_out, accs, encs = src.s_out, [], []
    for li, L in enumerate(layers):
        signed, bitwise, twos = cm.SCHEMES[L["scheme"]]
        if li > 0:
            enc = _encoder(procs, bundle, li, sched)
            accs[-1].s_out.connect(enc.a_in)
            if li > 1:
                encs[-1].vth_out.connect(enc.vth_in)
            encs.append(enc)
            prev_out = enc.s_out
        w_exc, w_inh = expand_weights(L["qdata"], L["group_size"], L["scheme"])
        acc = procs.Accumulator(size=w_exc.shape[0], n_tokens=n, base=sched.base[li],
                                period=sched.period, window=L["T"], bitwise=bitwise, twos=twos)
        # graded +1/-1 spikes (ternary, bitwise_bidirectional) need num_message_bits > 0
        bits = 8 if signed and not twos else 0
        for W in (w_exc, w_inh):
            dense = Dense(weights=W, num_message_bits=bits)
            prev_out.connect(dense.s_in)
            dense.a_out.connect(acc.a_in)
        accs.append(acc)
    return src, accs, encs


def _read_back(bundle: fmt.Bundle, accs: list, encs: list) -> dict:
    """Per layer ``acc``, ``counts``, ``vth``, ``y`` read from the (still running) processes."""
    n = bundle.meta["n_tokens"]
    out: dict = {"layers": []}
    n_sat = 0
    for li, L in enumerate(bundle.layers):
        raw = np.asarray(accs[li].results.get())
        acc_i = np.rint(raw).astype(np.int64)
        if not np.array_equal(acc_i, raw):  # float model: values must be whole numbers
            raise RuntimeError(f"layer {li}: Lava accumulators are not integers")
        acc_i = acc_i.reshape(n, L["out_features"], L["n_groups"])
        if li == 0:
            counts = np.asarray(bundle.arrays["input.counts"], np.int64)
            vth = np.asarray(bundle.arrays["input.vth"], np.float64)
        else:
            counts = np.rint(np.asarray(encs[li - 1].counts.get())).astype(np.int64)
            vth = np.asarray(encs[li - 1].vth.get(), np.float64)
            n_sat += int(np.asarray(encs[li - 1].n_saturated.get())[0])
        y = cm.finish_output(acc_i, vth, L["scale"], L["bias"])
        out["layers"].append({"acc": acc_i, "counts": counts, "vth": vth, "y": y})
    out["n_saturated"] = n_sat
    return out


def run_lava(bundle: fmt.Bundle, tag: str) -> dict:
    """Build the Lava network of ``bundle``, run it with ``Loihi2SimCfg(select_tag=tag)``.

    Returns a dict with per layer ``acc`` (int64 ``[n, out, G]``), ``counts`` (int64 ``[n, in]``),
    ``vth`` (float64 ``[n]``) and ``y`` (float64 ``[n, out]``, finished on the host), plus
    ``num_steps``, ``build_s``, ``run_s`` and ``n_saturated``.
    """
    if tag not in fmt.TAGS:
        raise ValueError(f"unknown tag {tag!r}; choose from {fmt.TAGS}")
    t0 = time.perf_counter()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    if tag == "fixed_pt":
        _check_fixed_point(bundle.layers)
    sched = Schedule.build([L["T"] for L in bundle.layers], bundle.meta["n_tokens"])
    src, accs, encs = build_network(bundle, sched)
    # custom processes get their models by instance (Lava keys this map by process object)
    models = _processes().models[tag]
    proc_map = {p: models[type(p)] for p in [src, *accs, *encs]}
    run_cfg = Loihi2SimCfg(select_tag=tag, exception_proc_model_map=proc_map)
    t1 = time.perf_counter()
    src.run(condition=RunSteps(num_steps=sched.num_steps), run_cfg=run_cfg)
    t2 = time.perf_counter()
    try:
        out = _read_back(bundle, accs, encs)
    finally:
        src.stop()
    t3 = time.perf_counter()
    out.update(num_steps=sched.num_steps, build_s=t1 - t0, run_s=t2 - t1, read_s=t3 - t2)
    return out
