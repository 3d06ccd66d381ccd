# mnist-serve: train the MNIST CNN, package it for TorchServe, serve it.
# `make help` lists the targets.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install data test lint clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# ---- setup ---------------------------------------------------------------

install: $(STAMP) ## Create .venv with the pinned requirements (checks Java >= 11)

$(STAMP): requirements.txt requirements-dev.txt scripts/check_java.sh
	@scripts/check_java.sh
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

data: $(STAMP) ## Get MNIST into data/ (from MNIST_DIR when set, else download)
	$(PY) -m train.data

# ---- quality -------------------------------------------------------------

test: $(STAMP) ## Run the test suite and the linter
	$(PY) -m pytest
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lint: $(STAMP) ## Lint and check formatting only
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean: ## Remove generated outputs (keeps .venv and data/)
	rm -rf build model_store logs reports mnist_cnn.pth .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# ---- samples -------------------------------------------------------------
.PHONY: samples

samples: $(STAMP) ## Regenerate the example pictures in samples/ from MNIST (MNIST_DIR or data/)
	$(PY) -m scripts.make_samples --out samples
