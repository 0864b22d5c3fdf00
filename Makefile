# resnet-lab: `make lab` opens the course, `make test` runs every test and notebook.
# Both create the local virtual environment .venv first if it is missing or out of date.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Jupyter refuses to run as root unless told; classroom machines and containers often are root.
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test run student-copies benchmark clean-venv

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "resnet-lab needs Python >= 3.10, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $(STAMP)

## Create .venv and install the course and its stack (torch, torchvision, jupyterlab, ...).
setup: $(STAMP)

## Open the course in JupyterLab.
lab: setup
	$(BIN)/jupyter lab $(LAB_FLAGS) notebooks/00_start_here.ipynb

## Unit tests, then every notebook executed by nbval in fast mode (RESNET_LAB_FAST=1).
test: setup
	$(BIN)/pytest

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
