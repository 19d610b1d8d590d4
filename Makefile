# bulk360 — the README's two commands are `make demo` and `make test`; everything else is a step of them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE ?= customer360
SCALE ?= 5
BENCH_SMOKE_OUT ?= import/bench/smoke

DATASETS := .local/datasets
RECBOLE_WHEEL := $(DATASETS)/recbole-1.2.1-py3-none-any.whl

.PHONY: setup services services-down status lint unit test demo bench bench-lines bench-smoke datasets

## setup: create .venv with bulk360 and its dev tools, and .env from .env.example
setup: $(VENV)/.installed .env

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "python3 is required"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,spark]'
	@touch $@

.env:
	cp .env.example .env

## services: start PostgreSQL and Neo4j, assemble Spark for --engine spark (installs them on first use)
services: setup
	scripts/services up
	scripts/spark install

services-down:
	scripts/services down

status:
	scripts/services status

## datasets: the files samples read and bulk360 does not ship: MovieLens 100K, inside recbole's wheel from PyPI
datasets: $(RECBOLE_WHEEL)

$(RECBOLE_WHEEL): | setup
	$(BIN)/pip download -q recbole==1.2.1 --no-deps --dest $(DATASETS)

## lint: ruff and mypy
lint: setup
	$(BIN)/ruff check bulk360 tests benchmarks
	$(BIN)/ruff format --check bulk360 tests benchmarks
	$(BIN)/mypy

## unit: the tests that need no service
unit: setup
	$(BIN)/pytest -m "not integration"

## test: set-up, services, lint, and the whole test suite (with Prometheus and Chromium)
test: services lint datasets
	scripts/services test-tools
	$(BIN)/pytest

## demo: set-up, services, then build the sample graph
demo: services datasets
	scripts/demo $(SAMPLE)

## bench: the benchmark at SCALE (default 5), then both engines at scales 1 and SCALE, follow at 1, SCALE and 20, then bolt at 0 and 20 ms round trip at scale 1; results in benchmarks/results/ (see benchmarks/README.md)
bench: services
	$(BIN)/python -m benchmarks.bench --scale $(SCALE)
	$(BIN)/python -m benchmarks.engines --scales 1,$(SCALE)
	$(BIN)/python -m benchmarks.follow --scales 1,$(SCALE),20 --steady-scale $(SCALE)
	$(BIN)/python -m benchmarks.distance --scale 1

## bench-lines: admin (CSV and Parquet packages) and bolt on both Neo4j lines at scale 1, in one run; results in benchmarks/results/lines.md
bench-lines: services
	$(BIN)/python -m benchmarks.lines --scale 1

## bench-smoke: the same runner at a tiny scale, one repetition (the test suite runs it)
bench-smoke: services
	$(BIN)/python -m benchmarks.bench --scale 0.05 --repeat 1 --cap-seconds 3 \
		--scaling 0.02,0.05 --output $(BENCH_SMOKE_OUT)
	$(BIN)/python -m benchmarks.distance --scale 0.01 --workers 1,2 --batch-sizes 500 \
		--cap-seconds 3 --no-connector --output $(BENCH_SMOKE_OUT)
