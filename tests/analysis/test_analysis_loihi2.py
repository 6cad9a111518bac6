"""The Loihi-2-class mapping: placement under per-core limits, chips, binary vs graded
events, MoE activity, TOML overrides and the `map loihi2` command."""

import json

import pytest
from typer.testing import CliRunner

from spikingbrain.analysis.estimators import LayerWorkload, estimate
from spikingbrain.analysis.estimators.loihi2 import (
    Loihi2Config,
    chips_needed,
    place_layer,
    summary,
)
from spikingbrain.cli import app


def _w(n_in, n_out, name="fc", af=1.0, spikes=1.0, nz=0.5, steps=3, bits=8):
    return LayerWorkload(name, n_in, n_out, 128, 0, spikes, nz, steps=steps, source="assumed",
                         active_fraction=af, weight_bits=bits)


def test_placement_respects_every_core_limit():
    cfg = Loihi2Config()
    for bits in (1, 4, 8, 16):
        for n_in, n_out in ((16, 16), (3584, 512), (3584, 18944), (18944, 3584), (40000, 9)):
            p = place_layer(n_in, n_out, cfg, bits)
            assert p.in_slice <= cfg.fan_in_per_core.value and p.out_slice <= cfg.neurons_per_core
            assert p.in_slice * p.out_slice * bits <= 8 * cfg.synaptic_memory_per_core_bytes.value
            assert p.in_splits * p.in_slice >= n_in and p.out_splits * p.out_slice >= n_out
            assert (p.combine_cores > 0) == (p.in_splits > 1)


