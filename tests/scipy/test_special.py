"""scigrad.scipy.special: values against SciPy, derivatives against finite differences
(second order, both modes), random shapes and axes with hypothesis, numerical stability at
extreme arguments, removable singularities, and errors."""

from __future__ import annotations

import numpy as onp
import pytest
import scipy.special as osp
from hypothesis import given
from hypothesis import strategies as st

import scigrad as sg
import scigrad.numpy as snp
import scigrad.scipy
import scigrad.scipy.special as sp
from tests.strategies import arrays, away_from, shapes

# (name, low, high, points to stay away from)
UNARY = [
    ("gammaln", 0.3, 4.0, ()),
    ("gammaln", -2.7, -2.2, ()),  # log|gamma| between poles
    ("digamma", 0.3, 4.0, ()),
    ("psi", 0.3, 4.0, ()),
    ("gamma", 0.3, 3.0, ()),
    ("gamma", -0.8, -0.2, ()),
    ("erf", -2.0, 2.0, ()),
    ("erfc", -2.0, 2.0, ()),
    ("erfinv", -0.9, 0.9, ()),
    ("erfcinv", 0.1, 1.9, ()),
    ("ndtr", -3.0, 3.0, ()),
    ("log_ndtr", -3.0, 3.0, ()),
    ("ndtri", 0.05, 0.95, ()),
    ("expit", -3.0, 3.0, ()),
    ("logit", 0.05, 0.95, ()),
    ("log_expit", -3.0, 3.0, ()),
    ("entr", 0.1, 3.0, ()),
    ("i0", -2.0, 2.0, ()),
    ("i1", -2.0, 2.0, ()),
    ("i0e", -2.0, 2.0, (0.0,)),  # |x| inside: a kink at 0
    ("i1e", -2.0, 2.0, (0.0,)),
]

BINARY = [
    ("xlogy", (-2.0, 2.0), (0.2, 3.0)),
    ("xlog1py", (-2.0, 2.0), (-0.5, 3.0)),
    ("betaln", (0.3, 3.0), (0.3, 3.0)),
    ("beta", (0.3, 3.0), (0.3, 3.0)),
]


def test_namespace():
    assert scigrad.scipy.special is sp
    for name in sp.__all__:
        assert callable(getattr(sp, name)), name
        assert hasattr(osp, name), name


@pytest.mark.parametrize("name,low,high,avoid", UNARY, ids=lambda v: str(v))
def test_unary(name, low, high, avoid, rng):
    f = getattr(sp, name)
    x = away_from(rng.uniform(low, high, (3, 2)), avoid)
    onp.testing.assert_allclose(f(x), getattr(osp, name)(x), rtol=1e-13)
    sg.check_grads(f, (x,), order=2)


@pytest.mark.parametrize("name,xr,yr", BINARY, ids=lambda v: str(v))
def test_binary(name, xr, yr, rng):
    f = getattr(sp, name)
    x, y = rng.uniform(*xr, (3, 2)), rng.uniform(*yr, (2,))  # broadcasting
    onp.testing.assert_allclose(f(x, y), getattr(osp, name)(x, y), rtol=1e-13)
    sg.check_grads(f, (x, y), order=2)
    if name in ("betaln", "beta"):  # symmetric: swap the broadcasting roles
        sg.check_grads(f, (y, x), order=1)


@pytest.mark.parametrize("name,low,high,avoid", UNARY, ids=lambda v: str(v))
@given(data=st.data())
def test_unary_random_shapes(name, low, high, avoid, data):
    f = getattr(sp, name)
    x = away_from(data.draw(arrays(shapes(max_dims=2, max_side=3), low, high)), avoid)
    onp.testing.assert_allclose(f(x), getattr(osp, name)(x), rtol=1e-12, atol=1e-300)
    sg.check_grads(f, (x,), order=1)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_polygamma(n, rng):
    x = rng.uniform(0.3, 3.0, 4)
    onp.testing.assert_allclose(sp.polygamma(n, x), osp.polygamma(n, x), rtol=1e-13)
    sg.check_grads(lambda x: sp.polygamma(n, x), (x,), order=2)
    # the derivative chain: gammaln' = digamma, digamma' = polygamma(1, .), ...
    onp.testing.assert_allclose(
        sg.grad(lambda x: snp.sum(sp.polygamma(n, x)))(x), osp.polygamma(n + 1, x), rtol=1e-13
    )


