# vwlib: the two commands of the README are `make figures` and `make test`.
# Each first runs the idempotent install step (a venv in .venv, the package, the Jupyter kernel); a second run
# reinstalls nothing unless pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vwlib-installed
PROFILE ?= mini
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install figures test test-all test-gpu bench lab candidate clean-build

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch==2.14.1 / torchvision==0.29.1 are pinned in pyproject.toml: pip takes them from this machine's disk.
	$(BIN)/python -m pip install -q -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name vwlib --display-name "Python (vwlib)"
	touch $(STAMP)

install: $(STAMP)

## the main job: run every notebook headlessly (papermill) on the mini world, writing figures/
## (FULL=1: the full 10 x 10 concept x anchor grid; PROFILE=paper: the paper's models on a GPU machine)
figures: install
	$(BIN)/vw notebooks --profile $(PROFILE) $(if $(FULL),--full) $(if $(DRY_RUN),--dry-run)

## the default test run: unit, integration on tiny models, notebook smoke runs; no network, no slow tests.
## One pytest-xdist worker per core (at most 4): most tests wait on a kernel or a `vw` process starting, and two
## workers finish on 2 cores in 4 min 13 s where one took 6 min 58 s (tests/conftest.py shares the threads).
test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow and not gpu" -q -n auto --maxprocesses 4 --dist worksteal

## everything, slow tests included
test-all: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

## tests that need a CUDA device (run them on a GPU machine)
test-gpu: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m gpu -q

## speed: the batched engine vs a sequential loop per task, and the wall time of `make figures` (prints ratios)
bench: install
	$(BIN)/python bench/engine_speed.py
	$(BIN)/python bench/cones_speed.py
	$(BIN)/python bench/make_figures_time.py

## the tower lab (#32): screen text-tower recipes against the frozen image tower, one row each appended to
## docs/data/tower_lab.csv (RECIPES="centered minilm-centered", PAIR=1 for finding (ii); `vw mini lab` lists them)
lab: install
	for r in $(RECIPES); do $(BIN)/vw mini lab --recipe $$r $(if $(PAIR),--pair) || exit 1; done

## a candidate mini model (#32), measured in a clone of HEAD with it in place of the shipped one, so that no store of
## the shipped world sees it: `vw mini eval`, its task's cells of the fidelity grid and, for mini-sd, `vw probe
## --working` on those words and the encoder's own ceiling (`--text-only`). Results under runs/candidate-NAME/:
##   make candidate ROLE=sd TASK=generation CKPT=runs/sd-noisy-states NAME=noisy-states
CAND := runs/candidate-$(NAME)
# the checkout's venv runs it; the clone's vwlib comes first on PYTHONPATH
VW := $(abspath $(BIN))/vw
CAND_USAGE := make candidate: give ROLE=<clip|scorer|owl|sd> TASK=<generation|detection|classification> \
	CKPT=<a checkpoint folder> NAME=<a label>
candidate: install
	@test -n "$(ROLE)" -a -n "$(TASK)" -a -n "$(NAME)" -a -d "$(CKPT)" || { echo "$(CAND_USAGE)"; exit 2; }
	rm -rf $(CAND) && mkdir -p $(CAND) && git clone -q . $(CAND)/clone
	rm -rf $(CAND)/clone/vwlib/checkpoints/mini/$(ROLE) && cp -r $(CKPT) $(CAND)/clone/vwlib/checkpoints/mini/$(ROLE)
	cd $(CAND)/clone && export PYTHONPATH=$$PWD && \
	  $(VW) mini eval --model $(ROLE) --json > ../eval.json && \
	  $(VW) fidelity --out ../store --concepts 10 --task $(TASK) --json > ../fidelity.json && \
	  if [ "$(TASK)" = generation ]; then for d in 0.5 inf; do \
	    $(VW) probe --out ../store --working --delta $$d --csv ../purity-$$d.csv || exit 1; done && \
	    $(VW) probe --out ../store --text-only --delta 0.5 --csv ../text-only-0.5.csv; fi
	rm -rf $(CAND)/clone

clean-build:
	rm -rf build
