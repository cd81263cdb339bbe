"""The sparse foundation: values differentiable on a static pattern (seeds 000 and 001)."""

from __future__ import annotations

import numpy as onp
import pytest

import scigrad as sg
import scigrad.numpy as np
import scigrad.scipy.sparse as sp

ROW, COL = onp.array([0, 0, 1, 1, 1]), onp.array([0, 1, 0, 1, 1])  # (1, 1) appears twice


def test_products_transposes_and_conversions_to_second_order():
    def f(v, x):
        A = sp.coo_array((v, (ROW, COL)), shape=(2, 2)).tocsr()
        X = np.stack([x, x * x], axis=1)
        return (
            np.sum((A @ x) ** 2)
            + x @ (A.T @ x)
            + np.sum(A.tocsc().toarray() ** 3)
            + np.sum((x[None, :] @ A) ** 2)
            + np.sum((2.0 * A / 3.0) @ X)
            + np.sum(A.tocoo().toarray())
        )

    sg.check_grads(f, (onp.array([6.0, 1.0, 1.0, 2.0, 1.0]), onp.array([0.3, -1.2])), order=2)


def test_duplicates_are_summed_and_share_the_cotangent():
    A = sp.coo_array((onp.array([6.0, 1.0, 1.0, 2.0, 1.0]), (ROW, COL)), shape=(2, 2)).tocsr()
    onp.testing.assert_array_equal(A.toarray(), [[6.0, 1.0], [1.0, 3.0]])
    g = sg.grad(lambda v: np.sum(sp.coo_array((v, (ROW, COL)), shape=(2, 2)).tocsr().toarray()
                                 * onp.array([[1.0, 2.0], [3.0, 4.0]])))(onp.ones(5))  # fmt: skip
    onp.testing.assert_array_equal(g, [1.0, 2.0, 3.0, 4.0, 4.0])


def test_gradient_wrt_a_sparse_matrix_lives_on_its_pattern():
    A = sp.coo_array((onp.array([6.0, 1.0, 1.0, 2.0, 1.0]), (ROW, COL)), shape=(2, 2)).tocsr()
    x = onp.array([0.3, -1.2])
    g = sg.grad(lambda A: np.sum(A @ x))(A)
    assert isinstance(g, sp.SparseArray) and g.pattern is A.pattern
    onp.testing.assert_allclose(g.data, x[A.pattern.cols])


def test_assembly_plan_is_cached_for_repeated_index_arrays():
    A1 = sp.coo_array((onp.ones(5), (ROW, COL)), shape=(2, 2))
    A2 = sp.coo_array((onp.arange(5.0), (ROW, COL)), shape=(2, 2))
    assert A1.pattern is A2.pattern
    assert A1.tocsr().pattern is A2.tocsr().pattern


def test_bad_input():
    with pytest.raises(IndexError, match="out of range"):
        sp.coo_array((onp.ones(2), (onp.array([0, 2]), onp.array([0, 1]))), shape=(2, 2))
    with pytest.raises(ValueError, match="values for"):
        sp.coo_array((onp.ones(3), (onp.array([0, 1]), onp.array([0, 1]))), shape=(2, 2))
    A = sp.csr_array(onp.eye(3))
    with pytest.raises(ValueError, match="dimension mismatch"):
        A @ onp.ones(2)