def test_polygamma_array_order_and_errors(rng):
    x = rng.uniform(0.5, 2.0, (2, 3))
    n = onp.array([0, 1, 2])
    onp.testing.assert_allclose(sp.polygamma(n, x), osp.polygamma(n, x), rtol=1e-13)
    sg.check_grads(lambda x: sp.polygamma(n, x), (x,), order=2)
    sg.check_grads(lambda x: sp.polygamma(onp.array([[0], [2]]), x), (x[:1],), order=1)
    with pytest.raises(ValueError, match="non-negative"):
        sp.polygamma(-1, x)
    with pytest.raises(TypeError, match="integer"):
        sp.polygamma(1.5, x)
    with pytest.raises(TypeError, match="concrete"):
        sg.grad(lambda n: snp.sum(sp.polygamma(n, x)))(1.0)
    assert sp.polygamma(2.0, 1.5) == pytest.approx(osp.polygamma(2, 1.5))  # integral float


def test_gammaln_chain_third_order(rng):
    x = rng.uniform(0.5, 3.0, 3)
    sg.check_grads(sp.gammaln, (x,), order=3)
    onp.testing.assert_allclose(sg.grad(lambda x: snp.sum(sp.gammaln(x)))(x), osp.psi(x))


# -- logsumexp, softmax, log_softmax ------------------------------------------------------------
AXES = [None, 0, 1, -1, (0, 1)]


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp(axis, keepdims, rng):
    x = rng.standard_normal((3, 4))
    onp.testing.assert_allclose(
        sp.logsumexp(x, axis=axis, keepdims=keepdims),
        osp.logsumexp(x, axis=axis, keepdims=keepdims),
        rtol=1e-13,
    )
    sg.check_grads(lambda x: sp.logsumexp(x, axis=axis, keepdims=keepdims), (x,), order=2)
    b = rng.uniform(0.2, 2.0, (4,))
    onp.testing.assert_allclose(
        sp.logsumexp(x, axis=axis, b=b, keepdims=keepdims),
        osp.logsumexp(x, axis=axis, b=b, keepdims=keepdims),
        rtol=1e-13,
    )
    sg.check_grads(lambda x, b: sp.logsumexp(x, axis=axis, b=b, keepdims=keepdims), (x, b), order=2)


def test_logsumexp_gradient_is_softmax(rng):
    x = rng.standard_normal((2, 5))
    onp.testing.assert_allclose(
        sg.grad(lambda x: snp.sum(sp.logsumexp(x, axis=1)))(x), osp.softmax(x, axis=1)
    )


def test_logsumexp_signed_weights(rng):
    a = onp.array([0.1, 0.3, -0.2])
    b = onp.array([1.0, -2.0, 0.5])  # negative sum
    out, sign = sp.logsumexp(a, b=b, return_sign=True)
    ref_out, ref_sign = osp.logsumexp(a, b=b, return_sign=True)
    onp.testing.assert_allclose(out, ref_out, rtol=1e-13)
    assert sign == ref_sign == -1.0
    sg.check_grads(lambda a, b: sp.logsumexp(a, b=b, return_sign=True)[0], (a, b), order=2)
    with onp.errstate(invalid="ignore"):
        assert onp.isnan(sp.logsumexp(a, b=b)) and onp.isnan(osp.logsumexp(a, b=b))
    out, sign = sp.logsumexp(a, return_sign=True)
    assert sign == 1.0 and out == pytest.approx(osp.logsumexp(a))
    # weights that broadcast the values to a larger shape
    a, b = rng.standard_normal(4), rng.uniform(0.5, 1.5, (3, 4))
    onp.testing.assert_allclose(
        sp.logsumexp(a, axis=1, b=b), osp.logsumexp(a, axis=1, b=b), rtol=1e-13
    )
    sg.check_grads(lambda a, b: sp.logsumexp(a, axis=1, b=b), (a, b), order=2)
    x = rng.standard_normal((2, 3))
    sg.check_grads(
        lambda x, b: sp.logsumexp(x, axis=0, b=b, return_sign=True)[0],
        (x, onp.array([[1.0], [-3.0]])),
        order=2,
    )


def test_logsumexp_is_stable():
    x = onp.array([1000.0, 1000.0, -1000.0])
    assert sp.logsumexp(x) == pytest.approx(1000.0 + onp.log(2.0))
    onp.testing.assert_allclose(sg.grad(sp.logsumexp)(x), [0.5, 0.5, 0.0])
    # all -inf: the value is -inf (as SciPy) and the gradient 0, not NaN
    x = onp.full(3, -onp.inf)
    assert sp.logsumexp(x) == osp.logsumexp(x) == -onp.inf
    onp.testing.assert_array_equal(sg.grad(sp.logsumexp)(x), 0.0)
    onp.testing.assert_array_equal(sp.log_softmax(onp.array([1000.0, 0.0])), [0.0, -1000.0])
    onp.testing.assert_allclose(sp.softmax(onp.array([1000.0, 0.0])), [1.0, 0.0])


