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
LOAD_HOSTS ?= local
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
# The model (a SavedModel folder, a .keras or an .onnx file; default models/cifar10_cnn) and its inputs (a .npz
# of arrays named after its input tensors, plus optional labels; default: the card's data): SB_MODEL, SB_DATA.
MODEL ?=
DATA ?=
ifneq ($(MODEL),)
export SB_MODEL := $(abspath $(MODEL))
endif
ifneq ($(DATA),)
export SB_DATA := $(abspath $(DATA))
endif

.PHONY: help setup test test-unit test-integration train export evaluate bench-model \
        up down status bench bench-all study bench-study load load-ui soak report compose-file base-image images \
        clean

help:
	@echo "make setup                    venv + pinned dependencies (+ nginx from Debian when root)"
	@echo "make setup-triton             .venv-triton for ARCH=triton (PyTriton + TensorFlow, about 2 GB)"
	@echo "make test                     all tests: the unit ones on both cores, then integration and docker ones"
	@echo "make test-unit                the unit tests alone, on both cores (about a minute)"
	@echo "make lint                     the import layers (.importlinter) and pyflakes"
	@echo "make bench ARCH=fastapi       send the CIFAR-10 test set through a stack; results/<run-id>/"
	@echo "make bench-all                every architecture that can run here, same settings"
	@echo "make bench LOADGEN=server     MLPerf LoadGen schedules and judges (singlestream|server; LOADGEN_QPS)"
	@echo "make crosscheck ARCH=fastapi  our p50 vs Triton's perf_analyzer (make setup-perf) and MLPerf LoadGen"
	@echo "make study STUDY=NAME         a study's experiments, then the report (STUDY=docker-serving; QUICK=1 for a"
	@echo "                              smoke run, STUDY_ARCHS=\"a b\" for some architectures only; N RUNTIME)"
	@echo "make bench-study              make study STUDY=docker-serving: the committed results' runs + report"
	@echo "make load ARCH=flask          locust load test (headless); make load-ui for the web UI; WORKERS=n"
	@echo "                              LOAD_HOSTS=netns: the workers in a second network namespace (a second host)"
	@echo "make soak ARCH=flask          DURATION (10m) at SOAK_LOAD (0.70) x measured capacity, or SOAK_RATE req/s:"
	@echo "                              RSS growth per service (goal < 5% after 1 min), errors; SOAK_PROBE SOAK_CONCURRENCY"
	@echo "make advise SLO_P99_MS=50 RATE=400  the cheapest measured stack for a p99 SLO at a rate, checked by a run"
	@echo "                              (MAX_CPU MAX_MEM_MB ARCHS VERIFY_S NO_VERIFY=1); results/advice-<time>/"
	@echo "make report                   results/summary.csv, plots and results/report.html"
	@echo "make docs                     the README's generated numbers from results/ (bench/report/docs.py)"
	@echo "make bench-model              in-process reference (the physical limit)"
	@echo "make up|down|status ARCH=...  the stack alone (RUNTIME=native|docker)"
	@echo "make card MODEL=path          a model's card as JSON: its tensors (read from the model) and card.json"
	@echo "make engines MODEL=path       convert it for the engines (ENGINE=onnxruntime|openvino|litert; SB_ENGINE)"
	@echo "make train|export|evaluate    the model (make evaluate MODEL=... ENGINE=...: accuracy and drift from TF)"
	@echo "make bench ARCH=stream-tcp RATE=30  frames on one connection (stream-ws, stream-grpc too; issue 11)"
	@echo "make stream-proto             regenerate the gRPC stream's code from services/stream/stream.proto"
	@echo "make train-ensemble           the ensemble's ResNet-20 and MobileNetV2 (issue 12), then its accuracy"
	@echo "make train-tabular            the bundled tabular model (models/breast_cancer_mlp, seconds), then its accuracy"
	@echo "Knobs: ARCH RUNTIME N BATCH CODEC CONCURRENCY RATE ARRIVALS REPEATS WARMUP RESULTS USERS SPAWN_RATE"
	@echo "       DURATION WORKERS LOAD_HOSTS WEB_PORT STUDY QUICK STUDY_ARCHS"
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
	@# stream-tcp needs nginx's stream module (dynamic in Debian)
	@if [ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libnginx-mod-stream; \
	  else echo "note: ARCH=stream-tcp needs nginx's stream module: sudo apt-get install libnginx-mod-stream"; fi; \
	fi
	@# --- the report's browser test (tests/bench/test_report_browser.py) opens report.html in headless Chromium ---
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "note: the report's browser test needs Chromium: sudo apt-get install chromium"; fi; \
	fi
	@# make crosscheck's fourth witness, wrk (bench/wrk.py)
	@if ! command -v wrk >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; \
	  else echo "note: make crosscheck adds wrk where it is installed: sudo apt-get install wrk"; fi; \
	fi
	@echo "setup done: $(PY) and $$(command -v nginx || echo /usr/sbin/nginx)"

# Tools whose pins clash with TensorFlow's get a venv each, .venv-<tool> from requirements-<tool>.txt,
# made from the same python3 as .venv; `make setup` leaves them out. Precious: not intermediate files to delete.
.PRECIOUS: .venv-%/bin/python .venv-%/.installed
.venv-%/bin/python:
	$(PYTHON) -m venv .venv-$*

.venv-%/.installed: requirements-%.txt | .venv-%/bin/python
	.venv-$*/bin/python -m pip install --upgrade pip >/dev/null
	.venv-$*/bin/python -m pip install -r $<
	@touch $@

# Triton's perf_analyzer (bench/perf_analyzer.py, make crosscheck): tritonclient[grpc] pins protobuf<5.
# The binary also needs Debian's libb64-0d; libcudart comes from pip (see requirements-perf.txt).
.PHONY: setup-perf setup-triton
setup-perf: .venv-perf/.installed
	@if ! ldconfig -p 2>/dev/null | grep -q 'libb64\.so\.0d'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libb64-0d; \
	  else echo "perf_analyzer needs Debian's libb64-0d: sudo apt-get install libb64-0d"; exit 1; fi; \
	fi
	@lib=$$(ls -d .venv-perf/lib/python3*/site-packages/nvidia/cuda_runtime/lib | head -n 1); \
	  echo "setup-perf done: $$(LD_LIBRARY_PATH=$$lib .venv-perf/bin/perf_analyzer --version 2>&1)"

# ARCH=triton (nvidia-pytriton pins numpy<2 and pulls protobuf 6; about 2 GB).
setup-triton: .venv-triton/.installed
	@echo "setup-triton done: .venv-triton/bin/python (nvidia-pytriton, TensorFlow): ARCH=triton runs natively"

# The unit tests (no server) on both cores, then the rest one at a time (real servers, timing, namespaces);
# both run whatever the first gives, and either failing fails the target.
test: $(VENV)/.installed
	@$(PY) -m pytest -n 2 -m unit tests; unit=$$?; \
	  $(PY) -m pytest -m "not unit" tests; rest=$$?; \
	  echo "make test: unit tests exit $$unit, the rest exit $$rest"; [ $$unit = 0 ] && [ $$rest = 0 ]

# The import layers (.importlinter) and pyflakes; tests/test_codebase.py runs the first under `make test` too.
.PHONY: lint
lint: $(VENV)/.installed
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pyflakes $$(git ls-files '*.py' | grep -v '_pb2')

test-unit: $(VENV)/.installed
	$(PY) -m pytest -n 2 -m "unit and not slow" tests

test-integration: $(VENV)/.installed
	$(PY) -m pytest -m integration tests

train: $(VENV)/.installed
	$(PY) -m models.train --epochs $(EPOCHS)

export: $(VENV)/.installed
	$(PY) -m models.export

# make evaluate MODEL=path ENGINE=openvino [DATA=inputs.npz]: accuracy, and the largest difference and the share
# of classes changed against TensorFlow's; results/<ts>-evaluate-<model>-<engine>/ (the default model: >= 70%)
evaluate: $(VENV)/.installed
	$(PY) -m models.evaluate $(if $(MODEL),--model $(MODEL),--check 0.70) $(if $(ENGINE),--engine $(ENGINE),) \
	  $(if $(DATA),--data $(DATA),) --out $(RESULTS)

# The card of MODEL (default: the CIFAR-10 CNN): what every layer asks instead of a constant (servebench/modelcard.py)
.PHONY: card
card: $(VENV)/.installed
	$(PY) -m servebench.modelcard $(or $(MODEL),models/cifar10_cnn)

# make engines MODEL=path [ENGINE=onnxruntime]: convert MODEL (default: the CNN) for ENGINE (default: every engine
# that converts it), cached beside the model in .engines/<engine>/<hash>/ (servebench/engines/); first use converts too
.PHONY: engines
engines: $(VENV)/.installed
	$(PY) -m servebench.engines --model $(or $(MODEL),models/cifar10_cnn) $(if $(ENGINE),--engine $(ENGINE),)

bench-model: $(VENV)/.installed
	$(PY) -m bench.reference --out $(RESULTS)

# --- ensemble (issue 12) ---
# The ensemble's two other members (the Table 1 CNN is `make train`), then every member's and the
# ensemble's test accuracy (models/ensemble.metrics.json; fails below 70% or under best member + 2 points).
RESNET_EPOCHS ?= 6
MOBILENET_EPOCHS ?= 9
.PHONY: train-ensemble evaluate-ensemble
train-ensemble: $(VENV)/.installed
	$(PY) -m models.train --model cifar10_resnet20 --epochs $(RESNET_EPOCHS)
	$(PY) -m models.evaluate --model-base models/cifar10_resnet20 --check 0.70
	$(PY) -m models.train --model cifar10_mobilenetv2 --epochs $(MOBILENET_EPOCHS)
	$(PY) -m models.evaluate --model-base models/cifar10_mobilenetv2 --check 0.70
	$(PY) -m services.ensemble.accuracy --check

evaluate-ensemble: $(VENV)/.installed
	$(PY) -m services.ensemble.accuracy --check
# --- end ensemble (issue 12) ---

# The bundled tabular model (models/tabular.py)
# A model that is not an image model: scikit-learn's bundled breast cancer data (no download), trained in seconds;
# exports models/breast_cancer_mlp/1 with its card.json and test.npz, and fails below 90% test accuracy.
.PHONY: train-tabular
train-tabular: $(VENV)/.installed
	$(PY) -m models.tabular --check 0.90

# --- streaming (issue 11) ---
# The gRPC stream's generated code (committed) from services/stream/stream.proto, with the pinned grpcio-tools.
.PHONY: stream-proto
stream-proto: $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. services/stream/stream.proto
# --- end streaming (issue 11) ---

# ARCH=triton's own venv is made on first use.
ARCH_SETUP = $(if $(filter triton,$(ARCH)),setup-triton,)

up: $(VENV)/.installed $(ARCH_SETUP)
	$(PY) -m servebench.runtime up $(ARCH) --runtime $(RUNTIME)

down: $(VENV)/.installed
	$(PY) -m servebench.runtime down --runtime $(RUNTIME)

status: $(VENV)/.installed
	$(PY) -m servebench.runtime status --runtime $(RUNTIME)

# PROTOCOL=v1|v2|tfserving (default: v1 for an image model, KServe v2 for any other; bench/workload.py)
BENCH_ARGS = --runtime $(RUNTIME) --n $(N) --batch $(BATCH) --codec $(CODEC) $(if $(PROTOCOL),--protocol $(PROTOCOL),) \
             --concurrency $(CONCURRENCY) \
             $(if $(RATE),--rate $(RATE) --arrivals $(ARRIVALS),) --repeats $(REPEATS) --warmup $(WARMUP) \
             --out $(RESULTS) $(if $(DEADLINE_MS),--deadline-ms $(DEADLINE_MS),) $(if $(LOADGEN),--loadgen $(LOADGEN) --loadgen-min-duration $(LOADGEN_MIN_DURATION) \
             $(if $(LOADGEN_QPS),--loadgen-qps $(LOADGEN_QPS),),)

bench: $(VENV)/.installed $(ARCH_SETUP)
	$(PY) -m bench.run --arch $(ARCH) $(BENCH_ARGS)

bench-all: $(VENV)/.installed
	$(PY) -m bench.run --arch all $(BENCH_ARGS)

# MLPerf LoadGen instead of our loop (bench/loadgen.py): make bench LOADGEN=singlestream|server LOADGEN_QPS=100
LOADGEN ?=
LOADGEN_QPS ?=
LOADGEN_MIN_DURATION ?= 10
# Our harness vs perf_analyzer (make setup-perf) vs wrk vs LoadGen on one stack, KServe v2 (bench/crosscheck.py)
CROSSCHECK_N ?= 2000
CROSSCHECK_CONCURRENCY ?= 1 4 16
CROSSCHECK_INTERVAL_MS ?= 3000
CROSSCHECK_WRK_S ?= 8
.PHONY: crosscheck
crosscheck: $(VENV)/.installed $(ARCH_SETUP)
	$(PY) -m bench.crosscheck --arch $(ARCH) --runtime $(RUNTIME) --n $(CROSSCHECK_N) \
	  --concurrency "$(CROSSCHECK_CONCURRENCY)" --perf-interval-ms $(CROSSCHECK_INTERVAL_MS) \
	  --wrk-duration-s $(CROSSCHECK_WRK_S) \
	  --loadgen-min-duration $(LOADGEN_MIN_DURATION) $(if $(LOADGEN_QPS),--loadgen-qps $(LOADGEN_QPS),) \
	  --warmup $(WARMUP) --out $(RESULTS)

# A study's experiment set (bench/studies/<name>/), then the report.
study: $(VENV)/.installed
	$(PY) -m bench.study $(STUDY) --runtime $(RUNTIME) --n $(N) --out $(RESULTS) \
	  $(if $(filter 1 yes true,$(QUICK)),--quick,) $(foreach a,$(STUDY_ARCHS),--arch $(a))

# The runs behind the committed results: the first study.
bench-study: override STUDY = docker-serving
bench-study: study

load: $(VENV)/.installed $(ARCH_SETUP)
	$(PY) -m bench.load --arch $(ARCH) --runtime $(RUNTIME) --users $(USERS) --spawn-rate $(SPAWN_RATE) \
	  --duration $(DURATION) --workers $(WORKERS) --load-hosts $(LOAD_HOSTS) --codec $(CODEC) --batch $(BATCH) \
	  --out $(RESULTS)

load-ui: $(VENV)/.installed
	$(PY) -m bench.load --arch $(ARCH) --runtime $(RUNTIME) --ui --web-port $(WEB_PORT) --codec $(CODEC) \
	  --batch $(BATCH) --out $(RESULTS)

soak: $(VENV)/.installed $(ARCH_SETUP)
	$(PY) -m bench.soak --arch $(ARCH) --runtime $(RUNTIME) \
	  --duration $(if $(filter file,$(origin DURATION)),$(SOAK_DURATION),$(DURATION)) \
	  --load $(SOAK_LOAD) $(if $(SOAK_RATE),--rate $(SOAK_RATE),) --probe $(SOAK_PROBE) \
	  --probe-concurrency $(SOAK_CONCURRENCY) --n $(N) --batch $(BATCH) --codec $(CODEC) --warmup $(WARMUP) \
	  --out $(RESULTS)

# Saturation sweep (bench/sweep.py): closed-loop concurrency, then open-loop rates up to saturation, batching
# off and on (each its own stack), beside the in-process model curve. Raw bodies unless CODEC is given:
# JSON decoding is a cost of its own. SWEEP_RATES (requests/s) replaces SWEEP_RATE_FRACTIONS x saturation.
SWEEP_CONCURRENCY ?= 1 2 4 8 16 32 64
SWEEP_RATES ?=
SWEEP_RATE_FRACTIONS ?= 0.25 0.5 0.75 0.9 1.0 1.1
SWEEP_ARRIVALS ?= poisson
SWEEP_WINDOW_S ?= 2
SWEEP_WINDOWS_LIMIT ?= 10
SWEEP_BATCH_MAX_SIZE ?= 16
SWEEP_BATCH_TIMEOUT_MS ?= 0
SWEEP_THREADS ?= 16
SWEEP_CLIENT ?= servebench
SWEEP_MODEL_CURVE ?= latest
BATCHING ?= off on
.PHONY: sweep model-curve
sweep: $(VENV)/.installed
	$(PY) -m bench.sweep --arch $(ARCH) --runtime $(RUNTIME) --codec $(if $(filter file,$(origin CODEC)),raw,$(CODEC)) \
	  --batch $(BATCH) --concurrency "$(SWEEP_CONCURRENCY)" $(if $(SWEEP_RATES),--rates "$(SWEEP_RATES)",) \
	  --rate-fractions "$(SWEEP_RATE_FRACTIONS)" --arrivals $(SWEEP_ARRIVALS) --window-s $(SWEEP_WINDOW_S) \
	  --windows-limit $(SWEEP_WINDOWS_LIMIT) --batching "$(BATCHING)" --batch-max-size $(SWEEP_BATCH_MAX_SIZE) \
	  --batch-timeout-ms $(SWEEP_BATCH_TIMEOUT_MS) --threads $(SWEEP_THREADS) --client $(SWEEP_CLIENT) --model-curve $(SWEEP_MODEL_CURVE) \
	  --out $(RESULTS)

# The advisor (bench/advise/): the cheapest measured stack (CPU per image, then memory) that keeps p99 <= SLO_P99_MS
# at RATE images/s (optional MAX_CPU cores, MAX_MEM_MB, ARCHS="a b"), from RESULTS; then a VERIFY_S-second check
# of the top pick at RATE (NO_VERIFY=1 skips it). results/advice-<time>/ keeps each answer.
SLO_P99_MS ?=
MAX_CPU ?=
MAX_MEM_MB ?=
ARCHS ?=
VERIFY_S ?= 10
NO_VERIFY ?=
.PHONY: advise
advise: $(VENV)/.installed
	$(PY) -m bench.advise --slo-p99-ms "$(SLO_P99_MS)" --rate "$(RATE)" --max-cpu "$(MAX_CPU)" --max-mem-mb "$(MAX_MEM_MB)" \
	  --archs "$(ARCHS)" --batch $(BATCH) --verify-s "$(VERIFY_S)" --runtime $(RUNTIME) --out $(RESULTS) \
	  $(if $(filter 1 yes true,$(NO_VERIFY)),--no-verify,)

# The model alone at batch sizes 1-64: images/s and CPU per image (the sweep's limit and efficiency).
model-curve: $(VENV)/.installed
	$(PY) -m bench.reference curve --out $(RESULTS)

report: $(VENV)/.installed
	$(PY) -m bench.report --results $(RESULTS)

# The README's blocks between <!-- generated: NAME --> markers, from the committed results.
.PHONY: docs
docs: $(VENV)/.installed
	$(PY) -m bench.report.docs --results $(RESULTS)

compose-file: $(VENV)/.installed
	$(PY) -m servebench.topology compose > docker-compose.yml

base-image:
	bash docker/base-image.sh

images: $(VENV)/.installed
	$(PY) -m servebench.compose build

clean:
	rm -rf run .pytest_cache
