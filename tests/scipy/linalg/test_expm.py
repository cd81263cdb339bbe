"""scigrad.scipy.linalg.expm and expm_frechet: values against SciPy, derivatives against
finite differences (second order, both modes; third order on a small case) and against
SciPy's Fréchet derivative, on random, badly scaled (norm up to 1e3), nilpotent, diagonal and
symmetric matrices; reuse of the forward's factorization by every derivative; errors; and a
smoke run of benchmarks/matfun.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as onp
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

import scigrad as sg
import scigrad.numpy as snp
from scigrad.core.primitive import ShapeDtype
from scigrad.scipy.linalg import _expm, expm, expm_frechet
from tests.strategies import arrays

LinAlgError = onp.linalg.LinAlgError
ROOT = Path(__file__).resolve().parents[3]


def rel_err(a, b) -> float:
    """max |a - b| / max |b| (a normwise relative error)."""
    a, b = onp.asarray(a, dtype=float), onp.asarray(b, dtype=float)
    return float(onp.max(onp.abs(a - b))) / max(float(onp.max(onp.abs(b))), 1e-300)


def tol(a) -> float:
    """The relative accuracy expected of two backward-stable implementations of expm: 1e-12,
    growing with ||A||_1 (a lower bound of expm's relative condition number) past 10."""
    a = onp.asarray(a, dtype=float)
    norm = float(onp.abs(a).sum(axis=-2).max()) if a.size else 0.0
    return 1e-13 * max(10.0, norm)


def frechet_only(a, e):
    return expm_frechet(a, e, compute_expm=False)


# -- test matrices ------------------------------------------------------------------------------
def _random(rng, n, scale=1.0):
    return rng.standard_normal((n, n)) * scale


def _symmetric_spectrum(rng, eigenvalues):
    q, _ = onp.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return q @ onp.diag(eigenvalues) @ q.T


def _generator(rng, n, rate):
    """A rate matrix p - diag(p.sum(1)) (the seed's model): eigenvalues in the left half-plane."""
    p = rng.random((n, n)) * rate
    return p - onp.diag(p.sum(axis=1))


def _badly_scaled():
    """Matrices of 1-norm about 1e2..2e3: the scaling-and-squaring path with many squarings,
    strong non-normality, fast rotation, a graded matrix."""
    rng = onp.random.default_rng(3)
    k = rng.standard_normal((3, 3)) * 300
    d = onp.diag([1.0, 30.0, 1000.0])
    return {
        "non-normal": onp.array([[-1.0, 1000.0], [0.0, -2.0]]),
        "generator": _generator(rng, 4, 300.0),
        "symmetric": _symmetric_spectrum(rng, [1.0, 0.5, -10.0, -400.0, -1000.0]),
        "damped rotation": (k - k.T) - 1000 * onp.eye(3),
        "rotation": onp.array([[0.0, 1000.0], [-1000.0, 0.0]]),
        "graded": d @ rng.standard_normal((3, 3)) @ onp.linalg.inv(d),
    }


BADLY_SCALED = _badly_scaled()


def _special():
    rng = onp.random.default_rng(4)
    n = onp.triu(rng.standard_normal((4, 4)), 1)
    return {
        "nilpotent": n,
        "nilpotent large": 40.0 * n,
        "diagonal": onp.diag([0.3, -1.2, 2.0]),
        "diagonal repeated": onp.diag([0.7, 0.7, -0.4]),
        "symmetric": (lambda m: m + m.T)(rng.standard_normal((4, 4))),
        "zero": onp.zeros((3, 3)),
        "identity": onp.eye(2),
        "upper triangular": onp.triu(rng.standard_normal((4, 4)) * 3),
        "rank one": onp.outer(rng.standard_normal(3), rng.standard_normal(3)),
    }


SPECIAL = _special()


# -- values against SciPy ------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-6, 1e-3, 0.1, 0.5, 1.0, 3.0, 10.0, 100.0])
@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_expm_matches_scipy(n, scale):
    a = _random(onp.random.default_rng(n), n, scale)
    assert rel_err(expm(a), sla.expm(a)) <= tol(a)


@pytest.mark.parametrize("name", [*BADLY_SCALED, *SPECIAL])
def test_expm_matches_scipy_special_and_badly_scaled(name):
    a = {**BADLY_SCALED, **SPECIAL}[name]
    assert rel_err(expm(a), sla.expm(a)) <= tol(a)


def test_expm_exact_cases():
    assert onp.array_equal(expm(onp.zeros((3, 3))), onp.eye(3))
    d = onp.array([0.3, -1.2, 2.0])
    assert onp.array_equal(expm(onp.diag(d)), onp.diag(onp.exp(d)))
    n = onp.array([[0.0, 2.0, 3.0], [0.0, 0.0, 4.0], [0.0, 0.0, 0.0]])
    onp.testing.assert_allclose(expm(n), onp.eye(3) + n + n @ n / 2, rtol=1e-15, atol=1e-15)
    onp.testing.assert_allclose(expm(onp.array([[0.5]])), [[onp.exp(0.5)]])
    onp.testing.assert_allclose(expm(onp.array([0.5])), [[onp.exp(0.5)]])  # as SciPy
    assert expm(onp.zeros((0, 0))).shape == (0, 0)
    assert expm(onp.zeros((2, 0, 0))).shape == (2, 0, 0)


def test_expm_picks_scipys_degree_and_scaling():
    pytest.importorskip("scipy.linalg._matfuncs_expm")
    from scipy.linalg._matfuncs_expm import pick_pade_structure

    rng = onp.random.default_rng(5)
    cases = [_random(rng, n, s) for n in (2, 4, 7) for s in (1e-4, 0.05, 0.2, 0.7, 1.5, 9, 1e3)]
    x, y = 1e2, onp.sqrt(1e4 + 2e-4)  # A^2 ~ 0 but |A|^2 large: the backward-error test acts
    cases += [onp.array([[x, y], [-y, -x]]), *BADLY_SCALED.values()]
    seen = set()
    for a in cases:
        am = onp.empty((5, *a.shape))
        am[0] = a
        expected = pick_pade_structure(am)
        m, s = _expm._pick(a)[:2]
        assert (m, s) == tuple(expected), a
        seen.add(m)
    assert seen == {3, 5, 7, 9, 13}


def test_expm_large_matrix_norm_estimates(monkeypatch):
    # Above 400 x 400 the 1-norms of A^8 and A^10 are estimated: exercise that path small.
    monkeypatch.setattr(_expm, "_EXACT_NORM_MAX", 0)
    rng = onp.random.default_rng(6)
    for scale in (0.3, 1.0, 5.0, 50.0):
        a = _random(rng, 6, scale)
        assert rel_err(expm(a), sla.expm(a)) <= tol(a)


@pytest.mark.parametrize("shape", [(2, 3, 3), (2, 1, 2, 2), (3, 1, 1)])
def test_expm_stacks(shape):
    a = onp.random.default_rng(7).standard_normal(shape)
    assert expm(a).shape == shape
    assert rel_err(expm(a), sla.expm(a)) <= tol(a)
    sg.check_grads(expm, (a,), order=2)


def test_expm_dtypes():
    assert expm(onp.eye(2, dtype=onp.float32)).dtype == onp.float32
    assert expm(onp.array([[1, 2], [0, 1]])).dtype == onp.float64
    onp.testing.assert_allclose(expm(onp.array([[1, 2], [0, 1]])), sla.expm([[1.0, 2], [0, 1]]))


def test_expm_eval_shape():
    out = sg.eval_shape(expm, ShapeDtype((2, 3, 3), onp.dtype(onp.float64)))
    assert out.shape == (2, 3, 3)


@pytest.mark.parametrize("method", [None, "SPS", "blockEnlarge"])
@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_expm_frechet_matches_scipy(n, method):
    rng = onp.random.default_rng(8)
    for scale in (0.01, 1.0, 8.0, 200.0):
        a, e = _random(rng, n, scale), rng.standard_normal((n, n))
        x, lae = expm_frechet(a, e, method=method)
        x_ref, l_ref = sla.expm_frechet(a, e)
        assert rel_err(x, x_ref) <= tol(a)
        assert rel_err(lae, l_ref) <= tol(a)
        assert rel_err(expm_frechet(a, e, method=method, compute_expm=False), l_ref) <= tol(a)


def test_expm_frechet_stacks_and_empty():
    rng = onp.random.default_rng(9)
    a, e = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 3, 3))
    x, lae = expm_frechet(a, e)
    for i in range(2):
        x_ref, l_ref = sla.expm_frechet(a[i], e[i])
        assert rel_err(x[i], x_ref) <= 1e-12 and rel_err(lae[i], l_ref) <= 1e-12
    x, lae = expm_frechet(onp.zeros((0, 0)), onp.zeros((0, 0)))
    assert x.shape == lae.shape == (0, 0)


