# servebench: compare model-serving architectures on the same CIFAR-10 work.
# `make help` lists the targets; every knob below is also an environment variable.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL ?= 2

# Data: the cifar-10-batches-py folder (default: ../shared/datasets/... when it exists)
SB_CIFAR10_DIR ?= $(if $(wildcard $(CURDIR)/../shared/datasets/cifar-10-batches-py),$(abspath $(CURDIR)/../shared/datasets/cifar-10-batches-py),)
export SB_CIFAR10_DIR

# What to run and how
ARCH ?= embedded
RUNTIME ?= native
N ?= 10000
BATCH ?= 1
CODEC ?= json
CONCURRENCY ?= 1
RATE ?=
ARRIVALS ?= constant
REPEATS ?= 1
WARMUP ?= 50
RESULTS ?= results
# locust
USERS ?= 4
SPAWN_RATE ?= 4
DURATION ?= 30s
WORKERS ?= 0
WEB_PORT ?= 8089
# soak (bench/soak.py); DURATION's 30s default is locust's, so a plain `make soak` runs SOAK_DURATION
SOAK_DURATION ?= 10m
SOAK_LOAD ?= 0.70
SOAK_RATE ?=
SOAK_PROBE ?= 15s
SOAK_CONCURRENCY ?= 8
# studies (bench/studies/): which one, and a smoke-sized run (QUICK=1, STUDY_ARCHS="embedded flask")
STUDY ?= docker-serving
QUICK ?=
STUDY_ARCHS ?=
# training
EPOCHS ?= 12
export ARCH

.PHONY: help setup test test-unit test-integration train export evaluate bench-model \
        up down status bench bench-all study bench-study load load-ui soak report compose-file base-image images \
        clean

help:
	@echo "make setup                    venv + pinned dependencies (+ nginx from Debian when root)"
	@echo "make test                     all tests (unit, integration; docker ones when an engine runs)"
	@echo "make bench ARCH=fastapi       send the CIFAR-10 test set through a stack; results/<run-id>/"
	@echo "make bench-all                every architecture that can run here, same settings"
	@echo "make study STUDY=NAME         a study's experiments, then the report (STUDY=docker-serving; QUICK=1 for a"
	@echo "                              smoke run, STUDY_ARCHS=\"a b\" for some architectures only; N RUNTIME)"
	@echo "make bench-study              make study STUDY=docker-serving: the committed results' runs + report"
	@echo "make load ARCH=flask          locust load test (headless); make load-ui for the web UI"
	@echo "make soak ARCH=flask          DURATION (10m) at SOAK_LOAD (0.70) x measured capacity, or SOAK_RATE req/s:"
	@echo "                              RSS growth per service (goal < 5% after 1 min), errors; SOAK_PROBE SOAK_CONCURRENCY"
	@echo "make report                   results/summary.csv, plots and results/report.html"
	@echo "make bench-model              in-process reference (the physical limit)"
	@echo "make up|down|status ARCH=...  the stack alone (RUNTIME=native|docker)"
	@echo "make train|export|evaluate    the model"
	@echo "Knobs: ARCH RUNTIME N BATCH CODEC CONCURRENCY RATE ARRIVALS REPEATS WARMUP RESULTS USERS SPAWN_RATE"
	@echo "       DURATION WORKERS WEB_PORT STUDY QUICK STUDY_ARCHS"
	@echo "       and the serving knobs of '$(PY) -m servebench.topology knobs'"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -r requirements.txt
	@touch $@

setup: $(VENV)/.installed
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light; \
	  else echo "nginx is missing: install Debian's nginx-light (sudo apt-get install nginx-light)"; exit 1; fi; \
	fi
	@echo "setup done: $(PY) and $$(command -v nginx || echo /usr/sbin/nginx)"

test: $(VENV)/.installed
	$(PY) -m pytest tests

test-unit: $(VENV)/.installed
	$(PY) -m pytest -m "unit and not slow" tests

test-integration: $(VENV)/.installed
	$(PY) -m pytest -m integration tests

train: $(VENV)/.installed
	$(PY) -m models.train --epochs $(EPOCHS)

export: $(VENV)/.installed
	$(PY) -m models.export

evaluate: $(VENV)/.installed
	$(PY) -m models.evaluate --check 0.70

bench-model: $(VENV)/.installed
	$(PY) -m bench.reference --out $(RESULTS)

up: $(VENV)/.installed
	$(PY) -m servebench.runtime up $(ARCH) --runtime $(RUNTIME)

down: $(VENV)/.installed
	$(PY) -m servebench.runtime down --runtime $(RUNTIME)

status: $(VENV)/.installed
	$(PY) -m servebench.runtime status --runtime $(RUNTIME)

BENCH_ARGS = --runtime $(RUNTIME) --n $(N) --batch $(BATCH) --codec $(CODEC) --concurrency $(CONCURRENCY) \
             $(if $(RATE),--rate $(RATE) --arrivals $(ARRIVALS),) --repeats $(REPEATS) --warmup $(WARMUP) \
             --out $(RESULTS)

bench: $(VENV)/.installed
	$(PY) -m bench.run --arch $(ARCH) $(BENCH_ARGS)

bench-all: $(VENV)/.installed
	$(PY) -m bench.run --arch all $(BENCH_ARGS)

# A study's experiment set (bench/studies/<name>/), then the report.
study: $(VENV)/.installed
	$(PY) -m bench.study $(STUDY) --runtime $(RUNTIME) --n $(N) --out $(RESULTS) \
	  $(if $(filter 1 yes true,$(QUICK)),--quick,) $(foreach a,$(STUDY_ARCHS),--arch $(a))

# The runs behind the committed results: the first study.
bench-study: override STUDY = docker-serving
bench-study: study

load: $(VENV)/.installed
	$(PY) -m bench.load --arch $(ARCH) --runtime $(RUNTIME) --users $(USERS) --spawn-rate $(SPAWN_RATE) \
	  --duration $(DURATION) --workers $(WORKERS) --codec $(CODEC) --batch $(BATCH) --out $(RESULTS)

load-ui: $(VENV)/.installed
	$(PY) -m bench.load --arch $(ARCH) --runtime $(RUNTIME) --ui --web-port $(WEB_PORT) --codec $(CODEC) \
	  --batch $(BATCH) --out $(RESULTS)

soak: $(VENV)/.installed
	$(PY) -m bench.soak --arch $(ARCH) --runtime $(RUNTIME) \
	  --duration $(if $(filter file,$(origin DURATION)),$(SOAK_DURATION),$(DURATION)) \
	  --load $(SOAK_LOAD) $(if $(SOAK_RATE),--rate $(SOAK_RATE),) --probe $(SOAK_PROBE) \
	  --probe-concurrency $(SOAK_CONCURRENCY) --n $(N) --batch $(BATCH) --codec $(CODEC) --warmup $(WARMUP) \
	  --out $(RESULTS)

report: $(VENV)/.installed
	$(PY) -m bench.report --results $(RESULTS)

compose-file: $(VENV)/.installed
	$(PY) -m servebench.topology compose > docker-compose.yml

base-image:
	bash docker/base-image.sh

images: $(VENV)/.installed
	$(PY) -m servebench.compose build

clean:
	rm -rf run .pytest_cache
