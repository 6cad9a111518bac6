"""Peak host memory and wall time of ``spikingbrain convert`` on a full-size 7B bf16 folder.

Builds a full-size SpikingBrain-7B float folder from random weights (public layout, bf16,
sharded safetensors with an index, about 15 GB; ``--layers-per-shard 8`` gives shards of about
3.8 GB like a released folder) with :mod:`public_w8aspike_folder`, then runs::

    /usr/bin/time -v python -m spikingbrain.cli convert FOLDER OUT --k 3

which takes the streaming path (:mod:`spikingbrain.converter.stream`), and prints the peak RSS
("Maximum resident set size") and the wall time. Both folders are deleted afterwards unless
``--keep``. Check ``df -h`` (about 23 GB free needed) and ``free -g`` first.

Run: PYTHONPATH=$PWD .venv/bin/python benchmarks/convert_stream_fullsize.py --work /work/tmp7b
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from public_w8aspike_folder import write_folder  # noqa: E402


def _time_v(field: str, text: str) -> str:
    m = re.search(rf"{re.escape(field)}: (.+)", text)
    if m is None:
        raise RuntimeError(f"/usr/bin/time -v printed no {field!r}:\n{text[-2000:]}")
    return m.group(1).strip()


def measure(src: Path, out: Path, k: float = 3.0) -> dict:
    """Run the convert command under ``/usr/bin/time -v``; peak RSS (GiB) and wall (s)."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "spikingbrain.cli", "convert",
           str(src), str(out), "--k", str(k)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"convert failed ({res.returncode}):\n{res.stdout[-2000:]}\n"
                           f"{res.stderr[-2000:]}")
    rss_kb = int(_time_v("Maximum resident set size (kbytes)", res.stderr))
    return {"command": " ".join(cmd[2:]), "peak_rss_gib": rss_kb / 2**20,
            "wall_s": wall, "time_v_elapsed": _time_v("Elapsed (wall clock) time "
                                                      "(h:mm:ss or m:ss)", res.stderr),
            "stdout_tail": res.stdout[-600:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, type=Path, help="scratch folder (~23 GB free)")
    ap.add_argument("--size", default="full", choices=["tiny", "full"])
    ap.add_argument("--layers-per-shard", type=int, default=8)
    ap.add_argument("--keep", action="store_true", help="keep the two folders")
    a = ap.parse_args(argv)
    src, out = a.work / "float7b", a.work / "w8aspike7b"
    a.work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        built = write_folder(src, a.size, kind="float", dtype="bf16",
                             layers_per_shard=a.layers_per_shard)
        built_s = time.perf_counter() - t0
        shard_gb = max(p.stat().st_size for p in src.glob("*.safetensors")) / 2**30
        r = measure(src, out)
        out_gb = sum(p.stat().st_size for p in out.glob("*.safetensors")) / 2**30
        print(json.dumps({"source_gib": built["bytes"] / 2**30, "largest_shard_gib": shard_gb,
                          "shards": len(built["files"]), "build_s": built_s,
                          "output_gib": out_gb, **r}, indent=2))
    finally:
        if not a.keep:
            shutil.rmtree(src, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
