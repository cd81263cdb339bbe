"""scigrad.numpy.linalg: values against NumPy, derivatives against finite differences (second
order, both modes) on well-conditioned random matrices, random sizes and batch shapes with
hypothesis, degenerate points (repeated eigenvalues, singular determinants) and errors."""

from __future__ import annotations

import numpy as onp
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scigrad as sg
import scigrad.numpy as snp
import scigrad.numpy.linalg as la
from tests.strategies import arrays, away_from, shapes

LinAlgError = onp.linalg.LinAlgError


# -- well-conditioned inputs ------------------------------------------------------------------
def _spd(rng, n, batch=()):
    """Symmetric positive definite: M M^T + n I."""
    m = rng.standard_normal(batch + (n, n))
    return m @ onp.swapaxes(m, -1, -2) + n * onp.eye(n)


def _general(rng, n, batch=()):
    """A non-symmetric, well-conditioned matrix (diagonally dominant)."""
    return rng.uniform(-1, 1, batch + (n, n)) + 2 * n * onp.eye(n)


def _separated_spectrum(m, n):
    """A symmetric matrix with eigenvalues 1, 2, ..., n and eigenvectors from ``m``."""
    q, _ = onp.linalg.qr(m + 3 * n * onp.eye(n))
    return q @ (onp.arange(1.0, n + 1)[:, None] * onp.swapaxes(q, -1, -2))


def _sq(x):
    # eigenvectors and singular vectors have arbitrary signs: test sign-invariant functions
    return x * x


_batches = st.sampled_from([(), (2,), (2, 1)])
_sizes = st.integers(1, 4)


# -- solve ------------------------------------------------------------------------------------
SOLVE_SHAPES = [
    ((3, 3), (3,)),
    ((3, 3), (3, 2)),
    ((1, 1), (1,)),
    ((2, 3, 3), (3,)),
    ((2, 3, 3), (3, 2)),
    ((2, 3, 3), (2, 3, 1)),
    ((3, 3), (2, 3, 2)),
    ((2, 1, 3, 3), (4, 3, 2)),
    # long stacks of small matrices: NumPy's vectorized solver instead of one LU each
    ((6, 3, 3), (3,)),
    ((6, 3, 3), (6, 3, 2)),
    ((3, 2, 2, 2), (2, 1)),
]


@pytest.mark.parametrize("sa,sb", SOLVE_SHAPES, ids=str)
def test_solve(sa, sb, rng):
    a = _general(rng, sa[-1], sa[:-2])
    b = rng.standard_normal(sb)
    onp.testing.assert_allclose(la.solve(a, b), onp.linalg.solve(a, b), rtol=1e-12)
    sg.check_grads(la.solve, (a, b), order=2)


def test_solve_in_each_argument_and_third_order(rng):
    a, b = _general(rng, 3), rng.standard_normal(3)
    sg.check_grads(lambda a: la.solve(a, b), (a,), order=2)
    sg.check_grads(lambda b: la.solve(a, b), (b,), order=2)
    sg.check_grads(lambda a, b: snp.sum(la.solve(a, b) ** 2), (a, b), order=3)


def test_solve_factorizes_once(rng, monkeypatch):
    """The forward pass factorizes; every derivative rule (first and second order, all
    combinations of modes) reuses that LU factorization."""
    real = la._lapack("getrf", onp.dtype(float))
    calls = []

    def counting_getrf(a, *args, **kwargs):
        calls.append(a.shape)
        return real(a, *args, **kwargs)

    monkeypatch.setitem(la._LAPACK, ("getrf", "d"), counting_getrf)
    a, b = _general(rng, 3), rng.standard_normal(3)

    def f(a):
        return snp.sum(la.solve(a, b) ** 2)

    u = rng.standard_normal((3, 3))
    once = {
        "grad": lambda: sg.grad(f)(a),
        "forward over reverse": lambda: sg.hvp(f, (a,), (u,)),
        "reverse over reverse": lambda: sg.grad(lambda a: snp.sum(sg.grad(f)(a) * u))(a),
        "forward over forward": lambda: sg.jvp(lambda a: sg.jvp(f, (a,), (u,))[1], (a,), (u,)),
    }
    for name, run in once.items():
        calls.clear()
        run()
        assert calls == [(3, 3)], name


