"""The ``export nir`` / ``export lava`` / ``simulate lava`` commands: bad inputs end in one
line and exit code 2 before any model loads; a float Hugging Face folder is converted on the
fly; parallel siblings (query/key/value) are not chained; nothing is written half.

A tiny BERT folder (one layer, hidden size 32) stands in for a model folder, so that no test
here loads MiniLM or starts Lava.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from spikingbrain.cli import app
from spikingbrain.neuromorphic import cli_args
from spikingbrain.neuromorphic.nir_export import data_path, layers_to_nir, write_nir

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A float Hugging Face BERT folder (config, weights, tokenizer) with one tiny layer."""
    from spikingbrain.data import load_minilm

    _, tok = load_minilm()
    folder = tmp_path_factory.mktemp("tiny_bert")
    cfg = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64)
    transformers.BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _run(args, cwd=None, monkeypatch=None):
    if cwd is not None:
        monkeypatch.chdir(cwd)
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _usage_error(res, needle):
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("spikingbrain: error:"), res.output
    assert needle in lines[0], res.output


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if a command loads a model."""
    def boom(*a, **k):
        raise AssertionError("a model was loaded before the arguments were checked")
    monkeypatch.setattr(cli_args, "load_model_dir", boom)


@pytest.mark.parametrize("fmt", ["nir", "lava"])
@pytest.mark.parametrize("case, needle", [
    ("missing_dir", "does not exist"),
    ("dir_is_file", "is a file"),
    ("dir_without_model", "neither a converted model"),
    ("out_is_dir", "is a directory"),
    ("k_nan", "--k must be a finite number"),
    ("k_negative", "--k must be > 0"),
    ("group_size_zero", "--group-size must be >= 1"),
    ("bad_scheme", "bad conversion option"),
    ("empty_layers", "--layers is empty"),
    ("tokens_zero", "--tokens must be >= 1"),
])
def test_export_arguments_checked_before_loading(fmt, case, needle, tmp_path, hf_dir,
                                                 no_loading):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "outdir").mkdir()
    args = {"model": hf_dir, "out": tmp_path / "o", "extra": []}
    if case == "missing_dir":
        args["model"] = tmp_path / "nowhere"
    elif case == "dir_is_file":
        args["model"] = tmp_path / "file.txt"
    elif case == "dir_without_model":
        args["model"] = tmp_path / "empty"
    elif case == "out_is_dir":
        args["out"] = tmp_path / "outdir"
    else:
        args["extra"] = {"k_nan": ["--k", "nan"], "k_negative": ["--k", "-1"],
                         "group_size_zero": ["--group-size", "0"],
                         "bad_scheme": ["--scheme", "morse"],
                         "empty_layers": ["--layers", " , "],
                         "tokens_zero": ["--tokens", "0"]}[case]
    res = _run(["export", fmt, args["model"], "--out", args["out"], *args["extra"]])
    _usage_error(res, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file.txt", "outdir"]


def test_folder_without_tokenizer_is_an_error(tmp_path, hf_dir):
    """No fall-back to another model's tokenizer: a folder without one is a usage error."""
    folder = tmp_path / "no_tok"
    folder.mkdir()
    for f in ("config.json", "model.safetensors"):
        (folder / f).write_bytes((hf_dir / f).read_bytes())
    res = _run(["export", "lava", folder, "--out", tmp_path / "b"])
    _usage_error(res, "has no tokenizer files")
    assert not (tmp_path / "b.npz").exists()


