"""Operations on sparse arrays: values against SciPy, derivatives against finite differences
(second order, both modes), cotangents that stay on the pattern, cached plans, memory at
n = 10^6, and bad input."""

from __future__ import annotations

import tracemalloc

import numpy as onp
import pytest
import scipy.sparse as sps
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scigrad as sg
import scigrad.numpy as np
import scigrad.scipy.sparse as sp
from scigrad.scipy.sparse._pattern import Plan
from tests.strategies import arrays

# A 4x4 matrix with a duplicate at (1, 1), and a second one with another pattern (a
# duplicate at (0, 0)) overlapping the first at (0, 0), (1, 1), (3, 3) and (3, 0).
ROW = onp.array([0, 0, 1, 2, 2, 1, 3, 3])
COL = onp.array([0, 2, 1, 0, 3, 1, 3, 0])
VA = onp.array([1.3, -0.7, 0.8, 1.1, -1.6, 0.5, 2.0, -0.9])  # summed (1, 1): 1.3
ROW_B = onp.array([0, 1, 1, 2, 3, 3, 0, 3])
COL_B = onp.array([0, 1, 3, 2, 3, 1, 0, 0])
VB = onp.array([0.9, -1.2, 0.6, 1.4, -0.8, 1.7, 0.4, 1.1])  # summed (0, 0): 1.3
_rng = onp.random.default_rng(7)
X = onp.sign(_rng.standard_normal((4, 4))) * _rng.uniform(0.5, 1.5, (4, 4))
XV = onp.array([0.7, -1.3, 0.4, 1.9])


def A_of(v, fmt="coo"):
    return sp.coo_array((v, (ROW, COL)), shape=(4, 4)).asformat(fmt)


def B_of(v):
    return sp.coo_array((v, (ROW_B, COL_B)), shape=(4, 4))


def _dense(r):
    return r.toarray() if hasattr(r, "toarray") else r


def _scipy(v, row, col, shape=(4, 4)):
    return sps.coo_array((v, (row, col)), shape=shape)


# -- the foundation's primitives: products, transposes, conversions -------------------------
@pytest.mark.parametrize("fmt", ["coo", "csr", "csc"])
def test_products_with_dense_operands_to_second_order(fmt):
    def f(v, x, Xm):
        A = A_of(v, fmt)
        return (
            A @ x,  # matrix-vector
            A @ Xm,  # matrix-matrix
            x @ A,  # vector-matrix
            Xm @ A,  # matrix-matrix from the left
            A.T @ (x * x),
            A.dot(x),
        )

    sg.check_grads(f, (VA, XV, X), order=2)
    S = _scipy(VA, ROW, COL)
    for got, want in zip(
        f(VA, XV, X), (S @ XV, S @ X, XV @ S, X @ S, S.T @ XV**2, S @ XV), strict=True
    ):
        onp.testing.assert_allclose(got, want, atol=1e-12)


def test_conversions_and_toarray_to_second_order():
    def f(v):
        A = A_of(v)
        return (
            A.toarray() ** 2,
            A.tocsr().data ** 3,
            A.tocsc().data,
            A.tocsr().tocoo().data * A.tocsr().data,
            A.tocsc().tocsr().toarray(),
            A.T.tocsr().toarray(),
        )

    sg.check_grads(f, (VA,), order=2)
    onp.testing.assert_allclose(A_of(VA).tocsc().toarray(), _scipy(VA, ROW, COL).toarray())


def test_seed_examples_2x2_from_triplets_and_sum_of_a_sparse_matrix():
    row, col = onp.array([0, 0, 1, 1]), onp.array([0, 1, 0, 1])
    p = onp.array([6.0, 1.0, 1.0, 3.0])

    def assembled(a):
        return sp.coo_array((a, (row, col)), shape=(2, 2)).tocsr()

    onp.testing.assert_array_equal(assembled(p).toarray(), [[6.0, 1.0], [1.0, 3.0]])
    onp.testing.assert_array_equal(sg.grad(lambda a: assembled(a).sum())(p), onp.ones(4))
    onp.testing.assert_array_equal(
        sg.grad(lambda a: np.sum(assembled(a).toarray()))(p), onp.ones(4)
    )
    onp.testing.assert_allclose(
        sg.grad(lambda a: np.sum(assembled(a) @ onp.array([1.0, 2.0])))(p), [1, 2, 1, 2]
    )
    sg.check_grads(lambda a: assembled(a).sum() * assembled(a)[0, 1], (p,), order=2)


