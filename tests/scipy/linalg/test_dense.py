"""scigrad.scipy.linalg (dense): values against SciPy, derivatives against finite differences
(second order, both modes) on well-conditioned and on badly scaled (norm ~1e3) matrices,
random shapes with hypothesis, factorization reuse (counted LAPACK calls), degenerate
spectra (finite, correct eigenvalue gradients; warnings where vector derivatives are
undefined) and errors."""

from __future__ import annotations

import contextlib
import pickle
import warnings

import numpy as onp
import pytest
import scipy.linalg as sl
from hypothesis import given
from hypothesis import strategies as st

import scigrad as sg
import scigrad.numpy as snp
import scigrad.numpy.linalg as nla
import scigrad.scipy.linalg as la
from tests.strategies import arrays

LinAlgError = onp.linalg.LinAlgError
Degenerate = la.DegenerateDerivativeWarning
SCALES = [1.0, 1e3]  # well scaled, and badly scaled (norm up to ~1e3)


# -- inputs ----------------------------------------------------------------------------------------
def _general(rng, n, batch=(), scale=1.0):
    """Non-symmetric, well-conditioned (diagonally dominant), times ``scale``."""
    return scale * (rng.uniform(-1, 1, batch + (n, n)) + 2 * n * onp.eye(n))


def _spd(rng, n, batch=(), scale=1.0):
    """Symmetric positive definite with a separated spectrum, times ``scale``."""
    m = rng.standard_normal(batch + (n, n))
    q, _ = onp.linalg.qr(m + 3 * n * onp.eye(n))
    return scale * (q @ (onp.arange(1.0, n + 1)[:, None] * onp.swapaxes(q, -1, -2)))


def _full_rank(rng, shape, scale=1.0):
    """A matrix with well-separated singular values 1, 2, ... (times ``scale``)."""
    m, n = shape[-2:]
    k = min(m, n)
    u, _ = onp.linalg.qr(rng.standard_normal(shape[:-2] + (m, m)))
    v, _ = onp.linalg.qr(rng.standard_normal(shape[:-2] + (n, n)))
    return scale * ((u[..., :, :k] * onp.arange(1.0, k + 1)) @ onp.swapaxes(v[..., :, :k], -1, -2))


def _perturbed(rng, a):
    """``a`` with small non-symmetric noise: the entries a triangle-reading function must
    ignore differ from those it reads."""
    return a + 0.01 * onp.abs(a).max() * rng.standard_normal(a.shape)


def _sq(x):
    return x * x  # eigenvectors and singular vectors have arbitrary signs


def _close(x, y, tol=1e-10):
    onp.testing.assert_allclose(x, y, rtol=tol, atol=tol * max(1.0, onp.abs(y).max()))


@contextlib.contextmanager
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# -- solve -----------------------------------------------------------------------------------------
STRUCTURES = [
    None,
    "gen",
    "sym",
    "pos",
    "diagonal",
    "tridiagonal",
    "banded",
    "upper triangular",
    "lower triangular",
]


def _solve_input(rng, assume_a, batch=(), n=3, scale=1.0):
    if assume_a in ("sym", "pos"):
        return _perturbed(rng, _spd(rng, n, batch, scale))  # the ignored triangle differs
    return _general(rng, n, batch, scale)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("assume_a", STRUCTURES)
def test_solve(assume_a, scale, rng):
    for lower, transposed in [(False, False), (True, True)]:
        a = _solve_input(rng, assume_a, scale=scale)
        b = rng.standard_normal((3, 2))

        def f(a, b, lower=lower, transposed=transposed):
            return la.solve(a, b, assume_a=assume_a, lower=lower, transposed=transposed)

        if assume_a == "diagonal":  # SciPy's diagonal solve ignores `transposed`
            ref = sl.solve(a, b, assume_a=assume_a)
        else:
            ref = sl.solve(a, b, assume_a=assume_a, lower=lower, transposed=transposed)
        _close(f(a, b), ref)
        sg.check_grads(lambda a, b: f(a, b) * scale**2, (a, b[:, 0]), order=2)


@pytest.mark.parametrize("assume_a", ["sym", "pos", "upper triangular", "diagonal"])
def test_solve_reads_only_its_entries(assume_a, rng):
    a = _solve_input(rng, assume_a)
    b = rng.standard_normal(3)
    g = sg.grad(lambda a: snp.sum(la.solve(a, b, assume_a=assume_a, lower=True) ** 2))(a)
    read = {
        "sym": onp.tri(3),
        "pos": onp.tri(3),
        "upper triangular": onp.triu(onp.ones((3, 3))),
        "diagonal": onp.eye(3),
    }[assume_a]
    onp.testing.assert_array_equal(g * (1 - read), 0.0)
    assert onp.all(g[read == 1] != 0)


SOLVE_SHAPES = [((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 2)), ((3, 3), (2, 3, 1)), ((6, 2, 2), (2,))]


