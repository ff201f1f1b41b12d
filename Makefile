# The two commands a newcomer needs (README): `make up` and `make test`.
# Both install what is missing first (scripts/bootstrap.sh, idempotent, cached).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv/bin
LINT_PATHS := services tests e2e conftest.py $(wildcard operator)

.PHONY: help bootstrap up down status test lint unit soak

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

bootstrap: ## Install system packages, uv and the project's virtualenv
	@scripts/bootstrap.sh

up: bootstrap ## Start Kafka, Postgres, Redis and every service; write .cex/endpoints.json
	@$(VENV)/cex stack up

down: ## Stop everything `make up` started
	@if [[ -x $(VENV)/cex ]]; then $(VENV)/cex stack down; fi

status: ## Show what is running
	@$(VENV)/cex stack status

lint: bootstrap ## ruff, mypy (strict on cex.core), import-linter layer rules
	$(VENV)/ruff check $(LINT_PATHS)
	$(VENV)/ruff format --check $(LINT_PATHS)
	$(VENV)/mypy
	$(VENV)/lint-imports

test: lint web-check ## Lint (Python and the web UI) and run the whole suite on real Kafka, Postgres, Redis and Chromium
	$(VENV)/pytest

unit: bootstrap ## Only the tests that need no infrastructure
	$(VENV)/pytest -m "not integration"

soak: bootstrap ## Long crash/soak variants
	$(VENV)/pytest -m soak

-include mk/*.mk
