# Every target creates .venv when it is missing: `make demo` and `make test` work on a fresh clone.
VENV := .venv
BIN := $(VENV)/bin
# The real data sit beside the checkout (../shared/data) on the lab's machines and in CI; elsewhere set SEQ2EPI_DATA.
export SEQ2EPI_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(abspath data))

# `make bench` runs the small model (a CPU); on a GPU server: make bench BENCH_ARGS=--compile
BENCH_ARGS ?= --small

.PHONY: demo test test-quick lint lab bench gpu-check clean-venv

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

demo: $(VENV)/.installed
	$(BIN)/seq2epi run demo

test: $(VENV)/.installed lint
	$(BIN)/python -m pytest

# the same without the slow tests (papermill, torchrun, msprime, snakemake): for the edit-test loop
test-quick: $(VENV)/.installed lint
	$(BIN)/python -m pytest -m "not slow"

lint: $(VENV)/.installed
	$(BIN)/ruff check

lab: $(VENV)/.installed
	$(BIN)/jupyter lab notebooks/

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/speed.py $(BENCH_ARGS) --out benchmarks/speed.json

# On a GPU machine: the tests on CUDA, the GPU rows of benchmarks/speed.md and one lab-size epoch (issue 13).
# Uses .venv when present, else python3 (a machine without a package index: see the script's header).
gpu-check:
	bash benchmarks/gpu_check.sh

clean-venv:
	rm -rf $(VENV)