def test_duplicates_each_get_the_cotangent_of_their_sum():
    W = onp.arange(16.0).reshape(4, 4)
    g = sg.grad(lambda v: np.sum(W * A_of(v).tocsr().toarray()))(VA)
    onp.testing.assert_array_equal(g, W[ROW, COL])  # both (1, 1) entries get W[1, 1]
    # Nonlinear functions of the values see the sums: d(s^2)/d(each duplicate) = 2 s.
    g = sg.grad(lambda v: A_of(v).power(2).sum())(VA)
    summed = A_of(VA).tocsr().toarray()
    onp.testing.assert_allclose(g, 2 * summed[ROW, COL])


# -- every operation: values against SciPy, derivatives against finite differences ----------
OPS = {
    "A + B": lambda s, A, B, X, x: A + B,
    "A - B (CSC)": lambda s, A, B, X, x: A.tocsc() - B,
    "B + A.T": lambda s, A, B, X, x: B + A.T,
    "A + A": lambda s, A, B, X, x: A + A,
    "A * B": lambda s, A, B, X, x: A * B,
    "A.multiply(B) (CSR)": lambda s, A, B, X, x: A.tocsr().multiply(B),
    "A.multiply(X)": lambda s, A, B, X, x: A.multiply(X),
    "A * x (rows)": lambda s, A, B, X, x: A * x,
    "x[:, None] * A": lambda s, A, B, X, x: A.multiply(x[:, None]),
    "A / X": lambda s, A, B, X, x: A / X,
    "A + X": lambda s, A, B, X, x: A + X,
    "X - A": lambda s, A, B, X, x: X - A,
    "A - x": lambda s, A, B, X, x: A - x,
    "scalars": lambda s, A, B, X, x: 2.5 * A - A / 4.0 + (-A) * 0.5,
    "A.power(3)": lambda s, A, B, X, x: A.power(3),
    "A ** 2": lambda s, A, B, X, x: A.tocsr() ** 2,
    "abs(A)": lambda s, A, B, X, x: abs(A),
    "A.sin()": lambda s, A, B, X, x: A.sin(),
    "A.tanh() (CSC)": lambda s, A, B, X, x: A.tocsc().tanh(),
    "A.expm1()": lambda s, A, B, X, x: A.expm1(),
    "diagonal": lambda s, A, B, X, x: A.diagonal(),
    "diagonal(1)": lambda s, A, B, X, x: A.diagonal(1),
    "diagonal(-3)": lambda s, A, B, X, x: A.tocsc().diagonal(-3),
    "trace": lambda s, A, B, X, x: A.trace(),
    "sum()": lambda s, A, B, X, x: A.sum(),
    "sum(axis=0)": lambda s, A, B, X, x: A.sum(axis=0),
    "sum(axis=1)": lambda s, A, B, X, x: A.tocsc().sum(axis=1),
    "mean(axis=-1)": lambda s, A, B, X, x: A.mean(axis=-1),
    "A[rows]": lambda s, A, B, X, x: A.tocsr()[[2, 0, 0]],
    "A[:, cols]": lambda s, A, B, X, x: A.tocsr()[:, [3, 1]],
    "A[rows][:, cols]": lambda s, A, B, X, x: A.tocsr()[[1, 3, 0]][:, [1, 3, 0]],
    "A[np.ix_] (CSC)": lambda s, A, B, X, x: A.tocsc()[onp.ix_([0, 3], [1, 0, 3])],
    "A[slices]": lambda s, A, B, X, x: A.tocsr()[1:4, ::-1],
    "A[mask]": lambda s, A, B, X, x: A.tocsr()[onp.array([True, False, True, True])],
    "A[i, j]": lambda s, A, B, X, x: A.tocsr()[1, 1] * A.tocsr()[2, 0] + A.tocsr()[3, 2],
    "A @ B": lambda s, A, B, X, x: A @ B,
    "A.T @ B (CSC)": lambda s, A, B, X, x: A.T.tocsc() @ B.tocsr(),
    "A @ A": lambda s, A, B, X, x: A.tocsr() @ A,
    "kron(A, B)": lambda s, A, B, X, x: s.kron(A, B),
    "kron(A, dense)": lambda s, A, B, X, x: s.kron(A, X[:2, :3], format="csr"),
    "tril, triu": lambda s, A, B, X, x: s.tril(A) - s.triu(B, 1),
    "hstack": lambda s, A, B, X, x: s.hstack([A, B]),
    "vstack": lambda s, A, B, X, x: s.vstack([A, B.T]),
    "bmat": lambda s, A, B, X, x: s.bmat([[A, None], [B, A.T]]),
    "block_diag": lambda s, A, B, X, x: s.block_diag([A, B]),
    "x^T A y": lambda s, A, B, X, x: x @ (A @ (x * x)),
    "x @ A @ y": lambda s, A, B, X, x: x @ A @ (x * x),
    "X @ A @ X": lambda s, A, B, X, x: X @ A.tocsc() @ X,
}