def test_solve_gradient_values(rng):
    a, b = _general(rng, 3), rng.standard_normal(3)
    x = onp.linalg.solve(a, b)
    u = rng.standard_normal(3)
    ga, gb = sg.grad(lambda a, b: snp.sum(u * la.solve(a, b)), argnums=(0, 1))(a, b)
    lam = onp.linalg.solve(a.T, u)
    onp.testing.assert_allclose(gb, lam, rtol=1e-12)
    onp.testing.assert_allclose(ga, -onp.outer(lam, x), rtol=1e-12)


@given(data=st.data())
def test_solve_random_shapes(data):
    n, batch = data.draw(_sizes), data.draw(_batches)
    a = data.draw(arrays(batch + (n, n), -1.0, 1.0)) + 2 * n * onp.eye(n)
    vec = data.draw(st.booleans())
    b = data.draw(arrays((n,) if vec else batch + (n, data.draw(st.integers(1, 2)))))
    onp.testing.assert_allclose(la.solve(a, b), onp.linalg.solve(a, b), rtol=1e-10, atol=1e-12)
    sg.check_grads(la.solve, (a, b), order=2)


def test_solve_errors():
    with pytest.raises(LinAlgError, match="Singular matrix"):
        la.solve(onp.array([[1.0, 2.0], [2.0, 4.0]]), onp.ones(2))
    for count in (2, 8):  # one LU per matrix, and NumPy's batched solver
        stack = onp.stack([onp.eye(2)] * (count - 1) + [onp.zeros((2, 2))])
        with pytest.raises(LinAlgError, match="Singular matrix"):
            la.solve(stack, onp.ones(2))
    with pytest.raises(LinAlgError, match="square"):
        la.solve(onp.ones((2, 3)), onp.ones(2))
    with pytest.raises(LinAlgError, match="two-dimensional"):
        la.solve(onp.ones(3), onp.ones(3))
    with pytest.raises(ValueError, match="do not match"):
        la.solve(onp.eye(3), onp.ones(2))
    with pytest.raises(ValueError, match="do not match"):
        la.solve(onp.eye(3), onp.ones((2, 2)))
    with pytest.raises(ValueError, match="do not broadcast"):
        la.solve(onp.ones((2, 3, 3)), onp.ones((4, 3, 1)))
    # the error is raised under differentiation too, instead of NaN derivatives
    with pytest.raises(LinAlgError, match="Singular matrix"):
        sg.grad(lambda a: snp.sum(la.solve(a, onp.ones(2))))(onp.ones((2, 2)))


# -- inv ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 3, 3)], ids=str)
def test_inv(shape, rng):
    a = _general(rng, shape[-1], shape[:-2])
    onp.testing.assert_allclose(la.inv(a), onp.linalg.inv(a), rtol=1e-12)
    sg.check_grads(la.inv, (a,), order=2)


@given(data=st.data())
def test_inv_random_shapes(data):
    n, batch = data.draw(_sizes), data.draw(_batches)
    a = data.draw(arrays(batch + (n, n), -1.0, 1.0)) + 2 * n * onp.eye(n)
    onp.testing.assert_allclose(la.inv(a), onp.linalg.inv(a), rtol=1e-10, atol=1e-12)
    sg.check_grads(la.inv, (a,), order=2)


def test_inv_errors():
    with pytest.raises(LinAlgError, match="inv: Singular matrix"):
        la.inv(onp.zeros((2, 2)))
    with pytest.raises(LinAlgError, match="inv: Singular matrix"):
        la.inv(onp.zeros((2, 2, 2)))
    with pytest.raises(LinAlgError, match="square"):
        la.inv(onp.ones((2, 3)))