# -- derivatives --------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_expm_grads_random(n):
    rng = onp.random.default_rng(10 + n)
    for scale in (0.05, 1.0, 3.0):  # Padé degrees 3..13, with and without squarings
        sg.check_grads(expm, (_random(rng, n, scale),), order=2)


@pytest.mark.parametrize("name", list(BADLY_SCALED))
def test_expm_grads_badly_scaled(name):
    a = BADLY_SCALED[name]
    sg.check_grads(expm, (a,), order=2)
    e = onp.random.default_rng(11).standard_normal(a.shape)
    sg.check_grads(frechet_only, (a, e), order=2)


def test_expm_grads_strongly_non_normal():
    # The entries of expm reach 1e7 and a perturbation of the bottom-left entry feeds back
    # through the whole chain: within the default finite-difference step (1e-3) the function
    # is far from its Taylor polynomial and the fourth-order stencil errs by 1e-4. A smaller
    # step resolves it; the derivative itself is compared with SciPy's below.
    a = onp.array([[-1.0, 300.0, 0.0], [0.0, -2.0, 300.0], [0.0, 0.0, -3.0]])
    sg.check_grads(expm, (a,), order=2, eps=1e-5)
    e = onp.zeros(a.shape)
    e[-1, 0] = 1.0
    assert rel_err(sg.jvp(expm, (a,), (e,))[1], sla.expm_frechet(a, e)[1]) <= tol(a)