@pytest.mark.parametrize("op", OPS.values(), ids=OPS.keys())
def test_operation_values_and_derivatives(op):
    ours = op(sp, A_of(VA), B_of(VB), X, XV)
    theirs = op(sps, _scipy(VA, ROW, COL), _scipy(VB, ROW_B, COL_B), X, XV)
    assert isinstance(ours, sp.SparseArray) == sps.issparse(theirs)
    onp.testing.assert_allclose(_dense(ours), _dense(theirs), atol=1e-12)
    sg.check_grads(lambda a, b, Xm, x: _dense(op(sp, A_of(a), B_of(b), Xm, x)), (VA, VB, X, XV))


@pytest.mark.parametrize("op", OPS.values(), ids=OPS.keys())
def test_cotangents_of_sparse_operands_live_on_their_patterns(op):
    A, B = A_of(VA), B_of(VB)

    def loss(A, B):
        return np.sum(_dense(op(sp, A, B, X, XV)) ** 2)

    gA, gB = sg.grad(loss, argnums=(0, 1))(A, B)
    for g, M in ((gA, A), (gB, B)):
        assert isinstance(g, sp.SparseArray) and g.pattern is M.pattern
        assert g.data.shape == (M.nnz,)
    # The same numbers as differentiating the stored values directly.
    ga, gb = sg.grad(lambda a, b: loss(A_of(a), B_of(b)), argnums=(0, 1))(VA, VB)
    onp.testing.assert_allclose(gA.data, ga)
    onp.testing.assert_allclose(gB.data, gb)


def test_structural_results_keep_entries_that_are_zero():
    # SciPy drops the zeros that cancellations produce; scigrad's patterns never depend on
    # values (a zero now is not a zero after a step), so the entry stays, with its derivative.
    A = A_of(VA).tocsr()
    D = A - A.copy()
    assert D.nnz == A.nnz and not onp.any(D.toarray())
    assert (A - A).pattern is A.pattern
    g = sg.grad(lambda v: np.sum((A_of(v).tocsr() - A).data * onp.arange(7.0)))(VA)
    onp.testing.assert_array_equal(g, onp.arange(7.0)[A_of(VA).pattern.converted("csr")[1].target])


# -- random patterns --------------------------------------------------------------------------
@st.composite
def triplets(draw, shape, max_entries=8):
    m, n = shape
    k = draw(st.integers(0, max_entries))
    row = draw(hnp.arrays(onp.int64, k, elements=st.integers(0, m - 1)))
    col = draw(hnp.arrays(onp.int64, k, elements=st.integers(0, n - 1)))
    return draw(arrays(k, 0.5, 2.0)), row, col


@given(st.data())
def test_random_patterns_sums_products_selections(data):
    m, n, p = (data.draw(st.integers(1, 4)) for _ in range(3))
    a, ra, ca = data.draw(triplets((m, n)))
    b, rb, cb = data.draw(triplets((m, n)))
    c, rc, cc = data.draw(triplets((n, p)))
    rows = data.draw(st.lists(st.integers(0, m - 1), min_size=1, max_size=5))
    cols = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5))
    k = data.draw(st.integers(-m, n))
    fmt = data.draw(st.sampled_from(["coo", "csr", "csc"]))

    def ops(s, A, B, C):
        return (
            A + B,
            A - B.tocsc(),
            A.multiply(B),
            A @ C,
            A.T @ B,
            s.kron(A, C),
            A.tocsr()[rows][:, cols],
            A.tocsc()[onp.ix_(rows, cols)],
            A.diagonal(k),
            A.sum(axis=0),
            A.sum(axis=1),
        )

    def ours(a, b, c):
        A = sp.coo_array((a, (ra, ca)), shape=(m, n)).asformat(fmt)
        B = sp.coo_array((b, (rb, cb)), shape=(m, n))
        C = sp.coo_array((c, (rc, cc)), shape=(n, p))
        return tuple(_dense(r) for r in ops(sp, A, B, C))

    theirs = ops(
        sps, _scipy(a, ra, ca, (m, n)), _scipy(b, rb, cb, (m, n)), _scipy(c, rc, cc, (n, p))
    )
    for got, want in zip(ours(a, b, c), theirs, strict=True):
        onp.testing.assert_allclose(got, _dense(want), atol=1e-12)
    sg.check_grads(ours, (a, b, c), order=2)