@pytest.mark.parametrize("sa,sb", SOLVE_SHAPES, ids=str)
@pytest.mark.parametrize("assume_a", [None, "pos", "lower triangular"])
def test_solve_stacks(sa, sb, assume_a, rng):
    a = _solve_input(rng, assume_a, sa[:-2], sa[-1])
    b = rng.standard_normal(sb)
    _close(la.solve(a, b, assume_a=assume_a), sl.solve(a, b, assume_a=assume_a))
    sg.check_grads(lambda a, b: la.solve(a, b, assume_a=assume_a), (a, b), order=2)


@given(data=st.data())
def test_solve_random_shapes(data):
    n = data.draw(st.integers(1, 4))
    batch = data.draw(st.sampled_from([(), (2,), (2, 1)]))
    assume_a = data.draw(st.sampled_from([None, "sym", "pos"]))
    m = data.draw(arrays(batch + (n, n), -1.0, 1.0))
    a = m + 2 * n * onp.eye(n) if assume_a is None else m @ onp.swapaxes(m, -1, -2) + n * onp.eye(n)
    vec = data.draw(st.booleans())
    b = data.draw(arrays((n,) if vec else batch + (n, data.draw(st.integers(1, 2)))))
    _close(la.solve(a, b, assume_a=assume_a), sl.solve(a, b, assume_a=assume_a), 1e-9)
    sg.check_grads(lambda a, b: la.solve(a, b, assume_a=assume_a), (a, b), order=2)


def _counting(monkeypatch, target, name, key=None):
    """Count the calls of ``target.name`` (or of the cached LAPACK routine ``key``)."""
    calls = []
    if key is not None:
        real = nla._lapack(*key)

        def counted(*args, **kwargs):
            calls.append(1)
            return real(*args, **kwargs)

        monkeypatch.setitem(nla._LAPACK, (key[0], key[1].char), counted)
        return calls
    real = getattr(target, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, counted)
    return calls


def _all_modes(f, a):
    u = onp.random.default_rng(1).standard_normal(a.shape)
    return {
        "grad": lambda: sg.grad(f)(a),
        "forward": lambda: sg.jvp(f, (a,), (u,)),
        "forward over reverse": lambda: sg.hvp(f, (a,), (u,)),
        "reverse over reverse": lambda: sg.grad(lambda a: snp.sum(sg.grad(f)(a) * u))(a),
        "forward over forward": lambda: sg.jvp(lambda a: sg.jvp(f, (a,), (u,))[1], (a,), (u,)),
    }


F64 = onp.dtype(onp.float64)


@pytest.mark.parametrize("how", ["solve", "lu_factor"])
def test_lu_is_factorized_once(how, rng, monkeypatch):
    """The forward pass factorizes a once; every derivative rule, of any order and mode,
    reuses that factorization (LAPACK getrf counted)."""
    calls = _counting(monkeypatch, None, None, key=("getrf", F64))
    a, b = _general(rng, 3), rng.standard_normal(3)

    def f(a):
        if how == "solve":
            return snp.sum(la.solve(a, b) ** 2)
        return snp.sum(la.lu_solve(la.lu_factor(a), b, trans=1) ** 2)

    for name, run in _all_modes(f, a).items():
        calls.clear()
        run()
        assert len(calls) == 1, name


@pytest.mark.parametrize("how", ["solve", "cho_factor"])
def test_cholesky_is_factorized_once(how, rng, monkeypatch):
    calls = _counting(monkeypatch, onp.linalg, "cholesky")
    a, b = _spd(rng, 3), rng.standard_normal(3)

    def f(a):
        if how == "solve":
            return snp.sum(la.solve(a, b, assume_a="pos") ** 2)
        return snp.sum(la.cho_solve(la.cho_factor(a), b) ** 2)

    for name, run in _all_modes(f, a).items():
        calls.clear()
        run()
        assert len(calls) == 1, name


@pytest.mark.parametrize("which", ["eigh", "svd"])
def test_decompositions_are_computed_once_at_first_order(which, rng, monkeypatch):
    """First derivatives reuse the forward decomposition, also for the values alone (whose
    rules use the forward pass's vectors); second derivatives recompute it once."""
    calls = _counting(monkeypatch, sl, which)
    a = _spd(rng, 3)
    if which == "eigh":
        fs = [lambda a: snp.sum(la.eigvalsh(a) ** 2), lambda a: snp.sum(la.eigh(a)[1] ** 3)]
    else:
        fs = [lambda a: snp.sum(la.svdvals(a) ** 2), lambda a: snp.sum(la.svd(a)[0] ** 3)]
    u = rng.standard_normal((3, 3))
    for f in fs:
        for run in (lambda f=f: sg.grad(f)(a), lambda f=f: sg.jvp(f, (a,), (u,))):
            calls.clear()
            run()
            assert len(calls) == 1
    calls.clear()
    sg.hvp(fs[0], (a,), (u,))
    assert len(calls) == 2


