"""One loader for every MODEL_DIR: embedded name, float Hugging Face folder, converted folder;
clear errors and never another model's tokenizer."""

from __future__ import annotations

import shutil

import pytest
import torch

from spikingbrain.converter import SpikeConfig, convert, save_converted
from spikingbrain.converter.folder import (
    EMBEDDED,
    ModelFolderError,
    folder_kind,
    load_model_folder,
)
from spikingbrain.converter.layer import SpikingLinear
from spikingbrain.data import minilm_dir


@pytest.fixture(scope="module")
def float_folder(tmp_path_factory):
    """A copy of the embedded MiniLM folder (a real float HF folder with its tokenizer)."""
    dst = tmp_path_factory.mktemp("hf") / "minilm"
    shutil.copytree(minilm_dir(), dst)
    return dst


def test_embedded_and_float_folder_are_converted_here_and_agree(float_folder):
    cfg = SpikeConfig(k=2.5)
    a = load_model_folder(EMBEDDED, cfg, keep_float=True)
    b = load_model_folder(float_folder, cfg)
    assert a.kind == "embedded" and b.kind == "float"
    assert a.converted_here and b.converted_here and b.config == cfg
    assert "converted on the fly" in b.description and "k=2.5" in b.description
    assert a.float_model is not None and b.float_model is None
    assert not any(isinstance(m, SpikingLinear) for m in a.float_model.modules())
    batch = a.tokenizer(["The quick brown fox."], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(a.model(**batch).last_hidden_state, b.model(**batch).last_hidden_state)


def test_converted_folder_loads_as_saved_and_needs_its_tokenizer(tmp_path, float_folder):
    loaded = load_model_folder(float_folder, SpikeConfig(k=3.5), spiking=False)
    model = convert(loaded.model, SpikeConfig(k=3.5))
    save_converted(model, tmp_path / "conv", tokenizer=loaded.tokenizer)
    again = load_model_folder(tmp_path / "conv")
    assert again.kind == "converted" and not again.converted_here
    assert again.info["config"]["k"] == 3.5
    # the same folder without tokenizer files: a clear error, never MiniLM's tokenizer
    bare = tmp_path / "bare"
    save_converted(model, bare)
    with pytest.raises(ModelFolderError, match="has no tokenizer files"):
        load_model_folder(bare)
    assert load_model_folder(bare, require_tokenizer=False).tokenizer is None


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "is a file"),
    (lambda p: p, "holds neither"),
    (lambda p: (p / "config.json").write_text("{not json") and p, "not valid JSON"),
])
def test_bad_model_dirs_are_clear_errors(tmp_path, make, match):
    with pytest.raises(ModelFolderError, match=match):
        folder_kind(make(tmp_path))