@given(st.data())
def test_random_patterns_values_and_diags(data):
    m, n = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    a, ra, ca = data.draw(triplets((m, n)))
    signs = data.draw(hnp.arrays(onp.float64, a.shape, elements=st.sampled_from([-1.0, 1.0])))
    a = a * signs
    # Duplicates are summed before nonlinear functions: keep the sums away from 0.
    summed = _scipy(a, ra, ca, (m, n)).tocsr()
    if summed.nnz and onp.min(onp.abs(summed.data)) < 0.1:
        return
    offsets = data.draw(st.lists(st.integers(-m + 1, n - 1), min_size=1, max_size=3, unique=True))
    length = [min(m + k, n - k, m, n) for k in offsets]

    def ours(a, d):
        A = sp.coo_array((a, (ra, ca)), shape=(m, n))
        pieces, start = [], 0
        for L in length:
            pieces.append(d[start : start + L])
            start += L
        D = sp.diags(pieces, offsets, shape=(m, n))
        return (abs(A).toarray(), A.power(3).toarray(), A.sin().toarray(), (D + A).toarray())

    d = data.draw(arrays(sum(length)))
    got = ours(a, d)
    S = _scipy(a, ra, ca, (m, n))
    pieces = onp.split(d, onp.cumsum(length)[:-1])
    want = (abs(S), S.power(3), S.sin(), sps.diags_array(pieces, offsets=offsets, shape=(m, n)) + S)
    for g, w in zip(got, want, strict=True):
        onp.testing.assert_allclose(g, _dense(w), atol=1e-12)
    sg.check_grads(ours, (a, d), order=2)


# -- diags, eye, identity, kron ---------------------------------------------------------------
@pytest.mark.parametrize(
    "args, kwargs",
    [
        (([1.0, -2.0, 1.0], [-1, 0, 1]), {"shape": (4, 4)}),  # scalars broadcast
        (([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0], [1.0, 2.0]], [0, -1, 2]), {}),
        ((onp.array([1.0, 2.0, 3.0]), 1), {}),  # one diagonal, shape from its length
        (([onp.arange(1.0, 6.0)], [0]), {"shape": (3, 4)}),  # longer diagonal: truncated
        (([onp.array([2.0]), onp.ones(3)], [1, -1]), {"shape": (3, 5), "format": "csc"}),
        (([1, 2], [0, 2]), {"shape": (2, 3), "format": "coo"}),  # integers become floats
    ],
)
def test_diags_matches_scipy(args, kwargs):
    ours = sp.diags(*args, **kwargs)
    theirs = sps.diags_array(args[0], offsets=args[1], dtype=float, **kwargs)
    onp.testing.assert_array_equal(ours.toarray(), theirs.toarray())
    assert ours.format == kwargs.get("format", "csr") and ours.dtype == onp.float64


def test_diags_with_traced_diagonals_to_second_order():
    def f(main, off, s):
        T = sp.diags([off, main, off * s], [-1, 0, 1])
        return (T @ main, T.toarray(), sp.diags_array(s, offsets=2, shape=(4, 4)).toarray())

    sg.check_grads(f, (onp.array([2.0, 3.0, 4.0, 5.0]), onp.array([0.5, -1.0, 0.3]), 1.7))
    g = sg.grad(lambda m: sp.diags(m, 0).sum(axis=0) @ onp.arange(3.0))(onp.ones(3))
    onp.testing.assert_array_equal(g, [0.0, 1.0, 2.0])


def test_eye_and_identity_are_constants():
    for ours, theirs in [
        (sp.eye(3), sps.eye(3)),
        (sp.eye(3, 4, 1), sps.eye(3, 4, k=1)),
        (sp.eye_array(4, 2, k=-1, format="coo"), sps.eye_array(4, 2, k=-1)),
        (sp.identity(2, format="csc"), sps.identity(2)),
    ]:
        onp.testing.assert_array_equal(ours.toarray(), theirs.toarray())
    sg.check_grads(lambda x: (sp.eye(4) * 3.0 + A_of(x)) @ x[:4], (VA,))
    assert sp.identity(3).format == "csr" and sp.identity(2, format="csc").format == "csc"


