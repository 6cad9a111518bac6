"""Agreement with the bundle's torch reference, the results file and the command line.

``python lava_runner.py BUNDLE --out RESULTS`` ends here (:func:`main`).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

import numpy as np

__all__ = ["agreement", "main", "results_arrays", "run_bundle"]


def _sibling(name: str):
    """Module ``name`` of this folder, inside the package or run from the folder itself."""
    return import_module(f".{name}", __package__) if __package__ else import_module(name)


fmt = _sibling("bundle_format")
net = _sibling("lava_network")


def agreement(bundle: fmt.Bundle, results: dict) -> list[dict]:
    """Per layer: exact-match counts of integer accumulators and input counts vs the bundle's
    torch reference, max |acc difference|, max |y difference| (float64 vs torch float32)."""
    rows = []
    for li, lay in enumerate(results["layers"]):
        ref_acc = bundle.arrays[f"ref.layer{li}.acc"].astype(np.int64)
        ref_cnt = bundle.arrays[f"ref.layer{li}.counts"].astype(np.int64)
        ref_y = bundle.arrays[f"ref.layer{li}.y"].astype(np.float64)
        acc = lay["acc"]
        rows.append({
            "layer": li,
            "name": bundle.meta["layers"][li]["name"],
            "acc_equal": int((acc == ref_acc).sum()),
            "acc_total": int(ref_acc.size),
            "acc_max_abs_diff": int(np.abs(acc - ref_acc).max(initial=0)),
            "counts_equal": int((lay["counts"] == ref_cnt).sum()),
            "counts_total": int(ref_cnt.size),
            "y_max_abs_diff": float(np.abs(lay["y"] - ref_y).max(initial=0.0)),
            "y_max_abs_ref": float(np.abs(ref_y).max(initial=0.0)),
        })
    return rows


def results_arrays(per_tag: dict) -> tuple[dict, dict]:
    """Flatten ``{tag: net.run_lava(...) output}`` into (arrays, meta) for the results file."""
    arrays, meta = {}, {"format": fmt.RESULTS_FORMAT, "schema_version": fmt.SCHEMA_VERSION,
                        "lava_version": net.lava_version(), "python": sys.version.split()[0],
                        "tags": list(per_tag), "runs": {}}
    for tag, res in per_tag.items():
        meta["runs"][tag] = {key: res[key] for key in
                             ("num_steps", "build_s", "run_s", "read_s", "n_saturated")}
        for li, lay in enumerate(res["layers"]):
            for key, val in lay.items():
                arrays[f"{tag}.layer{li}.{key}"] = val
    return arrays, meta


def run_bundle(bundle_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
               tags: tuple[str, ...] = fmt.TAGS) -> tuple[dict, dict]:
    """Load, validate and simulate a bundle for each tag; write the results file atomically.

    Returns ``(per_tag_results, results_meta)``.
    """
    bad = [t for t in tags if t not in fmt.TAGS]
    if bad or not tags:
        raise fmt.BundleError(f"unknown tags {bad or tags}; choose from {', '.join(fmt.TAGS)}")
    bundle = fmt.load_bundle(bundle_path)
    per_tag = {tag: net.run_lava(bundle, tag) for tag in tags}
    arrays, meta = results_arrays(per_tag)
    meta["bundle"] = os.path.abspath(os.fspath(bundle_path))
    meta["agreement"] = {tag: agreement(bundle, per_tag[tag]) for tag in tags}
    if out_path is not None:
        fmt.save_npz_atomic(out_path, arrays, meta)
    return per_tag, meta


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python lava_runner.py BUNDLE --out RESULTS [--tags a,b]``."""
    ap = argparse.ArgumentParser(description="Simulate a spikingbrain Lava bundle on Lava "
                                 "(Loihi 2 simulator) and write a results .npz.")
    ap.add_argument("bundle", help="bundle .npz written by spikingbrain export lava")
    ap.add_argument("--out", required=True, help="results .npz to write (atomically)")
    ap.add_argument("--tags", default=",".join(fmt.TAGS),
                    help="comma-separated Loihi2SimCfg tags: floating_pt, fixed_pt")
    args = ap.parse_args(argv)
    tags = tuple(t.strip() for t in args.tags.split(",") if t.strip())
    try:
        _, meta = run_bundle(args.bundle, args.out, tags)
    except fmt.BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return fmt.EXIT_BAD_INPUT
    for tag, rows in meta["agreement"].items():
        for r in rows:
            print(f"{tag} layer {r['layer']} ({r['name']}): accumulators equal "
                  f"{r['acc_equal']}/{r['acc_total']}, max |diff| {r['acc_max_abs_diff']}; "
                  f"run {meta['runs'][tag]['run_s']:.2f} s")
    return 0
