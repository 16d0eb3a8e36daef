# Every target creates what it needs: a fresh clone needs only Python 3.13, Node.js/npm and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13: $(PYTHON) if given, else a pyenv-installed 3.13, else python3.13 on PATH.
PYTHON ?= $(or $(lastword $(sort $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13.*/bin/python3.13))),$(shell command -v python3.13 2>/dev/null))
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv test unit integration e2e lint demo up down status bench clean

help:
	@echo "make test    create the venv, install pinned requirements, run every test"
	@echo "make demo    run the whole flow locally (emulators + local Functions host + device simulator)"
	@echo "make up      start the local cloud and print how to connect; make down stops it"
	@echo "make bench   run the benchmarks under bench/"
	@echo "make lint    ruff"

$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it or run make PYTHON=/path/to/python3.13"; exit 1; }
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 13), sys.version' || { echo "$(PYTHON) is not Python 3.13"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

venv: $(STAMP) $(NODE_STAMP)

test: venv
	$(VPY) -m ruff check .
	$(VPY) -m mypy --strict localcloud/amqp c2d
	$(VPY) -m pytest

unit: venv
	$(VPY) -m pytest tests/unit

integration: venv
	$(VPY) -m pytest -m integration

e2e: venv
	$(VPY) -m pytest -m e2e

lint: venv
	$(VPY) -m ruff check .

demo: venv
	$(VPY) -m localcloud demo

up: venv
	$(VPY) -m localcloud up

down:
	@if [ -x $(VPY) ]; then $(VPY) -m localcloud down; fi

status: venv
	$(VPY) -m localcloud status

bench: venv
	$(VPY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