def test_kron_values_are_products_of_pairs():
    A, B = A_of(VA), B_of(VB)
    K = sp.kron(A, B)
    assert K.nnz == A.nnz * B.nnz and K.shape == (16, 16)
    onp.testing.assert_allclose(K.data, onp.repeat(VA, 8) * onp.tile(VB, 8))
    onp.testing.assert_allclose(K.toarray(), onp.kron(A.toarray(), B.toarray()))


# -- x^T A y and memory -----------------------------------------------------------------------
def test_xTAy_gradients():
    def f(v, x, y):
        return x @ (A_of(v) @ y)

    gv, gx, gy = sg.grad(f, argnums=(0, 1, 2))(VA, XV, XV**2)
    onp.testing.assert_allclose(gv, XV[ROW] * (XV**2)[COL])  # x_i y_j on the pattern
    S = _scipy(VA, ROW, COL)
    onp.testing.assert_allclose(gx, S @ XV**2)
    onp.testing.assert_allclose(gy, S.T @ XV)
    sg.check_grads(f, (VA, XV, XV**2), order=2)


def _peak_bytes(f, *args):
    tracemalloc.start()
    try:
        f(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


N = 10**6


@pytest.fixture(scope="module")
def tridiagonal():
    """A 10^6 x 10^6 tridiagonal matrix from triplets (3·10^6 nonzeros), vectors x, y."""
    i = onp.arange(N)
    row = onp.concatenate([i, i[1:], i[:-1]])
    col = onp.concatenate([i, i[:-1], i[1:]])
    rng = onp.random.default_rng(0)
    return row, col, rng.standard_normal(row.size), rng.standard_normal(N), rng.standard_normal(N)


def test_gradient_of_xTAy_at_a_million_rows_is_O_nnz(tridiagonal):
    row, col, v, x, y = tridiagonal
    nnz = v.size

    def f(v, x, y):
        A = sp.coo_array((v, (row, col)), shape=(N, N)).tocsr()
        return x @ (A @ y) + (x @ A) @ y

    grad = sg.grad(f, argnums=(0, 1, 2))
    gv, gx, gy = grad(v, x, y)  # builds and caches the assembly plan
    peak = _peak_bytes(grad, v, x, y)
    assert peak < 8 * nnz * 8  # a few nnz-sized vectors...
    assert peak < 1e-4 * N * N * 8  # ...where a dense gradient would take 8 TB
    onp.testing.assert_allclose(gv[:5], 2 * x[row[:5]] * y[col[:5]])
    S = sps.coo_array((v, (row, col)), shape=(N, N)).tocsr()
    onp.testing.assert_allclose(gx, 2 * (S @ y))
    onp.testing.assert_allclose(gy, 2 * (S.T @ x))


def test_operations_at_a_million_rows_allocate_O_nnz(tridiagonal):
    # Sums and products with another pattern, selections, diagonals, reductions, diags with
    # traced diagonals, under reverse mode: the peak, plans included, stays a small multiple
    # of the stored values (a dense n x n array would take 8 TB).
    row, col, v, x, y = tridiagonal
    rng = onp.random.default_rng(1)
    keep = onp.flatnonzero(rng.random(N) < 0.9)
    other = sp.diags([rng.standard_normal(N - 2), rng.standard_normal(N)], [-2, 0], shape=(N, N))

    def loss(v, d, x, y):
        A = sp.coo_array((v, (row, col)), shape=(N, N)).tocsr()
        S = A + other - sp.diags(d, 0)
        K = S[keep][:, keep]
        return (
            x[keep] @ (K @ y[keep])
            + np.sum(A.multiply(other).data ** 2)
            + A.diagonal(-1) @ x[1:]
            + A.sum(axis=0) @ y
            + np.sum(A.multiply(y).data)
        )

    d = rng.standard_normal(N)
    grad = sg.grad(loss, argnums=(0, 1, 2, 3))
    peak = _peak_bytes(grad, v, d, x, y)
    assert peak < 60 * v.size * 8  # the tape's nnz-sized arrays, and the plans being built
    assert peak < 1e-3 * N * N * 8


# -- plans are computed once per pattern (or pair of patterns) ------------------------------
def test_plans_are_cached_on_patterns():
    def build(v, w):
        A = sp.coo_array((v, (ROW, COL)), shape=(4, 4))
        B = sp.coo_array((w, (ROW_B, COL_B)), shape=(4, 4))
        return (
            A + B,
            A.multiply(B),
            A @ B,
            sp.kron(A, B),
            A.tocsr()[[0, 2]][:, [1, 3]],
            A.tocsr()[onp.ix_([0, 2], [1, 3])],
            sp.diags([v[:3], w[:4]], [1, 0], shape=(4, 4)),
            sp.bmat([[A, B], [None, A]]),
        )

    first, second = build(VA, VB), build(VA * 2, VB - 1)
    for r1, r2 in zip(first, second, strict=True):
        assert r1.pattern is r2.pattern
    # Index arrays are matched by value, not identity.
    A = A_of(VA).tocsr()
    assert A[onp.array([0, 2])].pattern is A[[0, 2]].pattern


def test_sums_on_a_common_structure_keep_the_pattern():
    K = sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(5, 5))
    assert (K + sp.eye(5)).pattern is K.pattern  # eye's entries are a subset of K's
    assert (sp.eye(5) + K).pattern is K.pattern
    assert (K + K).pattern is K.pattern and (K.multiply(K)).pattern is K.pattern
    assert K.multiply(sp.eye(5)).pattern is sp.eye(5).pattern
    assert K[:, :].pattern is K.pattern


