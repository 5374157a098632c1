# ferkaggle: `make submit` runs the whole pipeline, `make test` the fast tests.
# Variables: DATA=path (competition files; default data/, else the demo competition),
#            BUDGET=5m (CNN search time budget), SPACE= (search space preset; default: quick on
#            the demo data, gpu on competition data where TensorFlow sees a GPU, else default),
#            EXTRAS= (pip extras to install; default: dev, plus gpu where nvidia-smi is on the PATH).

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
FK     := $(BIN)/ferkaggle
DATA   ?= data
BUDGET ?= 5m
SPACE  ?=
# Ensemble candidates: 0 = every run on the current data (greedy picks), K = the K best per holdout half.
TOP    ?= 0
comma  := ,
# An NVIDIA driver here (nvidia-smi on the PATH): also the CUDA libraries TensorFlow needs to use the GPU.
EXTRAS ?= dev$(if $(shell command -v nvidia-smi 2>/dev/null),$(comma)gpu)

.DEFAULT_GOAL := help
.PHONY: help install test test-slow submit ensemble leaderboard bench clean

help:
	@echo "make submit       prepare -> baseline -> search (BUDGET=$(BUDGET)) -> greedy ensemble (TOP=$(TOP): 0 = every run) -> submission of the best run -> leaderboard"
	@echo "make ensemble     greedy ensemble of the runs (TOP=$(TOP): 0 = every run) and its submission"
	@echo "make leaderboard  the local CV leaderboard"
	@echo "make test         fast test suite (installs first)"
	@echo "make test-slow    slow tests on ../shared/fer2013 (minutes)"
	@echo "make install      create $(VENV) and install ferkaggle with its $(EXTRAS) extras"

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

submit: install
	$(FK) prepare --source $(DATA) --demo-if-missing
	$(FK) baseline
	$(FK) search $(if $(SPACE),--space $(SPACE)) --budget $(BUDGET)
	$(FK) ensemble --top $(TOP) --method greedy
	$(FK) submit --run best
	$(FK) leaderboard --top 10

ensemble: install
	$(FK) ensemble --top $(TOP) --method greedy
	$(FK) submit --run latest

leaderboard: install
	$(FK) leaderboard

clean:
	rm -rf runs reports data/prepared
