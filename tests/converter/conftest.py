"""Shared fixtures of the converter tests: tiny Hugging Face models and the real MiniLM."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def minilm():
    from spikingbrain.data import load_minilm

    return load_minilm()


@pytest.fixture(scope="session")
def minilm_batch(minilm):
    from spikingbrain.data import stdlib_sentences

    _, tok = minilm
    return tok(stdlib_sentences(16), padding=True, return_tensors="pt")
