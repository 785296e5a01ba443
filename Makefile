# Shards developer entry points. On a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST := $(BIN)/pytest

.PHONY: venv venv-demo venv-cli browser fresh-check lint test test-unit test-integration test-java test-e2e demo demo-cli bench docs docs-serve docs-metrics bench-smoke test-bench chaos test-chaos chaos-k8s clean

## One venv, installed in levels, each including the one before (extras in pyproject.toml):
##   cli   .[embedded]  the `shards` CLI and the embedded MongoDB: make demo-cli
##   demo  .[demo]      + the operator's packages and the local cluster's tooling: make demo, the
##                      cluster and image targets
##   dev   .[dev]       + pytest, hypothesis, ruff, mypy: make test and everything else
## $(VENV)/.installed-LEVEL stamps a level; an up-to-date stamp of a higher level satisfies a lower
## one (nothing is installed twice), and a pyproject.toml newer than the stamps reinstalls.
## The distribution is shards-process-manager; a venv made before the rename also holds it as
## `shards`, which is removed first (it owns the same `shards` script and packages).
VENV_LEVELS  := cli demo dev
EXTRAS_cli   := embedded
EXTRAS_demo  := demo
EXTRAS_dev   := dev

venv: $(VENV)/.installed-dev
venv-demo: $(VENV)/.installed-demo
venv-cli: $(VENV)/.installed-cli
$(VENV)/.installed-%: pyproject.toml
	@levels='$(VENV_LEVELS)'; for up in $${levels#*$*}; do \
	  if [ $(VENV)/.installed-$$up -nt pyproject.toml ]; then touch $@; exit 0; fi; \
	done; \
	set -ex; \
	$(PYTHON) -m venv $(VENV); \
	$(BIN)/pip install -q --upgrade pip; \
	if $(BIN)/pip show -q shards 2>/dev/null; then $(BIN)/pip uninstall -q -y shards; fi; \
	$(BIN)/pip install -q -e '.[$(EXTRAS_$*)]'; \
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## The whole suite: hygiene, the docs site's strict build, unit, integration on NX-27017 and on
## mongo-java-server, chaos, e2e on a real kube-apiserver. Each pytest run fails when it collects no
## tests (exit code 5).
test: lint docs test-unit test-integration test-java test-chaos test-bench test-e2e

test-unit: venv
	$(PYTEST) tests/unit

test-integration: venv browser
	SHARDS_TEST_MONGO_SERVER=nx $(PYTEST) tests/integration

## Debian's chromium and chromium-driver, for the dashboard's browser tests (installed when missing;
## the tests' fixture does the same when run alone). Every program the project installs, and who
## installs it: tests/tooling/README.md.
browser:
	@PYTHONPATH=tests $(PYTHON) -m tooling.programs ensure browser

## What a new machine does: remove what the project installs itself (its Debian packages,
## ~/.cache/shards, Go's module and build caches, pip's cache, Maven's repository), then run
## `bash .ci/run` in a fresh clone of HEAD. Needs root; refuses while a local node runs.
fresh-check:
	PYTHONPATH=tests $(PYTHON) -m tooling.fresh_check

test-java: venv
	SHARDS_TEST_MONGO_SERVER=java $(PYTEST) tests/integration

test-e2e: venv tools
	$(PYTEST) tests/e2e

## The Kubernetes path: local control plane, embedded MongoDB, operator, two workers,
## `kubectl apply -f examples/kubernetes/`, a live `kubectl get shp` until every process is Done.
demo: venv-demo tools
	examples/demo.sh

## The same processes through the `shards` CLI, no Kubernetes.
demo-cli: venv-cli
	examples/demo-cli.sh

## Timing targets live here, not in the tests: issue 8's figures 1-6 beside their baselines and
## issue 11's figure 7 (isolation), issue 24's figure 10 (the operator at platform scale beside a bare
## kopf operator) and issue 25's figure 11 (what a client sees), a table on stdout and
## bench/results/<UTC time>.json + latest.json (about 30 min on 2 cores, and 20-40 min more for figure 10).
bench: venv tools
	$(BIN)/python bench/run.py

## The documentation site (mkdocs.yml over docs/, Material theme) into $(DOCS_SITE)/ (git-ignored).
## --strict: a broken link or anchor, or a page missing from the nav, fails the build (a few seconds).
## NO_MKDOCS_2_WARNING silences the theme's notice that Material for MkDocs reaches end of life on
## 2027-05-05 (fixes until then; its successor is Zensical), printed on every run.
## `make docs-serve`: the site, rebuilt on every change, on http://127.0.0.1:$(DOCS_PORT)/ only.
DOCS_SITE ?= site
DOCS_PORT ?= 8000
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(DOCS_SITE)

docs-serve: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

## docs/metrics.md from the metric definitions of the worker and the operator (a unit test checks it).
docs-metrics: venv
	PYTHONPATH=tests $(BIN)/python -m tooling.metrics_reference

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

## Seeded faults against the chart on real Pods (the local node, as root): worker Pods deleted and
## their containers killed, the leading operator killed, kube-apiserver and etcd restarted, MongoDB
## down 5/12/60 s, helm upgrades; exits non-zero on lost, duplicated or stuck runs. About
## DURATION seconds of faults (default 600) plus setup and checks; the report table is printed
## and written to CHAOS_K8S_REPORT. A small version runs in test-e2e (tests/e2e/test_chaos_k8s.py).
SEED ?= 1
DURATION ?= 600
CHAOS_K8S_REPORT ?= chaos-k8s-report.txt
chaos-k8s: venv tools
	SHARDS_CHAOS_K8S=full SHARDS_CHAOS_SEED=$(SEED) SHARDS_CHAOS_DURATION=$(DURATION) \
	  SHARDS_CHAOS_REPORT=$(abspath $(CHAOS_K8S_REPORT)) \
	  $(PYTEST) tests/e2e/test_chaos_k8s.py -m e2e -s -k full

clean:
	rm -rf $(VENV) $(DOCS_SITE) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

include mk/cluster.mk
include mk/chart.mk
include mk/images.mk
