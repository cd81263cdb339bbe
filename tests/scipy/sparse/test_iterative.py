"""Iterative solvers (cg, gmres, bicgstab, minres) differentiated implicitly (issue 3, item 3).

References are the dense formulas x = A^{-1} b, lam = A^{-T} g, A_bar = -lam x^T (restricted
to the stored entries), b_bar = lam, computed with numpy.linalg on ``A.toarray()``.
"""

from __future__ import annotations

import numpy as onp
import pytest
import scipy.sparse as sps
import scipy.sparse.linalg as spla
from hypothesis import given
from hypothesis import strategies as st

import scigrad as sg
import scigrad.numpy as np
import scigrad.scipy.sparse as sp
from scigrad.scipy.sparse.linalg import (
    ConvergenceError,
    LinearOperator,
    bicgstab,
    cg,
    gmres,
    minres,
)
from tests.strategies import arrays

TIGHT = 1e-12
METHODS = {"cg": cg, "gmres": gmres, "bicgstab": bicgstab, "minres": minres}


# -- test matrices --------------------------------------------------------------------------------
def symmetric_system(n: int, seed: int, definite: bool = True):
    """An SPD (or symmetric indefinite) sparse matrix parameterized by its upper triangle ``w``:
    ``build(w)`` is a CSR array whose (i, j) and (j, i) entries share one parameter."""
    rng = onp.random.default_rng(seed)
    upper = [(i, i) for i in range(n)] + [
        (i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.6
    ]
    rows = onp.array([i for i, j in upper] + [j for i, j in upper if i != j])
    cols = onp.array([j for i, j in upper] + [i for i, j in upper if i != j])
    index = onp.array(list(range(len(upper))) + [k for k, (i, j) in enumerate(upper) if i != j])
    w = rng.uniform(-1.0, 1.0, len(upper))
    diag = onp.arange(n) if not definite else onp.arange(n)
    w[:n] = (n + 1.0 + diag) * (1.0 if definite else onp.where(diag % 2 == 0, 1.0, -1.0))

    def build(w):
        return sp.coo_array((w[index], (rows, cols)), shape=(n, n)).tocsr()

    return build, w


def general_system(n: int, seed: int):
    """A nonsymmetric, diagonally dominant CSR matrix (values and pattern) and its data."""
    rng = onp.random.default_rng(seed)
    mask = rng.random((n, n)) < 0.5
    dense = onp.where(mask, rng.uniform(-1.0, 1.0, (n, n)), 0.0)
    dense[onp.diag_indices(n)] = n + 1.0 + onp.arange(n)
    return sp.csr_array(dense)


def dense_reference(A_dense, b, g, rows, cols):
    x = onp.linalg.solve(A_dense, b)
    lam = onp.linalg.solve(A_dense.T, g)
    return x, -lam[rows] * x[cols], lam


def jacobi(A: sp.SparseArray, kind: str):
    d = onp.asarray(A.to_scipy().diagonal())
    if kind == "none":
        return None
    if kind == "sparse":
        return sps.diags_array(1.0 / d)
    if kind == "scipy-operator":
        return spla.LinearOperator(A.shape, matvec=lambda v: v / d, rmatvec=lambda v: v / d)
    return LinearOperator(A.shape, matvec=lambda v, d: v / d, params=d)  # scigrad operator


# -- the seed: a 2x2 SPD matrix whose diagonal is not constant -------------------------------------
def test_seed_cg_gradient_is_right_with_a_nonconstant_diagonal():
    # The Julia user got wrong gradients through cg unless a11 == a22; here a11=6, a22=3.
    i, j = onp.array([0, 0, 1, 1]), onp.array([0, 1, 0, 1])
    u = onp.array([1.0, 1.0])
    values = onp.array([6.0, 1.0, 1.0, 3.0])

    def loss(v):
        return np.sum(cg(sp.coo_array((v, (i, j)), shape=(2, 2)).tocsr(), u, rtol=TIGHT)[0])

    def dense_loss(v):
        return onp.sum(onp.linalg.solve(v.reshape(2, 2), u))

    eps = 1e-6
    fd = [
        (dense_loss(values + eps * e) - dense_loss(values - eps * e)) / (2 * eps)
        for e in onp.eye(4)
    ]
    g = sg.grad(loss)(values)
    onp.testing.assert_allclose(g, fd, rtol=1e-8)
    _, exact, _ = dense_reference(values.reshape(2, 2), u, onp.ones(2), i, j)
    onp.testing.assert_allclose(g, exact, rtol=1e-10)
    # The full Jacobian dx/dA_ij = -A^{-1} e_i x_j, in both modes.
    x = onp.linalg.solve(values.reshape(2, 2), u)
    inv = onp.linalg.inv(values.reshape(2, 2))
    jac = onp.stack([-inv[:, r] * x[c] for r, c in zip(i, j, strict=True)], axis=1)

    def solution(v):
        return cg(sp.coo_array((v, (i, j)), shape=(2, 2)).tocsr(), u, rtol=TIGHT)[0]

    onp.testing.assert_allclose(sg.jacfwd(solution)(values), jac, rtol=1e-10)
    onp.testing.assert_allclose(sg.jacrev(solution)(values), jac, rtol=1e-10)


# -- agreement with the direct solve --------------------------------------------------------------
@pytest.mark.parametrize("precond", ["none", "sparse", "scipy-operator", "scigrad-operator"])
@pytest.mark.parametrize("method", ["cg", "gmres", "bicgstab", "minres"])
def test_gradients_equal_the_direct_solve_gradients(method, precond):
    n = 4
    if method in ("cg", "minres"):
        build, w = symmetric_system(n, seed=1)
        A = build(w)
    else:
        A = general_system(n, seed=2)
    M = jacobi(A, precond)
    b = onp.array([1.0, -2.0, 0.5, 3.0])
    weights = onp.array([0.3, -1.0, 2.0, 0.7])

    def loss(data, b):
        x, info = METHODS[method](sp.SparseArray(data, A.pattern), b, rtol=TIGHT, M=M)
        assert info == 0
        return np.sum(weights * x**2)

    value, (g_data, g_b) = sg.value_and_grad(loss, argnums=(0, 1))(A.data, b)
    x_ref = onp.linalg.solve(A.to_scipy().toarray(), b)
    _, data_ref, b_ref = dense_reference(
        A.to_scipy().toarray(), b, 2 * weights * x_ref, A.pattern.rows, A.pattern.cols
    )
    onp.testing.assert_allclose(value, onp.sum(weights * x_ref**2), rtol=1e-10)
    onp.testing.assert_allclose(g_data, data_ref, rtol=1e-9, atol=1e-12)
    onp.testing.assert_allclose(g_b, b_ref, rtol=1e-9, atol=1e-12)
    # Forward mode agrees too.
    t_data, t_b = onp.linspace(-1.0, 1.0, A.nnz), onp.array([0.5, 0.1, -0.3, 1.0])
    _, tangent = sg.jvp(loss, (A.data, b), (t_data, t_b))
    onp.testing.assert_allclose(tangent, g_data @ t_data + g_b @ t_b, rtol=1e-9)


def test_gradient_wrt_a_sparse_matrix_lives_on_its_pattern():
    A = general_system(4, seed=3)
    b = onp.ones(4)
    g = sg.grad(lambda A: np.sum(bicgstab(A, b, rtol=TIGHT)[0]))(A)
    assert isinstance(g, sp.SparseArray) and g.pattern is A.pattern
    _, ref, _ = dense_reference(
        A.to_scipy().toarray(), b, onp.ones(4), A.pattern.rows, A.pattern.cols
    )
    onp.testing.assert_allclose(g.data, ref, rtol=1e-9)


def test_coo_duplicates_each_get_the_cotangent_of_their_sum():
    row, col = onp.array([0, 0, 1, 1, 1]), onp.array([0, 1, 0, 1, 1])  # (1, 1) twice

    def loss(v):
        return np.sum(
            gmres(sp.coo_array((v, (row, col)), shape=(2, 2)), onp.ones(2), rtol=TIGHT)[0]
        )

    g = sg.grad(loss)(onp.array([6.0, 1.0, 2.0, 2.0, 1.0]))
    assert g[3] == pytest.approx(g[4], rel=1e-12)
    sg.check_grads(loss, (onp.array([6.0, 1.0, 2.0, 2.0, 1.0]),), order=2)


@given(st.integers(1, 4), st.integers(0, 10_000), arrays(4))
def test_random_spd_systems_match_the_dense_formula(n, seed, g):
    build, w = symmetric_system(n, seed)
    A = build(w)
    b = onp.linspace(1.0, 2.0, n)
    g = g[:n]
    _, pullback = sg.vjp(lambda d, b: cg(sp.SparseArray(d, A.pattern), b, rtol=TIGHT)[0], A.data, b)
    g_data, g_b = pullback(g)
    _, ref, lam = dense_reference(A.to_scipy().toarray(), b, g, A.pattern.rows, A.pattern.cols)
    onp.testing.assert_allclose(g_data, ref, rtol=1e-8, atol=1e-10)
    onp.testing.assert_allclose(g_b, lam, rtol=1e-8, atol=1e-10)


# -- check_grads, first and second order, both modes --------------------------------------------
@pytest.mark.parametrize("precond", ["none", "sparse"])
def test_cg_check_grads_to_second_order(precond):
    build, w = symmetric_system(4, seed=4)
    M = jacobi(build(w), precond)

    def f(w, b):
        return cg(build(w), b, rtol=TIGHT, M=M)[0]

    sg.check_grads(f, (w, onp.array([1.0, -1.0, 0.5, 2.0])), order=2)


@pytest.mark.parametrize("precond", ["none", "sparse", "scipy-operator"])
@pytest.mark.parametrize("method", ["gmres", "bicgstab"])
def test_nonsymmetric_check_grads_to_second_order(method, precond):
    A = general_system(4, seed=5)
    M = jacobi(A, precond)

    def f(data, b):
        return METHODS[method](sp.SparseArray(data, A.pattern), b, rtol=TIGHT, M=M)[0]

    sg.check_grads(f, (A.data, onp.array([1.0, -1.0, 0.5, 2.0])), order=2)


def test_minres_on_an_indefinite_matrix_with_a_shift_to_second_order():
    build, w = symmetric_system(4, seed=6, definite=False)
    assert onp.any(onp.linalg.eigvalsh(build(w).toarray()) < 0)

    def f(w, b):
        return minres(build(w), b, rtol=TIGHT, shift=0.25)[0]

    sg.check_grads(f, (w, onp.array([1.0, -1.0, 0.5, 2.0])), order=2)
    A = build(w).toarray() - 0.25 * onp.eye(4)
    onp.testing.assert_allclose(f(w, onp.ones(4)), onp.linalg.solve(A, onp.ones(4)), rtol=1e-9)


# -- matrix-free operators ------------------------------------------------------------------------
def _stencil(v, p):
    # A(p) v = d * v + a * shift(v, 1) + c * shift(v, -1): nonsymmetric unless a == c.
    d, a, c = p["d"], p["a"], p["c"]
    return d * v + a * np.roll(v, 1) + c * np.roll(v, -1)


def _stencil_t(v, p):
    d, a, c = p["d"], p["a"], p["c"]
    return d * v + np.roll(a * v, -1) + np.roll(c * v, 1)


def _stencil_dense(p, n):
    eye = onp.eye(n)
    return onp.diag(p["d"]) + p["a"] * onp.roll(eye, 1, axis=0) + p["c"] * onp.roll(eye, -1, axis=0)


PARAMS = {"d": onp.array([4.0, 5.0, 6.0, 4.5]), "a": onp.float64(0.7), "c": onp.float64(-0.4)}


@pytest.mark.parametrize("with_rmatvec", [True, False])
@pytest.mark.parametrize("method", ["gmres", "bicgstab"])
def test_matrix_free_operator_check_grads(method, with_rmatvec):
    rmatvec = _stencil_t if with_rmatvec else None

    def f(p, b):
        A = LinearOperator((4, 4), matvec=_stencil, rmatvec=rmatvec, params=p)
        return METHODS[method](A, b, rtol=TIGHT)[0]

    b = onp.array([1.0, -1.0, 0.5, 2.0])
    onp.testing.assert_allclose(f(PARAMS, b), onp.linalg.solve(_stencil_dense(PARAMS, 4), b))
    sg.check_grads(f, (PARAMS, b), order=2)
    # Against the dense formulas: p_bar = -d/dp <lam, A(p) x>.
    g = onp.array([0.3, 1.0, -2.0, 0.5])
    _, pullback = sg.vjp(f, PARAMS, b)
    g_p, g_b = pullback(g)
    Ad = _stencil_dense(PARAMS, 4)
    x, lam = onp.linalg.solve(Ad, b), onp.linalg.solve(Ad.T, g)
    onp.testing.assert_allclose(g_b, lam, rtol=1e-9)
    onp.testing.assert_allclose(g_p["d"], -lam * x, rtol=1e-9)
    onp.testing.assert_allclose(g_p["a"], -lam @ onp.roll(x, 1), rtol=1e-9)


def test_matrix_free_symmetric_operator_with_cg_and_minres():
    def f(p, b, method):
        q = {"d": p["d"], "a": p["a"], "c": p["a"]}  # symmetric for every p
        A = LinearOperator((4, 4), matvec=_stencil, params=q)
        return METHODS[method](A, b, rtol=TIGHT)[0]

    p = {"d": PARAMS["d"], "a": PARAMS["a"]}
    b = onp.array([1.0, -1.0, 0.5, 2.0])
    for method in ("cg", "minres"):
        sg.check_grads(lambda p, b, method=method: f(p, b, method), (p, b), order=2)


def test_dense_and_constant_operands():
    A = general_system(3, seed=7).to_scipy().toarray()
    b = onp.array([1.0, 2.0, -1.0])
    g = onp.array([0.5, -1.0, 2.0])
    x, lam = onp.linalg.solve(A, b), onp.linalg.solve(A.T, g)
    # A dense (traced) array: differentiable in all of A.
    _, pullback = sg.vjp(lambda A, b: gmres(A, b, rtol=TIGHT)[0], A, b)
    g_A, g_b = pullback(g)
    onp.testing.assert_allclose(g_A, -onp.outer(lam, x), rtol=1e-9)
    sg.check_grads(lambda A, b: bicgstab(A, b, rtol=TIGHT)[0], (A, b), order=2)
    # SciPy sparse arrays, dense ndarrays and SciPy LinearOperators are constants.
    for const in (sps.csr_array(A), A, spla.aslinearoperator(A)):
        _, pullback = sg.vjp(lambda b, const=const: gmres(const, b, rtol=TIGHT)[0], b)
        onp.testing.assert_allclose(pullback(g)[0], lam, rtol=1e-9)
    sg.check_grads(lambda b: bicgstab(sps.csr_array(A), b, rtol=TIGHT)[0], (b,), order=2)


def test_gradient_wrt_a_linear_operator_is_one_on_its_params():
    A = LinearOperator((4, 4), matvec=_stencil, rmatvec=_stencil_t, params=PARAMS)
    g = sg.grad(lambda A: np.sum(gmres(A, onp.ones(4), rtol=TIGHT)[0]))(A)
    assert isinstance(g, LinearOperator) and set(g.params) == {"d", "a", "c"}


# -- the backward pass is one solve, not a replay of the iterations -------------------------------
def _laplacian(n: int) -> sp.SparseArray:
    main, off = 2.2 * onp.ones(n), -onp.ones(n - 1)
    return sp.csr_array(sps.diags_array([off, main, off], offsets=[-1, 0, 1]).tocsr())


def test_backward_pass_costs_one_solve(monkeypatch):
    real = spla.cg
    matvecs: list[list[int]] = []

    def counting_cg(A, b, x0=None, **kwargs):
        op = spla.aslinearoperator(A)
        count = [0]
        matvecs.append(count)

        def mv(v):
            count[0] += 1
            return op.matvec(v)

        return real(spla.LinearOperator(op.shape, matvec=mv, dtype=op.dtype), b, x0, **kwargs)

    monkeypatch.setattr(spla, "cg", counting_cg)
    A = _laplacian(40)
    b = onp.linspace(-1.0, 1.0, 40)
    sg.value_and_grad(
        lambda d, b: np.sum(cg(sp.SparseArray(d, A.pattern), b, rtol=TIGHT)[0] ** 2), argnums=(0, 1)
    )(A.data, b)
    assert len(matvecs) == 2  # the forward solve and one adjoint solve
    forward, backward = matvecs[0][0], matvecs[1][0]
    assert forward >= 10
    assert backward <= 1.25 * forward + 2


@pytest.mark.parametrize("with_rmatvec", [True, False])
def test_matrix_free_backward_pass_costs_one_solve(with_rmatvec):
    calls = {"matvec": 0, "rmatvec": 0}
    n = 30

    def matvec(v, p):
        calls["matvec"] += 1
        return _stencil(v, p)

    def rmatvec(v, p):
        calls["rmatvec"] += 1
        return _stencil_t(v, p)

    p = {"d": 2.0 + onp.linspace(0.0, 1.0, n), "a": onp.float64(-0.9), "c": onp.float64(-0.6)}

    def loss(p, b):
        A = LinearOperator((n, n), matvec, rmatvec if with_rmatvec else None, params=p)
        return np.sum(bicgstab(A, b, rtol=TIGHT)[0] ** 2)

    _, pullback = sg.vjp(loss, p, onp.ones(n))
    forward = calls["matvec"]
    assert forward >= 10 and calls["rmatvec"] == 0
    pullback(1.0)
    backward_matvec = calls["matvec"] - forward
    if with_rmatvec:
        assert calls["rmatvec"] <= 1.25 * forward + 2
        assert backward_matvec == 1  # d/dp <lam, A(p) x>
    else:
        # the transposed matvec is one recording of matvec, replayed backwards per iteration
        assert backward_matvec == 2


# -- non-convergence and bad input --------------------------------------------------------------
def test_non_convergence_raises_in_the_forward_solve():
    A = general_system(4, seed=8)
    for name in ("cg", "bicgstab", "minres"):
        expected = rf"{name} did not converge in the forward solve after 1 iteration\(s\)"
        with pytest.raises(ConvergenceError, match=expected + r" \(maxiter=1\).*residual"):
            METHODS[name](A, onp.ones(4), maxiter=1, rtol=TIGHT)
    with pytest.raises(ConvergenceError, match="gmres did not converge") as info:
        gmres(A, onp.ones(4), maxiter=1, restart=1, rtol=TIGHT)
    assert info.value.method == "gmres" and info.value.residual > TIGHT
    assert isinstance(info.value, RuntimeError)


def test_non_convergence_raises_in_the_adjoint_and_tangent_solves():
    # b is an eigenvector of A: the forward solve converges in one step, the others do not.
    A = sp.csr_array(onp.diag([1.0, 2.0, 3.0, 4.0]))
    b = onp.array([1.0, 0.0, 0.0, 0.0])

    def x_of(data, b):
        return cg(sp.SparseArray(data, A.pattern), b, maxiter=2, rtol=TIGHT)[0]

    onp.testing.assert_allclose(x_of(A.data, b), b)
    with pytest.raises(ConvergenceError, match=r"cg did not converge in the adjoint solve"):
        sg.grad(lambda d: np.sum(x_of(d, b)))(A.data)
    with pytest.raises(ConvergenceError, match=r"in the tangent solve \(forward mode\)"):
        sg.jvp(lambda b: x_of(A.data, b), (b,), (onp.ones(4),))


def test_callback_sees_the_forward_solve_only():
    A = general_system(4, seed=9)
    seen = []
    sg.grad(lambda b: np.sum(bicgstab(A, b, rtol=TIGHT, callback=seen.append)[0]))(onp.ones(4))
    n_forward = len(seen)
    assert n_forward >= 1
    gmres(A, onp.ones(4), rtol=TIGHT, callback=seen.append, callback_type="x")
    assert len(seen) > n_forward


def test_bad_input():
    A = general_system(3, seed=10)
    with pytest.raises(ValueError, match="square"):
        cg(sp.csr_array(onp.ones((2, 3))), onp.ones(2))
    with pytest.raises(ValueError, match=r"b has shape \(4,\), expected \(3,\)"):
        gmres(A, onp.ones(4))
    with pytest.raises(ValueError, match="x0 has shape"):
        gmres(A, onp.ones(3), x0=onp.ones(2))
    with pytest.raises(ValueError, match="contains NaN or inf"):
        cg(sp.SparseArray(onp.where(A.data > 3, onp.nan, A.data), A.pattern), onp.ones(3))
    with pytest.raises(ValueError, match="right-hand side b contains NaN"):
        cg(A, onp.array([1.0, onp.inf, 0.0]))
    with pytest.raises(ValueError, match=r"M has shape \(2, 2\)"):
        cg(A, onp.ones(3), M=onp.eye(2))
    with pytest.raises(TypeError, match="M must be"):
        cg(A, onp.ones(3), M="jacobi")
    with pytest.raises(TypeError, match="A must be"):
        cg([[1.0, 0.0], [0.0, 1.0]], onp.ones(2))
    with pytest.raises(ValueError, match="maxiter must be a positive"):
        cg(A, onp.ones(3), maxiter=0)
    with pytest.raises(TypeError, match="shift is a constant"):
        sg.grad(lambda s: np.sum(minres(A, onp.ones(3), shift=s)[0]))(0.5)
    with pytest.raises(ValueError, match="shape must be"):
        LinearOperator((3,), lambda v: v)


def test_closure_over_a_traced_value_is_a_clear_error():
    def loss(s):
        A = LinearOperator((3, 3), matvec=lambda v: s * v)  # s should be passed as params
        return np.sum(cg(A, onp.ones(3))[0])

    with pytest.raises(TypeError, match="params="):
        sg.grad(loss)(2.0)


def test_transposed_preconditioner_must_exist_for_the_adjoint():
    A = general_system(3, seed=11)
    d = A.to_scipy().diagonal()
    M = spla.LinearOperator((3, 3), matvec=lambda v: v / d)  # no rmatvec
    gmres(A, onp.ones(3), M=M, rtol=TIGHT)  # the forward solve needs only M
    with pytest.raises(NotImplementedError, match="rmatvec"):
        sg.grad(lambda b: np.sum(gmres(A, b, M=M, rtol=TIGHT)[0]))(onp.ones(3))
