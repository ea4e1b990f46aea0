# The two commands a person needs: `make demo` and `make test`. Both create the environment when it is
# missing or out of date (scripts/env.sh) and do nothing more when it is current.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: env kafka-fetch services lint test demo bench clean

env:
	@bash scripts/env.sh

kafka-fetch:
	@bash scripts/kafka.sh fetch

# Alertmanager, Prometheus, Chromium and chromedriver from Debian's packages (tests run them for real).
services:
	@bash scripts/services.sh

lint: env
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m ruff format --check src tests benchmarks
	$(BIN)/python -m mypy

test: env kafka-fetch services lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest --doctest-modules src/rollguard tests $(PYTEST_ARGS)

demo: env
	HF_HUB_OFFLINE=1 $(BIN)/rollguard demo $(DEMO_ARGS)

bench: env
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) kafka/cache kafka/target .pytest_cache .mypy_cache .ruff_cache
