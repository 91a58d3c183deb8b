# vitalflow: `make run` runs the pipeline on the embedded PostgreSQL, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/.vitalflow/prefect

.PHONY: install run test test-all serve services-down bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("vitalflow needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,all]'
	@touch $(STAMP)

## Run the pipeline on INPUT (default: a generated sample) against the embedded PostgreSQL.
run: $(STAMP)
	$(BIN)/vitalflow run $(if $(INPUT),--input $(INPUT))

## Unit, integration (embedded PostgreSQL started by the tests) and flow tests.
test: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	$(BIN)/python -m pytest

## Local Prefect server (http://127.0.0.1:4200) with the scheduled deployment.
serve: $(STAMP)
	bash infra/prefect/serve.sh

services-down: $(STAMP)
	$(BIN)/vitalflow services down

## Throughput on the Synthea file and a generated 1M-observation set (see README).
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,all,bench]'
	$(BIN)/python -m benchmarks.throughput $(BENCH_ARGS)

clean:
	-$(BIN)/vitalflow services down
	rm -rf .vitalflow