def test_solve_gradient_values(rng):
    a, b, u = _spd(rng, 3), rng.standard_normal(3), rng.standard_normal(3)
    x = onp.linalg.solve(a, b)
    lam = onp.linalg.solve(a.T, u)
    for assume_a in (None, "pos"):

        def f(a, b, assume_a=assume_a):
            return snp.sum(u * la.solve(a, b, assume_a=assume_a))

        ga, gb = sg.grad(f, (0, 1))(a, b)
        _close(gb, lam)
        if assume_a is None:
            _close(onp.asarray(ga), -onp.outer(lam, x))
        else:  # the upper triangle stands for the symmetric matrix
            full = -onp.outer(lam, x)
            _close(onp.asarray(ga), onp.triu(full + full.T) - onp.diag(onp.diag(full)))


# -- lu_factor / lu_solve / lu ---------------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("trans", [0, 1, 2])
def test_lu_factor_and_solve(trans, scale, rng):
    a, b = _general(rng, 3, scale=scale), rng.standard_normal((3, 2))
    fac, ref = la.lu_factor(a), sl.lu_factor(a)
    lu_, piv = fac  # unpacks like SciPy's tuple
    _close(lu_, ref[0])
    onp.testing.assert_array_equal(piv, ref[1])
    _close(la.lu_solve(fac, b, trans=trans), sl.lu_solve(ref, b, trans=trans))
    _close(la.lu_solve(ref, b, trans=trans), sl.lu_solve(ref, b, trans=trans))  # SciPy's tuple
    s2 = scale**2

    def through_a(a, b):  # the remembered matrix: adjoints with the stored factors
        return la.lu_solve(la.lu_factor(a), b, trans=trans) * s2

    def through_lu(a, b):  # a re-packed tuple: through the (differentiable) factors
        return la.lu_solve(tuple(la.lu_factor(a)), b, trans=trans) * s2

    sg.check_grads(through_a, (a, b), order=2)
    sg.check_grads(through_lu, (a, b[:, 0]), order=2)
    sg.check_grads(lambda b: la.lu_solve(ref, b, trans=trans), (b,), order=2)
    sg.check_grads(lambda a: la.lu_factor(a)[0] * scale, (a,), order=2)


@pytest.mark.parametrize("sb", [(3,), (2, 3, 2), (3, 1)], ids=str)
def test_lu_solve_stacks(sb, rng):
    a, b = _general(rng, 3, (2,)), rng.standard_normal(sb)
    _close(la.lu_solve(la.lu_factor(a), b), sl.lu_solve(sl.lu_factor(a), b))
    sg.check_grads(lambda a, b: la.lu_solve(la.lu_factor(a), b, trans=1), (a, b), order=2)
    sg.check_grads(lambda a, b: la.lu_solve(tuple(la.lu_factor(a)), b), (a, b), order=2)


@given(data=st.data())
def test_lu_random_shapes(data):
    n = data.draw(st.integers(1, 4))
    batch = data.draw(st.sampled_from([(), (2,)]))
    a = data.draw(arrays(batch + (n, n), -1.0, 1.0)) + 2 * n * onp.eye(n)
    b = data.draw(arrays((n,)))
    trans = data.draw(st.sampled_from([0, 1]))
    _close(
        la.lu_solve(la.lu_factor(a), b, trans=trans), sl.lu_solve(sl.lu_factor(a), b, trans=trans)
    )
    sg.check_grads(lambda a, b: la.lu_solve(la.lu_factor(a), b, trans=trans), (a, b), order=2)


def test_lu_factor_object(rng):
    a = _general(rng, 3)
    fac = la.lu_factor(a)
    assert isinstance(fac, tuple) and len(fac) == 2 and fac.lu is fac[0] and fac.piv is fac[1]
    back = pickle.loads(pickle.dumps(fac))
    _close(back[0], fac[0])

    # log|det a| from the diagonal of the (differentiable) packed factors
    def logdet(a):
        return snp.sum(snp.log(snp.abs(snp.diagonal(la.lu_factor(a)[0]))))

    _close(logdet(a), onp.linalg.slogdet(a)[1])
    _close(sg.grad(logdet)(a), onp.linalg.inv(a).T)
    sg.check_grads(logdet, (a,), order=2)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("batch", [(), (2,)], ids=str)
def test_lu(batch, scale, rng):
    a = _general(rng, 3, batch, scale)
    for mine, ref in zip(la.lu(a), sl.lu(a), strict=True):
        _close(mine, ref)
    onp.testing.assert_array_equal(la.lu(a, p_indices=True)[0], sl.lu(a, p_indices=True)[0])
    _close(la.lu(a, permute_l=True)[0], sl.lu(a, permute_l=True)[0])
    sg.check_grads(lambda a: (la.lu(a)[1] * scale, la.lu(a)[2]), (a,), order=2)
    sg.check_grads(lambda a: la.lu(a, permute_l=True)[0] * scale, (a,), order=2)


