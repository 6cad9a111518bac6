"""The user's path from the shell: `spikingbrain convert` a Hugging Face folder, then
`spikingbrain analyze` the converted folder (tokenizer and SpikeConfig read from it)."""

import json

from typer.testing import CliRunner

from spikingbrain.cli import app
from spikingbrain.data import minilm_dir, stdlib_sentences


def test_convert_then_analyze_converted_folder(tmp_path):
    runner = CliRunner()
    conv = tmp_path / "minilm-w8aspike"
    res = runner.invoke(app, ["convert", str(minilm_dir()), str(conv), "--k", "2.5",
                              "--scheme", "ternary"])
    assert res.exit_code == 0, res.output
    assert "layers converted" in res.output
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(stdlib_sentences(6)))
    out = tmp_path / "report"
    res = runner.invoke(app, ["analyze", str(conv), "--text", str(text), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    # the saved SpikeConfig is used as it is, not the CLI defaults
    assert rep["model"]["config"]["k"] == 2.5
    assert rep["model"]["config"]["scheme"] == "ternary"
    assert rep["summary"]["layers"] == len(rep["layers"]) == 37
    assert rep["data"]["sentences"] == 6 and rep["summary"]["tokens"] > 6
    assert (out / "index.html").read_text().count("data:image/png;base64,") >= 3
