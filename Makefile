# resnet-lab: `make lab` opens the course, `make test` runs every test and notebook.
# Both create the local virtual environment .venv first if it is missing or out of date.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Jupyter refuses to run as root unless told; classroom machines and containers often are root.
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root,)
# Extra arguments for `jupyter lab`, e.g. make lab LAB_ARGS="--no-browser --port 8890".
LAB_ARGS ?=
# The course's JupyterLab settings (.jupyter/: no news feed, no update checks) go first on Jupyter's
# config path; the file browser's root is the repository, so docs/, data/ and the README are reachable.
LAB_ENV := JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH),)"
SITE_DIR ?= build/site

.PHONY: setup setup-site lint format lab test test-browser site run student-copies benchmark clean-venv

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "resnet-lab needs Python >= 3.10, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $(STAMP)

## Create .venv and install the course and its stack (torch, torchvision, jupyterlab, ...).
setup: $(STAMP)

## Open the course in JupyterLab: the whole repository in the file browser, 00_start_here open.
lab: setup
	$(LAB_ENV) $(BIN)/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(CURDIR)" $(LAB_ARGS) notebooks/00_start_here.ipynb

## The formatter and linter (ruff), then unit tests, every notebook executed by nbval in fast mode (RESNET_LAB_FAST=1), and the browser
## tests (tests/browser: the website and JupyterLab in Chromium; skipped with a message without Chromium).
test: setup setup-site lint
	$(BIN)/pytest

## Formatter and linter (ruff, configured in pyproject.toml): fails on unformatted code or a lint finding.
lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

## Format the code and apply ruff's safe fixes.
format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Only the browser tests (needs Chromium and requirements-site.txt; see the README).
test-browser: setup setup-site
	$(BIN)/pytest -o addopts="-p no:cacheprovider" tests/browser

$(VENV)/.installed-site: requirements-site.txt $(STAMP)
	$(BIN)/python -m pip install -r requirements-site.txt
	touch $@

## Install the website builder and the browser-test driver (requirements-site.txt) into .venv.
setup-site: $(VENV)/.installed-site

## Build the course website into build/site from the committed notebooks (nothing is executed),
## then check every internal link and image; fails on a broken link, a missing image or an external asset.
site: setup-site
	rm -rf $(SITE_DIR) $(SITE_DIR).doctrees
	$(BIN)/sphinx-build -W --keep-going -q -c site -d $(SITE_DIR).doctrees . $(SITE_DIR)
	$(BIN)/python scripts/check_site.py $(SITE_DIR)
	@echo "The course website is in $(SITE_DIR)/index.html"

## Execute every lesson notebook top to bottom in full mode, headless, saving outputs in place.
run: setup
	cd notebooks && for nb in [0-9][0-9]_*.ipynb; do \
	  echo "== $$nb"; env -u RESNET_LAB_FAST ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace "$$nb" || exit 1; \
	done

## Regenerate the student copies in notebooks/student/ from the lesson notebooks.
student-copies: setup
	$(BIN)/python scripts/make_student_copies.py

## Time resnet_lab.resnet50 against torchvision's (forward + backward).
benchmark: setup
	$(BIN)/python benchmarks/models.py

clean-venv:
	rm -rf $(VENV)
