"""Compile a Triton kernel of the package for Hopper (sm_90a) on a machine without a GPU.

Triton's bundled ``ptxas`` builds the cubin here, so the resource report (registers, spills,
shared memory) and the instruction mix (``wgmma`` / ``HGMMA`` / ``IMMA``, local memory) can be
read before any device time is spent. Used from Python::

    from tools.sm90_compile import compile_sm90, report
    ck = compile_sm90(kernel, signature={...}, constexprs={...}, num_warps=8, num_stages=4)
    print(report(ck))

or from the shell for the package's GEMM kernels: ``python tools/sm90_compile.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def _compiled_mode() -> None:
    """Make the package's kernels ``triton.jit`` functions (no interpreter) without CUDA."""
    os.environ["TRITON_INTERPRET"] = "0"
    import spikingbrain.kernels.triton_support as ts

    ts._cuda_present = lambda: True


def compile_sm90(fn, signature: dict, constexprs: dict, num_warps: int = 4,
                 num_stages: int = 3, divisible: tuple = (), **options):
    """``triton.compile`` of ``fn`` for ``cuda:90`` (sm_90a). As the JIT does for aligned
    tensors, every pointer argument gets the 16-byte divisibility hint; integer arguments get
    it when named in ``divisible`` (the JIT specialises an integer that is a multiple of 16)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig = dict(signature)
    for k in constexprs:
        sig[k] = "constexpr"
    names = list(fn.arg_names)
    attrs = {(names.index(a),): [["tt.divisibility", 16]] for a, t in signature.items()
             if t.startswith("*") or a in divisible}
    src = ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32),
                          options=dict(num_warps=num_warps, num_stages=num_stages, **options))


def report(ck) -> str:
    """Registers, spills, shared memory and the tensor-core / local-memory instruction counts."""
    import triton

    ptxas = Path(triton.__file__).parent / "backends/nvidia/bin/ptxas"
    with tempfile.TemporaryDirectory() as d:
        ptx = Path(d) / "k.ptx"
        ptx.write_text(ck.asm["ptx"])
        out = subprocess.run([str(ptxas), "-v", "--gpu-name", "sm_90a", str(ptx), "-o",
                              str(Path(d) / "k.cubin")], capture_output=True, text=True)
        info = out.stderr
        cubin = Path(d) / "k.cubin"
        sass = ""
        if cubin.exists():
            nvdisasm = Path(triton.__file__).parent / "backends/nvidia/bin/nvdisasm"
            sass = subprocess.run([str(nvdisasm), "-c", str(cubin)], capture_output=True,
                                  text=True).stdout
    regs = re.findall(r"Used (\d+) registers", info)
    spill = re.findall(r"(\d+) bytes spill stores", info)
    stack = re.findall(r"(\d+) bytes stack frame", info)
    counts = {op: len(re.findall(rf"\b{op}\b", sass)) for op in
              ("HGMMA", "IGMMA", "IMMA", "HMMA", "I2F", "I2FP", "FFMA", "LDL", "STL", "BAR",
               "WARPGROUP")}
    counts["IGMMA*"] = len(re.findall(r"IGMMA\.", sass))
    counts["I2F*"] = len(re.findall(r"I2F[A-Z.0-9]*", sass))
    return (f"regs {regs[-1] if regs else '?'}  spill {spill[-1] if spill else '?'} B  "
            f"stack {stack[-1] if stack else '?'} B  shared {ck.metadata.shared} B  "
            + "  ".join(f"{k} {v}" for k, v in counts.items() if v))


def main() -> None:
    _compiled_mode()
    from spikingbrain.kernels import w8a_gemm_triton as g

    sig = dict(a_ptr="*i8", b_ptr="*i8", s_ptr="*fp32", vth_ptr="*fp32", bias_ptr="*fp32",
               out_ptr="*bf16", absmax_ptr="*i32", M="i32", N="i32", K="i32", stride_am="i32",
               stride_bn="i32", stride_sn="i32", stride_om="i32")
    for cfg in (dict(BM=128, BN=64, GROUP_M=8, num_warps=8, num_stages=4),):
        ck = compile_sm90(g._w8a_pair_kernel, sig, dict(
            BM=cfg["BM"], BN=cfg["BN"], BK=128, GROUP_M=8, HAS_BIAS=False, EVEN=True),
            num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
            divisible=("M", "N", "K", "stride_am", "stride_bn", "stride_om"))
        print("pair", cfg, report(ck))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
