# FleetPulse: `make run` starts the whole system, `make test` runs every check. Both set up what
# they need on a fresh machine first (Debian packages, TimescaleDB, Kafka jars, the venv).

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SERVICES := infra/services.sh
PACKAGES := schemas alerting ops ingest api stream_processors

# One place for the ports: the services script, the deployables and the tests all follow these.
export FLEETPULSE_PG_PORT ?= 15432
export FLEETPULSE_KAFKA_PORT ?= 19092
export FLEETPULSE_DATABASE_URL ?= postgresql://fleetpulse@127.0.0.1:$(FLEETPULSE_PG_PORT)/fleetpulse
export FLEETPULSE_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(FLEETPULSE_KAFKA_PORT)

.PHONY: help setup wheelhouse services-start services-stop services-status migrate lint test test-unit test-integration run clean

help:
	@echo "make run      set up and start everything, with a small simulated fleet"
	@echo "make test     set up, start the services, lint, run every test"
	@echo "make lint     ruff and mypy over every package"
	@echo "make services-start|services-stop|services-status   the local Kafka and TimescaleDB"

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

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(wildcard $(PACKAGES)) tests bench
	@# The agent (agent/, its own distribution) is checked as the oldest Python it supports, 3.9.
	cd agent && ../$(VENV)/bin/mypy

test-unit: setup
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: services-start
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

# The README's test command: lint, then every test on the real services.
test: services-start lint
	$(PY) -m pytest $(PYTEST_ARGS)

run: services-start
	@$(PY) -m ops.run

clean: services-stop
	rm -rf .state
