# One-command set-up: every target creates the local virtual environment if it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo demo-fit demo-expm demo-jit bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m pip install --quiet -e ".[demo]" || echo "matplotlib not installed: the demo runs without its plots"
	$(PY) examples/topopt.py

demo-fit: $(STAMP)
	$(PY) -m pip install --quiet -e ".[demo]" || echo "matplotlib not installed: the demo runs without its plot"
	$(PY) examples/newton_cg_fit.py

demo-expm: $(STAMP)
	$(PY) examples/linear_ode_fit.py

demo-jit: $(STAMP)
	$(PY) examples/material_tangents.py

bench: $(STAMP)
	$(PY) -m pip install --quiet autograd jax diffrax torch==2.13.0 casadi || echo "peers not installed: benchmarking scigrad alone"
	$(PY) -m pip install --quiet -e ".[cholmod]" || echo "CHOLMOD not installed: sparse benchmarks use SuperLU"
	$(PY) benchmarks/run.py --output BENCHMARKS.md
	$(PY) benchmarks/sparse.py --output BENCHMARKS_SPARSE.md
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/matfun.py --output BENCHMARKS_MATFUN.md
	$(PY) benchmarks/sparsity.py --output BENCHMARKS_SPARSITY.md
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/jit.py --output BENCHMARKS_JIT.md
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/jit_large.py --output BENCHMARKS_JIT_LARGE.md

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
