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
    out = " ".join(res.output.split())
    # the report's figure (spiking adds alone) ...
    assert "0.0340 pJ per MAC, 97.7 % below FP16 and 85.2 % below INT8" in out
    # ... and with the group-scale epilogue, which the INT8 layer pays too
    assert "epilogue: 1/128 float MAC (4.6 pJ)" in out and "0.0359 pJ" in out
    assert "0.0699 pJ per MAC, 95.3 % below FP16 and 73.7 % below INT8" in out
    assert "Left out:" in out


def test_cli_energy_exact_and_json():
    res = CliRunner().invoke(app, ["energy", "--mean-spikes", "1.13", "--exact", "--json",
                                   "--group-size", "0"])
    d = json.loads(res.output)
    assert d["spiking_pj"] == pytest.approx(0.0339) and d["epilogue_pj"] == 0
    assert round(100 * d["reduction_vs_int8"], 1) == 85.3
    assert d["energy_ratio_int8_to_spiking"] == pytest.approx(0.23 / 0.0339)
    assert "speedup_vs_int8" not in d and d["leaves_out"]


@pytest.mark.parametrize("args, match", [
    (["--mean-spikes", "inf"], "--mean-spikes must be a finite number"),
    (["--mean-spikes", "nan"], "--mean-spikes must be a finite number"),
    (["--mean-spikes", "-1"], "--mean-spikes must be >= 0"),
])
def test_cli_energy_bad_numbers_are_one_line_usage_errors(args, match):
    res = CliRunner().invoke(app, ["energy", *args])
    assert res.exit_code == 2 and res.output.strip().startswith("spikingbrain: error:")
    assert match in res.output and len(res.output.strip().splitlines()) == 1


def test_cli_energy_zero_spikes_prints_no_infinities():
    res = CliRunner().invoke(app, ["energy", "--mean-spikes", "0", "--group-size", "0"],
                             env={"COLUMNS": "120"})
    assert res.exit_code == 0
    assert "inf" not in res.output and "n/a (no spiking energy)" in res.output


def test_epilogue_counts_group_scales_per_output():
    """28 groups x fan-out float multiply-adds per token for a 3584-input layer in groups of
    128: 1/128 float MAC per MAC, for INT8 and spiking alike."""
    import torch

    st = count_statistics([torch.zeros(2, 3584, dtype=torch.int64)], "ternary", fan_out=10,
                          groups=28)
    e = layer_energy(st, HOROWITZ_45NM)
    assert e.epilogue_pj == pytest.approx(28 * 10 * 4.6)
    assert e.spiking_total_pj == pytest.approx(e.epilogue_pj)  # no spikes: only the epilogue
    assert e.int8_total_pj == pytest.approx(e.int8_pj + e.epilogue_pj)
    assert e.epilogue_pj / e.dense_macs_per_token == pytest.approx(4.6 / 128)


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
