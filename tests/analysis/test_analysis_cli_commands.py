"""`analyze` and `sweep-k` from the shell: every argument checked before a model loads (one
line, exit code 2), weight-fetch energy with --memory, the k sweep, all-or-nothing reports."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from spikingbrain.cli import app
from spikingbrain.data import stdlib_sentences


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_usage_error(res, match):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikingbrain: error:"), lines
    assert match in lines[0], lines[0]


@pytest.fixture
def text(tmp_path):
    p = tmp_path / "sentences.txt"
    p.write_text("\n".join(stdlib_sentences(4)))
    return p


def _bad_text(tmp_path, kind):
    p = tmp_path / f"bad_{kind}"
    if kind == "missing":
        return p
    if kind == "empty":
        p.write_text(" \n\n")
    elif kind == "binary":
        p.write_bytes(b"\x00\x01\x02binary")
    elif kind == "directory":
        p.mkdir()
    return p


@pytest.mark.parametrize("command", ["analyze", "sweep-k"])
@pytest.mark.parametrize("kind, match", [("missing", "no such file"), ("empty", "is empty"),
                                         ("binary", "binary file"), ("directory", "directory")])
def test_bad_text_files(tmp_path, command, kind, match):
    _one_line_usage_error(_run(command, "minilm", "--text", _bad_text(tmp_path, kind),
                               "--out", tmp_path / "r"), match)


@pytest.mark.parametrize("command", ["analyze", "sweep-k"])
def test_bad_out_folders(tmp_path, text, command):
    (tmp_path / "file").write_text("x")
    _one_line_usage_error(_run(command, "minilm", "--text", text, "--out", tmp_path / "file"),
                          "is a file")
    ro = tmp_path / "ro"
    ro.mkdir()
    # root ignores permission bits, so the read-only folder is simulated at the access check
    real = os.access
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) else real(p, mode))
        _one_line_usage_error(_run(command, "minilm", "--text", text, "--out", ro / "r"),
                              "cannot write")


@pytest.mark.parametrize("args, match", [
    (["analyze", "minilm", "--k", "nan"], "--k must be a finite number"),
    (["analyze", "minilm", "--k", "0"], "--k must be > 0"),
    (["sweep-k", "minilm", "--k", "2,nan"], "--k must be a finite number"),
    (["sweep-k", "minilm", "--k", ","], "--k needs at least one value"),
    (["analyze", "minilm", "--memory", "l7_cache"], "no memory level"),
    (["analyze", "minilm", "--table", "nope"], "unknown energy table"),
    (["analyze", "nowhere_dir"], "does not exist"),
])
def test_bad_numbers_tables_and_folders(tmp_path, args, match):
    _one_line_usage_error(_run(*args, "--out", tmp_path / "r"), match)
    assert not (tmp_path / "r").exists()


def test_analyze_with_weight_fetch_energy(tmp_path, text):
    out = tmp_path / "r"
    res = _run("analyze", "minilm", "--text", text, "--out", out, "--memory", "sram_32kb")
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    tok = rep["energy"]["per_token"]
    assert rep["settings"]["memory"] == "sram_32kb"
    assert tok["int8_fetch_pj"] > tok["spiking_fetch_pj"] > 0  # silent channels fetch nothing
    assert tok["fp16_fetch_pj"] == pytest.approx(2 * tok["int8_fetch_pj"])
    assert tok["epilogue_pj"] > 0


def test_sweep_k_writes_rows_and_report_together(tmp_path, text):
    out = tmp_path / "sweep"
    res = _run("sweep-k", "minilm", "--text", text, "--k", "2,4", "--out", out, "--window", "4")
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "sweep.json").read_text())
    assert [r["k"] for r in doc["rows"]] == [2.0, 4.0]
    lo, hi = doc["rows"]
    assert lo["sparsity"] > hi["sparsity"] and lo["fraction_le_7"] > hi["fraction_le_7"]
    md = (out / "report.md").read_text()
    assert "sparsity (4-step)" in md and "sparsity (3-step)" not in md


def test_failing_report_write_keeps_the_previous_report(tmp_path, toy_stats, monkeypatch):
    from spikingbrain.analysis import report as report_mod

    out = tmp_path / "r"
    rep = report_mod.build_report(toy_stats[0], title="old")
    report_mod.write_report(out, rep)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(report_mod, "render_html", broken)  # fails after json and md
    with pytest.raises(OSError, match="disk full"):
        report_mod.write_report(out, report_mod.build_report(toy_stats[0], title="new"))
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no staging left behind


def test_report_refuses_a_folder_of_other_files(tmp_path, toy_stats):
    from spikingbrain.analysis import report as report_mod

    (tmp_path / "thesis.tex").write_text("mine")
    with pytest.raises(ValueError, match="already holds other files"):
        report_mod.write_report(tmp_path, report_mod.build_report(toy_stats[0], title="x"))
    assert (tmp_path / "thesis.tex").read_text() == "mine"


def test_map_loihi2_with_measured_rates(tmp_path, text):
    """``map loihi2 minilm --text``: every converted projection is placed with the rates
    measured on the text (36 projections of the 6 BERT layers and the pooler, ``source``
    measured), and
    ``--text`` with the shapes-only ``7b`` is refused."""
    out = tmp_path / "map.json"
    res = _run("map", "loihi2", "minilm", "--text", str(text), "--device", "cpu",
               "--json", str(out))
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["projections"] == 37 and rep["rates"] == "measured"
    assert rep["synapses"] == 6 * (4 * 384 * 384 + 2 * 384 * 1536) + 384 * 384
    names = [e["name"] for e in rep["estimate"]["layers"]]
    assert "pooler.dense" in names
    _one_line_usage_error(_run("map", "loihi2", "7b", "--text", str(text)),
                          "shapes without weights")
