"""Must-show 5: a two-process torchrun (gloo) gives the totals of one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = r'''
import json, sys
import torch
import torch.distributed as dist
from torch import nn
from spikingbrain.analysis import monitor
from spikingbrain.converter import SpikeConfig, convert

def build():
    torch.manual_seed(0)
    net = convert(nn.Sequential(nn.Linear(24, 16), nn.GELU(), nn.Linear(16, 8)),
                  SpikeConfig(group_size=8))
    # a layer only the last input reaches (rank 1 of 2), with its own window, clamp, groups
    net.append(convert(nn.Sequential(nn.Linear(8, 8)),
                       SpikeConfig(group_size=4, T=15, max_count=9)))
    net.append(convert(nn.Sequential(nn.Linear(8, 8)), SpikeConfig(group_size=8)))  # unseen
    return net

def data():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(3, 5, 24, generator=g) * (i + 1) for i in range(6)]

if __name__ == "__main__":
    distributed = len(sys.argv) > 2
    rank, world = 0, 1
    if distributed:
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    net = build()
    with monitor(net) as m:
        for i, x in list(enumerate(data()))[rank::world]:
            y = net[:3](x)
            if i == 5:
                net[3](y)
    stats = m.stats()
    if rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(stats.to_dict(window=3), f)
    if distributed:
        dist.destroy_process_group()
'''


def test_torchrun_two_processes_equal_one(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get(
        "PYTHONPATH", "")
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", str(script),
           str(tmp_path / "two.json"), "dist"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    res1 = subprocess.run([sys.executable, str(script), str(tmp_path / "one.json")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert res1.returncode == 0, res1.stderr[-3000:]
    two = json.loads((tmp_path / "two.json").read_text())
    one = json.loads((tmp_path / "one.json").read_text())
    assert two["total"]["tokens"] == 6 * 3 * 5  # every token seen once across the ranks
    assert two == one
    late = one["layers"][-2]  # the layer seen on rank 1 only keeps its configuration
    assert (late["scheme"], late["T_config"], late["max_count"], late["groups"]) == (
        "bitwise_bidirectional", 15, 9, 2)
    assert late["tokens"] == 3 * 5
    assert one["layers"][-1]["calls"] == 0 and one["layers"][-1]["hist"] == []  # never called
    assert torch.__version__