def test_synapses_per_core_come_from_the_memory_and_the_weight_bits():
    cfg = Loihi2Config()
    mem_bits = 8 * 128 * 1024                      # 128 KiB of synaptic memory per core
    assert cfg.synapses_per_core(8) == mem_bits // 8 and cfg.synapses_per_core(1) == mem_bits
    # the published chip figure (120M synapses) is a 1-bit figure: it fits the memory at 1 bit
    assert cfg.synapses_per_chip(1) >= 120e6 > cfg.synapses_per_chip(8)
    # the same layer needs ~8x the cores at INT8 than at 1 bit, and the workload's bits count
    w1, w8 = _w(3584, 18944, bits=1), _w(3584, 18944)
    c1, c8 = (estimate([w], "loihi2").layer("fc", "loihi2_binary").extra["cores"]
              for w in (w1, w8))
    assert c1 == -(-18944 // (mem_bits // 3584)) and c8 == -(-18944 // (mem_bits // 8 // 3584))
    assert 7.5 < c8 / c1 <= 8.5
    assert chips_needed([w8] * 4) > chips_needed([w1] * 4)
    with pytest.raises(ValueError, match="holds no 64-bit synapse"):
        Loihi2Config(synaptic_memory_per_core_bytes=cfg.synaptic_memory_per_core_bytes
                     .with_value(4, "test")).synapses_per_core(64)


def test_hop_energy_is_davies_2018_east_west_hop():
    c = Loihi2Config().e_event_pj
    assert c.value == 3.0 and "tile hop, east-west 3.0 pJ" in c.source and "Davies" in c.source


def test_chips_pack_cores_in_order():
    cfg = Loihi2Config()
    ws = [_w(3584, 18944, f"l{i}") for i in range(4)]
    per_layer = -(-18944 // (131072 // 3584))      # 36 outputs x 3584 INT8 inputs per core
    assert per_layer == place_layer(3584, 18944, cfg).cores
    assert chips_needed(ws, cfg) == -(-4 * per_layer // 128)


def test_binary_and_graded_events_time_and_energy():
    w = _w(1024, 256, spikes=2.0, nz=0.25, steps=4)
    e = estimate([w], "loihi2")
    b, g = e.layer("fc", "loihi2_binary"), e.layer("fc", "loihi2_graded")
    assert b.extra["events_per_token"] == 2.0 * 1024 and g.extra["events_per_token"] == 256
    assert b.extra["synaptic_ops_per_token"] == 2.0 * 1024 * 256
    cfg = Loihi2Config()
    assert b.breakdown["synaptic_ops"] == pytest.approx(2.0 * 1024 * 256 * 23.6)
    assert b.breakdown["neuron_updates"] == pytest.approx(256 * 4 * 52.0)
    out_slice = 131072 // 1024                     # 128 outputs per core, 2 cores
    assert b.breakdown["event_deliveries"] == pytest.approx(2.0 * 1024 * 2 * 3.0)
    t = (2.0 * 1024 * out_slice * 3.5 + out_slice * 4 * 5.3) * 1e-9 / cfg.speedup_vs_loihi1.value
    assert b.extra["time_s_per_token"] == pytest.approx(t)
    assert g.energy_pj_per_token < b.energy_pj_per_token
    s = summary(e, [w])
    assert s["chips"] == 1 and s["cores"] == 2 and s["loihi2_graded"]["events_per_token"] == 256
    assert s["synapses_per_core"] == {8: 131072}


def test_routed_experts_are_placed_but_fire_by_their_active_fraction():
    dense, expert = _w(512, 512), _w(512, 512, af=1 / 16)
    e_d, e_x = estimate([dense], "loihi2"), estimate([expert], "loihi2")
    assert e_x.total("loihi2_binary") == pytest.approx(e_d.total("loihi2_binary") / 16)
    assert chips_needed([expert] * 200) == chips_needed([dense] * 200)


def test_every_constant_has_a_source_and_toml_overrides(tmp_path):
    cfg = Loihi2Config()
    assert all(c.source for c in cfg.constants()) and len(cfg.constants()) == 13
    f = tmp_path / "chip.toml"
    f.write_text("[loihi2]\nfan_in_per_core = 4096\ne_synop_pj = 5\n")
    c2 = Loihi2Config.from_toml(f)
    assert c2.fan_in_per_core.value == 4096 and str(f) in c2.e_synop_pj.source
    assert place_layer(18944, 64, c2).in_slice == 4096
    f.write_text("synapses_per_chip = 120e6\n")  # replaced by the per-core synaptic memory
    with pytest.raises(ValueError, match="synaptic_memory_per_core_bytes and the weight bits"):
        Loihi2Config.from_toml(f)
    f.write_text("fan_in = 1\n")
    with pytest.raises(ValueError, match="unknown Loihi 2 constant"):
        Loihi2Config.from_toml(f)
    f.write_text("e_synop_pj = 'a lot'\n")
    with pytest.raises(ValueError, match="must be a number"):
        Loihi2Config.from_toml(f)
    f.write_text("e_synop_pj = -1\n")
    with pytest.raises(ValueError, match="> 0"):
        Loihi2Config.from_toml(f)
    f.write_text("= broken")
    with pytest.raises(ValueError, match="not valid TOML"):
        Loihi2Config.from_toml(f)


def test_map_loihi2_cli_on_the_full_size_7b(tmp_path):
    out = tmp_path / "map.json"
    r = CliRunner().invoke(app, ["map", "loihi2", "7b", "--json", str(out), "--per-layer"])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    s = rep["summary"]
    assert f"{s['chips']} chips" in r.output and "graded" in r.output
    assert "131,072 synapses per core" in r.output
    assert rep["projections"] == 28 * 7 + 14 * 2 and rep["estimate"]["constants"][0]["source"]
    # the chips hold every INT8 synapse: 128 cores x 128 KiB each
    assert s["chips"] * 128 * 131072 >= rep["synapses"]
    assert s["chips"] == -(-s["cores"] // 128) and s["synapses_per_core"] == {"8": 131072}
    assert s["hala_point_fraction"] == pytest.approx(s["chips"] / 1152)


@pytest.mark.parametrize("args,msg", [
    (["map", "loihi2", "7b", "--silent-fraction", "2"], "--silent-fraction"),
    (["map", "loihi2", "nosuchmodel"], "MODEL"),
    (["map", "loihi2", "7b", "--spikes-per-channel", "nan"], "finite"),
])
def test_map_loihi2_bad_input_is_a_usage_error(args, msg):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and msg in r.output


def test_toml_keys_outside_the_loihi2_table_are_an_error_not_dropped(tmp_path):
    f = tmp_path / "chip.toml"
    f.write_text("e_synop_pj = 5\n[loihi2]\nfan_in_per_core = 4096\n")
    with pytest.raises(ValueError, match=r"\['e_synop_pj'\] sit outside the \[loihi2\] table"):
        Loihi2Config.from_toml(f)
    f.write_text("[loihi2]\nfan_in_per_core = 4096\n[other]\nx = 1\n")
    with pytest.raises(ValueError, match=r"\['other'\] sit outside"):
        Loihi2Config.from_toml(f)
    f.write_text("loihi2 = 3\n")
    with pytest.raises(ValueError, match="must be a table"):
        Loihi2Config.from_toml(f)
    f.write_text("e_synop_pj = 5\nfan_in_per_core = 4096\n")  # all top-level: fine
    c = Loihi2Config.from_toml(f)
    assert (c.e_synop_pj.value, c.fan_in_per_core.value) == (5.0, 4096.0)


@pytest.mark.parametrize("toml,msg", [
    ("fan_in_per_core = 0.5", "fan_in_per_core counts inputs: it must be a whole number >= 1"),
    ("cores_per_chip = 0.5", "cores_per_chip counts cores: it must be a whole number >= 1"),
    ("cores_per_chip = 2.5", "whole number"),
    ("neurons_per_chip = 64", "neurons_per_chip .* is below cores_per_chip"),
    ("e_event_pj = 0", "must be a finite number > 0"),
])
def test_too_small_constants_are_a_clear_error_not_a_zero_division(tmp_path, toml, msg):
    f = tmp_path / "chip.toml"
    f.write_text(toml + "\n")
    with pytest.raises(ValueError, match=msg) as err:
        Loihi2Config.from_toml(f)
    assert str(f) in str(err.value)
    r = CliRunner().invoke(app, ["map", "loihi2", "7b", "--config", str(f)])
    assert r.exit_code == 2 and "ZeroDivisionError" not in r.output, r.output


def test_fewer_spikes_than_nonzero_channels_is_rejected():
    with pytest.raises(ValueError, match=r"spikes_per_channel \(0.5\) is below "
                                         r"nonzero_per_channel \(0.8\)"):
        _w(64, 64, spikes=0.5, nz=0.8)
    w = _w(64, 64, spikes=0.8, nz=0.8)  # equal: every non-zero count is one spike
    e = estimate([w], "loihi2")
    assert e.total("loihi2_graded") <= e.total("loihi2_binary")
    r = CliRunner().invoke(app, ["map", "loihi2", "7b", "--spikes-per-channel", "0.5"])
    assert r.exit_code == 2 and "nonzero_per_channel" in r.output, r.output
