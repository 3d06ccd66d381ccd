# mnist-serve: train the MNIST CNN, package it for TorchServe, serve it.
# `make help` lists the targets.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install data test test-fast lint clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# ---- setup ---------------------------------------------------------------

install: $(STAMP) ## Create .venv with the pinned requirements and zlib-ng (checks Java >= 11)

$(STAMP): requirements-serve.txt requirements.txt requirements-dev.txt scripts/setup/check_java.sh scripts/setup/build_zlib_ng.sh
	@scripts/setup/check_java.sh
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@scripts/setup/build_zlib_ng.sh $(VENV)
	@touch $@

data: $(STAMP) ## Get MNIST into data/ (from MNIST_DIR when set, else download)
	$(PY) -m train.data

# ---- training ------------------------------------------------------------
.PHONY: train calibrate evaluate bench-train bench-first-answer

EPOCHS ?=
ARGS ?=
CHECKPOINT ?= mnist_cnn.pth
CALIBRATION = $(basename $(CHECKPOINT)).calibration.pt
CAL_ARGS ?=
# What `make train` and `make calibrate` cost on a 2-core machine, said before they start.
TRAIN_TIME := about 3 minutes on 2 idle cores
CALIBRATE_TIME := about a minute, half a minute when its pictures are cached

train: $(STAMP) ## Train the CNN, then calibrate it: mnist_cnn.pth, mnist_cnn.calibration.pt + reports/ (EPOCHS=10, ARGS="--lr 3e-3 ...")
	@echo "make train: training the CNN, then fitting its calibration ($(TRAIN_TIME))"
	$(PY) -m train $(if $(EPOCHS),--epochs $(EPOCHS)) --checkpoint $(CHECKPOINT) $(ARGS)
	$(PY) -m train.calibrate --checkpoint $(CHECKPOINT) $(CAL_ARGS)

calibrate: $(STAMP) ## Refit the confidence's temperature and the not-a-digit check: mnist_cnn.calibration.pt (CAL_ARGS=...)
	$(PY) -m train.calibrate --checkpoint $(CHECKPOINT) $(CAL_ARGS)

# The calibration records a digest of what it was fitted from (python -m train.digest: the checkpoint
# and the fit's code, comments and docstrings left out). It is refitted when, and only when, that
# changes, and trained first when there is no checkpoint; either way one line says why before.
# Its file is only rewritten by a refit, so what depends on it is rebuilt only then.
$(CALIBRATION): FORCE | $(STAMP)
	@why=$$($(PY) -m train.digest --checkpoint $(CHECKPOINT)); status=$$?; case $$status in \
		0) ;; \
		3) echo "$$why ($(TRAIN_TIME))"; $(MAKE) --no-print-directory train ;; \
		4) echo "$$why ($(CALIBRATE_TIME))"; $(MAKE) --no-print-directory calibrate ;; \
		*) echo "$$why" >&2; exit $$status ;; \
	esac

.PHONY: FORCE
FORCE:

evaluate: $(STAMP) ## Recompute reports/ from mnist_cnn.pth, no training (ARGS="--checkpoint ...")
	$(PY) -m train.evaluate $(ARGS)

bench-train: $(STAMP) ## Time the straightforward pipeline vs the whole make train, with its stages: reports/bench_train.{json,png}
	$(PY) -m scripts.bench.train $(if $(EPOCHS),--epochs $(EPOCHS)) $(ARGS)

bench-first-answer: $(STAMP) ## Time make serve on a fresh clone to the first answer, with each stage's share: reports/first_answer.{json,png}
	$(PY) -m scripts.bench.first_answer $(ARGS)

# ---- quality -------------------------------------------------------------

test: $(STAMP) ## Run every test (MNIST_DIR for the ones needing MNIST) and the linter
	$(PY) -m pytest
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-fast: $(STAMP) ## Run the unit and handler tests only: no TorchServe, no MNIST
	$(PY) -m pytest -m "not e2e and not container and not mnist"

lint: $(STAMP) ## Lint and check formatting only
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean: ## Remove generated outputs (keeps .venv and data/; refuses while TorchServe runs)
	@if [ -x $(PY) ] && $(PY) -m scripts.serving running >/dev/null 2>&1; then \
		echo "error: TorchServe is running and its state is in logs/: 'make stop' first" >&2; exit 1; fi
	rm -rf build model_store logs reports mnist_cnn.pth mnist_cnn.calibration.pt .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# ---- samples -------------------------------------------------------------
.PHONY: samples

samples: $(STAMP) ## Regenerate the example pictures in samples/ from MNIST (MNIST_DIR or data/)
	$(PY) -m scripts.samples.make --out samples

# ---- serving -------------------------------------------------------------
.PHONY: archive serve predict scale status stop logs token renew-key eval-server kserve-store

