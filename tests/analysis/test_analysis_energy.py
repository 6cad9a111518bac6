"""Energy model and the `spikingbrain energy` command (must-show 1)."""

import json

import pytest
from typer.testing import CliRunner

from spikingbrain.analysis.energy import (
    HOROWITZ_45NM,
    REPORT_TABLE,
    EnergyTable,
    layer_energy,
    load_table,
    per_mac_energy,
)
from spikingbrain.analysis.stats import count_statistics
from spikingbrain.cli import app


def test_cli_energy_prints_report_figures():
    res = CliRunner().invoke(app, ["energy", "--mean-spikes", "1.13"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    assert "0.034 pJ per MAC" in res.output
    assert "97.7 % below FP16" in res.output
    assert "85.2 % below INT8" in res.output
    assert "6.76x" in res.output


def test_cli_energy_exact_and_json():
    res = CliRunner().invoke(app, ["energy", "--mean-spikes", "1.13", "--exact", "--json"])
    d = json.loads(res.output)
    assert d["spiking_pj"] == pytest.approx(0.0339)
    assert round(100 * d["reduction_vs_int8"], 1) == 85.3


def test_cli_energy_bad_table():
    res = CliRunner().invoke(app, ["energy", "--mean-spikes", "1", "--table", "nope"])
    assert res.exit_code != 0 and "unknown energy table" in res.output


def test_per_mac_rounding_convention():
    e = per_mac_energy(1.13, REPORT_TABLE, precision=3)
    assert e.spiking_pj == 0.034
    assert round(100 * e.reduction_vs_fp16, 1) == 97.7
    assert round(100 * e.reduction_vs_int8, 1) == 85.2
    with pytest.raises(ValueError, match="mean_spikes"):
        per_mac_energy(-1.0)


def test_user_tables(tmp_path):
    j = tmp_path / "t.json"
    j.write_text(json.dumps({"fp16_mac": 1.0, "int8_mac": 0.2, "int8_add": 0.05}))
    assert load_table(j).int8_add == 0.05 and load_table(j).name == "t"
    t = tmp_path / "t.toml"
    t.write_text('name = "mine"\nsource = "lab"\nfp16_mac = 2.0\nint8_mac = 0.5\nint8_add = 0.1\n'
                 '[memory_read_64bit]\nsram = 8.0\n')
    tab = load_table(t)
    assert tab.read_pj_per_byte("sram") == 1.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"fp16_mac": 1.0, "int8_mac": 0.2}))
    with pytest.raises(ValueError, match="missing"):
        load_table(bad)
    with pytest.raises(ValueError, match="int8_add"):
        EnergyTable(name="x", source="y", fp16_mac=1, int8_mac=1, int8_add=-1)


def test_layer_energy_per_token_and_fetch():
    import torch

    st = count_statistics([torch.tensor([[0, 1, -3, 2]])], "ternary", fan_out=10)
    e = layer_energy(st, HOROWITZ_45NM, memory="sram_8kb")
    assert e.dense_macs_per_token == 40
    assert e.spiking_pj == pytest.approx(6 * 10 * 0.03)
    assert e.int8_fetch_pj == pytest.approx(40 * 10 / 8)
    assert e.spiking_fetch_pj == pytest.approx(3 * 10 * 10 / 8)  # 3 active channels
    with pytest.raises(ValueError, match="memory level"):
        layer_energy(st, REPORT_TABLE, memory="dram")
