# XrayQwen2VL — every target sets up .venv itself when it is missing or pyproject.toml changed.
# PYTHON: the interpreter .venv is made with, Python 3.11 or 3.12 with its venv module, e.g.
# make venv PYTHON=python3.12 (scripts/check-python.sh says what to install when it is missing).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv metrics-venv demo test test-fast mutation style quality clean-demo system-deps system-deps-java

help:
	@echo "make venv      .venv with the pinned stack (TORCH_INDEX=https://download.pytorch.org/whl/cu126: CUDA 12 torch;"
	@echo "               PYTHON=python3.12: another Python, 3.11 or 3.12)"
	@echo "make demo      synthetic sample -> prepare -> tiny model -> LoRA SFT -> merge -> predict (CPU, < 5 min)"
	@echo "make test      the test suite (what CI runs), including the end-to-end llamafactory-cli runs;"
	@echo "               TEST_WORKERS=2 pytest-xdist workers (0: one process)"
	@echo "make test-fast the tests not marked slow"
	@echo "make metrics-venv  .venv-metrics: RadEval for evaluate --metrics rexrank (layered over .venv)"
	@echo "make mutation  mutation score per module (mutmut; ~7 min, not in CI); MODULES=\"splits normalize\" for some"
	@echo "make style     format and fix with ruff"
	@echo "make quality   ruff lint and format check"
	@echo "demo and test-fast need Java, test also Debian's Chromium: as root they are installed with"
	@echo "apt-get, otherwise make stops at once with the command to run (scripts/system-deps.sh)"

# TORCH_INDEX: PyTorch's wheel index for one CUDA version, e.g. https://download.pytorch.org/whl/cu126
# for nodes whose NVIDIA driver runs CUDA 12 only. Empty: the PyPI build, which is CUDA 13 (driver
# 580 or newer). It takes effect when .venv is created: rm -rf .venv to change it.
TORCH_INDEX ?=
TORCH_PINS = $(shell sed -nE 's/^ *"(torch|torchvision|torchaudio)==([^"]+)",.*/\1==\2/p' pyproject.toml)

$(STAMP): pyproject.toml
	@bash scripts/check-python.sh "$(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet $(TORCH_PINS) --index-url $(TORCH_INDEX))
	echo "$(TORCH_INDEX)" > $(VENV)/.torch-index
	$(PY) -m pip install --quiet -e ".[dev]"
	# the deepspeed extra, built against the torch just installed: no build isolation
	$(PY) -m pip install --quiet --no-build-isolation -e ".[dev,deepspeed]"
	touch $(STAMP)

# The ReXrank metrics (evaluate --metrics rexrank) need RadEval, which cannot share .venv on Python
# 3.11 (its RaTEScore needs medspacy -> spacy<3.8 -> numpy 1; doc/evaluation.md). .venv-metrics holds
# RadEval and the packages it adds, pinned in requirements-metrics.txt, and reads everything else
# (torch, transformers, this package) from .venv through a .pth file; evaluate runs it as a subprocess.
METRICS_VENV ?= .venv-metrics
METRICS_STAMP := $(METRICS_VENV)/.installed

$(METRICS_STAMP): $(STAMP) requirements-metrics.txt
	$(PYTHON) -m venv $(METRICS_VENV)
	echo "import site; site.addsitedir('$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')')" \
	  > "$$($(METRICS_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_xrayqwen2vl_venv.pth"
	$(METRICS_VENV)/bin/python -m pip install --quiet --no-deps -r requirements-metrics.txt
	touch $(METRICS_STAMP)

metrics-venv: $(METRICS_STAMP)

venv: $(STAMP)
	@if [ -n "$(TORCH_INDEX)" ] && [ "$$(cat $(VENV)/.torch-index 2>/dev/null)" != "$(TORCH_INDEX)" ]; then \
	  echo "$(VENV) was made with TORCH_INDEX='$$(cat $(VENV)/.torch-index 2>/dev/null)'; for $(TORCH_INDEX): rm -rf $(VENV) && make venv TORCH_INDEX=$(TORCH_INDEX)" >&2; exit 2; fi
	@$(PY) -c "import torch; print('torch', torch.__version__, '(CUDA', str(torch.version.cuda) + ')')"

demo: system-deps-java $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

# System packages beyond .venv, checked before it is built so that a missing one stops make at
# once: Java (METEOR, in make demo and the tests) and Debian's Chromium (the browser tests).
# As root with apt-get they are installed; otherwise the script prints the command to run.
system-deps:
	@bash scripts/system-deps.sh java chromium

system-deps-java:
	@bash scripts/system-deps.sh java

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
# TEST_WORKERS pytest-xdist workers, one test file each at a time (a file's module fixtures, the servers
# among them, are built once); the shared session fixtures are built once for all (tests/conftest.py).
# One torch thread per worker: two workers of two threads each on two cores spin against each other.
# TEST_WORKERS=0 runs in this process, as plain `pytest` does.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)
TEST_THREADS = $(if $(filter 0,$(TEST_WORKERS)),,OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-1})
test: system-deps $(STAMP) $(METRICS_STAMP)
	$(TEST_THREADS) $(PY) -m pytest $(XDIST); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

test-fast: system-deps-java $(STAMP) $(METRICS_STAMP)
	$(PY) -m pytest -m "not slow"

# Mutation testing (doc/testing.md): the modules whose bugs are silent, each with its fast tests;
# prints the score per module. mutmut comes from the mutation extra, installed on first use.
MODULES ?=
MUTMUT_PIN = $(shell sed -nE 's/^mutation = \["(mutmut==[^"]+)"\].*/\1/p' pyproject.toml)
mutation: system-deps-java $(STAMP)
	@$(PY) -m pip show mutmut 2>/dev/null | grep -qx "Version: $(subst mutmut==,,$(MUTMUT_PIN))" || \
	  $(PY) -m pip install --quiet "$(MUTMUT_PIN)"
	$(PY) scripts/mutation.py $(MODULES)

style: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

quality: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean-demo:
	rm -rf saves/demo
