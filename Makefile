# FleetPulse: `make run` starts the whole system, `make test` runs every check. Both set up what
# they need on a fresh machine first (Debian packages, TimescaleDB, Kafka jars, the venv).

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SERVICES := infra/services.sh
PACKAGES := schemas alerting ops ingest api stream_processors
WEB_BIN := web/node_modules/.bin

# One place for the ports: the services script, the deployables and the tests all follow these.
export FLEETPULSE_PG_PORT ?= 15432
export FLEETPULSE_KAFKA_PORT ?= 19092
export FLEETPULSE_DATABASE_URL ?= postgresql://fleetpulse@127.0.0.1:$(FLEETPULSE_PG_PORT)/fleetpulse
export FLEETPULSE_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(FLEETPULSE_KAFKA_PORT)

.PHONY: help setup wheelhouse services-start services-stop services-status migrate lint lint-web web test test-unit test-web test-integration run chaos storm bench bench-smoke clean

help:
	@echo "make run      set up and start everything, with a small simulated fleet"
	@echo "make test     set up, start the services, lint, run every test"
	@echo "make lint     ruff and mypy over every package, tsc, eslint and prettier over the dashboard"
	@echo "make web      build the dashboard (web/dist, served by the API at /)"
	@echo "make chaos    faults in turn under load, on private services: writes the chaos report"
	@echo "make storm    reconnect storm: 2,000 agents, ingest restarted (benchmark)"
	@echo "make services-start|services-stop|services-status   the local Kafka and TimescaleDB"
	@echo "make bench    every benchmark scenario from a clean start: bench/results/<time>/report.md"
	@echo "make bench-smoke   the same, tiny, checked for completeness"

setup:
	@$(SERVICES) setup

services-start: setup
	@$(SERVICES) start

services-stop:
	@$(SERVICES) stop

services-status:
	@$(SERVICES) status

# The agent's wheels the API serves for the one-line install (make run fetches them too).
wheelhouse: setup
	@$(PY) -m ops wheelhouse

migrate: services-start
	@$(PY) -m ops init

lint: setup lint-web
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(wildcard $(PACKAGES)) tests bench
	@# The agent (agent/, its own distribution) is checked as the oldest Python it supports, 3.9.
	cd agent && ../$(VENV)/bin/mypy

# The dashboard: strict type check (sources, tests, config), ESLint with type-aware rules
# (web/eslint.config.js) and the formatter's verdict.
lint-web: setup
	$(WEB_BIN)/tsc --noEmit --strict -p web/tsconfig.json
	cd web && node_modules/.bin/eslint --max-warnings 0 .
	cd web && node_modules/.bin/prettier --check --log-level warn .

web:
	@$(SERVICES) web

# The dashboard's client logic (Vitest, no browser); the browser suite is tests/browser (pytest).
test-web: setup
	cd web && node_modules/.bin/vitest run

test-unit: setup test-web
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: services-start
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

# The README's test command: lint, then every test on the real services, the browser suite in
# Debian's Chromium among them (its set-up installs the package; `make run` does not need it).
test: export FLEETPULSE_SETUP_BROWSER = 1
test: services-start lint test-web
	$(PY) -m pytest $(PYTEST_ARGS)

# The benchmark suite (bench/suite, docs/performance.md). Its extra (matplotlib, py-spy) only here.
BENCH_STAMP := $(VENV)/.fleetpulse-bench-extra
$(BENCH_STAMP): pyproject.toml constraints.txt | setup
	$(VENV)/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	@touch $@

# Its own Kafka and PostgreSQL on other ports, wiped first (FLEETPULSE_BENCH_*_PORT move them);
# the alert engine's benchmark uses the development services. BENCH_ARGS: e.g. --only capacity.
bench: services-start $(BENCH_STAMP)
	$(PY) -m bench.suite $(BENCH_ARGS)

# Tiny sizes on the running services; asserts every scenario ran and wrote its result, no timing.
bench-smoke: services-start $(BENCH_STAMP)
	rm -rf bench/results/smoke
	$(PY) -m bench.suite --smoke --services shared --out bench/results/smoke
	$(PY) -m bench.suite.check bench/results/smoke

run: services-start
	@$(PY) -m ops.run

# Faults in turn under a steady numbered load, on a private Kafka and PostgreSQL (ops/chaos/):
# the report says, per fault, what was sent, acked, stored, delivered live, lost and duplicated.
# The full run cuts one agent off for ten minutes; `make chaos CHAOS_ARGS=--short` is CI's run.
chaos: setup
	@$(PY) -m ops.chaos $(CHAOS_ARGS)

# Reconnect storm: 2,000 agents, one ingest restarted (bench/reconnect_storm.py).
storm: services-start
	@$(PY) -m bench.reconnect_storm $(STORM_ARGS)

clean: services-stop
	rm -rf .state
