"""Compressed evaluation: sparse Jacobians (both modes) and Hessians equal dense ones to
1e-12, with detected or given patterns, custom (compiled) products, and clear errors."""

from __future__ import annotations

import numpy as onp
import pytest
import scipy.sparse as sp
from hypothesis import given

import scigrad as sg
import scigrad.numpy as np
from scigrad.sparsity import (
    column_coloring,
    recover_hessian,
    recover_jacobian,
    seed_matrix,
    sparse_hessian,
    sparse_jacobian,
    star_coloring,
)

from ._functions import arrow_energy, grid_energy, grid_residual, problems, tridiagonal_energy


def assert_close(sparse, want):
    assert isinstance(sparse, sp.csr_array) and sparse.dtype == onp.float64
    onp.testing.assert_allclose(sparse.toarray(), want, rtol=1e-12, atol=1e-12)


@given(problems())
def test_sparse_jacobian_equals_dense(problem):
    x = problem.point()
    want = sg.jacfwd(problem.vector)(x)
    for mode in ("fwd", "rev"):
        assert_close(sparse_jacobian(problem.vector, x, mode=mode), want)


@given(problems())
def test_sparse_hessian_equals_dense(problem):
    x = problem.point()
    h = sparse_hessian(problem.scalar, x)
    assert_close(h, sg.hessian(problem.scalar)(x))
    assert (h != h.T).nnz == 0  # exactly symmetric


@pytest.mark.parametrize("f", [tridiagonal_energy, arrow_energy, lambda x: grid_energy(x, 3)])
def test_structured_hessians(f, rng):
    x = rng.uniform(-1.0, 1.0, 9)
    assert_close(sparse_hessian(f, x), sg.hessian(f)(x))


def test_grid_residual_jacobian(rng):
    x = rng.standard_normal(25)
    f = lambda x: grid_residual(x, 5)  # noqa: E731
    for mode in ("fwd", "rev"):
        assert_close(sparse_jacobian(f, x, mode=mode), sg.jacfwd(f)(x))


def test_given_pattern_skips_detection_and_keeps_structure(rng):
    x = rng.standard_normal(6)
    f = lambda x: np.sum(x[1:] * x[:-1])  # noqa: E731
    full = onp.abs(onp.subtract.outer(onp.arange(6), onp.arange(6))) <= 1  # with a diagonal
    h = sparse_hessian(f, x, sparsity=sp.csr_array(onp.triu(full)))  # symmetrized
    assert h.nnz == full.sum()  # zeros of the pattern are stored
    assert_close(h, sg.hessian(f)(x))
    g = lambda x: x[1:] ** 2  # noqa: E731
    pattern = onp.eye(5, 6, k=1, dtype=bool) | onp.eye(5, 6, dtype=bool)  # a superset
    j = sparse_jacobian(g, x, sparsity=pattern, mode="rev")
    assert j.nnz == 10
    assert_close(j, sg.jacfwd(g)(x))


def test_custom_and_compiled_products(rng):
    x = rng.uniform(0.1, 1.0, 5)
    f = lambda x: np.sum(np.sin(x[1:] * x[:-1])) + np.sum(x**3)  # noqa: E731
    hvp = sg.jit(lambda x, v: sg.hvp(f, (x,), (v,))[0])
    assert_close(sparse_hessian(f, x, product=hvp), sg.hessian(f)(x))
    g = lambda x: np.exp(x[1:]) * x[:-1]  # noqa: E731
    jvp = lambda x, v: sg.jvp(g, (x,), (v,))[1]  # noqa: E731
    vjp = lambda x, w: sg.vjp(g, x)[1](w)[0]  # noqa: E731
    assert_close(sparse_jacobian(g, x, product=jvp), sg.jacfwd(g)(x))
    assert_close(sparse_jacobian(g, x, mode="rev", product=vjp), sg.jacfwd(g)(x))


def test_recovery_from_compressed_products(rng):
    """The building blocks, for products computed any other way (e.g. batched)."""
    a = sp.random_array((8, 8), density=0.25, rng=rng) + sp.eye_array(8)
    h = (a + a.T).toarray()
    colors = star_coloring(h != 0)
    assert_close(recover_hessian(h != 0, colors, h @ seed_matrix(colors)), h)
    j = sp.random_array((5, 8), density=0.3, rng=rng).toarray()
    colors = column_coloring(j != 0)
    assert_close(recover_jacobian(j != 0, colors, j @ seed_matrix(colors)), j)


def test_errors_are_clear():
    x = onp.ones(4)
    with pytest.raises(ValueError, match="scalar-valued"):
        sparse_hessian(lambda x: x**2, x)
    with pytest.raises(ValueError, match="scalar-valued"):
        sparse_hessian(lambda x: (np.sum(x), np.sum(x)), x)
    with pytest.raises(ValueError, match=r"sparsity= has shape \(3, 3\), expected \(4, 4\)"):
        sparse_hessian(lambda x: np.sum(x**2), x, sparsity=onp.eye(3, dtype=bool))
    with pytest.raises(ValueError, match=r"sparsity= has shape \(4, 4\), expected \(3, 4\)"):
        sparse_jacobian(lambda x: x[1:], x, sparsity=onp.eye(4, dtype=bool))
    with pytest.raises(TypeError, match="sparsity="):
        sparse_jacobian(lambda x: x, x, sparsity="banded")
    with pytest.raises(ValueError, match="mode"):
        sparse_jacobian(lambda x: x, x, mode="both")
    with pytest.raises(ValueError, match="1-D"):
        sparse_jacobian(lambda x: x, onp.ones((2, 2)))
    with pytest.raises(ValueError, match="one array"):
        sparse_jacobian(lambda x: (x, x), x)
