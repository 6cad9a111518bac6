"""Must-show 5: a two-process torchrun (gloo) gives the totals of one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from spikingbrain.cli import app

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


# ---- spikingbrain analyze over two processes ------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]

# sitecustomize for the failure test: rank 1 fails inside its share of the analysis
FAIL_RANK_1 = '''
import os
if os.environ.get("RANK") == "1":
    import spikingbrain.analysis.pipeline as p

    def run_text(*args, **kwargs):
        raise RuntimeError("injected failure on rank 1")

    p.run_text = run_text
'''


def _env(tmp_path, extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    paths = [str(p) for p in (extra_path, ROOT) if p is not None]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A one-layer SpikingBrain-76B float folder (MoE, sink tokens; MiniLM tokenizer), a text of
    7 lines and the analyze arguments (batches of 2: rank 0 runs batches 0, 2, rank 1 runs
    batches 1, 3, the last one short)."""
    from spikingbrain.data import load_minilm, stdlib_sentences
    from spikingbrain.models.hybrid import SpikingBrainMoEConfig, SpikingBrainMoEForCausalLM

    tmp = tmp_path_factory.mktemp("dist")
    torch.manual_seed(0)
    model = SpikingBrainMoEForCausalLM(SpikingBrainMoEConfig(
        vocab_size=30522, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=96, bos_token_id=101, eos_token_id=102, sliding_window=8,
        num_hidden_layers=1, moe_intermediate_size=96, n_routed_experts=4, num_sink_tokens=4,
        full_attention_layers=[0], dense_ffn_layers=[]))
    model.save_pretrained(tmp / "76b")
    load_minilm()[1].save_pretrained(tmp / "76b")
    (tmp / "t.txt").write_text("\n".join(stdlib_sentences(7)) + "\n")
    args = ["analyze", str(tmp / "76b"), "--text", str(tmp / "t.txt"), "--batch-size", "2",
            "--group-size", "32", "--max-length", "24"]
    return tmp, args


def _report(folder: Path) -> dict:
    rep = json.loads((folder / "report.json").read_text())
    rep.pop("created")
    return rep


def test_analyze_two_processes_equal_one(tiny_run):
    tmp, args = tiny_run
    cmd = [sys.executable, "-m", "spikingbrain.cli", *args, "--out", str(tmp / "two"),
           "--distributed", "2"]
    res = subprocess.run(cmd, env=_env(tmp), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "report written" in res.stdout and res.stdout.count("spiking layers") == 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1)
    try:
        one = CliRunner().invoke(app, [*args, "--out", str(tmp / "one")])
    finally:
        torch.set_num_threads(threads)
    assert one.exit_code == 0, one.output
    two_rep, one_rep = _report(tmp / "two"), _report(tmp / "one")
    assert two_rep["data"]["sentences"] == 7 and two_rep["summary"]["tokens"] > 0
    assert two_rep["fidelity"]["cosine"] is not None
    assert all(layer["hist"] for layer in one_rep["layers"] if layer["calls"])
    assert two_rep == one_rep  # every statistic, histogram, energy and fidelity figure
    plots = sorted(p.name for p in (tmp / "one" / "plots").iterdir())
    assert "raster.png" in plots and "histograms.png" in plots
    assert plots == sorted(p.name for p in (tmp / "two" / "plots").iterdir())
    for name in plots:  # the raster sample too
        assert (tmp / "two" / "plots" / name).read_bytes() == (
            tmp / "one" / "plots" / name).read_bytes(), name


