"""Compile a Triton kernel of the package for Hopper (sm_90a) on a machine without a GPU.

Triton's bundled ``ptxas`` builds the cubin here, so the resource report (registers, spills,
shared memory) and the instruction mix (``wgmma`` / ``HGMMA`` / ``IMMA``, local memory) can be
read before any device time is spent. Used from Python::

    from tools.sm90_compile import compile_sm90, report
    ck = compile_sm90(kernel, signature={...}, constexprs={...}, num_warps=8, num_stages=4)
    print(report(ck))

or from the shell for the package's GEMM kernels: ``python tools/sm90_compile.py``, and
``python tools/sm90_compile.py --wgmma`` for the Hopper Gluon kernel's facts (JSON).
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


def compile_gluon_sm90(fn, signature: dict, constexprs: dict, num_warps: int = 4,
                       divisible: tuple = ()):
    """``compile_sm90`` for a ``gluon.jit`` kernel (tensor descriptors as
    ``triton.runtime.jit.mangle_type`` spells them)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    sig = dict(signature)
    for k in constexprs:
        sig[k] = "constexpr"
    names = list(fn.arg_names)
    attrs = {(names.index(a),): [["tt.divisibility", 16]] for a, t in signature.items()
             if t.startswith("*") or a in divisible}
    src = GluonASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32),
                          options=dict(num_warps=num_warps))


def sass_facts(ck) -> dict:
    """ptxas' resource usage and warnings and the SASS instruction counts of a compiled
    kernel: ``{"regs", "spill", "shared", "warnings", "sass": {op: count}, "depbar": [...]}``."""
    import triton

    bin_dir = Path(triton.__file__).parent / "backends/nvidia/bin"
    with tempfile.TemporaryDirectory() as d:
        ptx = Path(d) / "k.ptx"
        ptx.write_text(ck.asm["ptx"])
        cubin = Path(d) / "k.cubin"
        info = subprocess.run([str(bin_dir / "ptxas"), "-v", "--gpu-name", "sm_90a", str(ptx),
                               "-o", str(cubin)], capture_output=True, text=True).stderr
        sass = subprocess.run([str(bin_dir / "nvdisasm"), "-c", str(cubin)],
                              capture_output=True, text=True).stdout if cubin.exists() else ""
    regs = re.findall(r"Used (\d+) registers", info)
    spill = re.findall(r"(\d+) bytes spill stores", info)
    ops = ("IGMMA", "HGMMA", "IMMA", "I2F", "FFMA", "FADD", "LDL", "STL", "SYNCS", "UTMALDG")
    return {"regs": int(regs[-1]) if regs else None,
            "spill": int(spill[-1]) if spill else None,
            "shared": int(ck.metadata.shared),
            "warnings": re.findall(r"warning : (.*)", info),
            "sass": {op: len(re.findall(rf"\b{op}[.A-Z0-9_]*", sass)) for op in ops},
            "depbar": sorted(set(re.findall(r"WARPGROUP\.DEPBAR\.LE gsb0, (0x[0-9a-f]+)",
                                            sass)))}


def wgmma_facts(**config) -> dict:
    """:func:`sass_facts` of the Hopper Gluon GEMM (``w8a_wgmma_gluon``) as ``w8a_gemm``
    dispatches it (BF16 output, bias, 7B shapes: N a multiple of BN)."""
    _compiled_mode()
    import torch
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    from triton.runtime.jit import mangle_type

    from spikingbrain.kernels import w8a_wgmma_gluon as w

    cfg = dict(w.WGMMA_CONFIG, **config)
    bm, bn, bk = cfg["BM"], cfg["BN"], 128
    descs = [TensorDescriptor.from_tensor(torch.zeros(rows, 256, dtype=torch.int8), [blk, bk],
                                          gl.NVMMASharedLayout.get_default_for([blk, bk],
                                                                               gl.int8))
             for rows, blk in ((bm, bm), (bn, bn))]
    sig = dict(a_desc=mangle_type(descs[0]), b_desc=mangle_type(descs[1]), st_ptr="*fp32",
               vth_ptr="*fp32", bias_ptr="*bf16", out_ptr="*bf16", absmax_ptr="*i32",
               M="i32", N="i32", G="i32", stride_om="i32")
    ck = compile_gluon_sm90(w._w8a_wgmma_kernel, sig, dict(
        BM=bm, BN=bn, BK=bk, STAGES=cfg["STAGES"], GROUP_M=cfg["GROUP_M"], HAS_BIAS=True,
        MAGIC=cfg["MAGIC"], EVEN_N=True, num_warps=cfg["num_warps"]),
        num_warps=cfg["num_warps"],
        divisible=("N", "stride_om"))
    return sass_facts(ck)


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
    if "--wgmma" in sys.argv:  # JSON facts of the Gluon kernel
        import json

        print(json.dumps(wgmma_facts()))
        return
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
