"""The Hopper Gluon GEMM compiles for sm_90a here, without a GPU (Triton's interpreter does
not run Gluon kernels; their numbers are checked on an H100 by test_kernels_gpu.py).

What the compile must show: INT8 tensor-core instructions (IGMMA), no ptxas warning (a
``wgmma`` serialised by ptxas, C7510-C7515, costs the overlap the kernel exists for), a
``WARPGROUP.DEPBAR.LE gsb0, 0x1`` (one product still running while the previous group's
epilogue runs), and few spilled bytes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _facts() -> dict:
    env = dict(os.environ, TRITON_INTERPRET="0", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, str(ROOT / "tools/sm90_compile.py"), "--wgmma"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_count_mode_overlaps_epilogue_with_tensor_cores():
    f = _facts()
    assert f["sass"]["IGMMA"] > 0 and f["sass"]["HGMMA"] == 0
    assert f["warnings"] == [], f["warnings"]
    assert "0x1" in f["depbar"], f"no product left running during an epilogue: {f['depbar']}"
    assert f["sass"]["UTMALDG"] > 0  # tiles come through the TMA engine
    assert f["spill"] <= 32, f  # the shipped tiles spill 4 bytes (128 x 128 x 8 warps: 88)