# -- det, slogdet -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 3), (2, 3, 3)], ids=str)
def test_det_and_slogdet(shape, rng):
    a = rng.standard_normal(shape) + 1.5 * onp.eye(shape[-1])
    onp.testing.assert_allclose(la.det(a), onp.linalg.det(a), rtol=1e-12)
    sign, logdet = la.slogdet(a)
    ref = onp.linalg.slogdet(a)
    onp.testing.assert_array_equal(sign, ref.sign)
    onp.testing.assert_allclose(logdet, ref.logabsdet, rtol=1e-12)
    sg.check_grads(la.det, (a,), order=2)
    sg.check_grads(lambda a: la.slogdet(a).logabsdet, (a,), order=2)


def test_det_and_slogdet_gradients(rng):
    a = _general(rng, 3)
    onp.testing.assert_allclose(
        sg.grad(la.det)(a), onp.linalg.det(a) * onp.linalg.inv(a).T, rtol=1e-10
    )
    onp.testing.assert_allclose(
        sg.grad(lambda a: la.slogdet(a)[1])(a), onp.linalg.inv(a).T, rtol=1e-10
    )
    sg.check_grads(la.det, (a,), order=3)


@given(data=st.data())
def test_det_random_shapes(data):
    n, batch = data.draw(_sizes), data.draw(_batches)
    a = data.draw(arrays(batch + (n, n), -1.0, 1.0)) + 2 * n * onp.eye(n)
    onp.testing.assert_allclose(la.det(a), onp.linalg.det(a), rtol=1e-10)
    sg.check_grads(la.det, (a,), order=2)
    sg.check_grads(lambda a: la.slogdet(a)[1], (a,), order=2)


def _cofactors(a):
    n = a.shape[0]
    c = onp.empty_like(a)
    for i in range(n):
        for j in range(n):
            minor = onp.delete(onp.delete(a, i, 0), j, 1)
            c[i, j] = (-1) ** (i + j) * onp.linalg.det(minor)
    return c


@pytest.mark.parametrize("rank", [0, 1, 2, 3])
def test_det_gradient_at_singular_matrices_is_the_adjugate(rank, rng):
    """The gradient of det is the cofactor matrix (transposed adjugate): finite and exact
    at singular matrices, where det(a) * inv(a).T is undefined."""
    a = rng.standard_normal((4, rank)) @ rng.standard_normal((rank, 4))
    g = sg.grad(la.det)(a)
    assert onp.all(onp.isfinite(g))
    onp.testing.assert_allclose(g, _cofactors(a), atol=1e-12)
    sg.check_grads(la.det, (a,), order=2)
    # batched, mixing a singular and a regular matrix
    stack = onp.stack([a, _general(rng, 4)])
    onp.testing.assert_allclose(
        sg.grad(lambda s: snp.sum(la.det(s)))(stack)[0], _cofactors(a), atol=1e-12
    )


def test_det_third_order_at_singular_matrix_is_refused(rng):
    a = rng.standard_normal((4, 2)) @ rng.standard_normal((2, 4))
    with pytest.raises(NotImplementedError, match="order 3"):
        sg.check_grads(la.det, (a,), order=3)


@pytest.mark.parametrize("n", [2, 3])
def test_small_det_is_a_polynomial_exact_at_every_order(n, rng):
    """2x2 and 3x3 determinants go by cofactors: third derivatives at singular matrices
    too, and sg.jit unrolls them (material laws: J = det F)."""
    a = rng.standard_normal((n, n - 1)) @ rng.standard_normal((n - 1, n))  # singular
    onp.testing.assert_allclose(la.det(a), 0.0, atol=1e-14)
    onp.testing.assert_allclose(sg.grad(la.det)(a), _cofactors(a), atol=1e-14)
    sg.check_grads(la.det, (a,), order=3)
    compiled = sg.jit(sg.hessian(la.det))
    onp.testing.assert_allclose(compiled(a), sg.hessian(la.det)(a), atol=1e-14)
    assert "for " not in compiled.lower(a).source  # unrolled scalar code


