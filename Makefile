# vitalflow: `make run` runs the pipeline on the embedded PostgreSQL, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/.vitalflow/prefect

.PHONY: install run test test-all serve services-down bench bench-throughput microbench chaos mutation clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("vitalflow needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,all,bench]'
	bash infra/browser/install.sh
	bash infra/monitoring/install.sh
	bash infra/sql/install.sh
	PYTHON=$(PYTHON) bash infra/terraform/install.sh
	bash infra/marquez/install.sh
	bash infra/ha/install.sh
	@touch $(STAMP)

## Run the pipeline on INPUT (default: a generated sample) against the embedded PostgreSQL.
run: $(STAMP)
	$(BIN)/vitalflow run $(if $(INPUT),--input $(INPUT))

## Unit, integration (embedded PostgreSQL started by the tests) and flow tests, under coverage
## (subprocesses too); below [tool.coverage.report] fail_under in pyproject.toml it fails.
test: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	rm -f .coverage .coverage.*
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/python -m coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine -q && chmod 600 .coverage
	$(BIN)/python -m coverage report

## Local Prefect server (http://127.0.0.1:4200) with prefect.yaml deployed, the file watcher
## and a worker (docs/deploy.md); from another shell: export PREFECT_API_URL=http://127.0.0.1:4200/api
serve: $(STAMP)
	bash infra/prefect/serve.sh

services-down: $(STAMP)
	$(BIN)/vitalflow services down

## Every storage profile on 10k, 100k and 1M observations (benchmarks/README.md); e.g.
## make bench BENCH_ARGS="--quick" or BENCH_ARGS="--sizes 100k --profiles postgres,clickhouse".
bench: $(STAMP)
	$(BIN)/vitalflow bench $(BENCH_ARGS)

## Per-stage throughput and CPU of the PostgreSQL profile on Synthea and 1M (benchmarks/README.md).
bench-throughput: $(STAMP)
	$(BIN)/python -m benchmarks.throughput $(BENCH_ARGS)

## Cost of the audit trail: a run with auditing on and off, `audit verify` over 1M events.
bench-audit: $(STAMP)
	$(BIN)/python -m benchmarks.audit $(BENCH_ARGS)

## Micro-benchmarks of the hot functions (benchmarks/micro/README.md); saved in benchmarks/results/micro.
microbench: $(STAMP)
	$(BIN)/python -m pytest benchmarks/micro --benchmark-only --benchmark-autosave \
		--benchmark-storage=benchmarks/results/micro -q $(MICROBENCH_ARGS)

## Chaos drill (docs/robustness.md): kill -9 of the pipeline, database, object store and terminology
## server during repeated runs; CHAOS_ARGS="--seconds 1800" by default; results in benchmarks/results.
chaos: $(STAMP)
	$(BIN)/vitalflow drill chaos $(or $(CHAOS_ARGS),--seconds 1800) --out benchmarks/results

## Mutation testing: each declared mutant (tests/mutation/mutants.py) against its tests; the score.
mutation: $(STAMP)
	$(BIN)/python -m tests.mutation.run $(MUTATION_ARGS)

clean:
	-$(BIN)/vitalflow services down
	rm -rf .vitalflow
