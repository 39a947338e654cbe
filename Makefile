# Cairn — the two commands a new user needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SHARED ?= $(abspath ../shared)

export CAIRN_CDSI_DIR ?= $(SHARED)/cdsi/supporting-data
export CAIRN_CDSI_CASES ?= $(SHARED)/cdsi
export CAIRN_HL7_SAMPLES ?= $(SHARED)/hl7/samples
export CAIRN_CODES_DIR ?= $(SHARED)/codes

.PHONY: run test lint unit coverage fuzz soak bench bench-targets clean install system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: set up and start the engine on the embedded SQLite database under ./var/
## (MLLP on 2575; /metrics, /healthz and /readyz on http://127.0.0.1:8080)
run: $(STAMP)
	@# Install CDSi data and CDC's code tables into ./var once, so that the
	@# commands run from another terminal (cairn replay, cairn patient record)
	@# see the same releases as the server, not just this make's environment.
	@if [ ! -e var/cdsi/current ] && [ -e "$(CAIRN_CDSI_DIR)" ]; then \
	    $(BIN)/cairn cdsi import --data-dir var "$(CAIRN_CDSI_DIR)"; fi
	@if [ ! -e var/codes/current ] && [ -e "$(CAIRN_CODES_DIR)" ]; then \
	    $(BIN)/cairn codes import --data-dir var "$(CAIRN_CODES_DIR)"; fi
	$(BIN)/cairn serve --data-dir var --listen 127.0.0.1:2575 --http-listen 127.0.0.1:8080

## test: set up and run the whole suite (lint, types, import rules, tests)
test: $(STAMP) system-deps lint
	$(BIN)/pytest -q -n auto --dist loadfile tests

## system-deps: the Debian libraries PDF reports need (WeasyPrint uses pango), installed only when missing
system-deps:
	@if ! ldconfig -p | grep -q 'libpango-1.0.so.0' || ! ldconfig -p | grep -q 'libpangoft2-1.0.so.0' \
	    || ! ldconfig -p | grep -q 'libharfbuzz-subset.so.0' || ! fc-list 2>/dev/null | grep -qi dejavu; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing pango and fonts for PDF reports (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fontconfig fonts-dejavu-core >/dev/null; \
	  else \
	    echo "PDF reports need pango: apt-get install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fontconfig fonts-dejavu-core" >&2; \
	    exit 1; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q -n auto --dist loadfile -m "not e2e" tests

## coverage: the whole suite under coverage; reports handlers/ and storage/ (e2e servers are subprocesses, not measured)
coverage: $(STAMP)
	$(BIN)/coverage run -m pytest -q -p no:xdist tests
	$(BIN)/coverage report

## fuzz: a long hypothesis campaign over the pipeline (counts go into bench/RESULTS.md by hand)
fuzz: $(STAMP)
	CAIRN_FUZZ_EXAMPLES=20000 $(BIN)/pytest -q -p no:randomly tests/fuzz

## soak: the SIGKILL crash test at 20 kill points
soak: $(STAMP)
	CAIRN_SOAK_RUNS=20 $(BIN)/pytest -q -p no:randomly tests/e2e/test_crash.py

## bench: every benchmark; writes bench/RESULTS.md (not part of make test)
bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench.run_all

## bench-targets: every issue-18 target in one run (~20-25 min; TARGETS_ARGS="--seed-file PATH" adds
## the 300k-message ratio), its section written into bench/RESULTS.md
bench-targets: $(STAMP)
	$(BIN)/python -m bench.targets --write $(TARGETS_ARGS)

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