def test_lu_factor_of_a_singular_matrix_warns_and_solving_raises():
    s = onp.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.warns(la.LinAlgWarning, match="Singular matrix"):
        fac = la.lu_factor(s)
    with pytest.raises(LinAlgError, match="singular"):
        la.lu_solve(fac, onp.ones(2))
    with pytest.warns(la.LinAlgWarning), pytest.raises(LinAlgError, match="singular matrix"):
        sg.grad(lambda a: snp.sum(la.lu(a)[2]))(s)


# -- cho_factor / cho_solve / cholesky -------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("lower", [False, True])
def test_cho_factor_and_solve(lower, scale, rng):
    a, b = _perturbed(rng, _spd(rng, 3, scale=scale)), rng.standard_normal((3, 2))
    c, low = la.cho_factor(a, lower=lower)
    ref = sl.cho_factor(a, lower=lower)
    assert low is lower and ref[1] == lower
    _close(c, (onp.tril if lower else onp.triu)(ref[0]))  # SciPy leaves junk in the rest
    _close(la.cho_solve((c, low), b), sl.cho_solve(ref, b))
    _close(la.cho_solve(ref, b), sl.cho_solve(ref, b))
    s2 = scale**2
    sg.check_grads(
        lambda a, b: la.cho_solve(la.cho_factor(a, lower=lower), b) * s2, (a, b), order=2
    )
    sg.check_grads(
        lambda a, b: la.cho_solve(tuple(la.cho_factor(a, lower=lower)), b) * s2,
        (a, b[:, 0]),
        order=2,
    )
    sg.check_grads(lambda b: la.cho_solve(ref, b), (b,), order=2)
    # the derivative lives in the triangle that is read
    g = sg.grad(lambda a: snp.sum(la.cho_solve(la.cho_factor(a, lower=lower), b) ** 2))(a)
    onp.testing.assert_array_equal((onp.triu(g, 1) if lower else onp.tril(g, -1)), 0.0)


@pytest.mark.parametrize("sb", [(3,), (2, 3, 2), (3, 2)], ids=str)
def test_cho_solve_stacks(sb, rng):
    a, b = _spd(rng, 3, (2,)), rng.standard_normal(sb)
    _close(la.cho_solve(la.cho_factor(a), b), sl.cho_solve(sl.cho_factor(a), b))
    sg.check_grads(lambda a, b: la.cho_solve(la.cho_factor(a), b), (a, b), order=2)


def test_cho_factor_log_det(rng):
    m = rng.standard_normal((3, 3))

    def logdet(m):  # the Gaussian-process idiom
        c, _ = la.cho_factor(m @ m.T + 3 * onp.eye(3))
        return 2 * snp.sum(snp.log(snp.diagonal(c)))

    _close(logdet(m), onp.linalg.slogdet(m @ m.T + 3 * onp.eye(3))[1])
    sg.check_grads(logdet, (m,), order=2)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("batch", [(), (2,)], ids=str)
def test_cholesky(lower, batch, scale, rng):
    a = _perturbed(rng, _spd(rng, 3, batch, scale))
    c = la.cholesky(a, lower=lower)
    _close(c, sl.cholesky(a, lower=lower))
    if not lower:  # SciPy's default: upper, a = U^T U
        onp.testing.assert_array_equal(onp.tril(c, -1), 0.0)
    sg.check_grads(lambda a: la.cholesky(a, lower=lower) * onp.sqrt(scale), (a,), order=2)


# -- solve_triangular ------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("trans", [0, 1, "T"])
@pytest.mark.parametrize("lower", [False, True])
def test_solve_triangular(trans, lower, scale, rng):
    a, b = _general(rng, 3, scale=scale), rng.standard_normal((3, 2))
    for unit in (False, True):
        kw = dict(trans=trans, lower=lower, unit_diagonal=unit)
        _close(la.solve_triangular(a, b, **kw), sl.solve_triangular(a, b, **kw))
        out_scale = scale if unit else scale**2

        def f(a, b, kw=kw, out_scale=out_scale):
            return la.solve_triangular(a, b, **kw) * out_scale

        sg.check_grads(f, (a, b), order=2)
        g = sg.grad(lambda a, f=f: snp.sum(f(a, b) ** 2))(a)
        unread = onp.triu(g, 1) if lower else onp.tril(g, -1)
        onp.testing.assert_array_equal(unread, 0.0)
        if unit:
            onp.testing.assert_array_equal(onp.diag(g), 0.0)


@pytest.mark.parametrize("sa,sb", [((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 2)), ((3, 3), (2, 3, 1))])
def test_solve_triangular_stacks(sa, sb, rng):
    a, b = _general(rng, 3, sa[:-2]), rng.standard_normal(sb)
    _close(la.solve_triangular(a, b, lower=True), sl.solve_triangular(a, b, lower=True))
    sg.check_grads(lambda a, b: la.solve_triangular(a, b, lower=True, trans=1), (a, b), order=2)


