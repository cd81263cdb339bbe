"""expm_multiply: values, derivatives in every mode, memory and time (issue 4, item 2)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as onp
import pytest
import scipy.linalg as sl
import scipy.sparse as sps
import scipy.sparse.linalg as spla
from hypothesis import given
from hypothesis import strategies as st

import scigrad as sg
import scigrad.numpy as np
import scigrad.scipy.sparse as sp
from scigrad.scipy.sparse.linalg import _expm_multiply
from scigrad.scipy.sparse.linalg._expm_multiply import expm_multiply


# -- dense references (scipy.linalg.expm and the block-matrix Frechet identity) ----------------
def _times(start, stop, num, endpoint):
    if num is None:
        return onp.ones(1)
    return onp.linspace(start, stop, num, endpoint=endpoint)


def _frechet(a, e):
    """L(a, e) = d/de expm(a + e), from expm([[a, e], [0, a]]) (``e`` scaled to ``a``'s norm:
    L is linear in ``e``, and expm's accuracy is relative to the norm of the whole block)."""
    n = a.shape[0]
    c = onp.linalg.norm(e, 1) / max(onp.linalg.norm(a, 1), 1.0)
    if c == 0.0:
        return onp.zeros((n, n))
    return sl.expm(onp.block([[a, e / c], [onp.zeros((n, n)), a]]))[:n, n:] * c


def _ref_values(a, b, times):
    return onp.array([sl.expm(t * a) @ b for t in times])


def _ref_vjp(a, b, times, g):
    """(A_bar, B_bar, t_bar) of y_k = expm(t_k A) B for the cotangents g_k."""
    n = a.shape[0]
    b2 = b.reshape(n, -1)
    g3 = g.reshape(len(times), n, -1)
    a_bar = sum(_frechet(t * a.T, t * gk @ b2.T) for t, gk in zip(times, g3, strict=True))
    b_bar = sum(sl.expm(t * a.T) @ gk for t, gk in zip(times, g3, strict=True))
    t_bar = onp.array(
        [onp.vdot(gk, a @ sl.expm(t * a) @ b2) for t, gk in zip(times, g3, strict=True)]
    )
    return a_bar, b_bar.reshape(b.shape), t_bar


def _ref_jvp(a, b, times, da, db, dt):
    out = [
        _frechet(t * a, t * da) @ b + sl.expm(t * a) @ db + dtk * a @ sl.expm(t * a) @ b
        for t, dtk in zip(times, dt, strict=True)
    ]
    return onp.array(out)


def _random_sparse(rng, n, density=0.5):
    """A random sparse matrix (always with its diagonal) as SciPy CSR, and its dense copy."""
    mask = rng.random((n, n)) < density
    onp.fill_diagonal(mask, True)
    dense = onp.where(mask, rng.standard_normal((n, n)), 0.0)
    dense[mask & (dense == 0.0)] = 0.5
    return sps.csr_array(dense), dense


def _grid(start, stop, num, endpoint):
    if num is None:
        return {}
    return {"start": start, "stop": stop, "num": num, "endpoint": endpoint}


CASES = [
    # (start, stop, num, endpoint)
    (None, None, None, None),
    (0.0, 1.5, 4, True),
    (0.0, 1.5, 3, False),
    (0.5, -1.0, 4, True),
]


# -- values ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("k", [None, 2])
def test_values_equal_scipy(sparse, k):
    rng = onp.random.default_rng(0)
    s, a = _random_sparse(rng, 5)
    A = s if sparse else a
    b = rng.standard_normal(5 if k is None else (5, k))
    # The same SciPy computation: bit for bit.
    onp.testing.assert_array_equal(expm_multiply(A, b), spla.expm_multiply(A, b))
    grid = {"start": 0.0, "stop": 2.0, "num": 5, "endpoint": False}
    onp.testing.assert_array_equal(expm_multiply(A, b, **grid), spla.expm_multiply(A, b, **grid))
    # A grid starting elsewhere: the first point separately, then the rest (same values).
    grid = {"start": 0.5, "stop": 1.5, "num": 3}
    onp.testing.assert_allclose(
        expm_multiply(A, b, **grid), spla.expm_multiply(A, b, **grid), rtol=1e-13, atol=1e-14
    )
    assert expm_multiply(A, b, start=0.0, stop=1.0).shape == (50, *b.shape)  # num=50 default
    # A scigrad sparse array, in any format, gives the same values.
    if sparse:
        for make in (sp.coo_array, sp.csr_array, sp.csc_array):
            onp.testing.assert_allclose(
                expm_multiply(make(s), b), spla.expm_multiply(s, b), rtol=1e-14
            )


@pytest.mark.parametrize(
    "start, stop, num, endpoint",
    [(10.0, 10.1, 4, True), (1.0, -1.0, 5, True), (2.0, 0.0, 3, False), (-3.0, -1.0, 4, True)],
)
def test_grids_scipy_gets_wrong_are_right(start, stop, num, endpoint):
    # SciPy sizes its steps by stop - start alone: inaccurate for start >> stop - start and
    # wrong for descending grids. scigrad computes e^{start A} B first.
    rng = onp.random.default_rng(1)
    a = rng.standard_normal((4, 4))
    b = rng.standard_normal(4)
    got = expm_multiply(a, b, start=start, stop=stop, num=num, endpoint=endpoint)
    expected = _ref_values(a, b, _times(start, stop, num, endpoint))
    onp.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * onp.abs(expected).max())


