#!/usr/bin/env bash
# One device call (issue 20, must-show 3; and the GPU tests): from a full-size public-layout
# W8ASpike folder (random weights, 1 % of codes beyond int8) written on the GPU machine:
# prefill of 4,096 tokens (int16-code model vs the all-int8 model vs BF16), then
# `spikingbrain analyze` and `spikingbrain generate --spikes` on it with --device cuda.
#   bash benchmarks/device_public_w8aspike.sh        (carry .whl and .tok; see docs/gpu.md)
# .whl: the wheels the GPU image lacks (fla-core, flash-linear-attention, einops, typer, rich,
# matplotlib and their pure-Python needs); .tok: a tokenizer (MiniLM's) and a text file.
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 SPIKINGBRAIN_CACHE=/tmp/sbcache
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
if [ -d .smolA ]; then mkdir -p /tmp/smol && cp .smolA/part_a /tmp/smol/; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ "${TESTS_S:-40}" = 0 ] || timeout ${TESTS_S:-40} python3 -m pytest -q -m gpu tests/models/test_models_gpu.py \
  tests/kernels/test_kernels_gpu.py -k "graph or int16 or tiny" -p no:cacheprovider 2>&1 | tail -8
t0=$SECONDS
timeout 170 python3 benchmarks/public_w8aspike_folder.py --size full --beyond 0.01 \
  --out /tmp/pub 2>&1 | tail -2
echo "full-size public W8ASpike folder written in $((SECONDS - t0)) s"
cp .tok/tokenizer* /tmp/pub/
timeout 110 python3 benchmarks/prefill_gpu.py --folder /tmp/pub 2>&1 | tail -4
timeout 75 python3 -m spikingbrain.cli analyze /tmp/pub --device cuda \
  --text .tok/sentences.txt --out /tmp/rep 2>&1 | tail -3
timeout 75 python3 -m spikingbrain.cli generate /tmp/pub --device cuda --spikes \
  --prompt "The spiking neuron" --prompt "In Python, a list is a" --max-new-tokens 32 \
  2>&1 | tail -14
