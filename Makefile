# XrayQwen2VL — every target sets up .venv itself when it is missing or pyproject.toml changed.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv demo test test-fast style quality clean-demo

help:
	@echo "make demo      synthetic sample -> prepare -> tiny model -> LoRA SFT -> merge -> predict (CPU, < 5 min)"
	@echo "make test      the test suite (what CI runs), including the end-to-end llamafactory-cli runs"
	@echo "make test-fast the tests not marked slow"
	@echo "make style     format and fix with ruff"
	@echo "make quality   ruff lint and format check"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	$(PY) -m pip install --quiet -e ".[dev]"
	# deepspeed builds against the torch just installed: no build isolation
	$(PY) -m pip install --quiet --no-build-isolation deepspeed==0.16.9
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: $(STAMP)
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

style: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

quality: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean-demo:
	rm -rf saves/demo
