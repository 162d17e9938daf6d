# blt-repro: the two commands of the README are `make reproduce` and `make test`.
# Each does its own set-up (a .venv with torch, the project and its dev tools) on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PRESET ?= tiny
# nbdev-test runs notebooks in 2 worker processes; one torch thread each keeps 2 cores busy, not oversubscribed
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 BLT_NUM_THREADS=1 HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg

.PHONY: setup reproduce test test-nbs test-py check-sync bench readme docs docs-check lab help
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(BIN)/.setup-done: pyproject.toml scripts/setup_env.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup_env.sh
	touch $@

setup: $(BIN)/.setup-done  ## create .venv and install torch (CPU build without a GPU) + blt-repro[dev]

reproduce: setup  ## the main job: regenerate the figures and tables of the tiny preset into figures/tiny/
	HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg $(BIN)/blt-repro reproduce --preset $(PRESET)

test: setup check-sync test-nbs test-py  ## every test: notebooks clean + library in sync, nbdev-test, pytest

check-sync: setup  ## fail if notebooks are not clean (nbdev-clean) or blt_repro/ is out of sync (nbdev-export)
	@bash scripts/check_sync.sh $(BIN)

test-nbs: setup  ## run every notebook in nbs/ (skips #| slow and #| cuda cells)
	$(TEST_ENV) $(BIN)/nbdev-test --n-workers 2 --timing

test-py: setup  ## pytest: golden vectors, property tests, parity with transformers
	$(TEST_ENV) $(BIN)/python -m pytest tests

bench: setup  ## benchmarks (prints JSON)
	$(BIN)/blt-repro bench patching

readme: setup  ## regenerate README.md from nbs/index.ipynb
	$(BIN)/jupyter nbconvert --to markdown nbs/index.ipynb --output-dir . --output README --log-level WARN

$(BIN)/.docs-done: $(BIN)/.setup-done pyproject.toml scripts/docs/package.json
	$(BIN)/python -m pip install -q -e ".[docs]"
	mkdir -p build/docs-node && cp scripts/docs/package.json build/docs-node/
	npm install --silent --no-audit --no-fund --prefix build/docs-node   # MathJax, search shim, puppeteer-core
	touch $@

docs: $(BIN)/.docs-done  ## the notebooks as a documentation site in _site/ (open _site/index.html)
	BIN=$(BIN) bash scripts/docs/build.sh

docs-check: docs  ## load every page of _site/ in headless Chromium: links, images, console errors, show_doc, search
	cp scripts/docs/check.mjs build/docs-node/ && node build/docs-node/check.mjs _site   # resolves its npm packages there

lab: setup  ## JupyterLab in the project's environment, opened on nbs/
	$(BIN)/jupyter lab nbs/
