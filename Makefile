# hific-lit — every target sets itself up first; `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
# torch's OpenMP threads spin while waiting; on a busy machine that slows training and tests up to ~10x.
# Passive waiting costs little when the machine is idle.
export OMP_WAIT_POLICY ?= PASSIVE

.DEFAULT_GOAL := help
.PHONY: help setup test test-unit test-full lint format browser eval

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  make %-10s %s\n",$$1,$$2}'

setup: $(STAMP) ## create .venv, install the package (editable, dev extra), build torchac's C++ extension

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@echo "building torchac's C++ extension (once, ~30 s)"
	$(BIN)/python -c "import torchac"
	touch $(STAMP)

test: setup browser ## the fast tier: every test not marked slow (unit, config, smoke), under 4 minutes on 2 CPU cores
	$(BIN)/python -m pytest -m "not slow" -q

test-unit: setup ## unit tests only (networks, entropy models, bitstream, losses, metrics): under a minute
	$(BIN)/python -m pytest -m "unit and not slow" -q

test-full: setup browser ## every test, including those marked slow (minutes of training each)
	$(BIN)/python -m pytest -q

lint: setup ## ruff lint and format check
	$(BIN)/ruff check hific_lit scripts tests
	$(BIN)/ruff format --check hific_lit scripts tests

format: setup ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix hific_lit scripts tests
	$(BIN)/ruff format hific_lit scripts tests

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: setup ## install Debian's chromium (headless, for the viewer test); does nothing when present
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

DATA ?= kodak
eval: setup ## evaluate CKPT=model.ckpt (or CKPT='[lo.ckpt,mid.ckpt,hi.ckpt]') on DATA=kodak|clic2020 (hific eval eval_set=DATA); ARGS='...' for more overrides
	@test -n "$(CKPT)" || { echo "usage: make eval CKPT=model.ckpt [DATA=kodak|clic2020] [ARGS='eval_set=folder eval_set.path=DIR']"; exit 2; }
	$(BIN)/hific eval 'ckpt=$(CKPT)' eval_set=$(DATA) $(ARGS)

.PHONY: eval-data shards
EVAL_SETS ?= kodak clic2020
eval-data: setup ## download + verify EVAL_SETS (default: kodak clic2020) into HIFIC_DATA or data/ (hific download; resumable)
	$(BIN)/hific download $(EVAL_SETS)

shards: setup ## WebDataset shards: make shards SRC=DIR OUT=DIR [ARGS='--max-count 5000 --max-short-side 1024']
	@test -n "$(SRC)" && test -n "$(OUT)" || { echo "usage: make shards SRC=DIR OUT=DIR [ARGS='--max-size 1G']"; exit 2; }
	$(BIN)/python scripts/make_shards.py "$(SRC)" "$(OUT)" $(ARGS)

.PHONY: demo demo-train train
DEMO_DIR := outputs/demo
PHOTOS_READY := $(or $(HIFIC_DATA),data)/photos/root/mate-backgrounds
$(PHOTOS_READY):
	$(BIN)/python scripts/photos.py --fetch
demo: setup $(PHOTOS_READY) ## the bundled model on 12 held-out photos (bpp, PSNR, colour error next to JPEG, viewer; ~1 min), then a short training (~10 min on 2 cores)
	$(BIN)/python scripts/demo.py --heldout --out $(DEMO_DIR)
	$(BIN)/python scripts/train.py experiment=bundled max_iterations=300 stage.lr_schedule.decay_iteration=250 \
		trainer.val_check_interval=100 callbacks.inference_export.settle_tails=500 hydra.run.dir=$(DEMO_DIR)/train
	$(BIN)/python scripts/demo.py --ckpt $(DEMO_DIR)/train/inference.ckpt --out $(DEMO_DIR) --runs $(DEMO_DIR)/train

demo-train: setup $(PHOTOS_READY) ## train the bundled model from scratch (experiment=bundled, then rate-conditioned: bundled_rate; about an hour of CPU) and put it into the package
	$(BIN)/python scripts/train.py experiment=bundled
	$(BIN)/python scripts/train.py experiment=bundled_rate
	$(BIN)/python scripts/bundle_model.py outputs/bundled/rate

train: setup ## train one stage with Hydra overrides: make train ARGS='regime=med trainer.devices=4' (see conf/train.yaml)
	$(BIN)/python scripts/train.py $(ARGS)

.PHONY: bench soak
bench: setup ## run every scripts/bench_*.py; each writes outputs/bench/<name>.json and prints a summary
	@set -e; for script in scripts/bench_*.py; do echo "== $$script"; $(BIN)/python "$$script"; done

soak: setup ## kill a tiny training 20 times and resume it, then SIGTERM one of 2 DDP ranks; compare with uninterrupted runs (outputs/soak/*/summary.json)
	$(BIN)/python scripts/soak_resume.py
	$(BIN)/python scripts/soak_resume.py --ddp --iterations 40

.PHONY: photos
photos: setup ## fetch the Debian packages whose photos train (452) and test (12, mate-backgrounds) the bundled model, unpack them under data/photos, check every SHA-256 (hific_lit/data/photos.tsv)
	$(BIN)/python scripts/photos.py --fetch