# -- inv, det, pinv, norm --------------------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize(
    "assume_a", [None, "sym", "pos", "diagonal", "upper triangular", "lower triangular"]
)
def test_inv(assume_a, scale, rng):
    a = _solve_input(rng, assume_a, scale=scale)
    if assume_a == "diagonal":  # SciPy leaves the off-diagonal entries of a in place
        _close(la.inv(a, assume_a=assume_a), onp.diag(1 / onp.diag(a)))
    else:
        _close(la.inv(a, assume_a=assume_a, lower=True), sl.inv(a, assume_a=assume_a, lower=True))
    sg.check_grads(lambda a: la.inv(a, assume_a=assume_a, lower=True) * scale**2, (a,), order=2)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("batch", [(), (2,)], ids=str)
def test_det(batch, scale, rng):
    a = _general(rng, 3, batch, scale)
    _close(la.det(a), sl.det(a))
    sg.check_grads(lambda a: la.det(a) / scale**2, (a,), order=2)
    singular = rng.standard_normal((3, 2)) @ rng.standard_normal((2, 3))
    assert onp.all(onp.isfinite(sg.grad(la.det)(singular)))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", [(3, 2), (2, 3), (2, 3, 3)], ids=str)
def test_pinv(shape, scale, rng):
    a = _full_rank(rng, shape, scale)
    _close(la.pinv(a), sl.pinv(a))
    sg.check_grads(lambda a: la.pinv(a) * scale**2, (a,), order=2)
    # a tolerance that drops the smallest singular value: the rank-(k-1) pseudo-inverse
    atol = 1.5 * scale
    b, rank = la.pinv(a, atol=atol, return_rank=True)
    b_ref, rank_ref = sl.pinv(a, atol=atol, return_rank=True)
    _close(b, b_ref)
    onp.testing.assert_array_equal(rank, rank_ref)


@pytest.mark.parametrize("ord", [None, "fro", "nuc", 2, 1, onp.inf])
def test_norm(ord, rng):
    a = _full_rank(rng, (3, 3), 1e3)
    _close(la.norm(a, ord), sl.norm(a, ord))
    sg.check_grads(lambda a: la.norm(a, ord), (a,), order=2)
    _close(la.norm(a[0]), sl.norm(a[0]))


# -- eigh ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("batch", [(), (2,)], ids=str)
def test_eigh(lower, batch, scale, rng):
    a = _perturbed(rng, _spd(rng, 3, batch, scale))
    w, v = la.eigh(a, lower=lower)
    rw, rv = sl.eigh(a, lower=lower)
    _close(w, rw)
    _close(v, rv)  # SciPy's own driver: the same eigenvector signs
    _close(la.eigh(a, lower=lower, eigvals_only=True), rw)
    _close(la.eigvalsh(a, lower=lower), rw)
    sg.check_grads(lambda a: la.eigh(a, lower=lower)[0], (a,), order=2)
    sg.check_grads(lambda a: _sq(la.eigh(a, lower=lower)[1]) * scale, (a,), order=2)
    sg.check_grads(lambda a: la.eigh(a, lower=lower, eigvals_only=True), (a,), order=2)
    g = sg.grad(lambda a: snp.sum(la.eigh(a, lower=lower)[0] ** 2))(a)
    onp.testing.assert_array_equal(onp.triu(g, 1) if lower else onp.tril(g, -1), 0.0)


def test_eigh_drivers_and_subsets(rng):
    a = _spd(rng, 4)
    for driver in ("ev", "evd", "evr", "evx"):
        _close(la.eigh(a, driver=driver)[1], sl.eigh(a, driver=driver)[1])
    w, v = la.eigh(a, subset_by_index=[1, 2])
    rw, rv = sl.eigh(a, subset_by_index=[1, 2])
    _close(w, rw)
    _close(_sq(v), _sq(rv))
    _close(la.eigh(a, eigvals_only=True, subset_by_value=[1.5, 3.5]), [2.0, 3.0])
    sg.check_grads(lambda a: _sq(la.eigh(a, subset_by_index=(1, 2))[1]), (a,), order=2)
    sg.check_grads(lambda a: la.eigh(a, eigvals_only=True, subset_by_value=(1.5, 3.5)), (a,), 2)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("lower", [True, False])
def test_eigh_generalized(lower, scale, rng):
    a = _perturbed(rng, _spd(rng, 3, scale=scale))
    b = _perturbed(rng, _spd(rng, 3) + onp.eye(3))
    w, v = la.eigh(a, b, lower=lower)
    rw, rv = sl.eigh(a, b, lower=lower)
    _close(w, rw)
    _close(_sq(v), _sq(rv))
    bs = onp.tril(b) + onp.tril(b, -1).T if lower else onp.triu(b) + onp.triu(b, 1).T
    _close(v.T @ bs @ v, onp.eye(3))  # b-orthonormal
    _close(la.eigh(a, b, lower=lower, eigvals_only=True), rw)
    sg.check_grads(lambda a, b: la.eigh(a, b, lower=lower, eigvals_only=True), (a, b), order=2)
    sg.check_grads(lambda a, b: _sq(la.eigh(a, b, lower=lower)[1]) * scale, (a, b), order=2)


