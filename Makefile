# ferkaggle: `make submit` runs the whole pipeline, `make test` the fast tests, `make help` lists
# the targets and the variables.

PYTHON  ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
FK      := $(BIN)/ferkaggle
# Competition files; empty: data/ when it holds them, else the generated demo competition.
DATA    ?=
BUDGET  ?= 5m
SPACE   ?=
# Ensemble candidates: 0 = every run on the current data (greedy picks), K = the K best per holdout half.
TOP     ?= 0
# yes: a test face identical to labelled faces takes their majority label in the submission (submit --copies).
COPIES  ?= yes
# The Keras backend of every command (tensorflow | jax | torch); jax and torch add the extra of that name.
BACKEND ?= tensorflow
# Exact versions the benchmarks were measured with; CONSTRAINTS= installs the newest allowed ones.
CONSTRAINTS ?= constraints.txt
comma   := ,
# An NVIDIA driver here (nvidia-smi on the PATH): also the CUDA libraries the backend needs to use the
# GPU (gpu: TensorFlow's; jax-gpu: JAX's CUDA plugin; PyPI's torch for Linux carries its own).
GPU_EXTRA = $(if $(filter tensorflow,$(BACKEND)),gpu,$(if $(filter jax,$(BACKEND)),jax-gpu))
EXTRAS  ?= dev$(if $(shell command -v nvidia-smi 2>/dev/null),$(if $(GPU_EXTRA),$(comma)$(GPU_EXTRA)))

ifeq "$(filter $(BACKEND),tensorflow jax torch)" ""
$(error BACKEND=$(BACKEND): expected tensorflow, jax or torch)
endif
ifeq "$(filter $(COPIES),yes no)" ""
$(error COPIES=$(COPIES): expected yes or no)
endif
export KERAS_BACKEND := $(BACKEND)
SUBMIT_COPIES := $(if $(filter yes,$(COPIES)), --copies)
INSTALL_EXTRAS := $(EXTRAS)$(if $(filter-out tensorflow,$(BACKEND)),$(comma)$(BACKEND))

# The stamp holds the options of the install it marks: other EXTRAS, BACKEND or CONSTRAINTS reinstall.
INSTALLED := $(VENV)/.installed
INSTALL_OPTIONS := extras=$(INSTALL_EXTRAS) constraints=$(or $(CONSTRAINTS),none)
ifneq "$(shell cat $(INSTALLED) 2>/dev/null)" "$(INSTALL_OPTIONS)"
REINSTALL := FORCE
endif

.DEFAULT_GOAL := help
.PHONY: help install test test-slow submit ensemble leaderboard clean FORCE

help:
	@echo "make help         this list (plain make shows it too)"
	@echo "make install      create $(VENV) and install ferkaggle with the extras [$(INSTALL_EXTRAS)]$(if $(CONSTRAINTS), at the versions in $(CONSTRAINTS))"
	@echo "make submit       install, then prepare -> baseline -> CNN search (BUDGET=$(BUDGET)) -> greedy ensemble -> submission of the best run -> leaderboard"
	@echo "make ensemble     greedy ensemble of the runs on the current data (TOP=$(TOP): 0 = every run) and its submission"
	@echo "make leaderboard  the runs on the current data ranked by holdout accuracy"
	@echo "make test         the fast test suite (installs first)"
	@echo "make test-slow    the slow tests (minutes; the FER2013 ones skip without FER2013 from Kaggle in ../shared/fer2013)"
	@echo "make clean        delete runs/, reports/ and data/prepared/ (every run, report and prepared data; keeps data/'s own files, submissions/ and $(VENV))"
	@echo ""
	@echo "Variables: DATA=folder of competition files (default: data/, else the demo competition)"
	@echo "           BUDGET=$(BUDGET) (search time, e.g. 90s, 30m, 2h)   SPACE= (search space; default: quick on the demo data, gpu on a GPU, else default)"
	@echo "           TOP=$(TOP)   COPIES=$(COPIES) (test faces identical to labelled ones take their label)   BACKEND=$(BACKEND) (tensorflow | jax | torch)"
	@echo "           EXTRAS=$(EXTRAS)   PYTHON=$(PYTHON)"
	@echo "           CONSTRAINTS=$(CONSTRAINTS) (CONSTRAINTS= installs the newest versions pyproject.toml allows)"

$(INSTALLED): pyproject.toml $(CONSTRAINTS) $(REINSTALL)
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS) )-e '.[$(INSTALL_EXTRAS)]'
	echo '$(INSTALL_OPTIONS)' > $@
	@echo "ferkaggle is installed in $(VENV): run it as $(FK) --help, or 'source $(BIN)/activate' and then ferkaggle --help$(if $(filter-out tensorflow,$(BACKEND)), (with export KERAS_BACKEND=$(BACKEND)))"

install: $(INSTALLED)

FORCE:

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

submit: install
	$(FK) prepare $(if $(DATA),--source $(DATA),--demo-if-missing)
	$(FK) baseline
	$(FK) search $(if $(SPACE),--space $(SPACE) )--budget $(BUDGET)
	$(FK) ensemble --top $(TOP) --method greedy
	$(FK) submit --run best$(SUBMIT_COPIES)
	$(FK) leaderboard --top 10

ensemble: install
	$(FK) ensemble --top $(TOP) --method greedy
	$(FK) submit --run latest$(SUBMIT_COPIES)

leaderboard: install
	$(FK) leaderboard

clean:
	rm -rf runs reports data/prepared
