# Two commands on a fresh machine:
#   make demo   installs into .venv, runs a real sweep (examples/sst2.yaml), deploys the best
#               model with Ray Serve and prints its answers to a few reviews
#   make test   installs the test extras too and runs the whole suite
# and for contributors, `make lint`: ruff (lint and format) and deptry (declared dependencies);
# the import layers are checked by the suite (tests/test_layers.py); `make test-faults` runs the
# long fault-injection tests (a node killed, a bucket run's driver killed) that `make test`
# leaves out to stay near 15 minutes. CI runs all three.
PYTHON ?= python3
VENV ?= .venv
# The CPU build by default (pip takes it from this machine's disk); GPU users override it,
# e.g. make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
# The shared data folder beside the checkout (or this workplace's copy of it); where neither
# exists, the examples fall back to the same datasets on the Hugging Face Hub.
HPO_DATA ?= $(abspath $(firstword $(wildcard ../shared/data /work/shared/data) ../shared/data))
export HPO_DATA

BIN := $(VENV)/bin

.PHONY: install install-test demo test test-faults lint bench-quick clean

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -e ".[test,lint,bench]"
	touch $@

demo: install
	$(BIN)/hpo run examples/sst2.yaml --no-keep-serving

test: install-test
	$(BIN)/python -m pytest -m "not faults"

test-faults: install-test
	$(BIN)/python -m pytest -m faults

# Benchmarks (bench/README.md): each writes bench/results/<name>.json and the README's table.
BENCH_QUICK := bench/cold_start.py
bench-quick: install-test
	for script in $(BENCH_QUICK); do $(BIN)/python $$script || exit 1; done

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/deptry .

clean:
	rm -rf $(VENV) runs build .pytest_cache
