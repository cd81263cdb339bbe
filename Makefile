# One-command set-up: every target creates the local virtual environment if it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m pip install --quiet -e ".[demo]" || echo "matplotlib not installed: the demo runs without its plot"
	$(PY) examples/newton_cg_fit.py

bench: $(STAMP)
	$(PY) -m pip install --quiet autograd jax torch==2.13.0 || echo "peers not installed: benchmarking scigrad alone"
	$(PY) benchmarks/run.py --output BENCHMARKS.md

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
