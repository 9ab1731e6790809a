# thinlab: every target bootstraps .venv on first use (stamp keyed on pyproject.toml).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-$(shell sha256sum pyproject.toml | cut -c1-16)
FAST ?= 0
DATA ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv lessons test lab bench data site clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@echo ">> creating $(VENV) (torch for this machine first, then thinlab[dev]) ..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) tools/install_torch.py
	$(PY) -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.stamp-*
	@touch $@
	@echo ">> $(VENV) ready"

## make lessons [FAST=1] [DATA=auto|synthetic|/path]: run the whole course headless into build/lessons/
lessons: $(STAMP)
	$(PY) -m thinlab.course run --fast $(FAST) $(if $(DATA),--data "$(DATA)")

## make test: unit, property, bad-input, downloader, lesson (papermill) and browser tests
test: $(STAMP)
	@mkdir -p build
	$(PY) -m pytest -q --basetemp=$(CURDIR)/build/pytest-tmp

## make lab: open JupyterLab on the lessons
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=lessons $(if $(filter 0,$(shell id -u)),--allow-root)

## make site [DATA=synthetic|/path]: the executed course as an offline website in build/site/ (pages from
## build/lessons/; a lesson not executed there, or executed from an older notebook, is run at CI size first)
site: $(STAMP)
	$(PY) -m thinlab.course site $(if $(DATA),--data "$(DATA)")

## make bench: speed and memory ratios, written to build/bench.json
bench: $(STAMP)
	$(PY) -m benchmarks

## make data [WHICH=test-v2|v1|v2] [WORDS=yes,no,...]: download real Speech Commands
WHICH ?= test-v2
WORDS ?=
data: $(STAMP)
	$(PY) -m thinlab.data download $(WHICH) $(if $(WORDS),--words $(WORDS))

clean:
	rm -rf build
