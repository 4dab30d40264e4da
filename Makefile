# The project's verbs. `make run` and `make test` work on a fresh Debian machine (as root, or with the
# system packages already present): they create the venv and install what is missing first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The suite runs on 3.11 (the image's Python) and again on 3.12, from pyenv on these machines.
PYTHON312 ?= $(firstword $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12))
VENV312 ?= .venv312
BIN312 := $(VENV312)/bin
export PORT ?= 7860
export DATA_DIR ?= /tmp/physical-ai-tutor
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test test-3.11 test-3.12 venv venv312 lint format typecheck bench lock system-deps clean reindex eval bench-knowledge bench-history image-test hadolint

# System packages: redis-server is the embedded queue and event bus; haproxy balances the gateway replicas
# in tests/test_replicas.py (deploy/haproxy.cfg); chromium (Debian's, driven by Playwright; no browser
# downloads) runs the browser tests in tests/browser; postgresql and pgbouncer (in transaction mode, as
# Neon's pooler) are started by the tests to run the history on a real server.
system-deps:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || { \
	  echo "installing haproxy"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null; }
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing postgresql"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || { \
	  echo "installing pgbouncer"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null; }

# $(call install-venv,PYTHON,VENV): VENV made by PYTHON when missing, with the pinned dependencies and the
# project (editable); its .installed stamp is newer than the requirements once this has run.
define install-venv
	@test -x $(2)/bin/python || $(1) -m venv $(2)
	$(2)/bin/pip install -q --upgrade pip
	$(2)/bin/pip install -q -r requirements.txt -r requirements-dev.txt
	$(2)/bin/pip install -q --no-deps -e .
	@touch $(2)/bin/.installed
endef

$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(call install-venv,$(PYTHON),$(VENV))

venv: $(BIN)/.installed

$(BIN312)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: set PYTHON312"; exit 1; }
	$(call install-venv,$(PYTHON312),$(VENV312))

venv312: $(BIN312)/.installed

## run: the whole service under supervisord in the foreground (redis, worker, gateway) on $PORT; ROLE=gateway
## or ROLE=worker runs that process alone on an external REDIS_URL (shared/entrypoint.py)
run: system-deps venv
	@mkdir -p $(DATA_DIR)
	exec $(BIN)/python -m shared.entrypoint

## test: the whole test suite against real redis-server, embedded Qdrant and the fake Cohere server, on
## Python 3.11 and then on 3.12 (test-3.11 / test-3.12 run one)
test: test-3.11 test-3.12

test-3.11: system-deps venv
	$(BIN)/pytest

test-3.12: system-deps venv312
	PATH=$(CURDIR)/$(BIN312):$$PATH $(BIN312)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared gateway worker

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv
	$(BIN)/mypy shared gateway worker

## reindex: rebuild the knowledge base (ARGS="--source URL-or-folder --mode incremental ..."); through the
## running worker when there is one, else in this process (see worker/reindex/cli.py)
reindex: venv
	$(BIN)/tutor-reindex $(ARGS)

## eval: retrieval quality (recall@5, MRR) on ../shared/corpora, offline and hybrid (fake Cohere)
eval: venv
	$(BIN)/python -m eval $(ARGS)

## bench: the benchmark suite (hop overhead, relay capacity, idle sockets, capacity, in-process baseline, Cohere limits) against
## the real stack run locally with the fake Cohere server; writes BENCHMARKS.md and bench/results/ (~10 min;
## ARGS="--quick" for a smoke run, ARGS="--help" for the knobs)
bench: system-deps venv
	$(BIN)/python -m bench.run $(ARGS)

## bench-history: durable memory against a real Postgres and PgBouncer (history writes/s, list/get latency
## with 100,000 turns, time to first delta at 100 in flight with the database up and down)
bench-history: system-deps venv
	$(BIN)/python -m bench.history $(ARGS)

## bench-knowledge: indexing throughput and retrieval latency of the embedded store
bench-knowledge: venv
	$(BIN)/python -m bench.knowledge $(ARGS)

## hadolint: lint the Dockerfile; errors fail, each ignored warning is justified where it is ignored
hadolint: venv
	$(BIN)/hadolint --failure-threshold error Dockerfile

## image-test: build the Space image with podman (cold, then warm), run it, ask it a question, kill the
## worker, stop it with SIGTERM; prints the figures (needs podman: ../shared/tools/make-base-image, as root)
image-test: venv hadolint
	$(BIN)/python scripts/image_test.py $(ARGS)

## lock: recompile the pinned dependency sets from requirements*.in
lock: venv
	$(BIN)/pip-compile -q --strip-extras --no-header --allow-unsafe --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in
	$(BIN)/pip-compile -q --strip-extras --no-header --allow-unsafe --no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in

clean:
	rm -rf $(VENV) $(VENV312) .pytest_cache .mypy_cache .ruff_cache
