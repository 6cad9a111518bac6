"""The demo's coding stage on real MiniLM activations: every scheme exact, names printed whole."""

import torch

from spikingbrain.coding import scheme_names
from spikingbrain.demo import coding_stage


def test_coding_stage_prints_whole_scheme_names_and_is_exact(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal must not truncate the names
    x = torch.randn(6, 64, generator=torch.Generator().manual_seed(0))
    rows = coding_stage(x, tmp_path, layer="test")
    out = capsys.readouterr().out
    for name in scheme_names():
        assert name in out
    assert "…" not in out
    assert [r["scheme"] for r in rows] == scheme_names() and all(r["exact"] for r in rows)
    assert (tmp_path / "raster.png").stat().st_size > 0


def test_demo_command_runs_end_to_end(tmp_path):
    """`spikingbrain demo` as a user runs it: every stage, the files it promises, Lava exact."""
    from typer.testing import CliRunner

    from spikingbrain.cli import app

    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "out"), "--report",
                                   str(tmp_path / "report"), "--sentences", "4"])
    assert res.exit_code == 0, res.output
    for stage in ("1. spike coding", "2. W8ASpike conversion", "3. spike and energy analysis",
                  "4. Intel Lava simulation", "5. a trained causal LM", "demo finished"):
        assert stage in res.output
    assert "EXACT" in res.output
    assert (tmp_path / "out" / "raster.png").is_file()
    assert (tmp_path / "out" / "llm_raster.png").stat().st_size > 0
    assert "perplexity float" in res.output and "W8ASpike k=3" in res.output
    assert (tmp_path / "report" / "index.html").is_file()