def test_slogdet_errors():
    s = onp.array([[1.0, 2.0], [2.0, 4.0]])
    ref = onp.linalg.slogdet(s)
    out = la.slogdet(s)
    assert out.sign == ref.sign and out.logabsdet == ref.logabsdet  # 0 and -inf, as NumPy
    with pytest.raises(LinAlgError, match="singular"):
        sg.grad(lambda a: la.slogdet(a).logabsdet)(s)
    with pytest.raises(LinAlgError, match="singular"):
        sg.jvp(lambda a: la.slogdet(a).logabsdet, (s,), (onp.ones((2, 2)),))
    with pytest.raises(LinAlgError, match="square"):
        la.det(onp.ones((3, 2)))


# -- cholesky ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 3, 3)], ids=str)
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky(shape, upper, rng):
    a = _spd(rng, shape[-1], shape[:-2])
    onp.testing.assert_allclose(
        la.cholesky(a, upper=upper), onp.linalg.cholesky(a, upper=upper), rtol=1e-12
    )
    sg.check_grads(lambda a: la.cholesky(a, upper=upper), (a,), order=2)


def test_cholesky_reads_one_triangle(rng):
    """Like NumPy, only the lower (upper) triangle is read: the other one has no derivative,
    and for inputs built symmetric the derivative is the usual symmetric one."""
    a = _spd(rng, 3)
    g = sg.grad(lambda a: snp.sum(la.cholesky(a) ** 3))(a)
    onp.testing.assert_array_equal(onp.triu(g, 1), 0.0)
    g = sg.grad(lambda a: snp.sum(la.cholesky(a, upper=True) ** 3))(a)
    onp.testing.assert_array_equal(onp.tril(g, -1), 0.0)
    m = rng.standard_normal((3, 3))
    sg.check_grads(lambda m: la.cholesky(m @ m.T + 3 * onp.eye(3)), (m,), order=2)
    # log det through the Cholesky factor agrees with slogdet
    g1 = sg.grad(lambda m: 2 * snp.sum(snp.log(_diag(la.cholesky(m @ m.T + onp.eye(3))))))(m)
    g2 = sg.grad(lambda m: la.slogdet(m @ m.T + onp.eye(3)).logabsdet)(m)
    onp.testing.assert_allclose(g1, g2, rtol=1e-10)


def _diag(x):
    return snp.sum(x * onp.eye(x.shape[-1]), axis=-1)


@given(data=st.data())
def test_cholesky_random_shapes(data):
    n, batch = data.draw(_sizes), data.draw(_batches)
    m = data.draw(arrays(batch + (n, n), -1.0, 1.0))
    a = m @ onp.swapaxes(m, -1, -2) + n * onp.eye(n)
    onp.testing.assert_allclose(la.cholesky(a), onp.linalg.cholesky(a), rtol=1e-10)
    sg.check_grads(la.cholesky, (a,), order=2)


def test_cholesky_errors():
    with pytest.raises(LinAlgError, match="not positive definite"):
        la.cholesky(-onp.eye(2))
    with pytest.raises(LinAlgError, match="square"):
        la.cholesky(onp.ones((2, 3)))