def test_derivative_of_a_strongly_non_normal_matrix_uses_a_safe_degree(monkeypatch):
    # 40 N (N strictly upper triangular 4 x 4): A^4 = 0, so SciPy's forward takes m = 3 and
    # s = 0 (exact for e^A), but the derivative of r_3 misses terms A^3 E A^3 / 7! and would
    # be 0.4 % off. The derivative then uses Algorithm 6.4's m and s (one more factorization,
    # computed once per forward).
    calls = []
    factorize = _expm._factorize
    monkeypatch.setattr(_expm, "_factorize", lambda q: calls.append(q.shape) or factorize(q))
    a = SPECIAL["nilpotent large"]
    e = onp.zeros(a.shape)
    e[-1, 0] = 1.0
    x, pullback = sg.vjp(expm, a)
    assert len(calls) == 1
    for g in (e, e.T, onp.ones_like(e)):
        (ga,) = pullback(g)
        assert rel_err(ga, sla.expm_frechet(a.T, g)[1]) <= tol(a)
    assert len(calls) == 2
    assert rel_err(frechet_only(a, e), sla.expm_frechet(a, e)[1]) <= tol(a)
    assert rel_err(sg.jvp(expm, (a,), (e,))[1], sla.expm_frechet(a, e)[1]) <= tol(a)


@pytest.mark.parametrize("name", list(SPECIAL))
def test_expm_grads_special(name):
    sg.check_grads(expm, (SPECIAL[name],), order=2)


def test_expm_third_order():
    a = _random(onp.random.default_rng(12), 2, 2.0)
    sg.check_grads(expm, (a,), order=3)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_expm_frechet_grads(n):
    rng = onp.random.default_rng(13 + n)
    a, e = _random(rng, n, 2.0), rng.standard_normal((n, n))
    sg.check_grads(frechet_only, (a, e), order=2)
    sg.check_grads(lambda a, e: expm_frechet(a, e), (a, e), order=2)
    sg.check_grads(lambda a, e: expm_frechet(a, e, method="blockEnlarge"), (a, e), order=1)


def test_expm_frechet_grads_scaled_direction():
    # The second-order rules rescale E before exponentiating the block matrix [[A, E], [0, A]]
    rng = onp.random.default_rng(14)
    a = _random(rng, 3)
    for scale in (1e-6, 1e6):
        e = rng.standard_normal((3, 3)) * scale
        sg.check_grads(lambda a, e=e, scale=scale: frechet_only(a, e) / scale, (a,), order=2)
    sg.check_grads(lambda a: frechet_only(a, onp.zeros((3, 3))), (a,), order=2)
    sg.check_grads(lambda e: frechet_only(onp.zeros((3, 3)), e), (rng.standard_normal((3, 3)),))


def test_jvp_and_vjp_are_frechet_derivatives():
    rng = onp.random.default_rng(15)
    for n, scale in ((4, 0.1), (6, 2.0), (5, 60.0)):
        a, e, g = _random(rng, n, scale), rng.standard_normal((n, n)), rng.standard_normal((n, n))
        x, t = sg.jvp(expm, (a,), (e,))
        assert rel_err(t, sla.expm_frechet(a, e)[1]) <= tol(a)
        x, pullback = sg.vjp(expm, a)
        (ga,) = pullback(g)
        assert rel_err(ga, sla.expm_frechet(a.T, g)[1]) <= tol(a)


def test_gradient_with_a_low_rank_cotangent():
    # expm(A) @ u gives expm a rank-one (LowRankArray) cotangent
    rng = onp.random.default_rng(16)
    a, u, d = _random(rng, 5), rng.standard_normal(5), rng.standard_normal(5)

    def loss(a):
        r = expm(a) @ u - d
        return snp.sum(r * r)

    r = sla.expm(a) @ u - d
    expected = sla.expm_frechet(a.T, onp.outer(2 * r, u))[1]
    assert rel_err(sg.grad(loss)(a), expected) <= 1e-12
    sg.check_grads(loss, (a,), order=2)