def test_float_folder_converted_on_the_fly_readme_form(tmp_path, hf_dir, monkeypatch):
    """``export lava DIR ... --out bundle`` writes bundle.npz from a float HF folder, and
    ``export nir`` writes the graph and its data file."""
    res = _run(["export", "lava", hf_dir, "--layers", "encoder.layer.0.intermediate.dense",
                "--tokens", "4", "--out", "bundle"], cwd=tmp_path, monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    assert "converted on the fly" in res.output and "scheme=bitwise_bidirectional" in res.output
    with np.load(tmp_path / "bundle.npz") as z:
        meta = json.loads(str(z["meta"]))
    assert meta["n_tokens"] == 4 and meta["layers"][0]["out_features"] == 64
    res = _run(["export", "nir", hf_dir, "--layers", "encoder.layer.0.*", "--tokens", "8",
                "--out", "layer0.nir"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "layer0.nir").is_file() and (tmp_path / "layer0.data.nir").is_file()


def test_parallel_siblings_are_not_a_chain(tmp_path, hf_dir):
    """query/key/value have connecting shapes (32 -> 32) but are siblings: a Lava bundle or a
    NIR --chain refuses them; a sequential pair (intermediate -> output) is accepted; NIR's
    default (independent layers) exports the siblings."""
    qkv = "encoder.layer.0.attention.self.*"
    res = _run(["export", "lava", hf_dir, "--layers", qkv, "--out", tmp_path / "qkv"])
    _usage_error(res, "do not form a sequential chain")
    res = _run(["export", "nir", hf_dir, "--layers", qkv, "--chain", "--out", tmp_path / "q"])
    _usage_error(res, "do not form a sequential chain")
    assert not any(tmp_path.iterdir())
    res = _run(["export", "nir", hf_dir, "--layers", qkv, "--out", tmp_path / "q"])
    assert res.exit_code == 0 and "independent layers" in res.output, res.output
    pair = "encoder.layer.0.intermediate.dense,encoder.layer.0.output.dense"
    res = _run(["export", "lava", hf_dir, "--layers", pair, "--tokens", "2",
                "--out", tmp_path / "pair"])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "pair.npz") as z:
        names = [lay["name"] for lay in json.loads(str(z["meta"]))["layers"]]
    assert names == pair.split(",")


@pytest.fixture
def bundle(tmp_path, hf_dir):
    res = _run(["export", "lava", hf_dir, "--tokens", "2", "--out", tmp_path / "b.npz"])
    assert res.exit_code == 0, res.output
    return tmp_path / "b.npz"


@pytest.mark.parametrize("case, needle", [
    ("missing", "no such file"),
    ("directory", "is a directory"),
    ("renamed_npy", "not an .npz bundle"),
    ("out_is_bundle", "is the bundle itself"),
    ("out_is_bundle_without_suffix", "is the bundle itself"),
    ("out_is_dir", "is a directory"),
    ("bad_tags", "--tags must name"),
])
def test_simulate_bad_inputs(case, needle, tmp_path, bundle, monkeypatch):
    """Each fails before Lava starts (SPIKINGBRAIN_LAVA_PYTHON points nowhere) and leaves the
    bundle as it was."""
    monkeypatch.setenv("SPIKINGBRAIN_LAVA_PYTHON", str(tmp_path / "no_python"))
    before = bundle.read_bytes()
    target, extra = bundle, []
    if case == "missing":
        target = tmp_path / "nothing"
    elif case == "directory":
        target = tmp_path / "adir"
        target.mkdir()
    elif case == "renamed_npy":
        target = tmp_path / "arr.npz"
        np.save(tmp_path / "arr.npy", np.arange(4))
        (tmp_path / "arr.npy").rename(target)
    elif case == "out_is_bundle":
        extra = ["--out", bundle]
    elif case == "out_is_bundle_without_suffix":
        extra = ["--out", tmp_path / "b"]
    elif case == "out_is_dir":
        extra = ["--out", tmp_path]
    elif case == "bad_tags":
        extra = ["--tags", "float"]
    res = _run(["simulate", "lava", target, *extra])
    _usage_error(res, needle)
    assert bundle.read_bytes() == before
    assert not (tmp_path / "b.results.npz").exists()


def test_simulate_accepts_bundle_without_suffix(tmp_path, bundle):
    assert cli_args.bundle_arg(tmp_path / "b") == bundle


def test_nir_write_is_all_or_nothing(tmp_path, hf_dir):
    """A graph or data target that is a directory: nothing is written, no orphan file."""
    from spikingbrain.converter import SpikeConfig, spiking_layers
    from spikingbrain.neuromorphic.nir_events import record_nir_data

    model, _, _ = cli_args.load_model_dir(str(hf_dir), SpikeConfig())
    name = "encoder.layer.0.intermediate.dense"
    layers = {name: spiking_layers(model)[name]}
    graph = layers_to_nir(layers)
    import torch

    data = record_nir_data(layers, torch.randn(2, 32))
    for blocked in ("g.nir", "g.data.nir"):
        (tmp_path / blocked).mkdir()
        with pytest.raises(ValueError, match="is a directory"):
            write_nir(graph, tmp_path / "g.nir", data)
        assert sorted(p.name for p in tmp_path.iterdir()) == [blocked]
        (tmp_path / blocked).rmdir()
    assert write_nir(graph, tmp_path / "g.nir", data) == [tmp_path / "g.nir",
                                                          data_path(tmp_path / "g.nir")]


def test_renamed_npy_as_results_file_is_a_clear_error(tmp_path, bundle):
    from spikingbrain.neuromorphic.bundle import BundleError, read_bundle
    from spikingbrain.neuromorphic.lava import read_results

    np.save(tmp_path / "r.npy", np.arange(3))
    (tmp_path / "r.npy").rename(tmp_path / "r.npz")
    with pytest.raises(BundleError, match="unreadable"):
        read_results(tmp_path / "r.npz", read_bundle(bundle))