@given(data=st.data())
def test_eigh_random_shapes(data):
    n = data.draw(st.integers(1, 4))
    batch = data.draw(st.sampled_from([(), (2,)]))
    a = _spd(onp.random.default_rng(data.draw(st.integers(0, 2**16))), n, batch)
    _close(la.eigvalsh(a), sl.eigvalsh(a))
    sg.check_grads(lambda a: (la.eigvalsh(a), _sq(la.eigh(a)[1])), (a,), order=2)


# -- svd -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4), (2, 4, 3)], ids=str)
def test_svd(shape, scale, rng):
    a = _full_rank(rng, shape, scale)
    k = min(shape[-2:])
    for full in (False, True):
        mine, ref = la.svd(a, full_matrices=full), sl.svd(a, full_matrices=full)
        for x, y in zip(mine, ref, strict=True):
            _close(x, y)  # SciPy's own driver: the same signs and complement bases

        def f(a, full=full):
            u, s, vh = la.svd(a, full_matrices=full)
            # sign-invariant functions; the complements only as subspaces (projectors)
            up, vp = u[..., :, k:], onp.swapaxes(vh, -1, -2)[..., :, k:] if full else vh
            out = [s, _sq(u[..., :, :k]) * scale, _sq(vh[..., :k, :]) * scale]
            if full:
                out += [
                    up @ snp.swapaxes(up, -1, -2) * scale,
                    vp @ snp.swapaxes(vp, -1, -2) * scale,
                ]
            return out

        sg.check_grads(f, (a,), order=2)
    _close(la.svd(a, compute_uv=False), sl.svd(a, compute_uv=False))
    _close(la.svdvals(a), sl.svdvals(a))
    sg.check_grads(lambda a: la.svd(a, compute_uv=False), (a,), order=2)
    _close(la.svd(a, lapack_driver="gesvd")[1], sl.svd(a, lapack_driver="gesvd")[1])


# -- qr --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4), (2, 4, 3)], ids=str)
@pytest.mark.parametrize("pivoting", [False, True])
def test_qr(shape, pivoting, scale, rng):
    a = _full_rank(rng, shape, scale)
    m, n = shape[-2:]
    k = min(m, n)
    for mode in ("full", "economic", "r"):
        mine = la.qr(a, mode=mode, pivoting=pivoting)
        ref = sl.qr(a, mode=mode, pivoting=pivoting)
        # SciPy returns stacks' factors as a list, and R alone (not (R,)) for mode='r'
        ref = tuple(ref) if isinstance(ref, tuple | list) else (ref,)
        assert isinstance(mine, tuple) and len(mine) == len(ref)
        for x, y in zip(mine, ref, strict=True):
            _close(x, y)

        def f(a, mode=mode):
            out = la.qr(a, mode=mode, pivoting=pivoting)
            if mode == "r":
                return out[0]
            q, r = out[:2]
            qp = q[..., :, k:]  # the complement of a full Q, as a subspace
            return q[..., :, :k] * scale, r, qp @ snp.swapaxes(qp, -1, -2) * scale

        sg.check_grads(f, (a,), order=2)


# -- degenerate spectra ----------------------------------------------------------------------------
def _repeated_eigenvalues(rng):
    q, _ = onp.linalg.qr(rng.standard_normal((3, 3)))
    a = q @ onp.diag([1.0, 1.0, 3.0]) @ q.T
    return (a + a.T) / 2


def _sym_lower(a):
    return nla._sym_from_triangle(a, True)


def test_eigh_repeated_eigenvalues_functions_of_eigenvalues(rng):
    """Functions of the eigenvalues alone: finite, correct first derivatives, no warning."""
    a = _repeated_eigenvalues(rng)
    t = rng.standard_normal((3, 3))
    with _no_warnings():
        for f in (
            lambda a: snp.sum(la.eigh(a, eigvals_only=True) ** 2),
            lambda a: snp.sum(la.eigh(a)[0] ** 2),  # reverse mode: the vectors get no cotangent
            lambda a: snp.sum(la.eigvalsh(a) ** 3),
        ):
            g = sg.grad(f)(a)
            assert onp.all(onp.isfinite(g))
        # sum(w^2) = |sym(a)|_F^2 and sum(w) = trace: exact references
        g = sg.grad(lambda a: snp.sum(la.eigvalsh(a) ** 2))(a)
        _close(g, sg.grad(lambda a: snp.sum(_sym_lower(a) ** 2))(a))
        _close(sg.jvp(lambda a: snp.sum(la.eigvalsh(a)), (a,), (t,))[1], onp.trace(t))
        sg.check_grads(lambda a: snp.sum(la.eigvalsh(a) ** 2), (a,), order=1)
        # the eigenvector of the simple eigenvalue is well defined (reverse mode knows that
        # only it is used; forward mode computes all tangents and warns)
        sg.check_grads(lambda a: _sq(la.eigh(a)[1][:, 2]), (a,), order=1, modes=("rev",))


