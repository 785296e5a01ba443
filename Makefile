# Shards developer entry points. On a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST := $(BIN)/pytest

.PHONY: venv lint test test-unit test-integration test-java test-e2e demo demo-cli bench bench-smoke test-bench chaos test-chaos clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

## The whole suite: hygiene, unit, integration on NX-27017 and on mongo-java-server, chaos, e2e on a
## real kube-apiserver. Each pytest run fails when it collects no tests (exit code 5).
test: lint test-unit test-integration test-java test-chaos test-bench test-e2e

test-unit: venv
	$(PYTEST) tests/unit

test-integration: venv
	SHARDS_TEST_MONGO_SERVER=nx $(PYTEST) tests/integration

test-java: venv
	SHARDS_TEST_MONGO_SERVER=java $(PYTEST) tests/integration

test-e2e: venv tools
	$(PYTEST) tests/e2e

## The Kubernetes path: local control plane, embedded MongoDB, operator, two workers,
## `kubectl apply -f deploy/examples/`, a live `kubectl get shp` until every process is Done.
demo: venv tools
	examples/demo.sh

## The same processes through the `shards` CLI, no Kubernetes.
demo-cli: venv
	examples/demo-cli.sh

## Timing targets live here, not in the tests: issue 8's figures 1-6 beside their baselines and
## issue 11's figure 7 (isolation), a table on stdout and bench/results/<UTC time>.json + latest.json
## (about 28 min on 2 cores).
bench: venv tools
	$(BIN)/python bench/run.py

## The same harness with tiny counts and no operator path (checks the harness, not the numbers).
bench-smoke: venv
	$(BIN)/python bench/run.py --smoke

## The smoke harness as a pytest (asserts every figure produced numbers, never timing targets).
test-bench: venv
	$(PYTEST) tests/bench

## Seeded faults against real workers and Mongo; exits non-zero on lost, duplicated or stuck runs.
chaos: venv
	PYTHONPATH=tests $(BIN)/python -m chaos

test-chaos: venv
	$(PYTEST) tests/chaos

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

include mk/cluster.mk
include mk/chart.mk
include mk/images.mk
