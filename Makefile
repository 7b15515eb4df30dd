# OpenCDMO - every target installs what it needs first; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
CHROMIUM ?= /usr/bin/chromium
# Python's bytecode cache (__pycache__, ignored by git) even where the environment turns it off:
# without it every server and command process the tests start compiles the app again (~2 s).
unexport PYTHONDONTWRITEBYTECODE
# Test processes for the tests without a browser (pytest-xdist, a test file per process: its
# module fixtures start once); the browser tests then run in one process, as a browser
# starved of the CPU misses its timeouts. TEST_WORKERS=0 runs all in one process.
TEST_WORKERS ?= 2
PYTEST_PARALLEL := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

.PHONY: help install oidc browsers run demo serve db db-stop test test-fast test-e2e lint format typecheck check validation bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

install: ## install uv (if missing) and the locked dependencies into .venv
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

oidc: ## install the OpenID provider the single sign-on tests start (npm ci, if missing)
	@if [ ! -d tests/oidc/node_modules/oidc-provider ]; then npm ci --prefix tests/oidc --no-audit --no-fund --silent; fi

browsers: ## install Debian's Chromium for the browser tests (if missing)
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@$(CHROMIUM) --version

run: install ## set everything up and serve the demo with its simulated equipment (http://127.0.0.1:8000)
	@$(UV) run opencdmo demo tenants
	@OPENCDMO_COOKIE_SECURE=$${OPENCDMO_COOKIE_SECURE:-false} $(UV) run opencdmo demo-serve

demo: install ## migrate and apply the demo tenants without serving
	@$(UV) run opencdmo demo tenants

db: install ## start the embedded PostgreSQL until `make db-stop`; print the owner's URL
	@$(UV) run opencdmo db start

db-stop: install ## stop the embedded PostgreSQL
	@$(UV) run opencdmo db stop

test: install oidc browsers ## run the whole test suite (real PostgreSQL, real Chromium)
	@$(UV) run pytest $(PYTEST_PARALLEL) -m "not e2e"
	@$(UV) run pytest -m e2e

test-fast: install oidc ## the suite without the browser tests
	@$(UV) run pytest $(PYTEST_PARALLEL) -m "not e2e"

lint: install ## ruff lint and format check
	@$(UV) run ruff check src tests bench
	@$(UV) run ruff format --check src tests bench

format: install ## format the code
	@$(UV) run ruff format src tests bench
	@$(UV) run ruff check --fix src tests bench

typecheck: install ## mypy (strict) on src/
	@$(UV) run mypy

check: lint typecheck test ## lint, typecheck and the tests

validation: install ## run the evidence tests, write the OQ report to build/validation/
	@$(UV) run opencdmo validation report --output build/validation

bench: install ## run the benchmarks (not part of the tests)
	@$(UV) run python -m bench

clean: ## remove caches (keeps your data directory)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find src tests bench -name __pycache__ -type d -prune -exec rm -rf {} +