def test_eigh_repeated_eigenvalues_vector_derivatives_warn(rng):
    a = _repeated_eigenvalues(rng)
    t = rng.standard_normal((3, 3))

    def vectors(a):
        return _sq(la.eigh(a)[1])

    with pytest.warns(Degenerate, match="eigenvalues coincide"):
        g = sg.vjp(vectors, a)[1](t)
    assert onp.all(onp.isfinite(g))
    with pytest.warns(Degenerate, match="eigenvalues coincide"):
        _, tv = sg.jvp(vectors, (a,), (t,))
    assert onp.all(onp.isfinite(tv))
    # second derivatives of eigenvalues go through the eigenvectors: flagged too
    with pytest.warns(Degenerate):
        sg.hessian(lambda a: snp.sum(la.eigvalsh(a) ** 2))(a)
    # forward mode through eigh()'s vectors cannot know they are unused: use eigvals_only
    with pytest.warns(Degenerate):
        sg.jvp(lambda a: la.eigh(a)[0], (a,), (t,))
    with warnings.catch_warnings():  # the policy can be made an error
        warnings.simplefilter("error", Degenerate)
        with pytest.raises(Degenerate):
            sg.grad(lambda a: snp.sum(vectors(a) * t))(a)


def _coinciding_singular_values(rng):
    q1, _ = onp.linalg.qr(rng.standard_normal((3, 3)))
    q2, _ = onp.linalg.qr(rng.standard_normal((3, 3)))
    return q1 @ onp.diag([2.0, 2.0, 1.0]) @ q2.T


def test_svd_coinciding_singular_values(rng):
    a = _coinciding_singular_values(rng)
    t = rng.standard_normal((3, 3))
    with _no_warnings():
        for f in (
            lambda a: snp.sum(la.svd(a, compute_uv=False) ** 2),
            lambda a: snp.sum(la.svd(a)[1] ** 2),
            lambda a: snp.sum(la.svdvals(a)),
        ):
            assert onp.all(onp.isfinite(sg.grad(f)(a)))
        _close(sg.grad(lambda a: snp.sum(la.svdvals(a) ** 2))(a), 2 * a)  # |a|_F^2
        sg.check_grads(lambda a: snp.sum(la.svdvals(a) ** 2), (a,), order=1)
        sg.check_grads(lambda a: la.svdvals(a)[2], (a,), order=1)
        sg.jvp(lambda a: la.svdvals(a), (a,), (t,))
    with pytest.warns(Degenerate, match="singular values coincide"):
        g = sg.vjp(lambda a: _sq(la.svd(a)[0]), a)[1](t)
    assert onp.all(onp.isfinite(g))
    with pytest.warns(Degenerate, match="singular values coincide"):
        sg.jvp(lambda a: _sq(la.svd(a)[2]), (a,), (t,))


def test_full_matrices_complement_basis(rng):
    """The extra columns of a full U are an arbitrary basis: functions of their span are
    differentiable; functions of the basis itself warn."""
    a = _full_rank(rng, (4, 2))
    with _no_warnings():
        w = onp.arange(4.0)[:, None]
        sg.grad(lambda a: snp.sum((lambda p: p @ p.T)(la.svd(a)[0][:, 2:]) * w))(a)
        sg.grad(lambda a: snp.sum((lambda p: p @ p.T)(la.qr(a)[0][:, 2:]) * w))(a)
    with pytest.warns(Degenerate, match="extra columns"):
        sg.grad(lambda a: la.svd(a)[0][0, 3])(a)
    with pytest.warns(Degenerate, match="extra columns"):
        sg.grad(lambda a: la.qr(a)[0][0, 3])(a)


def test_eval_shape(rng):
    a, s, b = _general(rng, 3, (2,)), _spd(rng, 3, (2,)), onp.ones(3)
    for f, args in [
        (lambda a, b: la.solve(a, b), (a, b)),
        (lambda a, b: la.solve(a, b, assume_a="pos"), (s, b)),
        (lambda a, b: la.lu_solve(la.lu_factor(a), b), (a, b)),
        (lambda a, b: la.cho_solve(la.cho_factor(a), b), (s, b)),
        (lambda a: la.eigh(a, eigvals_only=True), (s,)),
    ]:
        assert sg.eval_shape(f, *args).shape == (2, 3)