def test_plan_transpose_is_its_vjp():
    plan = Plan(onp.array([2, 0, 2, 1]), 3, False, onp.array([4, 0, 1, 3]), 5)
    assert plan.T.T is plan
    M = onp.zeros((3, 5))
    onp.add.at(M, (plan.target, plan.source), 1.0)  # the map as a matrix
    g = onp.array([1.0, 2.0, 3.0])
    from scigrad.scipy.sparse._array import scatter_entries_p

    x = onp.arange(5.0)
    onp.testing.assert_allclose(scatter_entries_p.bind(x, plan=plan), M @ x)
    onp.testing.assert_allclose(scatter_entries_p.bind(g, plan=plan.T), M.T @ g)
    sg.check_grads(lambda x: scatter_entries_p.bind(x, plan=plan) ** 2, (x + 1,), order=2)
    with pytest.raises(ValueError, match="in_size"):
        Plan(None, 3, False, onp.array([0, 1, 2]))
    with pytest.raises(ValueError, match="expects 5 stored values"):
        sg.eval_shape(lambda x: scatter_entries_p.bind(x, plan=plan), onp.ones(4))


def test_triplets_in_csr_order_convert_without_work():
    row, col = onp.array([0, 0, 1, 2]), onp.array([1, 2, 0, 2])
    v = onp.array([1.0, 2.0, 3.0, 4.0])
    assert sp.coo_array((v, (row, col)), shape=(3, 3)).tocsr().data is v


def test_transformations_of_functions_of_sparse_arrays():
    def f(v):
        A = A_of(v)
        return XV @ (A.power(2) @ XV) + np.sum(A.multiply(B_of(VB)).data ** 3)

    def dense(v):  # the same function on dense matrices
        D = A_of(v).toarray()
        return XV @ (D**2 @ XV) + np.sum((D * B_of(VB).toarray()) ** 3)

    onp.testing.assert_allclose(sg.hessian(f)(VA), sg.hessian(dense)(VA), atol=1e-10)
    J = sg.jacfwd(lambda v: A_of(v).tocsr() @ XV)(VA)
    onp.testing.assert_allclose(J, sg.jacrev(lambda v: A_of(v).tocsr() @ XV)(VA))
    onp.testing.assert_allclose(J @ VA, A_of(VA).toarray() @ XV)
    onp.testing.assert_allclose((onp.float64(2.0) * A_of(VA)).data, 2 * VA)
    onp.testing.assert_allclose((X * A_of(VA)).data, VA * X[ROW, COL])


# -- SciPy's other methods --------------------------------------------------------------------
def test_nnz_count_nonzero_copy_and_attributes():
    A = A_of(VA)
    S = _scipy(VA, ROW, COL)
    assert A.nnz == S.nnz == 8 and A.count_nonzero() == S.count_nonzero() == 7
    Z = sp.coo_array((onp.array([1.0, -1.0, 0.0]), ([0, 0, 1], [0, 0, 1])), shape=(2, 2))
    assert Z.count_nonzero() == 0 and Z.nnz == 3
    C = A.copy()
    assert C.pattern is A.pattern and C.data is not A.data
    onp.testing.assert_array_equal(A.row, ROW)
    onp.testing.assert_array_equal(A.coords[1], COL)
    R = A.tocsr()
    onp.testing.assert_array_equal(R.indptr, S.tocsr().indptr)
    onp.testing.assert_array_equal(R.indices, S.tocsr().indices)
    assert R.has_canonical_format and not A.has_canonical_format
    with pytest.raises(AttributeError, match="no 'indptr'"):
        _ = A.indptr
    with pytest.raises(AttributeError, match="no 'row'"):
        _ = R.row
    assert R.astype(onp.float32).dtype == onp.float32


