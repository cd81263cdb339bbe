"""Colorings: validity (distance-2 for Jacobian columns and rows, star for Hessians, checked
by brute force), few colors on banded and arrow structures, and clear errors."""

from __future__ import annotations

import itertools

import numpy as onp
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scigrad.sparsity import (
    column_coloring,
    hessian_sparsity,
    is_column_coloring,
    is_star_coloring,
    jacobian_sparsity,
    row_coloring,
    star_coloring,
)

from ._functions import grid_energy, grid_residual

ORDERS = ("smallest_last", "largest_first", "natural")


def boolean_matrices(max_side: int = 9) -> st.SearchStrategy:
    shape = st.tuples(st.integers(1, max_side), st.integers(1, max_side))
    return shape.flatmap(lambda s: hnp.arrays(bool, s))


def symmetric_patterns(max_side: int = 9) -> st.SearchStrategy:
    def symmetrize(a):
        return a | a.T

    n = st.integers(1, max_side)
    return n.flatmap(lambda n: hnp.arrays(bool, (n, n))).map(symmetrize)


def columns_ok(p: onp.ndarray, colors: onp.ndarray) -> bool:
    """Brute force: within every row, the columns' colors are distinct."""
    return all(len(set(colors[row])) == len(row) for row in (onp.flatnonzero(r) for r in p))


def star_ok(p: onp.ndarray, colors: onp.ndarray) -> bool:
    """Brute force: a distance-1 coloring without a bicolored path on four vertices."""
    n = len(p)
    adj = p & ~onp.eye(n, dtype=bool)
    nbrs = [onp.flatnonzero(adj[v]) for v in range(n)]
    if any(colors[v] == colors[w] for v in range(n) for w in nbrs[v]):
        return False
    for b in range(n):
        for a, c in itertools.permutations(nbrs[b], 2):
            for d in nbrs[c]:
                if d not in (a, b) and colors[a] == colors[c] and colors[b] == colors[d]:
                    return False
    return True


@given(boolean_matrices(), st.sampled_from(ORDERS))
def test_column_and_row_colorings_are_valid(p, order):
    colors = column_coloring(p, order)
    assert colors.shape == (p.shape[1],) and colors.dtype == onp.int64
    assert columns_ok(p, colors) and is_column_coloring(p, colors)
    rows = row_coloring(sp.csr_array(p), order)
    assert columns_ok(p.T, rows) and is_column_coloring(p.T, rows)


@given(symmetric_patterns(), st.sampled_from(ORDERS))
def test_star_colorings_are_valid(p, order):
    colors = star_coloring(p, order)
    assert colors.shape == (len(p),)
    assert star_ok(p, colors) and is_star_coloring(p, colors)


@given(symmetric_patterns(7), st.data())
def test_star_check_agrees_with_brute_force(p, data):
    colors = data.draw(hnp.arrays(onp.int64, len(p), elements=st.integers(0, 2)))
    assert is_star_coloring(p, colors) == star_ok(p, colors)
    assert is_column_coloring(p, colors) == columns_ok(p, colors)


def test_few_colors_on_banded_problems():
    n = 40
    idx = onp.arange(n)
    for half in (1, 2, 3):
        band = onp.abs(onp.subtract.outer(idx, idx)) <= half
        for order in ORDERS:
            assert column_coloring(band, order).max() + 1 == 2 * half + 1
            assert row_coloring(band, order).max() + 1 == 2 * half + 1
    tridiagonal = onp.abs(onp.subtract.outer(idx, idx)) <= 1
    for order in ORDERS:
        assert star_coloring(tridiagonal, order).max() + 1 <= 3
    arrow = onp.eye(n, dtype=bool)
    arrow[0] = arrow[:, 0] = True
    assert star_coloring(arrow).max() + 1 == 2  # the hub, then all leaves together
    # A dense first row: n column colors, but two row colors.
    dense_row = onp.eye(n, dtype=bool)
    dense_row[0] = True
    assert column_coloring(dense_row).max() + 1 == n
    assert row_coloring(dense_row).max() + 1 == 2


def test_grid_colorings():
    m = 20
    p = hessian_sparsity(lambda x: grid_energy(x, m), onp.zeros(m * m))
    colors = star_coloring(p)
    assert is_star_coloring(p, colors)
    assert colors.max() + 1 <= 6
    j = jacobian_sparsity(lambda x: grid_residual(x, m), onp.zeros(m * m))
    for order in ORDERS:  # the 5-point stencil needs 5 at least
        colors = column_coloring(j, order)
        assert is_column_coloring(j, colors) and colors.max() + 1 <= 7


def test_errors():
    with pytest.raises(ValueError, match="square"):
        star_coloring(onp.ones((2, 3), bool))
    with pytest.raises(ValueError, match="order"):
        column_coloring(onp.eye(2, dtype=bool), "random")
    with pytest.raises(ValueError, match="2-D"):
        column_coloring(onp.ones(3, bool))