# -- eigh, eigvalsh -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 3, 3)], ids=str)
@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh(shape, uplo, rng):
    a = _spd(rng, shape[-1], shape[:-2])
    w, v = la.eigh(a, UPLO=uplo)
    ref = onp.linalg.eigh(a, UPLO=uplo)
    onp.testing.assert_allclose(w, ref.eigenvalues, rtol=1e-12)
    onp.testing.assert_allclose(onp.abs(v), onp.abs(ref.eigenvectors), atol=1e-12)
    assert isinstance(la.eigh(a), la.EighResult)
    onp.testing.assert_allclose(la.eigvalsh(a, uplo), onp.linalg.eigvalsh(a, uplo), rtol=1e-12)
    sg.check_grads(lambda a: la.eigh(a, UPLO=uplo).eigenvalues, (a,), order=2)
    sg.check_grads(lambda a: _sq(la.eigh(a, UPLO=uplo).eigenvectors), (a,), order=2)
    sg.check_grads(lambda a: la.eigvalsh(a, UPLO=uplo), (a,), order=2)


def test_eigh_of_symmetric_parametrization(rng):
    m = rng.standard_normal((3, 3))

    def f(m):
        w, v = la.eigh(m + m.T)
        return snp.sum(w * _sq(v))  # sign-invariant in v

    sg.check_grads(f, (m,), order=2)


@given(data=st.data())
def test_eigh_random_shapes(data):
    n, batch = data.draw(_sizes), data.draw(_batches)
    a = _separated_spectrum(data.draw(arrays(batch + (n, n), -1.0, 1.0)), n)
    onp.testing.assert_allclose(la.eigvalsh(a), onp.linalg.eigvalsh(a), rtol=1e-10)
    sg.check_grads(lambda a: la.eigh(a).eigenvalues, (a,), order=2)
    sg.check_grads(lambda a: _sq(la.eigh(a).eigenvectors), (a,), order=2)


def test_eigh_repeated_eigenvalues(rng):
    """Equal eigenvalues: the eigenvector derivative is undefined, but derivatives of
    functions of the eigenvalues stay finite and exact (the division by w_j - w_i is
    guarded)."""
    q, _ = onp.linalg.qr(rng.standard_normal((4, 4)))
    a = q @ onp.diag([1.0, 1.0, 1.0, 3.0]) @ q.T
    for f in (
        lambda a: snp.sum(la.eigvalsh(a)),
        lambda a: snp.sum(la.eigh(a).eigenvalues),
        lambda a: snp.sum(la.eigh(a, UPLO="U").eigenvalues),
    ):
        g = sg.grad(f)(a)
        onp.testing.assert_allclose(g, onp.eye(4), atol=1e-12)  # d trace(a) = I
        t = sg.jvp(f, (a,), (onp.ones((4, 4)),))[1]
        onp.testing.assert_allclose(t, 4.0, rtol=1e-12)
    # the sum of squares is ||a||_F^2; its gradient reads the lower triangle of 2a
    g = sg.grad(lambda a: snp.sum(la.eigvalsh(a) ** 2))(a)
    onp.testing.assert_allclose(g, 2 * onp.tril(a) + 2 * onp.tril(a, -1), atol=1e-12)
    sg.check_grads(lambda a: snp.sum(la.eigvalsh(a) ** 2), (a,), order=1)
    # a fully degenerate spectrum (the identity), in both modes
    assert onp.all(onp.isfinite(sg.jacrev(lambda a: la.eigh(a).eigenvalues)(onp.eye(3))))
    assert onp.all(onp.isfinite(sg.jacfwd(lambda a: la.eigh(a).eigenvectors)(onp.eye(3))))


def test_eigh_errors():
    with pytest.raises(ValueError, match="UPLO"):
        la.eigh(onp.eye(2), UPLO="X")
    with pytest.raises(LinAlgError, match="square"):
        la.eigvalsh(onp.ones((2, 3)))


