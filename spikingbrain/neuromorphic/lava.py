"""Run Lava bundles on Intel Lava's Loihi 2 simulator and compare with torch bit for bit.

Lava (lava-nc 0.10.0) needs Python 3.10, the toolkit Python >= 3.11 with torch, so the
simulation runs :mod:`spikingbrain.neuromorphic.lava_runner` (standard library + numpy + lava)
either in-process, when ``lava`` imports in the current interpreter, or in a subprocess with
the Lava environment's interpreter: ``$SPIKINGBRAIN_LAVA_PYTHON``, else ``.venv-lava/bin/python``
in the repository or the current folder (``make setup-lava`` creates it).

>>> env = find_lava_environment(python="/no/such/python")
Traceback (most recent call last):
...
spikingbrain.neuromorphic.lava.LavaEnvironmentError: the Lava interpreter '/no/such/python' does not exist; ...
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikingbrain.neuromorphic import lava_runner as runner

__all__ = [
    "ENV_VAR",
    "RUNNER_PATH",
    "LavaEnvironment",
    "LavaEnvironmentError",
    "SimulationResult",
    "demo_agreement",
    "find_lava_environment",
    "read_results",
    "simulate_bundle",
]

#: the standalone runner, executed by path in the Lava environment
RUNNER_PATH = Path(__file__).with_name("lava_runner.py")
#: environment variable naming the Lava environment's Python interpreter
ENV_VAR = "SPIKINGBRAIN_LAVA_PYTHON"
_HOW = (f"create it with `make setup-lava` (a Python 3.10 venv .venv-lava with lava-nc==0.10.0 "
        f"and numpy<2), or point {ENV_VAR} at a Python 3.10 interpreter that has lava-nc")


class LavaEnvironmentError(RuntimeError):
    """No usable Lava environment (the message says how to get one)."""


@dataclass(frozen=True)
class LavaEnvironment:
    """Where the runner runs: ``kind`` is ``"in-process"`` or ``"subprocess"`` (with ``python``)."""

    kind: str
    python: str | None = None

    def describe(self) -> str:
        return "in-process" if self.kind == "in-process" else f"subprocess ({self.python})"


def _lava_importable() -> bool:
    if importlib.util.find_spec("lava") is None:
        return False
    try:
        importlib.import_module("lava.magma.core.run_configs")
        importlib.import_module("lava.proc.dense.process")
    except Exception:  # noqa: BLE001 - lava-nc fails at import on Python != 3.10 in many ways
        return False
    return True


def find_lava_environment(python: str | os.PathLike | None = None) -> LavaEnvironment:
    """Locate a Lava environment.

    Order: an explicit ``python``; ``lava`` importable here (in-process); ``$SPIKINGBRAIN_LAVA_PYTHON``;
    ``.venv-lava/bin/python`` in the repository root or the current folder.
    Raises :class:`LavaEnvironmentError` saying how to create one when none is found.
    """
    if python is not None:
        p = Path(python)
        if not p.exists():
            raise LavaEnvironmentError(f"the Lava interpreter '{p}' does not exist; {_HOW}")
        return LavaEnvironment("subprocess", str(p))
    if _lava_importable():
        return LavaEnvironment("in-process")
    env = os.environ.get(ENV_VAR)
    if env:
        if not Path(env).exists():
            raise LavaEnvironmentError(f"{ENV_VAR}={env} does not exist; {_HOW}")
        return LavaEnvironment("subprocess", env)
    roots = _search_roots()
    for root in roots:
        cand = root / ".venv-lava" / "bin" / "python"
        if cand.exists():
            return LavaEnvironment("subprocess", str(cand))
    raise LavaEnvironmentError(
        f"no Lava environment found: lava does not import in this Python "
        f"({sys.version.split()[0]}; lava-nc 0.10.0 needs Python 3.10), {ENV_VAR} is not set and "
        f"there is no .venv-lava in {' or '.join(map(str, roots))}; {_HOW}"
    )


def _search_roots() -> list[Path]:
    """Folders searched for ``.venv-lava``: the repository root and the current folder."""
    return [Path(__file__).resolve().parents[2], Path.cwd()]


@dataclass
class SimulationResult:
    """Outcome of :func:`simulate_bundle`.

    Attributes:
        agreement: ``{tag: [row per layer]}``; a row has ``acc_equal``/``acc_total`` (integer
            accumulators equal to torch's), ``acc_max_abs_diff``, ``counts_equal``/``counts_total``
            (layer input counts), ``y_max_abs_diff`` (float64 output finished from Lava's
            integers vs torch's float32 output) and ``y_max_abs_ref``.
        runs: ``{tag: {"num_steps", "build_s", "run_s", "read_s", "n_saturated"}}``.
        accumulators: ``{tag: [int64 [n, out, G] per layer]}`` read back from Lava.
        wall_s: wall time of the whole simulation call (start-up included).
        environment: how the runner ran; results_path: the results file.
    """

    agreement: dict
    runs: dict
    accumulators: dict = field(repr=False)
    outputs: dict = field(repr=False)
    wall_s: float
    environment: str
    results_path: str
    lava_version: str = "unknown"

    @property
    def exact(self) -> bool:
        """Whether every integer accumulator of every layer and tag equals torch's."""
        return all(r["acc_equal"] == r["acc_total"] and r["counts_equal"] == r["counts_total"]
                   for rows in self.agreement.values() for r in rows)

    def lines(self) -> list[str]:
        """Human-readable agreement lines (one per tag and layer)."""
        out = []
        for tag, rows in self.agreement.items():
            run = self.runs[tag]
            for r in rows:
                out.append(
                    f"{tag:11s} layer {r['layer']} {r['name']}: accumulators equal "
                    f"{r['acc_equal']}/{r['acc_total']} (max |diff| {r['acc_max_abs_diff']}), "
                    f"input counts equal {r['counts_equal']}/{r['counts_total']}, "
                    f"max |y - y_torch| {r['y_max_abs_diff']:.3g} (|y| <= {r['y_max_abs_ref']:.3g})"
                )
            out.append(f"{tag:11s} {run['num_steps']} Lava steps, build {run['build_s']:.2f} s, "
                       f"run {run['run_s']:.2f} s")
        out.append(f"lava-nc {self.lava_version}, {self.environment}, wall {self.wall_s:.1f} s: "
                   + ("EXACT" if self.exact else "MISMATCH"))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def read_results(path: str | os.PathLike, bundle: runner.Bundle) -> tuple[dict, dict, dict, dict]:
    """Read a runner results file; returns ``(meta, agreement, accumulators, outputs)``.

    Agreement is recomputed here from the integers in the file and the bundle's references.
    """
    try:
        with np.load(os.fspath(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as err:  # noqa: BLE001 - any unreadable file gets one clear error
        raise runner.BundleError(f"Lava results {str(path)!r} are unreadable ({err})") from None
    if meta.get("format") != runner.RESULTS_FORMAT or meta.get("schema_version") != SCHEMA:
        raise runner.BundleError(
            f"{str(path)!r} is not a results file of schema version {SCHEMA} "
            f"(format {meta.get('format')!r}, version {meta.get('schema_version')!r})")
    agreement, accs, outs = {}, {}, {}
    n_layers = len(bundle.meta["layers"])
    for tag in meta["tags"]:
        layers = []
        for li in range(n_layers):
            layers.append({key: arrays[f"{tag}.layer{li}.{key}"]
                           for key in ("acc", "counts", "vth", "y")})
        agreement[tag] = runner.agreement(bundle, {"layers": layers})
        accs[tag] = [lay["acc"] for lay in layers]
        outs[tag] = [lay["y"] for lay in layers]
    return meta, agreement, accs, outs


SCHEMA = runner.SCHEMA_VERSION


def simulate_bundle(bundle: str | os.PathLike, tags: Sequence[str] = runner.TAGS,
                    out: str | os.PathLike | None = None, python: str | os.PathLike | None = None,
                    timeout: float = 900.0) -> SimulationResult:
    """Simulate a bundle on Lava (``Loihi2SimCfg(select_tag=tag)`` for each tag) and compare.

    Args:
        bundle: bundle file written by :func:`spikingbrain.neuromorphic.bundle.write_bundle`.
        tags: ``"floating_pt"`` and/or ``"fixed_pt"``.
        out: results file (default: ``<bundle>.results.npz`` beside the bundle), written
            atomically by the runner.
        python: a Lava interpreter to use (default: :func:`find_lava_environment`).
        timeout: seconds before the subprocess is stopped.

    Raises:
        BundleError (ValueError) for a missing/corrupt/wrong-version bundle (checked here before
        any Lava start-up), LavaEnvironmentError without a Lava environment, RuntimeError when
        the runner fails.
    """
    tags = tuple(tags)
    bad = [t for t in tags if t not in runner.TAGS]
    if bad or not tags:
        raise ValueError(f"tags must be a non-empty subset of {runner.TAGS}, got {tags}")
    b = runner.load_bundle(bundle)  # validate before paying for Lava's start-up
    bundle = Path(bundle).resolve()  # the subprocess runs in another folder
    out = (Path(out) if out is not None else bundle.with_name(bundle.stem + ".results.npz")
           ).resolve()
    if out == bundle:
        raise ValueError(f"the results file {out} is the bundle itself; give another --out "
                         f"(default: <bundle>.results.npz)")
    if out.is_dir():
        raise ValueError(f"the results path {out} is a directory; give a file name ending "
                         f"in .npz")
    env = find_lava_environment(python)
    t0 = time.perf_counter()
    if env.kind == "in-process":
        runner.run_bundle(bundle, out, tags)
    else:
        cmd = [env.python, str(RUNNER_PATH), str(bundle), "--out", str(out),
               "--tags", ",".join(tags)]
        with tempfile.TemporaryDirectory() as tmp:
            # run from a neutral folder: lava scans the process module's folder for models
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp, check=False,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode == runner.EXIT_BAD_INPUT:
            raise runner.BundleError(proc.stderr.strip().removeprefix("error: "))
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            hint = ""
            if "No module named 'lava'" in proc.stderr or "No module named 'numpy'" in proc.stderr:
                hint = f"\n{env.python} is not a Lava environment; {_HOW}"
            raise RuntimeError(f"the Lava runner failed (exit {proc.returncode}):\n{tail}{hint}")
    wall = time.perf_counter() - t0
    meta, agreement, accs, outs = read_results(out, b)
    return SimulationResult(agreement=agreement, runs=meta["runs"], accumulators=accs,
                            outputs=outs, wall_s=wall, environment=env.describe(),
                            results_path=str(out), lava_version=meta.get("lava_version", "?"))


def minilm_token_activations(layer_name: str, n_tokens: int, model=None, tokenizer=None):
    """Real inputs of one linear layer of the embedded all-MiniLM-L6-v2: ``[n_tokens, in]``.

    Runs the float model on standard-library sentences and keeps the first ``n_tokens``
    non-padding token rows that enter ``layer_name``.
    """
    import torch

    from spikingbrain.data import load_minilm, stdlib_sentences

    if model is None:
        model, tokenizer = load_minilm()
    mod = dict(model.named_modules()).get(layer_name)
    if mod is None:
        raise ValueError(f"the model has no module {layer_name!r}")
    seen = []
    handle = mod.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    n_sent = 1
    try:
        while True:
            seen.clear()
            batch = tokenizer(stdlib_sentences(n_sent), padding=True, return_tensors="pt")
            with torch.no_grad():
                model(**batch)
            shape = tuple(batch["attention_mask"].shape)
            n = batch["attention_mask"].numel()  # flattened token rows count too (MoE)
            calls = [t.reshape(*shape, t.shape[-1]) for t in seen
                     if t.shape[:-1].numel() == n]  # not a sink pass
            if not calls:
                raise ValueError(
                    f"layer {layer_name} sees {[tuple(t.shape[:-1]) for t in seen]} rows for a "
                    f"batch of {shape} tokens (an MoE expert gathers tokens): export a layer "
                    f"whose input is the token sequence")
            rows = calls[0][batch["attention_mask"].bool()]
            if rows.shape[0] >= n_tokens or n_sent >= 64:
                break
            n_sent *= 2
    finally:
        handle.remove()
    if rows.shape[0] < n_tokens:
        raise ValueError(f"only {rows.shape[0]} tokens available, asked for {n_tokens}")
    return rows[:n_tokens].float().contiguous()


def demo_agreement(n_tokens: int = 4, scheme: str = "bitwise_bidirectional",
                   layer: str = "encoder.layer.0.intermediate.dense",
                   out_dir: str | os.PathLike | None = None, tags: Sequence[str] = runner.TAGS,
                   verbose: bool = True, model=None, tokenizer=None) -> SimulationResult:
    """Export one layer of the converted all-MiniLM-L6-v2 for a few real tokens, simulate it on
    Lava in floating and fixed point, print and return the agreement with torch and the time.

    ``make demo`` calls this; it takes about 10-20 s (most of it Lava start-up).
    ``model``/``tokenizer``: an already loaded float MiniLM (:func:`spikingbrain.data.load_minilm`).
    """
    from spikingbrain.converter import SpikeConfig, SpikingLinear
    from spikingbrain.data import load_minilm
    from spikingbrain.neuromorphic.bundle import write_bundle

    model, tok = (model, tokenizer) if model is not None else load_minilm()
    lin = dict(model.named_modules())[layer]
    sl = SpikingLinear.from_linear(lin, SpikeConfig(scheme=scheme))
    x = minilm_token_activations(layer, n_tokens, model, tok)
    folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="sb-lava-"))
    path = write_bundle([sl], x, folder / "minilm_layer.npz", names=[layer])
    res = simulate_bundle(path, tags=tags)
    if verbose:
        print(f"Lava vs torch, all-MiniLM-L6-v2 {layer} ({sl.in_features} -> {sl.out_features}), "
              f"{n_tokens} tokens, scheme {scheme}:")
        print(res)
    return res