def test_sum_duplicates_in_place():
    A = A_of(VA)
    assert A.sum_duplicates() is None and A.nnz == 7 and A.has_canonical_format
    S = _scipy(VA, ROW, COL)
    S.sum_duplicates()
    onp.testing.assert_array_equal(A.row, S.row)
    onp.testing.assert_array_equal(A.col, S.col)
    onp.testing.assert_allclose(A.data, S.data)

    def f(v):
        B = A_of(v)
        B.sum_duplicates()
        return B.data**2

    sg.check_grads(f, (VA,), order=2)


def test_eliminate_zeros_never_changes_a_traced_pattern():
    v = VA.copy()
    v[[1, 4]] = 0.0
    A = A_of(v).tocsr()
    A.eliminate_zeros()  # untraced: as SciPy
    S = _scipy(v, ROW, COL).tocsr()
    S.eliminate_zeros()
    assert A.nnz == S.nnz == 5
    onp.testing.assert_array_equal(A.indices, S.indices)

    def f(v):
        B = A_of(v).tocsr()
        B.eliminate_zeros()  # traced: the stored zeros stay, with their derivatives
        assert B.nnz == 7
        return np.sum(B.toarray() * X)

    g = sg.grad(f)(v)
    onp.testing.assert_allclose(g, X[ROW, COL])
    assert g[1] != 0.0 and g[4] != 0.0


def test_scipy_operands_mix_in():
    A, S = A_of(VA).tocsr(), _scipy(VB, ROW_B, COL_B).tocsr()
    for got, want in [
        (A + S, A.to_scipy() + S),
        (S + A, S + A.to_scipy()),
        (S @ A, S @ A.to_scipy()),
        (A.multiply(S), A.to_scipy().multiply(S)),
        (S * A, S * A.to_scipy()),
    ]:
        assert isinstance(got, sp.SparseArray)
        onp.testing.assert_allclose(got.toarray(), want.toarray())
    # A constant SciPy matrix gets one cached pattern, so its pairings are cached too.
    assert (A + S).pattern is (A + S).pattern


# -- bad input ----------------------------------------------------------------------------------
def test_bad_indices():
    with pytest.raises(IndexError, match="out of range"):
        sp.coo_array((onp.ones(2), (onp.array([0, 4]), onp.array([0, 1]))), shape=(4, 4))
    with pytest.raises(IndexError, match="out of range"):
        sp.coo_array((onp.ones(2), (onp.array([0, -1]), onp.array([0, 1]))), shape=(4, 4))
    with pytest.raises(ValueError, match="indices must be < 3"):
        sp.csr_array((onp.ones(2), onp.array([0, 5]), onp.array([0, 1, 2])), shape=(2, 3))
    with pytest.raises(TypeError, match="integer arrays"):
        sp.coo_array((onp.ones(2), (onp.array([0.0, 1.0]), onp.array([0, 1]))), shape=(2, 2))
    with pytest.raises(ValueError, match="equal length"):
        sp.coo_array((onp.ones(2), (onp.array([0, 1]), onp.array([0]))), shape=(2, 2))
    with pytest.raises(ValueError, match=r"got \(3,\) values for 2"):
        sp.coo_array((onp.ones(3), (onp.array([0, 1]), onp.array([0, 1]))), shape=(2, 2))
    with pytest.raises(ValueError, match="1-D array of 8 stored values"):
        sp.SparseArray(onp.ones(7), A_of(VA).pattern)
    with pytest.raises(NotImplementedError, match="complex"):
        sp.SparseArray(onp.ones(8, complex), A_of(VA).pattern)


