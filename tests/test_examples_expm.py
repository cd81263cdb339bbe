"""Smoke tests of examples/linear_ode_fit.py (`make demo-expm`) at tiny sizes: the script
runs, both fits lower the loss, the finite-difference checks pass, and both gradients are the
exact ones computed by hand with SciPy (Fréchet derivatives of expm)."""

from __future__ import annotations

from types import ModuleType

import numpy
import pytest
import scipy.linalg

import scigrad as sg
from tests._modules import load_script


@pytest.fixture(scope="module")
def example() -> ModuleType:
    # benchmarks/matfun.py loads the example under this name too: one module for both.
    return load_script("examples/linear_ode_fit.py", "_scigrad_examples_linear_ode_fit")


def loss_and_grad_of_a(
    a: numpy.ndarray, u0: numpy.ndarray, data: numpy.ndarray
) -> tuple[float, numpy.ndarray]:
    """``sum_t ||expm(A t) u0 - d_t||^2`` and its gradient in ``A`` by hand with SciPy:
    ``sum_t t L(t A^T, 2 r_t u0^T)`` (L: the Fréchet derivative of expm)."""
    total, g = 0.0, numpy.zeros_like(a)
    for k, t in enumerate((1.0, 2.0, 3.0, 4.0)):
        r = scipy.linalg.expm(a * t) @ u0 - data[k]
        total += float(r @ r)
        g += t * scipy.linalg.expm_frechet(t * a.T, numpy.outer(2.0 * r, u0), compute_expm=False)
    return total, g


def test_main_runs_both_models(example, capsys):
    assert example.main(["--states", "12", "--sparse-states", "400", "--iterations", "3"]) == 0
    out = capsys.readouterr().out
    assert "== dense: 12 states, 144 rates, expm" in out
    assert "== sparse: 400 states, 1,600 rates, expm_multiply" in out
    assert out.count("finite-difference check passed") == 2
    assert "x the loss" in out and "all good" in out


@pytest.mark.parametrize("which", ["dense", "sparse"])
def test_fit_lowers_the_loss_and_checks_the_gradient(example, which):
    if which == "dense":
        problem = example.dense_problem(10, seed=1)
    else:
        problem, _ = example.sparse_problem(300, seed=1)
    result = example.fit(problem, iterations=5, repeat=1, say=lambda msg: None)
    assert result.fd_ok and result.fd[2] < 1e-6
    assert result.decreased and result.loss < 0.5 * result.loss0
    assert result.history[0] == result.loss0 and len(result.history) == result.iterations + 1
    assert result.parameters == problem.theta0.size
    assert result.forward_s > 0 and result.gradient_s > 0


def test_dense_gradient_is_the_frechet_derivative(example):
    problem = example.dense_problem(8, seed=2)
    theta = problem.theta_true + 0.3 * numpy.random.default_rng(0).standard_normal((8, 8))
    value, grad = sg.value_and_grad(problem.loss)(theta)
    p = numpy.exp(theta)
    a = p - numpy.diag(p.sum(axis=1))
    expected_value, g_a = loss_and_grad_of_a(a, problem.u0, problem.data)
    # A_ij = p_ij - delta_ij sum_k p_ik and p = exp(theta)
    expected = p * (g_a - numpy.diag(g_a)[:, None])
    assert float(value) == pytest.approx(expected_value, rel=1e-12)
    numpy.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12 * abs(expected).max())


def test_sparse_gradient_is_the_frechet_derivative_on_the_edges(example):
    problem, graph = example.sparse_problem(20, seed=3)
    theta = problem.theta_true
    value, grad = sg.value_and_grad(problem.loss)(theta)
    assert grad.shape == (graph.edges,)
    a = graph.matrix(theta).toarray()
    p = numpy.exp(theta)
    expected_value, g_a = loss_and_grad_of_a(a, problem.u0, problem.data)
    r, c = graph.rows, graph.cols
    expected = p * (g_a[r, c] - g_a[r, r])
    assert float(value) == pytest.approx(expected_value, rel=1e-12)
    numpy.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12 * abs(expected).max())


def test_graph_is_a_ring_with_four_neighbours(example):
    graph = example.Graph.ring(16)  # s = 4: links +-1, +-4
    a = graph.matrix(numpy.zeros(graph.edges)).toarray()  # every rate 1
    numpy.testing.assert_allclose(a.sum(axis=1), 0.0, atol=1e-15)  # mass is conserved
    assert (numpy.diag(a) == -4.0).all() and (a != 0).sum() == 16 * 5
    assert a[0, 1] == a[0, 15] == a[0, 4] == a[0, 12] == 1.0
    with pytest.raises(ValueError, match="at least 5 states"):
        example.Graph.ring(4)


@pytest.mark.parametrize(
    "argv",
    [["--states", "1"], ["--sparse-states", "3"], ["--iterations", "0"], ["--states", "-2"]],
)
def test_rejects_bad_options(example, argv):
    with pytest.raises(SystemExit):
        example.main(argv)
