# runrelay — every command a developer or CI needs. Each target installs what it uses.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime's own Python (python3.13): sam build refuses a runtime it cannot find on PATH,
# and the tests run on the same interpreter the functions run on.
RUNTIME_PY_PREFIX := $(shell pyenv prefix 3.13.0 2>/dev/null || dirname $$(dirname $$(command -v python3.13 2>/dev/null || echo /x/x)))
PYTHON_BOOT := $(or $(wildcard $(RUNTIME_PY_PREFIX)/bin/python3.13),$(shell command -v python3.13 || command -v python3))
export PATH := $(RUNTIME_PY_PREFIX)/bin:$(CURDIR)/.venv/bin:$(CURDIR)/.tools/sam/bin:$(CURDIR)/.tools/checkov/bin:$(PATH)
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

VENV := .venv
# The suite runs on two workers (pytest-xdist), a test file per worker at a time: each worker starts its own
# DynamoDB Local and moto servers, and the e2e files spend much of their time waiting on the local stack.
PYTEST_PARALLEL ?= -n 2 --dist loadfile
PY := $(VENV)/bin/python
EMULATOR_PORT ?= 8787

.PHONY: help install tools test lint typecheck demo up emulator chaos bench build validate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# This machine's pip config lists optional local wheel folders; pip warns for each one that is absent.
QUIET_PIP := 2>&1 | { grep -v "is neither a file nor a directory" || true; }; test $${PIPESTATUS[0]} -eq 0

$(VENV)/.installed: requirements-dev.txt layers/common/requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip $(QUIET_PIP)
	$(PY) -m pip install -q -r requirements-dev.txt $(QUIET_PIP)
	$(PY) -m pip install -q --no-deps -e . $(QUIET_PIP)
	@touch $@

node_modules/.installed: package.json package-lock.json
	@command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless)
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	npm ci --no-audit --no-fund --silent
	@touch $@

# sam and checkov pin libraries that clash with ours, so each lives in its own venv. The macro is
# expanded inside the recipe, so a single $@ is the stamp file.
SAM_CLI := aws-sam-cli==1.170.0
CHECKOV := checkov==3.3.30
define tool_venv
	@test -x .tools/$(1)/bin/python || $(PYTHON_BOOT) -m venv .tools/$(1)
	.tools/$(1)/bin/python -m pip install -q --upgrade pip $(QUIET_PIP)
	.tools/$(1)/bin/python -m pip install -q "$(2)" $(QUIET_PIP)
	@touch $@
endef
.tools/sam/.installed: Makefile
	$(call tool_venv,sam,$(SAM_CLI))
.tools/checkov/.installed: Makefile
	$(call tool_venv,checkov,$(CHECKOV))

install: $(VENV)/.installed node_modules/.installed ## the project venv and the local-stack pieces

tools: .tools/sam/.installed .tools/checkov/.installed ## sam and checkov, each in its own venv

test: install tools ## the whole suite: lint, types, template checks, unit, contract, integration, e2e
	@command -v tmux >/dev/null || (apt-get update -qq && apt-get install -y -qq tmux)  # the demo's terminal test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest $(PYTEST_PARALLEL)

lint: install ## ruff check and ruff format --check
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

typecheck: install ## mypy
	$(PY) -m mypy

build: install tools ## sam build, no Docker
	sam build

validate: install tools ## sam validate --lint
	sam validate --lint

demo: install ## the main job on the embedded local stack
	$(PY) -m local.tools.demo

up: install ## the local stack, left running until Ctrl-C
	$(PY) -m local.stack

emulator: install ## the Runware emulator alone on EMULATOR_PORT (default 8787)
	$(PY) -m local.runware_emulator --port $(EMULATOR_PORT)

chaos: install ## 10,000 tasks under Runware- and AWS-side faults, a 60 s DynamoDB outage among them
	$(PY) -m local.tools.chaos --tasks 10000

bench: install ## every benchmark, ratios against same-run baselines
	$(PY) -m bench

clean: ## remove build and tool caches
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