def test_bad_shapes():
    A = A_of(VA)
    with pytest.raises(ValueError, match="dimension mismatch"):
        A @ onp.ones(3)
    with pytest.raises(ValueError, match="dimension mismatch"):
        onp.ones((2, 3)) @ A
    with pytest.raises(ValueError, match="dimension mismatch"):
        A @ sp.eye(3)
    with pytest.raises(ValueError, match="dimension mismatch"):
        A @ onp.ones((4, 2, 2))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        A + sp.eye(3)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        A - onp.ones((3, 4))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        A.multiply(sp.eye(4, 5))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        A * onp.ones(5)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        A / onp.ones((1, 4, 4))


def test_refused_operations():
    A = A_of(VA)
    with pytest.raises(NotImplementedError, match="nonzero scalar"):
        A + 1.0
    with pytest.raises(NotImplementedError, match="nonzero scalar"):
        sg.grad(lambda s: (A - s).sum())(1.0)
    onp.testing.assert_array_equal((A + 0).toarray(), A.toarray())
    with pytest.raises(NotImplementedError, match="zero power"):
        A.power(0)
    with pytest.raises(ValueError, match="scalar"):
        A.power(onp.ones(2))
    with pytest.raises(NotImplementedError, match="dividing by a sparse array"):
        A / A
    with pytest.raises(TypeError, match="immutable"):
        A.tocsr()[0, 0] = 1.0
    with pytest.raises(TypeError, match="not iterable"):
        list(A)
    with pytest.raises(np.exceptions.AxisError):
        A.sum(axis=2)
    with pytest.raises(TypeError, match="out="):
        A.sum(out=onp.zeros(4))
    with pytest.raises(ValueError, match="unsupported sparse format"):
        A.asformat("dia")
    with pytest.raises(TypeError, match="real floating"):
        A.astype(int)
    with pytest.raises(ValueError, match="axes"):
        A.transpose((0, 1))


def test_bad_selections():
    A = A_of(VA).tocsr()
    with pytest.raises(NotImplementedError, match="2-D"):
        A[1]
    with pytest.raises(NotImplementedError, match="2-D"):
        A[:, 2]
    with pytest.raises(IndexError):
        A[[0, 4]]
    with pytest.raises(IndexError, match="integers"):
        A[onp.array([0.0, 1.0])]
    with pytest.raises(IndexError):
        A[onp.array([True, False])]


def test_bad_diags_and_blocks():
    with pytest.raises(ValueError, match="Different number of diagonals and offsets"):
        sp.diags([[1.0, 2.0], [1.0]], [0])
    with pytest.raises(ValueError, match="Different number of diagonals and offsets"):
        sp.diags([[1.0, 2.0], [1.0]], 0)
    with pytest.raises(ValueError, match="duplicate"):
        sp.diags([1.0, 2.0], [0, 0], shape=(3, 3))
    with pytest.raises(ValueError, match="Diagonal length"):
        sp.diags([[1.0, 2.0]], [0], shape=(3, 3))
    with pytest.raises(ValueError, match="out of bounds"):
        sp.diags([[1.0, 2.0]], [5], shape=(3, 3))
    with pytest.raises(ValueError, match="out of bounds"):
        sp.eye(3, k=4)
    with pytest.raises(ValueError, match="scalar or a 1-D"):
        sp.diags([onp.ones((2, 2))], [0], shape=(2, 2))
    with pytest.raises(ValueError, match="incompatible row dimensions"):
        sp.bmat([[sp.eye(2), sp.eye(3)]])
    with pytest.raises(ValueError, match="incompatible column dimensions"):
        sp.vstack([sp.eye(2), sp.eye(3)])
    with pytest.raises(ValueError, match="is all None"):
        sp.bmat([[sp.eye(2), None], [None, None]])
    with pytest.raises(ValueError, match="same number of blocks"):
        sp.bmat([[sp.eye(2), None], [sp.eye(2)]])
    with pytest.raises(ValueError, match="2-D grid"):
        sp.bmat([sp.eye(2)])


def test_nan_and_inf_values_pass_through_as_in_scipy():
    # SciPy stores NaN and inf like any value; so does scigrad (the solvers reject them).
    v = VA.copy()
    v[2] = onp.nan
    v[4] = onp.inf
    A, S = A_of(v).tocsr(), _scipy(v, ROW, COL).tocsr()
    onp.testing.assert_array_equal(A @ XV, S @ XV)
    onp.testing.assert_array_equal(A.sum(axis=1), S.sum(axis=1))
    # The derivative of a bilinear quantity w.r.t. the values does not involve the values.
    g = sg.grad(lambda v: XV @ (A_of(v) @ XV))(v)
    onp.testing.assert_array_equal(g, XV[ROW] * XV[COL])