# -- svd, pinv, qr ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 4), (2, 4, 2)], ids=str)
def test_svd(shape, rng):
    a = rng.standard_normal(shape)
    u, s, vh = la.svd(a, full_matrices=False)
    ref = onp.linalg.svd(a, full_matrices=False)
    onp.testing.assert_allclose(s, ref.S, rtol=1e-12)
    onp.testing.assert_allclose(u * s[..., None, :] @ vh, a, atol=1e-12)
    onp.testing.assert_allclose(la.svdvals(a), ref.S, rtol=1e-12)
    sg.check_grads(lambda a: la.svd(a, compute_uv=False), (a,), order=2)
    sg.check_grads(lambda a: _sq(la.svd(a, full_matrices=False).U), (a,), order=2)
    sg.check_grads(lambda a: _sq(la.svd(a, full_matrices=False).Vh), (a,), order=2)


def test_svd_errors():
    with pytest.raises(NotImplementedError, match="full_matrices=False"):
        la.svd(onp.ones((3, 2)))
    with pytest.raises(LinAlgError, match="two-dimensional"):
        la.svd(onp.ones(3))


@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4), (2, 3, 2)], ids=str)
def test_pinv(shape, rng):
    a = rng.standard_normal(shape)
    onp.testing.assert_allclose(la.pinv(a), onp.linalg.pinv(a), rtol=1e-10, atol=1e-12)
    sg.check_grads(la.pinv, (a,), order=2)


def test_pinv_at_repeated_singular_values_and_low_rank(rng):
    q, _ = onp.linalg.qr(rng.standard_normal((3, 3)))
    sg.check_grads(la.pinv, (2.0 * q,), order=2)  # all singular values equal
    x, y = rng.standard_normal((4, 2)), rng.standard_normal((2, 3))
    onp.testing.assert_allclose(la.pinv(x @ y), onp.linalg.pinv(x @ y), atol=1e-10)
    # rank 2 whatever x and y: the fixed-rank derivative is the derivative
    sg.check_grads(lambda x, y: la.pinv(x @ y), (x, y), order=2)


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (2, 4, 2)], ids=str)
def test_qr(shape, rng):
    a = rng.standard_normal(shape)
    q, r = la.qr(a)
    ref = onp.linalg.qr(a)
    onp.testing.assert_allclose(q, ref.Q, atol=1e-12)
    onp.testing.assert_allclose(r, ref.R, atol=1e-12)
    onp.testing.assert_allclose(la.qr(a, mode="r"), ref.R, atol=1e-12)
    sg.check_grads(lambda a: la.qr(a).Q, (a,), order=2)
    sg.check_grads(lambda a: la.qr(a).R, (a,), order=2)


def test_qr_errors():
    with pytest.raises(NotImplementedError, match="M >= N"):
        la.qr(onp.ones((2, 3)))
    with pytest.raises(NotImplementedError, match="mode"):
        la.qr(onp.ones((3, 2)), mode="complete")


# -- norm ----------------------------------------------------------------------------------------
VECTOR_ORDS = [None, 2, 1, onp.inf, -onp.inf, 3, 0.5, -2]


@pytest.mark.parametrize("ord", VECTOR_ORDS, ids=str)
def test_vector_norms(ord, rng):
    x = rng.uniform(0.3, 2.0, 5) * rng.choice([-1.0, 1.0], 5)
    x[2] = 2.5  # a unique largest entry
    x[4] = 0.1  # and a unique smallest one
    onp.testing.assert_allclose(la.norm(x, ord), onp.linalg.norm(x, ord), rtol=1e-12)
    sg.check_grads(lambda x: la.norm(x, ord), (x,), order=2)
    m = rng.uniform(0.3, 2.0, (3, 4))
    for axis in (0, 1, -1):
        for keepdims in (False, True):
            onp.testing.assert_allclose(
                la.norm(m, ord, axis, keepdims), onp.linalg.norm(m, ord, axis, keepdims)
            )
    sg.check_grads(lambda m: la.norm(m, ord, axis=1, keepdims=True), (m,), order=2)


