"""`spikingbrain convert` from the shell: arguments checked before loading, one-line errors with
exit code 2, nothing half-written (Ctrl-C included), calibration from a text file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from spikingbrain.cli import app
from spikingbrain.converter import load_converted, spiking_layers
from spikingbrain.converter.serialize import KILL_AT_ENV, META_FILE
from spikingbrain.testing import tiny_causal_lm


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    folder = tmp_path_factory.mktemp("src") / "tiny"
    tiny_causal_lm("llama", vocab_size=30522).save_pretrained(folder)
    from spikingbrain.data import load_minilm

    load_minilm()[1].save_pretrained(folder)  # a real tokenizer beside the tiny model
    return folder


def _run(*args):
    return CliRunner().invoke(app, ["convert", *map(str, args)])


def _one_line_usage_error(res, match):
    assert res.exit_code == 2, res.output
    err = res.output.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spikingbrain: error:") and match in err[0], err


@pytest.mark.parametrize("extra, match", [
    (["--k", "nan"], "--k must be a finite number"),
    (["--k", "-1"], "--k must be > 0"),
    (["--calibrate-n", "-1"], "--calibrate-n must be >= 1"),
    (["--T", "-2"], "--T must be >= 0"),
    (["--scheme", "morse"], "unknown"),
])
def test_bad_options_are_one_line_usage_errors(src, tmp_path, extra, match):
    _one_line_usage_error(_run(src, tmp_path / "out", *extra), match)
    assert not (tmp_path / "out").exists()


def test_bad_folders_are_refused_before_loading(src, tmp_path):
    _one_line_usage_error(_run(src, src), "would be overwritten")
    _one_line_usage_error(_run(src, src / "sub"), "would be overwritten")
    _one_line_usage_error(_run(tmp_path / "nowhere", tmp_path / "o"), "does not exist")
    (tmp_path / "a_file").write_text("x")
    _one_line_usage_error(_run(src, tmp_path / "a_file"), "is a file")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model.safetensors").write_bytes(b"not ours")
    _one_line_usage_error(_run(src, foreign), "holds files of something else")
    assert (foreign / "model.safetensors").read_bytes() == b"not ours"
    for bad_text, match in (("missing.txt", "no such file"), ("", "is empty")):
        path = tmp_path / "t.txt"
        if bad_text == "":
            path.write_text("\n  \n")
        else:
            path = tmp_path / bad_text
        _one_line_usage_error(_run(src, tmp_path / "o", "--calibrate-text", path), match)


def test_convert_then_a_converted_folder_is_refused(src, tmp_path):
    res = _run(src, tmp_path / "conv", "--group-size", "32")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "conv" / META_FILE).is_file()
    assert (tmp_path / "conv" / "tokenizer_config.json").is_file()  # saved with the model
    _one_line_usage_error(_run(tmp_path / "conv", tmp_path / "again"), "already a converted model")


def test_convert_with_calibration_text(src, tmp_path):
    text = tmp_path / "calib.txt"
    text.write_text("\n".join(f"Sentence number {i} about spiking neurons." for i in range(6)))
    res = _run(src, tmp_path / "cal", "--group-size", "32", "--calibrate-text", text,
               "--calibrate-n", "4")
    assert res.exit_code == 0, res.output
    assert "calibrated" in res.output
    model = load_converted(tmp_path / "cal")
    ratios = [float(m.scale.max()) for m in spiking_layers(model).values()]
    assert ratios and all(r > 0 for r in ratios)


def test_ctrl_c_during_save_leaves_nothing(src, tmp_path):
    env = {**os.environ, KILL_AT_ENV: "tokenizer:INT"}
    # a parent that ignores SIGINT (nohup, a background job, some CI runners) passes that on,
    # and Python then keeps ignoring it: give the child the default Ctrl-C behaviour back
    proc = subprocess.run([sys.executable, "-m", "spikingbrain.cli", "convert", str(src),
                           str(tmp_path / "out"), "--group-size", "32"],
                          env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == []  # no folder, no staging leftovers