def test_derivatives_reuse_the_forward_factorization(monkeypatch):
    calls = []
    factorize = _expm._factorize
    monkeypatch.setattr(_expm, "_factorize", lambda q: calls.append(q.shape) or factorize(q))
    rng = onp.random.default_rng(17)
    a = _random(rng, 5, 4.0)
    x, pullback = sg.vjp(expm, a)
    assert len(calls) == 1  # the forward
    for _ in range(3):
        pullback(rng.standard_normal((5, 5)))
    assert len(calls) == 1  # three VJPs, no refactorization
    sg.jvp(expm, (a,), (rng.standard_normal((5, 5)),))
    assert len(calls) == 2  # one forward, its JVP from the same factorization
    sg.jacrev(expm)(a)
    assert len(calls) == 3  # 25 VJPs
    expm_frechet(a, rng.standard_normal((5, 5)))
    assert len(calls) == 4  # expm and L(A, E) share one factorization


def test_gradient_of_the_seed_model():
    # du_i/dt = sum_j p_ij (u_j - u_i), data at t = 1..4: gradient with respect to the rates
    rng = onp.random.default_rng(18)
    n = 5
    p, u0, data = rng.random((n, n)), rng.random(n), rng.random((n, 4))

    def loss(p):
        a = p - snp.diag(snp.sum(p, axis=1))
        total = 0.0
        for k in range(4):
            r = expm(a * (k + 1.0)) @ u0 - data[:, k]
            total = total + snp.sum(r * r)
        return total

    sg.check_grads(loss, (p,), order=2)


# -- hypothesis: random sizes, batch shapes and values ----------------------------------------
@given(data=st.data())
def test_expm_hypothesis(data):
    n = data.draw(st.integers(1, 4))
    batch = data.draw(st.sampled_from([(), (2,), (1, 2)]))
    scale = data.draw(st.sampled_from([0.1, 1.0, 4.0]))
    a = data.draw(arrays(batch + (n, n))) * scale
    assert rel_err(expm(a), sla.expm(a)) <= tol(a)
    sg.check_grads(expm, (a,), order=2)


@given(data=st.data())
def test_expm_frechet_hypothesis(data):
    n = data.draw(st.integers(1, 4))
    a = data.draw(arrays((n, n))) * data.draw(st.sampled_from([0.1, 1.0, 4.0]))
    e = data.draw(arrays((n, n)))
    assert rel_err(frechet_only(a, e), sla.expm_frechet(a, e)[1]) <= tol(a)
    sg.check_grads(frechet_only, (a, e), order=1)


# -- errors ---------------------------------------------------------------------------------------
def test_expm_errors():
    with pytest.raises(LinAlgError, match="at least two-dimensional"):
        expm(onp.ones(3))
    with pytest.raises(LinAlgError, match="must be square"):
        expm(onp.ones((2, 3)))
    with pytest.raises(ValueError, match="infs or NaNs"):
        expm(onp.array([[onp.nan, 0.0], [1.0, 0.0]]))
    with pytest.raises(NotImplementedError, match="complex"):
        expm(onp.eye(2) * 1j)
    with pytest.raises(ValueError, match="infs or NaNs"):
        sg.grad(lambda a: snp.sum(expm(a)))(onp.array([[onp.inf, 0.0], [1.0, 0.0]]))


def test_expm_frechet_errors():
    a = onp.eye(3)
    with pytest.raises(ValueError, match="expected A to be a square matrix"):
        expm_frechet(onp.ones((2, 3)), onp.ones((2, 3)))
    with pytest.raises(ValueError, match="expected E to be a square matrix"):
        expm_frechet(a, onp.ones(3))
    with pytest.raises(ValueError, match="expected A and E to be the same shape"):
        expm_frechet(a, onp.eye(2))
    with pytest.raises(ValueError, match="Unknown implementation bogus"):
        expm_frechet(a, a, method="bogus")
    with pytest.raises(ValueError, match="infs or NaNs"):
        expm_frechet(a, a * onp.nan)
    with pytest.raises(ValueError, match="infs or NaNs"):  # check_finite=False: expm checks
        expm_frechet(a * onp.nan, a, check_finite=False)


# -- the benchmark script -------------------------------------------------------------------
def test_benchmark_smoke(tmp_path, capsys):
    path = ROOT / "benchmarks" / "matfun.py"
    spec = importlib.util.spec_from_file_location("_scigrad_bench_matfun", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        out = tmp_path / "BENCHMARKS_MATFUN.md"
        assert module.main(["--quick", "--no-jax", "--n", "8", "--output", str(out)]) == 0
    finally:
        sys.modules.pop(spec.name, None)
    text = out.read_text(encoding="utf-8")
    assert "## (1) expm of a 8×8 matrix" in text and "## (2) The seed's model" in text
    assert "Gradient / forward" in text
