#!/usr/bin/env bash
# One device call: the GPU tests, then the Hopper GEMM probe and the layer table.
#   bash benchmarks/device_check.sh [quick]
# Uses the device machine's python3 (CUDA torch + triton); never installs anything.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
timeout 170 python3 -m pytest -q -x -m gpu tests/kernels/test_kernels_gpu.py -p no:cacheprovider 2>&1 | tail -15
timeout 200 python3 benchmarks/probe_wgmma.py --tokens 4096 --quick 2>&1 | tail -12
[ "$1" = quick ] || timeout 150 python3 benchmarks/gpu.py --section layers 2>&1 | tail -40