def test_degenerate_grids_and_matrices():
    a = onp.array([[0.0, 1.0], [-1.0, 0.0]])
    b = onp.array([1.0, 2.0])
    got = expm_multiply(a, b, start=0.7, stop=0.7, num=3)
    onp.testing.assert_allclose(got, onp.tile(sl.expm(0.7 * a) @ b, (3, 1)), rtol=1e-14)
    onp.testing.assert_array_equal(expm_multiply(onp.zeros((3, 3)), onp.ones(3)), onp.ones(3))
    sg.check_grads(lambda a: expm_multiply(a, onp.ones(3)), (onp.zeros((3, 3)),), order=2)
    sg.check_grads(
        lambda a, s, t: expm_multiply(a, b, start=s, stop=t, num=3),
        (a, onp.array(0.7), onp.array(0.7)),
        order=2,
    )


# -- gradients against the dense Frechet formulas ------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("k", [None, 2])
@pytest.mark.parametrize("start, stop, num, endpoint", CASES)
def test_vjp_and_jvp_match_frechet_formulas(sparse, k, start, stop, num, endpoint):
    rng = onp.random.default_rng(2)
    n = 4
    s, a = _random_sparse(rng, n)
    b = rng.standard_normal(n if k is None else (n, k))
    times = _times(start, stop, num, endpoint)
    pattern = sp.csr_array(s).pattern
    rows, cols = pattern.rows, pattern.cols
    t0 = onp.array(0.0 if start is None else start)
    t1 = onp.array(0.0 if stop is None else stop)

    def f(values, b, t0, t1):
        A = sp.SparseArray(values, pattern) if sparse else values
        if num is None:
            return expm_multiply(A, b)
        return expm_multiply(A, b, start=t0, stop=t1, num=num, endpoint=endpoint)

    x = s.data.copy() if sparse else a
    y, pullback = sg.vjp(f, x, b, t0, t1)
    onp.testing.assert_allclose(y, _ref_values(a, b, times).reshape(y.shape), rtol=1e-12)
    g = rng.standard_normal(y.shape)
    a_bar, b_bar, t0_bar, t1_bar = pullback(g)
    ra, rb, rt = _ref_vjp(a, b, times, g)
    onp.testing.assert_allclose(a_bar, ra[rows, cols] if sparse else ra, rtol=1e-11, atol=1e-12)
    onp.testing.assert_allclose(b_bar, rb, rtol=1e-11, atol=1e-12)
    if num is not None:
        c_stop = onp.arange(num) / (num - 1 if endpoint else num)
        onp.testing.assert_allclose([t0_bar, t1_bar], [rt @ (1 - c_stop), rt @ c_stop], rtol=1e-11)
    # Forward mode.
    da = rng.standard_normal(x.shape)
    db = rng.standard_normal(b.shape)
    d0, d1 = rng.standard_normal(2)
    _, dy = sg.jvp(f, (x, b, t0, t1), (da, db, onp.array(d0), onp.array(d1)))
    da_dense = onp.zeros((n, n))
    if sparse:
        da_dense[rows, cols] = da
    else:
        da_dense = da
    dt = onp.zeros(len(times)) if num is None else d0 + (d1 - d0) * c_stop
    expected = _ref_jvp(a, b, times, da_dense, db, dt)
    onp.testing.assert_allclose(dy, expected.reshape(dy.shape), rtol=1e-11, atol=1e-12)


