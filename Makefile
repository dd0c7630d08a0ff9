# bhscore: `make help` lists the targets. Area-specific targets live in mk/*.mk.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS ?= python3.11
VENV       ?= .venv
PY         := $(VENV)/bin/python
BHSCORE    := $(VENV)/bin/bhscore
SETTINGS   ?= settings.json
# the stamp is newer than pyproject.toml once the environment holds the project and all extras
INSTALLED  := $(VENV)/.installed

.PHONY: help install test test-all lint clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_%/.-]+:.*## ' $(MAKEFILE_LIST) | sort -u | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[extract,figures,dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

# fastl2lir 0.7 beside the environment's current fastl2lir: the reference of dtype float32_mixed (the arithmetic
# of fastl2lir <= 0.7, docs/method.md), loaded by bhscore.ridge.reference.legacy_fastl2lir
LEGACY_FASTL2LIR := $(VENV)/reference/fastl2lir-0.7/fastl2lir/__init__.py

$(LEGACY_FASTL2LIR): | $(INSTALLED)
	$(PY) -m pip install --quiet --no-deps --target $(VENV)/reference/fastl2lir-0.7 fastl2lir==0.7

install: $(INSTALLED) $(LEGACY_FASTL2LIR) ## create .venv with the project and all extras (idempotent)

test: $(INSTALLED) $(LEGACY_FASTL2LIR) ## run the test suite (fast tests; see `make test-all`)
	$(PY) -m pytest -q

test-all: $(INSTALLED) $(LEGACY_FASTL2LIR) ## run every test, slow ones included (GPU tests skip without a GPU)
	$(PY) -m pytest -q -m 'not needs_data and not docker'

lint: $(INSTALLED) ## ruff check (the code run in the Caffe image also as Python 3.9)
	$(VENV)/bin/ruff check bhscore tests bench feature_extraction decoding encoding
	$(VENV)/bin/ruff check --target-version py39 bhscore/caffe_container bhscore/caffe_prototxt.py \
	  bhscore/unit_index.py bhscore/rgb.py bhscore/atomic.py feature_extraction/caffe tests/caffe_stub

clean: ## remove caches and build leftovers (keeps .venv and data/)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

-include mk/*.mk
