"""Sparsity detection: patterns equal the nonzeros of dense Jacobians and Hessians, hold for
all values (where/maximum keep both sides), follow the documented layout, and fail clearly."""

from __future__ import annotations

import numpy as onp
import pytest
import scipy.sparse as sp
from hypothesis import given

import scigrad as sg
import scigrad.numpy as np
from scigrad.core.graph import TracedControlFlowError
from scigrad.jit import NotCompilableError
from scigrad.sparsity import hessian_sparsity, jacobian_sparsity

from ._functions import arrow_energy, problems, tridiagonal_energy


def nonzeros(a) -> onp.ndarray:
    return onp.asarray(a) != 0


def dense(p: sp.csr_array) -> onp.ndarray:
    assert isinstance(p, sp.csr_array) and p.dtype == bool
    return p.toarray()


@given(problems())
def test_jacobian_pattern_equals_dense_nonzeros(problem):
    x = problem.point()
    pattern = jacobian_sparsity(problem.vector, x)
    onp.testing.assert_array_equal(dense(pattern), nonzeros(sg.jacfwd(problem.vector)(x)))


@given(problems())
def test_hessian_pattern_equals_dense_nonzeros(problem):
    x = problem.point()
    pattern = hessian_sparsity(problem.scalar, x)
    onp.testing.assert_array_equal(dense(pattern), nonzeros(sg.hessian(problem.scalar)(x)))


def test_banded_and_arrow_patterns():
    x = onp.linspace(0.1, 0.9, 7)
    tri = onp.abs(onp.subtract.outer(onp.arange(7), onp.arange(7))) <= 1
    onp.testing.assert_array_equal(dense(hessian_sparsity(tridiagonal_energy, x)), tri)
    arrow = onp.eye(7, dtype=bool)
    arrow[0, :] = arrow[:, 0] = True
    onp.testing.assert_array_equal(dense(hessian_sparsity(arrow_energy, x)), arrow)
    jac = jacobian_sparsity(lambda x: x[2:] - 2.0 * x[1:-1] + x[:-2] ** 3, x)
    band = (onp.arange(5)[:, None] <= onp.arange(7)) & (onp.arange(7) <= onp.arange(5)[:, None] + 2)
    onp.testing.assert_array_equal(dense(jac), band)


def test_patterns_hold_for_all_values():
    """Data-dependent choices keep both branches; comparisons carry no derivative."""

    def f(x):
        return np.sum(np.where(x[:3] > 0, x[:3] ** 2, x[3:] * x[0]))

    h = dense(hessian_sparsity(f, onp.ones(6)))
    want = onp.zeros((6, 6), bool)
    want[[0, 1, 2], [0, 1, 2]] = True  # x[:3] ** 2
    want[0, 3:] = want[3:, 0] = True  # x[3:] * x[0]
    onp.testing.assert_array_equal(h, want)
    for x in (onp.ones(6), -onp.ones(6)):  # each branch's Hessian lies inside the pattern
        assert not onp.any(nonzeros(sg.hessian(f)(x)) & ~h)


def test_piecewise_linear_and_constant_factors():
    x = onp.linspace(-1.0, 1.0, 4)
    # maximum, abs, scaling: first-order only.
    assert hessian_sparsity(lambda x: np.sum(np.maximum(x, 0.0) + 2.0 * np.abs(x)), x).nnz == 0
    assert jacobian_sparsity(lambda x: np.abs(x) * 3.0, x).nnz == 4
    # x * 0, comparisons, sign, floor and stop_gradient have no derivative.
    zero = jacobian_sparsity(
        lambda x: x * 0.0 + (x > 0) + np.sign(x) + np.floor(x) + sg.stop_gradient(x), x
    )
    assert zero.nnz == 0
    # A constant matrix's zeros do not create dependencies.
    a = onp.diag(onp.ones(4)) + onp.diag(onp.ones(3), 1)
    onp.testing.assert_array_equal(dense(jacobian_sparsity(lambda x: a @ x, x)), a != 0)


@pytest.mark.parametrize(
    ("f", "want"),
    [
        (lambda x: np.sum(x**1.0), onp.zeros((2, 2), bool)),
        (lambda x: np.sum(x**3), onp.eye(2, dtype=bool)),
        (lambda x: np.sum(2.0**x), onp.eye(2, dtype=bool)),
        (lambda x: x[0] ** x[1], onp.ones((2, 2), bool)),
        (lambda x: x[0] / x[1], onp.array([[False, True], [True, True]])),
        (lambda x: 1.0 / x[0] + x[1] / 3.0, onp.array([[True, False], [False, False]])),
        (lambda x: x[0] * x[1], ~onp.eye(2, dtype=bool)),
        (lambda x: np.sum(x * x), onp.eye(2, dtype=bool)),
        (lambda x: np.arctan2(x[0], x[1]), onp.ones((2, 2), bool)),
    ],
)
def test_hessian_rules_by_operation_class(f, want):
    x = onp.array([0.7, 1.3])
    onp.testing.assert_array_equal(dense(hessian_sparsity(f, x)), want)
    assert not onp.any(nonzeros(sg.hessian(f)(x)) & ~want)