def test_sparse_cotangent_stays_on_the_pattern():
    rng = onp.random.default_rng(3)
    s, a = _random_sparse(rng, 5, density=0.3)
    A = sp.csr_array(s)
    b = rng.standard_normal(5)
    g = sg.grad(lambda A: np.sum(expm_multiply(A, b, start=0.0, stop=1.0, num=3) ** 2))(A)
    assert isinstance(g, sp.SparseArray) and g.pattern is A.pattern
    y = _ref_values(a, b, _times(0.0, 1.0, 3, True))
    ra, _, _ = _ref_vjp(a, b, _times(0.0, 1.0, 3, True), 2 * y)
    onp.testing.assert_allclose(g.data, ra[A.pattern.rows, A.pattern.cols], rtol=1e-11)


# -- finite differences, every mode and order ---------------------------------------------------
def test_check_grads_dense_single_time():
    rng = onp.random.default_rng(4)
    a = rng.standard_normal((3, 3))
    sg.check_grads(expm_multiply, (a, rng.standard_normal(3)), order=2)
    sg.check_grads(expm_multiply, (a, rng.standard_normal((3, 2))), order=2)


def test_check_grads_sparse_grid_and_times():
    rng = onp.random.default_rng(5)
    s, _ = _random_sparse(rng, 4)
    pattern = sp.csr_array(s).pattern

    def f(values, b, t0, t1):
        return expm_multiply(sp.SparseArray(values, pattern), b, start=t0, stop=t1, num=3)

    args = (s.data.copy(), rng.standard_normal((4, 2)), onp.array(-0.3), onp.array(0.8))
    sg.check_grads(f, args, order=2)


def test_check_grads_one_argument_at_a_time():
    rng = onp.random.default_rng(6)
    a = rng.standard_normal((3, 3))
    b = rng.standard_normal(3)
    grid = {"start": 0.2, "stop": 1.0, "num": 3, "endpoint": False}
    sg.check_grads(lambda b: expm_multiply(a, b, **grid), (b,), order=2)
    sg.check_grads(lambda t: expm_multiply(a, b, start=0.0, stop=t, num=2), (onp.array(0.9),))
    sg.check_grads(lambda t: expm_multiply(a, b, start=t, stop=1.0, num=3), (onp.array(0.4),))


def test_check_grads_badly_scaled():
    # ||A|| ~ 1e3: a stiff, stable matrix (a scaled negative definite one plus a rotation).
    rng = onp.random.default_rng(7)
    m = rng.standard_normal((4, 4))
    a = -(m @ m.T + onp.eye(4)) * (1e3 / onp.linalg.norm(m @ m.T, 1))
    a += 50.0 * (onp.triu(m) - onp.triu(m).T)
    b = rng.standard_normal(4)
    assert onp.linalg.norm(a, 1) > 1e3
    sg.check_grads(lambda a, b: expm_multiply(a, b, start=0.0, stop=0.01, num=3), (a, b), order=2)
    a_bar, _, _ = _ref_vjp(a, b, onp.array([0.01]), onp.ones(4))
    got = sg.grad(lambda a: np.sum(expm_multiply(a, b, start=0.0, stop=0.01, num=2)[1]))(a)
    onp.testing.assert_allclose(got, a_bar, rtol=1e-10, atol=1e-13 * onp.abs(a_bar).max())


