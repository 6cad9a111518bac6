"""`spikingbrain energy --estimator ...`: the comparison table, constants, usage errors."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from spikingbrain.analysis.estimators import LayerWorkload, estimate, estimator_names
from spikingbrain.analysis.estimators.horowitz import HorowitzConfig
from spikingbrain.cli import app

ENV = {"COLUMNS": "160"}


def _run(*args):
    return CliRunner().invoke(app, ["energy", *args], env=ENV)


def test_default_is_the_per_mac_table_unchanged():
    res = _run("--mean-spikes", "1.13")
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "0.0340 pJ per MAC, 97.7 % below FP16 and 85.2 % below INT8" in out
    assert "Constants" not in out
    res = _run("--mean-spikes", "1.13", "--show-constants")
    out = " ".join(res.output.split())
    assert "Constants (horowitz)" in out and "int8_add" in out and "ISSCC 2014" in out


def test_explicit_layer_with_the_default_estimator_estimates_per_token():
    d = json.loads(_run("--mean-spikes", "1.13", "--layer", "3584:3584", "--json").output)
    assert [r["regime"] for r in d["per_token"]] == ["fp16", "int8", "spiking"]
    assert d["dense_macs_per_token"] == 3584 * 3584


def test_show_constants_json():
    d = json.loads(_run("--mean-spikes", "1.13", "--json", "--show-constants").output)
    assert {c["name"] for c in d["constants"]} == {"fp16_mac", "int8_mac", "int8_add",
                                                   "epilogue_mac"}
    assert all(c["source"] for c in d["constants"])


def test_bad_estimator_is_a_usage_error_listing_the_names():
    res = _run("--mean-spikes", "1", "--estimator", "nope")
    assert res.exit_code == 2
    assert "unknown energy estimator 'nope'" in res.output
    for name in ["all", *estimator_names()]:
        assert name in res.output


@pytest.mark.parametrize("args, match", [
    (["--layer", "12"], "--layer must be IN:OUT"),
    (["--layer", "0:4"], "positive sizes"),
    (["--silent-fraction", "1.5"], "--silent-fraction must be in [0, 1]"),
    (["--scheme", "bits"], "unknown spike coding scheme"),
])
def test_bad_layer_options_are_usage_errors(args, match):
    res = _run("--mean-spikes", "1", "--estimator", "all", *args)
    assert res.exit_code == 2 and match in res.output


def test_bad_model_is_a_usage_error(tmp_path):
    res = _run(str(tmp_path), "--mean-spikes", "1")
    assert res.exit_code == 2 and "config.json" in res.output


def test_all_estimators_one_layer_json_equals_the_library():
    res = _run("--mean-spikes", "1.13", "--estimator", "all", "--layer", "64:32", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert [r["estimator"] for r in d["results"]] == estimator_names()
    w = LayerWorkload("layer 64x32", 64, 32, 128, 0, 1.13, 0.816, steps=3.0, source="x")
    for r in d["per_token"]:
        cfg = HorowitzConfig() if r["estimator"] == "horowitz" else r["estimator"]
        ref = estimate([w], cfg).total(r["regime"])
        assert math.isclose(r["energy_pj_per_token"], ref, rel_tol=1e-12)
        assert math.isclose(r["energy_pj_per_mac"], ref / (64 * 32), rel_tol=1e-12)


def test_all_estimators_table_for_a_model_folder(tmp_path):
    from spikingbrain.models.gla_swa import GLAswaConfig

    GLAswaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=48).save_pretrained(tmp_path)
    res = _run(str(tmp_path), "--mean-spikes", "1.13", "--estimator", "all", "--per-layer")
    assert res.exit_code == 0, res.output
    out = res.output
    for text in ("Energy per token", "horowitz", "lemaire", "spiking", "ann", "fp16",
                 "Energy per token per layer", "down_proj", "Constants", "arXiv 2210.13107"):
        assert text in out, text


def test_lemaire_only_for_the_7b_shapes():
    res = _run("7b", "--mean-spikes", "1.13", "--estimator", "lemaire", "--json")
    d = json.loads(res.output)
    assert [r["estimator"] for r in d["results"]] == ["lemaire"]
    from torch import nn

    from spikingbrain.models.checkpoint import skeleton
    from spikingbrain.models.gla_swa import GLAswaConfig

    model = skeleton(GLAswaConfig())  # every projection but the output head
    macs = sum(m.in_features * m.out_features for n, m in model.named_modules()
               if isinstance(m, nn.Linear) and n != "lm_head")
    assert d["dense_macs_per_token"] == macs