SERVE := $(PY) -m scripts.serving
MAR := model_store/mnist.mar
IMG ?= $(firstword $(wildcard samples/*.png))
PORTS := $(if $(INFERENCE_PORT),--inference-port $(INFERENCE_PORT)) \
	$(if $(MANAGEMENT_PORT),--management-port $(MANAGEMENT_PORT)) \
	$(if $(METRICS_PORT),--metrics-port $(METRICS_PORT)) \
	$(if $(GRPC_INFERENCE_PORT),--grpc-inference-port $(GRPC_INFERENCE_PORT)) \
	$(if $(GRPC_MANAGEMENT_PORT),--grpc-management-port $(GRPC_MANAGEMENT_PORT))

archive: $(MAR) ## Package model/, the weights, their calibration and handler/ as model_store/mnist.mar

$(MAR): $(STAMP) $(CALIBRATION) $(wildcard $(CHECKPOINT)) $(wildcard model/*.py handler/*.py handler/*.yaml)
	$(SERVE) archive --checkpoint $(CHECKPOINT) --model-store model_store

serve: $(STAMP) ## Start TorchServe on 127.0.0.1 (8080-8082; INFERENCE_PORT=... to move), warm it up, report ready (WARMUP=seconds, 0: none)
	@$(SERVE) running || $(MAKE) --no-print-directory -s archive
	@$(SERVE) start $(PORTS) $(if $(WARMUP),--warmup $(WARMUP))

predict: $(STAMP) ## Send an image to the server: make predict IMG=path/to/digit.png
	@$(SERVE) predict $(IMG)

# No default: the count already follows the CPUs (scripts/serving/machine.py); scale says how many.
scale: $(STAMP) ## Set the number of workers, synchronously: make scale WORKERS=2
	$(if $(WORKERS),,$(error make scale needs the worker count: make scale WORKERS=2))
	@$(SERVE) scale $(WORKERS)

status: $(STAMP) ## Is TorchServe up? Its workers and endpoints
	@$(SERVE) status

stop: $(STAMP) ## Stop TorchServe and its workers
	@$(SERVE) stop

logs: $(STAMP) ## The last lines of TorchServe's logs (logs/)
	@$(SERVE) logs

token: $(STAMP) ## Print the API keys from key_file.json
	@$(SERVE) token

renew-key: $(STAMP) ## Replace the inference and management keys (they expire after 60 min)
	@$(SERVE) renew-key

kserve-store: $(STAMP) $(CALIBRATION) ## KServe's storage layout: build/kserve/{config/config.properties,model-store/mnist.mar}
	$(SERVE) kserve-store --checkpoint $(CHECKPOINT) --out build/kserve

eval-server: $(STAMP) ## Accuracy and not-a-digit flags through the running server: MNIST test, user styles, non-digit sets (reports/)
	$(PY) -m scripts.accuracy.served --out reports/eval_server.json

# ---- demo ----------------------------------------------------------------
.PHONY: demo

DEMO_PORT ?= 8090

demo: $(STAMP) ## Draw a digit in a browser: starts TorchServe when it is not running, then the page (DEMO_PORT=8090)
	@$(SERVE) running || $(MAKE) --no-print-directory serve
	@$(PY) -m scripts.demo --port $(DEMO_PORT)

# ---- benchmarks ----------------------------------------------------------
.PHONY: bench-serve bench-coldstart

bench-serve: $(STAMP) $(CALIBRATION) ## Serving req/s + latency vs the in-process ceiling: reports/bench_serve.{json,png,md} (ARGS="--configs default --concurrency 32")
	$(PY) -m scripts.bench.serve --checkpoint $(CHECKPOINT) $(ARGS)

bench-coldstart: $(STAMP) $(CALIBRATION) ## p99 of the first requests after ready, with and without the warm-up: reports/bench_coldstart.json
	$(PY) -m scripts.bench.serve.coldstart --checkpoint $(CHECKPOINT) $(ARGS)

# ---- deployment ----------------------------------------------------------
.PHONY: image image-host pod pod-down deploy-check

IMAGE ?= mnist-serve:0.1.0

image: $(STAMP) ## Build the container image (deploy/Dockerfile) with docker or podman; fails in one line when neither works: IMAGE=mnist-serve:0.1.0
	@$(MAKE) --no-print-directory $(CALIBRATION)
	@$(SERVE) image-context --checkpoint $(CHECKPOINT) --out build/image
	@scripts/setup/build_image.sh $(IMAGE) build/image

POD_PORT ?= 8080

pod: $(STAMP) ## Play the rendered Deployment on this host with podman kube play (after make image; POD_PORT=8080)
	@$(PY) -m scripts.deploy.pod --image $(IMAGE) --host-port $(POD_PORT) --out build/pod.yaml
	@podman kube play build/pod.yaml
	@echo "ready once 'podman exec mnist-serve-pod-0-torchserve python -m scripts.serving.health --run-dir run' says healthy; stop: make pod-down"

pod-down: ## Stop the pod of make pod within its grace period, then remove it
	@podman pod stop --time 45 mnist-serve-pod-0 >/dev/null 2>&1 || true
	@podman kube down build/pod.yaml

image-host: ## Prepare this Debian host for `make image` (root): podman + runc, containers.conf, a base image; says what it changes
	@scripts/setup/image_host.sh

deploy-check: $(STAMP) ## Validate deploy/ offline: Kubernetes schemas, KServe's and the Prometheus Operator's CRD schemas, the kustomize build
	$(PY) -m scripts.deploy.check

# ---- monitoring ----------------------------------------------------------
.PHONY: monitor monitor-stop

MONITOR_PORT ?= 9090
EXPORTER_PORT ?= 9091

monitor: $(STAMP) ## Start a local Prometheus (MONITOR_PORT=9090) and the worker exporter against the running server; print where to look
	@$(PY) -m scripts.monitoring.monitor start --port $(MONITOR_PORT) --exporter-port $(EXPORTER_PORT)

monitor-stop: $(STAMP) ## Stop make monitor's Prometheus and worker exporter
	@$(PY) -m scripts.monitoring.monitor stop