@given(data=st.data())
def test_vector_norms_random_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3))
    x = away_from(data.draw(arrays(shape, -2.0, 2.0)), (0.0,), 0.2)
    ord = data.draw(st.sampled_from([None, 1, 2, 3, onp.inf]))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    keepdims = data.draw(st.booleans())
    if ord == onp.inf:  # distinct |x|, so that max is differentiable
        ranks = onp.argsort(onp.argsort(onp.abs(x).ravel(), kind="stable")).reshape(shape)
        x = onp.sign(x) * (0.5 + 0.1 * ranks)
    onp.testing.assert_allclose(
        la.norm(x, ord, axis, keepdims), onp.linalg.norm(x, ord, axis, keepdims), rtol=1e-12
    )
    sg.check_grads(lambda x: la.norm(x, ord, axis, keepdims), (x,), order=2)


MATRIX_ORDS = [None, "fro", "nuc", 1, -1, 2, -2, onp.inf, -onp.inf]


@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
def test_matrix_norms(ord, rng):
    a = rng.standard_normal((3, 4))
    onp.testing.assert_allclose(la.norm(a, ord), onp.linalg.norm(a, ord), rtol=1e-12)
    sg.check_grads(lambda a: la.norm(a, ord), (a,), order=2)
    t = rng.standard_normal((3, 2, 4))
    for axis in ((0, 2), (2, 0), (-1, 1)):
        for keepdims in (False, True):
            onp.testing.assert_allclose(
                la.norm(t, ord, axis, keepdims), onp.linalg.norm(t, ord, axis, keepdims)
            )
    sg.check_grads(lambda t: la.norm(t, ord, axis=(2, 0)), (t,), order=2)


def test_norm_defaults_and_count(rng):
    x = rng.standard_normal((2, 3, 2))
    onp.testing.assert_allclose(la.norm(x), onp.linalg.norm(x))
    onp.testing.assert_allclose(la.norm(x, keepdims=True), onp.linalg.norm(x, keepdims=True))
    sg.check_grads(la.norm, (x,), order=2)
    v = onp.array([0.0, 1.5, -2.0, 0.0])
    assert la.norm(v, 0) == onp.linalg.norm(v, 0) == 2
    onp.testing.assert_array_equal(sg.grad(lambda v: la.norm(v, 0))(v), 0.0)


def test_norm_at_zero_has_zero_gradient():
    """At the origin the 2-norm is not differentiable: the gradient is the subgradient 0
    (not NaN), in both modes and for second derivatives."""
    for x in (onp.zeros(3), onp.zeros((2, 2))):
        for ord in (None, "fro") if x.ndim == 2 else (None, 2):
            f = lambda x, ord=ord: la.norm(x, ord)  # noqa: E731
            onp.testing.assert_array_equal(sg.grad(f)(x), 0.0)
            onp.testing.assert_array_equal(sg.jacfwd(f)(x), 0.0)
    onp.testing.assert_array_equal(sg.hessian(la.norm)(onp.zeros(2)), 0.0)
    # one zero row in a batch of row norms: that row gets 0, the others x / |x|
    m = onp.array([[0.0, 0.0], [3.0, 4.0]])
    g = sg.grad(lambda m: snp.sum(la.norm(m, axis=1)))(m)
    onp.testing.assert_allclose(g, [[0.0, 0.0], [0.6, 0.8]])
    assert onp.all(onp.isfinite(sg.grad(lambda x: la.norm(x, 3))(onp.zeros(3))))


def test_norm_errors():
    with pytest.raises(ValueError, match="Improper number of dimensions"):
        la.norm(onp.ones((2, 2, 2)), 1)
    with pytest.raises(ValueError, match="invalid norm order"):
        la.norm(onp.ones((2, 2)), "bad")
    with pytest.raises(ValueError, match="invalid norm order"):
        la.norm(onp.ones(2), "fro")
    with pytest.raises(ValueError, match="duplicate axes"):
        la.norm(onp.ones((2, 2)), axis=(1, 1))
    with pytest.raises(onp.exceptions.AxisError):
        la.norm(onp.ones((2, 2)), axis=(0, 5))