@pytest.mark.parametrize("axis", AXES, ids=str)
def test_softmax_and_log_softmax(axis, rng):
    x = rng.standard_normal((3, 4))
    onp.testing.assert_allclose(sp.softmax(x, axis=axis), osp.softmax(x, axis=axis), rtol=1e-13)
    onp.testing.assert_allclose(
        sp.log_softmax(x, axis=axis), osp.log_softmax(x, axis=axis), rtol=1e-13
    )
    sg.check_grads(lambda x: sp.softmax(x, axis=axis), (x,), order=2)
    sg.check_grads(lambda x: sp.log_softmax(x, axis=axis), (x,), order=2)


@given(data=st.data())
def test_reductions_random_shapes_and_axes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3))
    x = data.draw(arrays(shape, -3.0, 3.0))
    axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    keepdims = data.draw(st.booleans())
    onp.testing.assert_allclose(
        sp.logsumexp(x, axis=axis, keepdims=keepdims),
        osp.logsumexp(x, axis=axis, keepdims=keepdims),
        rtol=1e-12,
    )
    onp.testing.assert_allclose(sp.softmax(x, axis=axis), osp.softmax(x, axis=axis), rtol=1e-12)
    onp.testing.assert_allclose(
        sp.log_softmax(x, axis=axis), osp.log_softmax(x, axis=axis), rtol=1e-12, atol=1e-14
    )
    sg.check_grads(lambda x: sp.logsumexp(x, axis=axis, keepdims=keepdims), (x,), order=2)
    sg.check_grads(lambda x: sp.softmax(x, axis=axis), (x,), order=1)
    sg.check_grads(lambda x: sp.log_softmax(x, axis=axis), (x,), order=1)


def test_reduction_errors():
    with pytest.raises(onp.exceptions.AxisError):
        sp.logsumexp(onp.ones(3), axis=1)
    with pytest.raises(onp.exceptions.AxisError):
        sp.softmax(onp.ones((2, 2)), axis=2)
    with pytest.raises(ValueError):
        sp.logsumexp(onp.ones(3), b=onp.ones(2))


# -- edge values, dtypes, shapes -----------------------------------------------------------------
def test_removable_singularities_and_tails():
    # d/dx i1 at 0 is 1/2, i1e likewise; x log y has zero y-derivative where x == 0
    assert sg.grad(sp.i1)(0.0) == 0.5
    assert sg.grad(sp.i1e)(0.0) == 0.5
    assert sg.grad(sg.grad(sp.i1))(0.0) == 0.0
    assert sg.grad(lambda y: sp.xlogy(0.0, y))(0.0) == 0.0
    assert sg.grad(lambda y: sp.xlog1py(0.0, y))(-1.0) == 0.0
    gx, gy = sg.grad(sp.xlogy, argnums=(0, 1))(0.0, 2.0)
    assert gx == pytest.approx(onp.log(2.0)) and gy == 0.0
    sg.check_grads(lambda y: sp.xlogy(onp.array([0.0, 1.5]), y), (onp.array([0.7, 2.0]),))
    # the log-CDF's derivative (the inverse Mills ratio) far in the lower tail: about -x
    g = sg.grad(sp.log_ndtr)(-30.0)
    assert onp.isfinite(g) and g == pytest.approx(30.0332596674, rel=1e-9)
    # log_expit far out: no overflow
    assert sg.grad(sp.log_expit)(-800.0) == pytest.approx(1.0)
    assert sg.grad(sp.expit)(800.0) == 0.0


def test_integer_inputs_give_floats():
    n = onp.arange(1, 4)
    onp.testing.assert_allclose(sp.gammaln(n), osp.gammaln(n))
    onp.testing.assert_allclose(sp.expit(n), osp.expit(n))
    onp.testing.assert_allclose(sp.softmax(n), osp.softmax(n))
    onp.testing.assert_allclose(sp.logsumexp(n), osp.logsumexp(n))
    assert sg.eval_shape(sp.gammaln, n).dtype == onp.float64
    assert sg.eval_shape(sp.expit, onp.ones(2, onp.float32)).dtype == onp.float32


@pytest.mark.parametrize(
    "f",
    [
        sp.erf,
        lambda x: sp.polygamma(1, x),
        lambda x: sp.xlogy(x, 2.0),
        lambda x: sp.logsumexp(x, axis=1, keepdims=True),
        lambda x: sp.logsumexp(x, axis=0, b=onp.ones(3), return_sign=True),
        lambda x: sp.softmax(x, axis=0),
        lambda x: sp.log_softmax(x),
    ],
)
def test_eval_shape_matches(f, rng):
    x = rng.uniform(0.5, 1.5, (2, 3))
    out = sg.tree_flatten(f(x))[0]
    abstract = sg.tree_flatten(sg.eval_shape(f, x))[0]
    assert [(onp.shape(o), onp.asarray(o).dtype) for o in out] == [
        (a.shape, a.dtype) for a in abstract
    ]
