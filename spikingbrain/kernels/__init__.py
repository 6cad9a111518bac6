"""GPU kernels (Triton) for the spiking layers and the spike coders.

Nothing here is imported by ``import spikingbrain``: the converter and the coders import these
modules only when a CUDA tensor (or a test, through the Triton interpreter) asks for them.

- :mod:`spikingbrain.kernels.triton_support`: imports Triton lazily and, on machines without a
  CUDA device, switches on its interpreter so the same kernels run on CPU tensors (CI).
- :mod:`spikingbrain.kernels.threshold_triton`: the adaptive threshold and int8 counts, one
  pass per token.
- :mod:`spikingbrain.kernels.w8a_gemm_triton`: INT8 weights x spike counts, exact int32
  accumulation per weight group with the group scale, ``Vth`` and bias applied in the epilogue
  (count mode), or the same accumulators from bit planes of the spike trains (spike mode).
- :mod:`spikingbrain.kernels.w8a_wgmma_gluon`: the Hopper count-mode GEMM (Gluon, wgmma).
- :mod:`spikingbrain.kernels.spiking_linear_triton`: ``SpikingLinear.forward`` on CUDA.
- :mod:`spikingbrain.kernels.coding_triton`: the spike coders ``encode`` / ``decode``.

Each module's docstring names the CPU function it must equal (its reference in the tests);
measurements live in docs/gpu.md.
"""