# -- matrix_power, multi_dot ---------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, -1, -2])
def test_matrix_power(n, rng):
    a = _general(rng, 3) / 6.0
    onp.testing.assert_allclose(la.matrix_power(a, n), onp.linalg.matrix_power(a, n), rtol=1e-10)
    sg.check_grads(lambda a: la.matrix_power(a, n), (a,), order=2)
    b = _general(rng, 2, (2,)) / 4.0
    onp.testing.assert_allclose(la.matrix_power(b, n), onp.linalg.matrix_power(b, n), rtol=1e-10)
    with pytest.raises(TypeError, match="integer"):
        la.matrix_power(a, 1.5)


@pytest.mark.parametrize(
    "shapes", [[(2, 3), (3, 4)], [(3,), (3, 4), (4, 2)], [(2, 3), (3, 4), (4,)],
               [(3,), (3, 2), (2, 4), (4,)], [(4, 2), (2, 3), (3, 1), (1, 3)]],
    ids=str,
)  # fmt: skip
def test_multi_dot(shapes, rng):
    arrays_ = [rng.standard_normal(s) for s in shapes]
    onp.testing.assert_allclose(la.multi_dot(arrays_), onp.linalg.multi_dot(arrays_), rtol=1e-12)
    sg.check_grads(lambda *xs: la.multi_dot(list(xs)), tuple(arrays_), order=2)


def test_multi_dot_errors():
    with pytest.raises(ValueError, match="at least two"):
        la.multi_dot([onp.ones((2, 2))])
    with pytest.raises(ValueError, match="not aligned"):
        la.multi_dot([onp.ones((2, 3)), onp.ones((2, 3))])


# -- dtypes, shapes, eval_shape ------------------------------------------------------------
def test_integer_and_float32_inputs(rng):
    ai = onp.array([[3, 1], [1, 2]])
    onp.testing.assert_allclose(la.solve(ai, onp.array([1, 2])), onp.linalg.solve(ai, [1, 2]))
    onp.testing.assert_allclose(la.inv(ai), onp.linalg.inv(ai))
    onp.testing.assert_allclose(la.det(ai), onp.linalg.det(ai))
    a32 = _general(rng, 3).astype(onp.float32)
    assert la.solve(a32, onp.ones(3, onp.float32)).dtype == onp.float32
    assert la.inv(a32).dtype == onp.float32
    with pytest.raises(NotImplementedError, match="complex"):
        la.inv(onp.eye(2) * 1j)


EVAL_SHAPE_CASES = [
    (la.solve, ((2, 3, 3), (3,))),
    (la.solve, ((3, 3), (2, 3, 4))),
    (la.solve, ((6, 3, 3), (3,))),
    (la.inv, ((2, 3, 3),)),
    (la.det, ((2, 3, 3),)),
    (la.slogdet, ((2, 3, 3),)),
    (la.cholesky, ((2, 3, 3),)),
    (la.eigh, ((2, 3, 3),)),
    (la.eigvalsh, ((3, 3),)),
    (lambda a: la.svd(a, full_matrices=False), ((2, 4, 3),)),
    (la.pinv, ((2, 4, 3),)),
    (la.qr, ((4, 3),)),
    (lambda a: la.norm(a, axis=-1, keepdims=True), ((2, 3),)),
]


@pytest.mark.parametrize("f,shapes", EVAL_SHAPE_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_eval_shape_matches(f, shapes, rng):
    args = [_spd(rng, s[-1], s[:-2]) if len(s) >= 2 and s[-1] == s[-2] else rng.random(s)
            for s in shapes]  # fmt: skip
    out = f(*args)
    abstract = sg.eval_shape(f, *args)
    flat_out, flat_abs = sg.tree_flatten(out)[0], sg.tree_flatten(abstract)[0]
    assert [(onp.shape(o), onp.asarray(o).dtype) for o in flat_out] == [
        (a.shape, a.dtype) for a in flat_abs
    ]
