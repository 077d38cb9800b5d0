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

.PHONY: install install-test demo test test-faults lint bench-tools bench-quick bench clean

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

# Benchmarks (bench/README.md): both sides of each comparison in one run, repeated; each writes
# bench/results/<name>.json and refreshes the table in bench/README.md. bench-quick runs them
# smaller (~10 min on 2 cores, into bench/results/quick/); bench runs the full sizes (hours on
# 2 cores). serve_throughput drives the services with wrk (Debian's package).
QUICK_RUNS := "cold_start.py --rounds 1" "checkpoint_cost.py" "tune_overhead.py --trials 30 --rounds 1" \
	"serve_throughput.py --seconds 3 --rounds 1" "trainer_throughput.py --samples 240 --rounds 1" \
	"hpo_efficiency.py"
FULL_RUNS := "cold_start.py" "checkpoint_cost.py --sweep" "tune_overhead.py --trials 1000 --profile" \
	"serve_throughput.py" "serve_throughput.py --ingress proxy" "serve_throughput.py --runtime int8" \
	"trainer_throughput.py" "quickstart_vs_trainer.py" "hpo_efficiency.py"

bench-tools:
	@command -v wrk >/dev/null 2>&1 || { sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  $$sudo apt-get install -y wrk || { $$sudo apt-get update && $$sudo apt-get install -y wrk; }; }

bench-quick: install-test bench-tools
	for run in $(QUICK_RUNS); do BENCH_QUICK=1 $(BIN)/python bench/$$run || exit 1; done

bench: install-test bench-tools
	for run in $(FULL_RUNS); do $(BIN)/python bench/$$run || exit 1; done

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/deptry .

clean:
	rm -rf $(VENV) runs build .pytest_cache
