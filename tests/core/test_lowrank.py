"""Low-rank cotangents of dense matrices: kept factored, correct wherever they flow."""

from __future__ import annotations

import tracemalloc

import numpy as onp
import pytest

import scigrad as sg
import scigrad.numpy as np


@pytest.fixture
def data(rng):
    m, n = 30, 20
    return rng.standard_normal((m, n)), rng.standard_normal(m), rng.standard_normal(n)


def test_bilinear_form_gradient_is_a_factored_outer_product(data):
    A, x, y = data
    for f in (lambda A: x @ A @ y, lambda A: x @ (A @ y), lambda A: np.sum((x @ A) * y)):
        g = sg.grad(f)(A)
        assert isinstance(g, sg.LowRankArray) and g.rank == 1
        onp.testing.assert_allclose(onp.asarray(g), onp.outer(x, y), rtol=1e-12)


def test_factors_accumulate_and_materialize_when_no_longer_cheaper(data):
    A, x, y = data
    g = sg.grad(lambda A: x @ A @ y + 2.0 * (y @ A.T @ x) - (x @ A) @ y)(A)
    assert isinstance(g, sg.LowRankArray) and g.rank == 3
    onp.testing.assert_allclose(onp.asarray(g), 2.0 * onp.outer(x, y), atol=1e-12)
    dense = sg.grad(lambda A: x @ A @ y + np.sum(A**2))(A)  # a dense contribution: dense result
    assert type(dense) is onp.ndarray
    onp.testing.assert_allclose(dense, onp.outer(x, y) + 2 * A, rtol=1e-12)


def test_dense_solve_cotangent_is_factored(rng):
    B, b = rng.standard_normal((25, 25)) + 10 * onp.eye(25), rng.standard_normal(25)
    g = sg.grad(lambda B: np.sum(np.linalg.solve(B, b)))(B)
    assert isinstance(g, sg.LowRankArray)
    lam = onp.linalg.solve(B.T, onp.ones(25))
    onp.testing.assert_allclose(onp.asarray(g), -onp.outer(lam, onp.linalg.solve(B, b)), rtol=1e-10)


@pytest.mark.parametrize(
    "build",
    [
        lambda M: M * 2.0,
        lambda M: np.tanh(M),
        lambda M: M[1:-1] * 0.5,
        lambda M: np.concatenate([M, M], axis=0)[5:35],
        lambda M: M - np.mean(M, axis=0),
        lambda M: (M.T @ onp.eye(30)).T,
    ],
)
def test_low_rank_cotangents_flow_through_other_rules(build, data, rng):
    # The factored cotangent reaches rules that know nothing about it; they must see a
    # correct array (finite differences are the judge).
    A, _, _ = data
    y = rng.standard_normal(20)

    def f(A):
        M = build(A)
        x = onp.linspace(-1, 1, M.shape[0])
        return x @ M @ y

    sg.check_grads(f, (A,), order=2)


def test_array_behaviour(data):
    A, x, y = data
    g = sg.grad(lambda A: x @ A @ y)(A)
    dense = onp.outer(x, y)
    v = onp.arange(20.0)
    onp.testing.assert_allclose(g @ v, dense @ v)
    onp.testing.assert_allclose(x @ g, x @ dense)
    onp.testing.assert_allclose(onp.asarray(g.T), dense.T)
    onp.testing.assert_allclose(A - 0.1 * g, A - 0.1 * dense)
    onp.testing.assert_allclose(g.sum(axis=0), dense.sum(axis=0))
    onp.testing.assert_allclose(g[3], dense[3])
    assert onp.shape(g) == (30, 20) and g.dtype == onp.float64
    onp.testing.assert_allclose(onp.sin(g), onp.sin(dense))


def test_higher_orders_see_dense_arrays(data):
    A, x, y = data
    h = sg.hessian(lambda a: x[:3] @ (a.reshape(3, 2) @ y[:2]) ** 2)(A[:3, :2].ravel())
    assert type(h) is onp.ndarray and h.shape == (6, 6)


def test_gradient_memory_stays_factored():
    n = 2000
    rng = onp.random.default_rng(0)
    A, x, y = rng.standard_normal((n, n)), rng.standard_normal(n), rng.standard_normal(n)
    tracemalloc.start()
    g = sg.grad(lambda A: x @ (A @ y))(A)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(g, sg.LowRankArray)
    assert peak < 0.1 * A.nbytes  # a dense n x n cotangent would be A.nbytes