def test_hessian_of_a_fit_loss():
    rng = onp.random.default_rng(8)
    rates = rng.uniform(0.5, 1.5, 4)
    rows, cols = onp.array([0, 1, 1, 2]), onp.array([1, 0, 2, 1])
    u0 = rng.random(3)
    data = rng.random((3, 3))

    def loss(p):
        off = sp.csr_array((p, (rows, cols)), shape=(3, 3))
        A = off + sp.diags([-off.sum(axis=1)], [0], shape=(3, 3))
        return np.sum((expm_multiply(A, u0, start=0.0, stop=2.0, num=3) - data) ** 2)

    h = sg.hessian(loss)(rates)
    eps = 1e-5
    fd = onp.array(
        [(sg.grad(loss)(rates + eps * e) - sg.grad(loss)(rates - eps * e)) / (2 * eps)
         for e in onp.eye(4)]
    )  # fmt: skip
    onp.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-8)
    onp.testing.assert_allclose(h, h.T, rtol=1e-10, atol=1e-12)


@given(
    n=st.integers(1, 4),
    k=st.sampled_from([None, 1, 3]),
    num=st.sampled_from([None, 2, 4]),
    endpoint=st.booleans(),
    sparse=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_shapes(n, k, num, endpoint, sparse, seed):
    rng = onp.random.default_rng(seed)
    s, a = _random_sparse(rng, n)
    pattern = sp.csr_array(s).pattern
    b = rng.standard_normal(n if k is None else (n, k))
    t0, t1 = rng.uniform(-1.0, 1.5, 2)

    def f(x, b, t0, t1):
        A = sp.SparseArray(x, pattern) if sparse else x
        return expm_multiply(A, b, **_grid(t0, t1, num, endpoint))

    x = s.data.copy() if sparse else a
    y = f(x, b, t0, t1)
    expected = _ref_values(a, b, _times(t0, t1, num, endpoint))
    onp.testing.assert_allclose(y, expected.reshape(y.shape), rtol=1e-11, atol=1e-12)
    sg.check_grads(f, (x, b, onp.array(t0), onp.array(t1)), order=1)


# -- the adjoint sweep: long sweeps, checkpointing ---------------------------------------------
def test_checkpointing_gives_the_same_gradient(monkeypatch):
    rng = onp.random.default_rng(9)
    a = rng.standard_normal((5, 5)) * 3.0
    b = rng.standard_normal((5, 2))

    def grad():
        return sg.grad(lambda a: np.sum(expm_multiply(a, b, start=0.0, stop=4.0, num=3) ** 2))(a)

    stored = grad()
    monkeypatch.setattr(_expm_multiply, "_STORED_STARTS", 2)  # recursion three levels deep
    onp.testing.assert_allclose(grad(), stored, rtol=1e-12, atol=1e-12 * onp.abs(stored).max())
    y = _ref_values(a, b, _times(0.0, 4.0, 3, True))
    ra, _, _ = _ref_vjp(a, b, _times(0.0, 4.0, 3, True), 2 * y)
    onp.testing.assert_allclose(stored, ra, rtol=1e-10, atol=1e-12 * onp.abs(ra).max())


def _diffusion(n, rng):
    """A 1-D graph Laplacian with random rates (the seed's model on a chain): rows, cols, p."""
    i = onp.arange(n - 1)
    rows, cols = onp.concatenate([i, i + 1]), onp.concatenate([i + 1, i])
    return rows, cols, rng.uniform(0.5, 1.5, 2 * (n - 1))


def _best(f, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def _chain_loss(n, num, seed=10):
    """The seed's model on a chain of n states: du_i/dt = sum_j p_ij (u_j - u_i), fitted to
    data at num time points. Returns (loss(p, stop), p, SciPy matrix of p)."""
    rng = onp.random.default_rng(seed)
    rows, cols, p = _diffusion(n, rng)
    u0 = rng.random(n)
    data = rng.random((num, n))

    def loss(p, stop):
        off = sp.csr_array((p, (rows, cols)), shape=(n, n))
        A = off + sp.diags([-off.sum(axis=1)], [0], shape=(n, n))
        return np.sum((expm_multiply(A, u0, start=0.0, stop=stop, num=num) - data) ** 2)

    s = sps.csr_array((p, (rows, cols)), shape=(n, n))
    return loss, p, (s - sps.diags_array(s.sum(axis=1))).tocsr(), u0


def test_large_sparse_gradient_time():
    # The 10^5-state run is in the report; here 2 x 10^4 states keep the suite fast.
    n, num = 20_000, 4
    loss, p, s, u0 = _chain_loss(n, num)
    forward = _best(lambda: spla.expm_multiply(s, u0, start=0.0, stop=2.0, num=num))
    gradient = _best(lambda: sg.grad(loss)(p, 2.0))
    assert gradient <= 10 * forward, (gradient, forward)


def test_large_sparse_gradient_memory():
    # O(n) working memory (Taylor terms of one panel, quadrature nodes, <= 2 x 16 stored panel
    # starts) beside the O(nnz x time points) of the tape: bounded whatever the time span.
    n, num = 10_000, 4
    loss, p, _, _ = _chain_loss(n, num)

    def peak(stop):
        tracemalloc.start()
        sg.grad(loss)(p, stop)
        out = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out / (8 * n)  # in vectors of n values

    short, long = peak(1.0), peak(20.0)  # 1 and 9 Taylor panels
    assert short < 150 and long < 200, (short, long)


# -- bad input ----------------------------------------------------------------------------------
def test_bad_input_raises():
    a = onp.eye(3)
    b = onp.ones(3)
    with pytest.raises(ValueError, match="square"):
        expm_multiply(onp.ones((2, 3)), b)
    with pytest.raises(ValueError, match="square"):
        expm_multiply(sp.csr_array(onp.ones((2, 3))), b)
    with pytest.raises(ValueError, match="incompatible"):
        expm_multiply(a, onp.ones(4))
    with pytest.raises(ValueError, match="vector or a matrix"):
        expm_multiply(a, onp.ones((3, 1, 1)))
    with pytest.raises(TypeError, match="dense vector or matrix"):
        expm_multiply(a, sps.csr_array(onp.ones((3, 1))))
    with pytest.raises(TypeError, match="real"):
        expm_multiply(a * 1j, b)
    with pytest.raises(TypeError, match="real"):
        expm_multiply(a, b * 1j)
    with pytest.raises(ValueError, match="at least two time points"):
        expm_multiply(a, b, start=0.0, stop=1.0, num=1)
    with pytest.raises(ValueError, match="both start and stop"):
        expm_multiply(a, b, num=3)
    with pytest.raises(ValueError, match="scalar"):
        expm_multiply(a, b, start=onp.zeros(2), stop=1.0)
    with pytest.raises(TypeError, match="integer"):
        expm_multiply(a, b, start=0.0, stop=1.0, num=2.5)
    with pytest.raises(ValueError, match="NaN"):
        expm_multiply(a * onp.nan, b)
    with pytest.raises(ValueError, match="NaN"):
        expm_multiply(a, b * onp.inf)
    with pytest.raises(TypeError, match="LinearOperator"):
        expm_multiply(spla.aslinearoperator(a), b)