def test_analyze_failure_on_one_rank_writes_no_report(tiny_run):
    tmp, args = tiny_run
    hook = tmp / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(FAIL_RANK_1)
    out = tmp / "failed"
    cmd = [sys.executable, "-m", "spikingbrain.cli", *args, "--out", str(out),
           "--distributed", "2"]
    res = subprocess.run(cmd, env=_env(tmp, hook), capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "injected failure on rank 1" in res.stderr
    assert "another rank failed" in res.stderr  # rank 0 stopped in order, not killed
    assert "no report written" in res.stderr
    assert not out.exists()
    assert not [p for p in tmp.iterdir() if p.name.startswith(out.name)]  # no leftovers


# ---- the pure helpers ---------------------------------------------------------------------
def test_shard_unshard_round_trip_keeps_every_batch_whole():
    from spikingbrain.analysis.distributed import shard, unshard

    for n in (0, 1, 5, 7, 16):
        for bs in (1, 2, 3, 8):
            items = list(range(n))
            for world in (1, 2, 3, 5):
                parts = [shard(items, bs, r, world) for r in range(world)]
                assert sorted(sum(parts, [])) == items  # each item on exactly one rank
                # the batches a rank runs are exactly batches of the single-process batching
                batches = [items[i : i + bs] for i in range(0, n, bs)]
                for r, p in enumerate(parts):
                    assert [p[i : i + bs] for i in range(0, len(p), bs)] == batches[r::world]
                rows = [torch.tensor(p, dtype=torch.int64).reshape(-1, 1) for p in parts]
                assert unshard(rows, bs).flatten().tolist() == items


@pytest.mark.parametrize("args", [(0, 0, 1), (2, 2, 2), (2, -1, 2), (2, 0, 0), (True, 0, 1)])
def test_shard_rejects_bad_rank_world_or_batch(args):
    from spikingbrain.analysis.distributed import shard

    with pytest.raises(ValueError, match="batch_size|rank|world"):
        shard([1, 2, 3], *args)


def test_unshard_rejects_no_parts_and_bad_batch():
    from spikingbrain.analysis.distributed import unshard

    with pytest.raises(ValueError, match="at least one rank"):
        unshard([], 2)
    with pytest.raises(ValueError, match="batch_size"):
        unshard([torch.zeros(2)], 0)


def test_single_process_helpers_without_a_group():
    from spikingbrain.analysis.distributed import all_ok, is_lead, rank_world, session, shard_size

    assert rank_world() == (0, 1) and is_lead()
    assert all_ok(True) is True and all_ok(False) is False
    assert shard_size(7, 2) == 7
    with session() as dev:  # outside torchrun: nothing to join
        assert dev == torch.device("cpu") and rank_world() == (0, 1)


def test_session_refuses_a_device_other_than_cpu_or_cuda(monkeypatch):
    from spikingbrain.analysis.distributed import session

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(ValueError, match="cpu .gloo. or cuda .nccl."), session("meta"):
        pass


def test_command_args_rebuild_the_command_line_without_defaults():
    import typer

    from spikingbrain.analysis.distributed import command_args

    seen = []
    demo = typer.Typer()

    @demo.command("run")
    def run(ctx: typer.Context, path: str = typer.Argument(...),
            n: int = typer.Option(3, "--n", "-n"), flag: bool = typer.Option(False, "--flag"),
            fast: bool = typer.Option(True, "--fast/--slow"),
            distributed: int = typer.Option(0, "--distributed")) -> None:
        seen.append(command_args(ctx))

    @demo.command("other")
    def other() -> None:
        pass

    runner = CliRunner()
    assert runner.invoke(demo, ["run", "a b", "-n", "5", "--slow", "--distributed", "2"]
                         ).exit_code == 0
    assert runner.invoke(demo, ["run", "x", "--flag", "--n", "3"]).exit_code == 0
    assert seen == [["run", "a b", "--n", "5", "--slow"], ["run", "x", "--n", "3", "--flag"]]


def test_analyze_distributed_refused_under_torchrun_and_launch_checks_n(monkeypatch, tmp_path):
    from spikingbrain.analysis.distributed import launch

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    res = CliRunner().invoke(app, ["analyze", "minilm", "--out", str(tmp_path / "r"),
                                   "--distributed", "2"])
    assert res.exit_code == 2 and "under torchrun leave it out" in res.output
    with pytest.raises(ValueError, match="int >= 1"):
        launch(0, ["analyze"])