# -- errors ----------------------------------------------------------------------------------------
def test_singular_and_indefinite_matrices():
    s = onp.array([[1.0, 2.0], [2.0, 4.0]])
    b = onp.ones(2)
    for assume_a in (None, "sym", "tridiagonal"):
        with pytest.raises(LinAlgError, match="[Ss]ingular"):
            la.solve(s, b, assume_a=assume_a)
    with pytest.raises(LinAlgError, match="not positive definite"):
        la.solve(s, b, assume_a="pos")
    for assume_a in ("diagonal", "upper triangular"):
        with pytest.raises(LinAlgError, match="[Ss]ingular"):
            la.solve(onp.triu(s) * [[1, 1], [1, 0]], b, assume_a=assume_a)
    with pytest.raises(LinAlgError, match="[Ss]ingular"):
        la.inv(s)
    with pytest.raises(LinAlgError, match="singular"):
        la.inv(onp.triu(s) * [[1, 1], [1, 0]], assume_a="upper triangular")
    with pytest.raises(LinAlgError, match="singular"):
        la.solve_triangular(onp.array([[1.0, 2.0], [0.0, 0.0]]), b)
    with pytest.raises(LinAlgError, match="not positive definite"):
        la.cho_factor(-onp.eye(2))
    with pytest.raises(LinAlgError, match="not positive definite"):
        la.cholesky(-onp.eye(2))
    with pytest.raises(LinAlgError, match="singular"):
        la.cho_solve((onp.zeros((2, 2)), False), b)
    with pytest.raises(LinAlgError, match="b is not positive definite"):
        la.eigh(onp.eye(2), -onp.eye(2))
    # raised under differentiation too, instead of NaN derivatives
    with pytest.raises(LinAlgError, match="[Ss]ingular"):
        sg.grad(lambda a: snp.sum(la.solve(a, b)))(s)


def test_shape_errors():
    sq, b = onp.eye(3), onp.ones(3)
    for f in (
        lambda a: la.solve(a, onp.ones(2)),
        la.inv,
        la.det,
        la.cholesky,
        la.cho_factor,
        la.lu_factor,
        la.eigh,
        lambda a: la.solve_triangular(a, onp.ones(2)),
    ):
        with pytest.raises(ValueError, match="square"):
            f(onp.ones((2, 3)))
        with pytest.raises(ValueError, match="matrix"):
            f(onp.ones(3))
    for f in (la.svd, la.qr, la.pinv):
        with pytest.raises(ValueError, match="matrix"):
            f(onp.ones(3))
    with pytest.raises(ValueError, match="incompatible"):
        la.solve(sq, onp.ones(2))
    with pytest.raises(ValueError, match="incompatible"):
        la.solve(sq, onp.ones((2, 3)))
    with pytest.raises(ValueError, match="do not broadcast"):
        la.solve(onp.ones((2, 3, 3)), onp.ones((4, 3, 1)))
    with pytest.raises(ValueError, match="incompatible"):
        la.lu_solve(la.lu_factor(sq), onp.ones(2))
    with pytest.raises(ValueError, match="piv"):
        la.lu_solve((sq, onp.zeros(2, onp.int32)), b)
    with pytest.raises(ValueError, match="incompatible"):
        la.cho_solve(la.cho_factor(sq), onp.ones((4, 1)))
    with pytest.raises(ValueError, match="incompatible"):
        la.solve_triangular(sq, onp.ones(4))
    with pytest.raises(ValueError, match="same shape"):
        la.eigh(sq, onp.eye(2))
    with pytest.raises(NotImplementedError, match="square"):
        la.lu(onp.ones((2, 3)))


def test_argument_errors():
    a, b = onp.eye(2), onp.ones(2)
    with pytest.raises(ValueError, match="not a recognized matrix structure"):
        la.solve(a, b, assume_a="spd")
    with pytest.raises(ValueError, match="not a recognized matrix structure"):
        la.inv(a, assume_a="spd")
    with pytest.raises(ValueError, match="infs or NaNs"):
        la.solve(onp.array([[1.0, onp.nan], [0.0, 1.0]]), b)
    with pytest.raises(ValueError, match="infs or NaNs"):
        la.eigh(onp.full((2, 2), onp.inf))
    with onp.errstate(invalid="ignore"):
        assert onp.isnan(la.det(onp.full((2, 2), onp.nan), check_finite=False))
    with pytest.raises(ValueError, match="trans"):
        la.solve_triangular(a, b, trans=3)
    with pytest.raises(ValueError, match="trans"):
        la.lu_solve(la.lu_factor(a), b, trans="X")
    with pytest.raises(NotImplementedError, match="raw"):
        la.qr(a, mode="raw")
    with pytest.raises(ValueError, match="Mode"):
        la.qr(a, mode="reduced")
    with pytest.raises(NotImplementedError, match="type=1"):
        la.eigh(a, a, type=2)
    with pytest.raises(ValueError, match="driver"):
        la.eigh(a, driver="gv")
    with pytest.raises(ValueError, match="driver"):
        la.eigh(a, a, driver="evr")
    with pytest.raises(ValueError, match="Either index or value"):
        la.eigh(a, subset_by_index=[0, 1], subset_by_value=[0, 1])
    with pytest.raises(ValueError, match="subset_by_index"):
        la.eigh(a, subset_by_index=[1, 2])
    with pytest.raises(ValueError, match="lapack_driver"):
        la.svd(a, lapack_driver="gesvj")
    with pytest.raises(ValueError, match="positive"):
        la.pinv(a, atol=-1.0)


def test_namespace():
    import scigrad.scipy.linalg._expm as expm_module

    for name in la.__all__:
        assert hasattr(la, name), name
    assert set(expm_module.__all__) <= set(la.__all__)
