"""n = 10^4: detection, coloring and evaluation take well under a few seconds and never
allocate anything of dense size (a dense 10^4 x 10^4 Hessian is 800 MB)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as onp
import pytest
import scipy.sparse as sp

import scigrad as sg
import scigrad.numpy as np
from scigrad.sparsity import sparse_hessian, sparse_jacobian

from ._functions import grid_energy, grid_residual

M = 100
N = M * M
MB = 1e6


def energy(x):
    return grid_energy(x, M)


def residual(x):
    return grid_residual(x, M)


def chain(x):
    return np.sum(np.sin(x[1:] * x[:-1]) + x[:-1] ** 2 * np.exp(x[1:]))


def spot_check_hessian(f, x, h, rng):
    """A few Hessian-vector products against the sparse Hessian."""
    for _ in range(2):
        v = rng.standard_normal(x.size)
        onp.testing.assert_allclose(h @ v, sg.hvp(f, (x,), (v,))[0], rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("f", [energy, chain])
def test_large_sparse_hessian_is_fast_and_never_dense(f, rng):
    x = rng.standard_normal(N)
    start = time.perf_counter()
    h = sparse_hessian(f, x)
    assert time.perf_counter() - start < 5.0
    assert isinstance(h, sp.csr_array) and h.shape == (N, N) and h.nnz < 6 * N
    spot_check_hessian(f, x, h, rng)
    tracemalloc.start()
    try:
        sparse_hessian(f, x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * MB  # dense: 800 MB


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_large_sparse_jacobian(mode, rng):
    x = rng.standard_normal(N)
    start = time.perf_counter()
    j = sparse_jacobian(residual, x, mode=mode)
    assert time.perf_counter() - start < 5.0
    assert j.shape == ((M - 2) ** 2, N) and j.nnz == 5 * (M - 2) ** 2
    v = rng.standard_normal(N)
    onp.testing.assert_allclose(j @ v, sg.jvp(residual, (x,), (v,))[1], rtol=1e-12, atol=1e-10)
    tracemalloc.start()
    try:
        sparse_jacobian(residual, x, mode=mode)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * MB
