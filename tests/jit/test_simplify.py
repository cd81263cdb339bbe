"""Array-level simplification of captured graphs: the same values, less work."""

from __future__ import annotations

import numpy as onp
import pytest

import scigrad as sg
import scigrad.numpy as np
from scigrad.core.graph import eval_graph, make_graph
from scigrad.jit._simplify import simplify_graph


def _names(graph):
    return [e.prim.name for e in graph.eqns]


def test_repeated_work_is_computed_once():
    g = simplify_graph(make_graph(lambda x: np.sin(x) * np.sin(x) + np.sin(x), onp.ones(3)))
    assert _names(g).count("sin") == 1


def test_unused_values_are_dropped_and_constants_folded():
    def f(x):
        unused = np.exp(x) * 3.0  # noqa: F841 - dead code on purpose
        return x * np.sum(np.exp(onp.ones(3)))

    g = simplify_graph(make_graph(f, onp.ones(3)))
    assert _names(g) == ["multiply"]
    onp.testing.assert_allclose(eval_graph(g, [onp.arange(3.0)])[0], onp.arange(3.0) * 3 * onp.e)


def test_parameters_and_constant_arrays_are_compared_by_value():
    def f(x):
        return np.sum(x, axis=0) + np.sum(x, axis=1) + x[onp.array([0, 1])].sum() + x[[0, 1]].sum()

    g = simplify_graph(make_graph(f, onp.ones((2, 2))))
    assert _names(g).count("sum") == 3 and _names(g).count("getitem") == 1


@pytest.mark.parametrize("transform", [sg.grad, sg.hessian])
def test_derivative_graphs_keep_their_values(transform, rng):
    w = rng.standard_normal((4, 4))

    def f(x):
        return np.sum(np.tanh(x @ w) ** 2) + np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2)

    x = rng.standard_normal(4)
    graph = make_graph(transform(f), x)
    simpler = simplify_graph(graph)
    assert len(simpler.eqns) < len(graph.eqns)
    onp.testing.assert_allclose(eval_graph(simpler, [x])[0], transform(f)(x), rtol=1e-13)