def test_array_operations():
    x = onp.linspace(0.5, 1.5, 6)
    lower = onp.tril(onp.ones((6, 6), bool))
    onp.testing.assert_array_equal(dense(jacobian_sparsity(np.cumsum, x)), lower)
    scatter = dense(jacobian_sparsity(lambda x: x.at[onp.array([0, 2, 2])].add(x[3:] ** 2), x))
    want = onp.eye(6, dtype=bool)
    want[0, 3] = want[2, 4] = want[2, 5] = True
    onp.testing.assert_array_equal(scatter, want)
    rows = dense(jacobian_sparsity(lambda x: np.sum(np.reshape(x, (2, 3)) ** 2, axis=1), x))
    onp.testing.assert_array_equal(rows, onp.kron(onp.eye(2, dtype=bool), onp.ones((1, 3), bool)))
    cat = dense(jacobian_sparsity(lambda x: np.concatenate([x[4:], np.max(x[:2])[None]]), x))
    onp.testing.assert_array_equal(cat, onp.array([[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1],
                                                    [1, 1, 0, 0, 0, 0]], bool))  # fmt: skip


def test_sums_over_axes_constants_and_empty_axes():
    x = onp.ones(6)
    m = lambda x: np.reshape(x, (2, 3))  # noqa: E731
    empty = jacobian_sparsity(lambda x: np.sum(m(x)[:, :0], axis=1) + x[:2], x)
    onp.testing.assert_array_equal(dense(empty), onp.eye(2, 6, dtype=bool))
    const = jacobian_sparsity(lambda x: np.sum(x[0]) + np.sum(onp.zeros(3)) * x[1], x)
    onp.testing.assert_array_equal(dense(const), onp.eye(1, 6, dtype=bool))  # 0 * x[1]
    keep = jacobian_sparsity(lambda x: np.sum(m(x), axis=(0, 1), keepdims=True), x)
    assert keep.shape == (1, 6) and keep.nnz == 6
    cols = jacobian_sparsity(lambda x: np.sum(m(x) ** 2, axis=0), x)
    onp.testing.assert_array_equal(dense(cols), onp.tile(onp.eye(3, dtype=bool), 2))


def test_layout_over_pytrees_and_outputs():
    """Columns: input leaves flattened in C order, concatenated; rows likewise."""

    def f(params, k):
        w, b = params["w"], params["b"]
        return (w @ b, np.sum(b**2) * k[0])

    params = {"w": onp.ones((2, 3)), "b": onp.ones(3)}
    k = onp.arange(2)  # an integer leaf: no derivative, empty columns
    p = dense(jacobian_sparsity(f, params, k))
    assert p.shape == (3, 6 + 3 + 2)
    # Leaves in pytree order: a dict's by sorted key, so b (columns 0-2), w (3-8), k (9-10).
    want = onp.zeros((3, 11), bool)
    want[0, [0, 1, 2, 3, 4, 5]] = True  # sum_j w[0, j] * b[j]
    want[1, [0, 1, 2, 6, 7, 8]] = True
    want[2, [0, 1, 2]] = True
    onp.testing.assert_array_equal(p, want)
    h = dense(hessian_sparsity(lambda x, y: np.sum(x * y) + y[0] ** 3, onp.ones(2), onp.ones(2)))
    onp.testing.assert_array_equal(
        h, onp.array([[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 1, 0], [0, 1, 0, 0]], bool)
    )


def test_constant_and_identity_outputs():
    x = onp.ones(3)
    assert jacobian_sparsity(lambda x: 3.0, x).shape == (1, 3)
    assert jacobian_sparsity(lambda x: 3.0, x).nnz == 0
    onp.testing.assert_array_equal(dense(jacobian_sparsity(lambda x: x, x)), onp.eye(3, dtype=bool))
    assert hessian_sparsity(lambda x: np.sum(x), x).nnz == 0


def test_errors_are_clear():
    x = onp.ones(3)
    with pytest.raises(ValueError, match="scalar-valued"):
        hessian_sparsity(lambda x: x**2, x)
    with pytest.raises(NotCompilableError, match="'sort'.*sparsity="):
        jacobian_sparsity(np.sort, x)
    with pytest.raises(NotCompilableError, match="'det'"):
        hessian_sparsity(lambda x: np.linalg.det(np.reshape(x, (4, 4))), onp.ones(16))
    # 2x2 and 3x3 determinants are cofactor polynomials: ad - bc couples a-d and b-c.
    pattern = hessian_sparsity(lambda x: np.linalg.det(np.reshape(x, (2, 2))), onp.ones(4))
    onp.testing.assert_array_equal(dense(pattern), onp.eye(4)[::-1].astype(bool))

    def branchy(x):
        if x[0] > 0:
            return x
        return -x

    with pytest.raises(TracedControlFlowError, match="where"):
        jacobian_sparsity(branchy, x)
