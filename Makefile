# make run   : create .venv, install, run the main job (zsl benchmark --quick)
# make test  : create .venv if needed, run the test suite (slow tests excluded)
# make lint  : ruff check (rules in pyproject.toml)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_DATA := $(abspath ../shared/data)
export ZSL_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
export OMP_NUM_THREADS ?= 2

.PHONY: run test test-slow lint bench install system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	# ray must not have brought another torch (the CPU build is pinned above)
	$(BIN)/python -c "import torch, sys; v = torch.__version__; sys.exit(0 if v == '2.13.0+cpu' else f'torch {v} replaced the pinned 2.13.0+cpu')"
	# timm only for its offline ImageNet-21k synset/lemma files (zsl label --vocabulary imagenet21k);
	# --no-deps because its torchvision requirement would replace the pinned CPU torch
	$(BIN)/pip install --quiet --no-deps timm==1.0.31
	touch $(STAMP)

install: $(STAMP)

# Debian packages some features use: WordNet 3.0 (ConSE hierarchy) and PostgreSQL (shared Optuna
# storage test). Installed when running as root with apt; otherwise those tests skip with a reason.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  [ -f /usr/share/wordnet/data.noun ] || missing="$$missing wordnet-base"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "could not install$$missing; the tests that need them will be skipped"; \
	  fi; \
	else echo "not root or no apt-get: skipping wordnet-base/postgresql (the tests that need them will be skipped)"; fi

run: $(STAMP)
	$(BIN)/zsl benchmark --quick

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

test-slow: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
