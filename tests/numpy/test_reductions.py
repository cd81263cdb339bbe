"""Reductions, cumulative operations and sorting: values against NumPy, derivatives against
finite differences (second order, both modes), zero-safe products, ties, and bad input."""

from __future__ import annotations

import itertools
import warnings

import numpy as onp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scigrad as sg
import scigrad.numpy as np
from tests.strategies import arrays, shapes


def distinct(shape, seed: int = 0) -> onp.ndarray:
    """Values in about [-2, 2], pairwise at least 0.1 apart (no ties: no kinks for max/sort)."""
    rng = onp.random.default_rng(seed)
    size = int(onp.prod(shape))
    return (rng.permutation(size) * 0.1 - 0.05 * size + rng.uniform(0, 0.02, size)).reshape(shape)


def distinct_arrays(shape) -> st.SearchStrategy:
    """Hypothesis arrays of pairwise distinct values, 0.05 apart."""
    ints = hnp.arrays(onp.int64, shape, elements=st.integers(-40, 40), unique=True)
    return ints.map(lambda a: a * 0.05)


def traced_value(f, x):
    """``f(x)`` computed on traced values (the primal of a JVP)."""
    return sg.jvp(f, (x,), (onp.ones_like(x),))[0]


X3 = distinct((2, 3, 4))

# (function name, keyword arguments): checked against NumPy and differentiated.
CASES = [
    ("sum", {}),
    ("sum", {"axis": 0}),
    ("sum", {"axis": (0, 2), "keepdims": True}),
    ("sum", {"axis": -1}),
    ("mean", {}),
    ("mean", {"axis": 1}),
    ("mean", {"axis": (0, -1), "keepdims": True}),
    ("prod", {}),
    ("prod", {"axis": 1}),
    ("prod", {"axis": (0, 2), "keepdims": True}),
    ("var", {}),
    ("var", {"axis": 1}),
    ("var", {"axis": (0, 2), "ddof": 1, "keepdims": True}),
    ("std", {}),
    ("std", {"axis": -1, "ddof": 1}),
    ("std", {"axis": (1, 2), "keepdims": True}),
    ("max", {}),
    ("max", {"axis": 0}),
    ("max", {"axis": (1, 2), "keepdims": True}),
    ("min", {}),
    ("min", {"axis": -1}),
    ("min", {"axis": (0, 1), "keepdims": True}),
    ("amax", {"axis": 2}),
    ("amin", {"axis": (0, 2)}),
    ("ptp", {}),
    ("ptp", {"axis": 1, "keepdims": True}),
    ("cumsum", {}),
    ("cumsum", {"axis": 0}),
    ("cumsum", {"axis": -1}),
    ("cumprod", {}),
    ("cumprod", {"axis": 1}),
    ("cumprod", {"axis": -1}),
    ("sort", {}),
    ("sort", {"axis": 0}),
    ("sort", {"axis": None}),
    ("median", {}),
    ("median", {"axis": 1}),
    ("median", {"axis": 0, "keepdims": True}),
    ("diff", {}),
    ("diff", {"n": 2, "axis": 1}),
    ("diff", {"axis": 0, "prepend": 0.5}),
    ("diff", {"n": 3, "append": 1.0}),
    ("average", {}),
    ("average", {"axis": 1}),
    ("nansum", {"axis": 1}),
    ("nanmean", {"axis": (0, 2)}),
    ("nanmax", {"axis": 0}),
    ("nanmin", {}),
    ("nanprod", {"axis": -1}),
]


def _ids(case):
    name, kw = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_values_match_numpy(case):
    name, kw = case
    f = getattr(np, name)
    expected = getattr(onp, name)(X3, **kw)
    onp.testing.assert_allclose(f(X3, **kw), expected, rtol=1e-12, atol=1e-12)
    got = traced_value(lambda x: f(x, **kw), X3)
    assert onp.shape(got) == onp.shape(expected)
    onp.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_check_grads(case):
    name, kw = case
    f = getattr(np, name)
    sg.check_grads(lambda x: f(x, **kw), (X3,), order=2)


def test_existing_reductions_dtype_and_out():
    x = onp.arange(6).reshape(2, 3)
    assert np.sum(x, dtype=onp.float32).dtype == onp.float32
    assert np.mean(x, axis=0).dtype == onp.float64
    out = onp.empty(3)
    assert np.mean(x, 0, None, out) is out
    onp.testing.assert_allclose(out, [1.5, 2.5, 3.5])
    onp.testing.assert_array_equal(np.cumsum(onp.array([True, True, False])), [1, 2, 2])
    onp.testing.assert_array_equal(np.cumprod(onp.arange(1, 5, dtype=onp.int8)), [1, 2, 6, 24])
    assert np.cumsum(onp.arange(3, dtype=onp.int8)).dtype == onp.int_


# -- products are zero-safe -------------------------------------------------------------------
def _brute_grad_prod(x):
    return onp.array([onp.prod(onp.delete(x, i)) for i in range(x.size)])


@pytest.mark.parametrize(
    "x", [[2.0, 0.0, 3.0, -1.5], [0.0, 2.0, 0.0, 3.0], [0.0, 0.0, 0.0, 1.0], [0.0]]
)
def test_prod_gradient_at_zeros(x):
    x = onp.array(x)
    onp.testing.assert_allclose(sg.grad(np.prod)(x), _brute_grad_prod(x), atol=1e-14)
    h = sg.hessian(np.prod)(x)
    n = x.size
    expected = onp.zeros((n, n))
    for i, j in itertools.permutations(range(n), 2):
        expected[i, j] = onp.prod(onp.delete(x, [i, j]))
    onp.testing.assert_allclose(h, expected, atol=1e-14)
    sg.check_grads(np.prod, (x,), order=2)


def test_prod_check_grads_with_zeros_along_axes():
    x = onp.array([[0.0, 1.5, -2.0], [0.7, 0.0, 0.0]])
    for kw in ({}, {"axis": 0}, {"axis": 1, "keepdims": True}):
        sg.check_grads(lambda x, kw=kw: np.prod(x, **kw), (x,), order=2)


def test_cumprod_check_grads_with_zeros():
    x = onp.array([[1.5, 0.0, -2.0, 0.5, 1.1], [0.0, 0.0, 1.3, 0.8, -0.9]])
    for axis in (None, 0, 1):
        sg.check_grads(lambda x, axis=axis: np.cumprod(x, axis=axis), (x,), order=2)
    g = sg.grad(lambda x: np.sum(np.cumprod(x)))(onp.array([2.0, 0.0, 3.0]))
    onp.testing.assert_allclose(g, [1.0, 2.0 + 6.0, 0.0])


# -- max/min: ties share the derivative -------------------------------------------------------
def test_max_ties_split_equally():
    x = onp.array([1.0, 3.0, 3.0, -2.0])
    onp.testing.assert_allclose(sg.grad(np.max)(x), [0.0, 0.5, 0.5, 0.0])
    onp.testing.assert_allclose(sg.grad(np.min)(-x), [0.0, 0.5, 0.5, 0.0])
    _, t = sg.jvp(np.max, (x,), (onp.array([5.0, 1.0, 2.0, 7.0]),))
    assert t == pytest.approx(1.5)
    m = onp.array([[2.0, 2.0, 1.0], [0.0, 4.0, 4.0]])
    g = sg.grad(lambda m: np.sum(np.max(m, axis=1) * onp.array([1.0, 10.0])))(m)
    onp.testing.assert_allclose(g, [[0.5, 0.5, 0.0], [0.0, 5.0, 5.0]])
    onp.testing.assert_allclose(sg.hessian(np.max)(x), onp.zeros((4, 4)))


def test_sort_gradient_follows_permutation():
    x = onp.array([3.0, -1.0, 2.0])
    w = onp.array([1.0, 10.0, 100.0])
    g = sg.grad(lambda x: np.sum(np.sort(x) * w))(x)
    onp.testing.assert_allclose(g, [100.0, 1.0, 10.0])


def test_average_weights_are_differentiable():
    x = distinct((3, 4), seed=1)
    w = onp.array([0.5, 1.0, 2.0, 1.5])
    f = lambda x, w: np.average(x, axis=1, weights=w)  # noqa: E731
    onp.testing.assert_allclose(f(x, w), onp.average(x, axis=1, weights=w))
    sg.check_grads(f, (x, w), order=2)
    w2 = onp.abs(distinct((3, 4), seed=2)) + 0.5
    sg.check_grads(lambda x, w: np.average(x, axis=0, weights=w), (x, w2), order=2)
    avg, scl = np.average(x, axis=0, weights=w2, returned=True)
    eavg, escl = onp.average(x, axis=0, weights=w2, returned=True)
    onp.testing.assert_allclose(avg, eavg)
    onp.testing.assert_allclose(scl, escl)
    wt = onp.arange(1.0, 13.0).reshape(4, 3)
    onp.testing.assert_allclose(
        np.average(x, axis=(1, 0), weights=wt), onp.average(x, axis=(1, 0), weights=wt)
    )
    avg, scl = np.average(x, axis=1, weights=w, returned=True, keepdims=True)
    eavg, escl = onp.average(x, axis=1, weights=w, returned=True, keepdims=True)
    onp.testing.assert_allclose(avg, eavg)
    onp.testing.assert_allclose(scl, escl)


def test_nan_reductions_ignore_nans():
    x = onp.array([[1.0, onp.nan, 2.0], [onp.nan, onp.nan, onp.nan], [0.5, -1.0, 3.0]])
    for name in ("nansum", "nanprod", "nanmax", "nanmin"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's all-NaN slice warning
            expected = getattr(onp, name)(x, axis=1)
        onp.testing.assert_allclose(getattr(np, name)(x, axis=1), expected)
    with pytest.warns(RuntimeWarning):
        expected = onp.nanmean(x, axis=1)
    onp.testing.assert_allclose(np.nanmean(x, axis=1), expected)
    g = sg.grad(lambda x: np.nansum(x) ** 2)(x)
    onp.testing.assert_allclose(g, onp.where(onp.isnan(x), 0.0, 2 * onp.nansum(x)))
    sg.check_grads(lambda x: np.nanmean(x, axis=0), (x[[0, 2]],), order=2)
    onp.testing.assert_array_equal(np.median(x, axis=1), onp.median(x, axis=1))


# -- no derivative: arg-functions, logic, counts ----------------------------------------------
def test_nondifferentiable_reductions_match_numpy():
    x = X3
    for name, kw in [
        ("argmax", {}),
        ("argmax", {"axis": 1}),
        ("argmin", {"axis": -1, "keepdims": True}),
        ("argsort", {}),
        ("argsort", {"axis": 0}),
        ("argsort", {"axis": None}),
        ("count_nonzero", {}),
        ("count_nonzero", {"axis": (0, 2)}),
    ]:
        onp.testing.assert_array_equal(getattr(np, name)(x, **kw), getattr(onp, name)(x, **kw))
    b = x > 0
    for kw in ({}, {"axis": 1}, {"axis": (0, 2), "keepdims": True}):
        onp.testing.assert_array_equal(np.all(b, **kw), onp.all(b, **kw))
        onp.testing.assert_array_equal(np.any(b, **kw), onp.any(b, **kw))
        onp.testing.assert_array_equal(np.all(x, **kw), onp.all(x, **kw))


def test_nondifferentiable_reductions_inside_grad():
    x = onp.array([0.3, -1.2, 2.5, 0.7])

    def f(x):
        i = np.argmax(x)
        order = np.argsort(x)
        scale = 2.0 if np.all(x > -5.0) and not np.any(x > 10.0) else 0.0
        return x[i] * scale + np.sum(x[order] * onp.arange(4.0)) + np.count_nonzero(x)

    onp.testing.assert_allclose(sg.grad(f)(x), [1.0, 0.0, 2.0 + 3.0, 2.0])
    sg.check_grads(f, (x,), order=2)


def test_shape_rules_agree_with_values():
    x = X3
    fs = [
        lambda x: np.prod(x, axis=1),
        lambda x: np.max(x, axis=(0, 2), keepdims=True),
        lambda x: np.min(x),
        lambda x: np.cumsum(x, axis=1),
        lambda x: np.cumprod(x, axis=2),
        lambda x: np.sort(x, axis=0),
        lambda x: np.argsort(x),
        lambda x: np.argmax(x, axis=1, keepdims=True),
        lambda x: np.argmin(x),
        lambda x: np.all(x > 0, axis=1),
        lambda x: np.any(x > 0),
        lambda x: np.count_nonzero(x, axis=0),
        lambda x: np.var(x, axis=1),
        lambda x: np.std(x, axis=(0, 1), keepdims=True),
    ]
    for f in fs:
        aval = sg.eval_shape(f, x)
        out = onp.asarray(f(x))
        assert aval.shape == out.shape
        assert aval.dtype == out.dtype


# -- hypothesis: random shapes and axes --------------------------------------------------------
@st.composite
def array_and_axes(draw, elements=None, max_dims=3, max_side=4):
    shape = draw(shapes(min_dims=1, max_dims=max_dims, max_side=max_side))
    x = draw(elements(shape) if elements is not None else arrays(shape))
    axis = draw(st.one_of(st.none(), hnp.valid_tuple_axes(len(shape), min_size=1)))
    if axis is not None and len(axis) == 1 and draw(st.booleans()):
        axis = axis[0]
    return x, axis, draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "var"])
@given(data=array_and_axes())
def test_hypothesis_smooth_reductions(name, data):
    x, axis, keepdims = data
    f = getattr(np, name)
    onp.testing.assert_allclose(
        f(x, axis=axis, keepdims=keepdims),
        getattr(onp, name)(x, axis=axis, keepdims=keepdims),
        rtol=1e-12,
        atol=1e-12,
    )
    sg.check_grads(lambda x: f(x, axis=axis, keepdims=keepdims), (x,), order=2)


def _unit_magnitude(shape):
    return arrays(shape, 0.5, 1.5).flatmap(
        lambda a: hnp.arrays(onp.float64, a.shape, elements=st.sampled_from([-1.0, 1.0])).map(
            lambda s: a * s
        )
    )


@given(data=array_and_axes(elements=_unit_magnitude, max_dims=2, max_side=3))
def test_hypothesis_prod(data):
    x, axis, keepdims = data
    onp.testing.assert_allclose(
        np.prod(x, axis=axis, keepdims=keepdims), onp.prod(x, axis=axis, keepdims=keepdims)
    )
    sg.check_grads(lambda x: np.prod(x, axis=axis, keepdims=keepdims), (x,), order=2)


@pytest.mark.parametrize("name", ["max", "min"])
@given(data=array_and_axes(elements=distinct_arrays))
def test_hypothesis_max_min(name, data):
    x, axis, keepdims = data
    f = getattr(np, name)
    onp.testing.assert_array_equal(
        f(x, axis=axis, keepdims=keepdims), getattr(onp, name)(x, axis=axis, keepdims=keepdims)
    )
    sg.check_grads(lambda x: f(x, axis=axis, keepdims=keepdims), (x,), order=2)


@given(data=st.data())
def test_hypothesis_cumulative_and_sort(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    x = data.draw(distinct_arrays(shape))
    for name in ("cumsum", "sort"):
        f = getattr(np, name)
        onp.testing.assert_allclose(f(x, axis=axis), getattr(onp, name)(x, axis=axis))
        sg.check_grads(lambda x, f=f: f(x, axis=axis), (x,), order=2)
    y = data.draw(_unit_magnitude(shape))
    onp.testing.assert_allclose(np.cumprod(y, axis=axis), onp.cumprod(y, axis=axis))
    sg.check_grads(lambda y: np.cumprod(y, axis=axis), (y,), order=2)


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["sum", "mean", "prod", "var", "std", "max", "min", "all", "any", "count_nonzero"]
)
def test_bad_axis_is_an_axis_error(name):
    f = getattr(np, name)
    with pytest.raises(onp.exceptions.AxisError, match="out of bounds"):
        f(onp.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="duplicate value in 'axis'"):
        f(onp.ones((2, 3)), axis=(0, -2))
    with pytest.raises(onp.exceptions.AxisError, match="out of bounds"):
        sg.grad(lambda x: np.sum(f(x, axis=-3)))(onp.ones((2, 3)))


@pytest.mark.parametrize("name", ["cumsum", "cumprod", "sort", "argsort", "argmax", "argmin"])
def test_bad_single_axis(name):
    f = getattr(np, name)
    with pytest.raises(onp.exceptions.AxisError, match="out of bounds"):
        f(onp.ones((2, 3)), axis=2)
    with pytest.raises(TypeError, match="axis must be an integer"):
        f(onp.ones((2, 3)), axis=(0, 1))


def test_bad_arguments():
    x = onp.ones((2, 3))
    with pytest.raises(TypeError, match="Axis must be specified"):
        np.average(x, weights=onp.ones(3))
    with pytest.raises(ValueError, match="consistent with shape of a along specified axis"):
        np.average(x, axis=1, weights=onp.ones(2))
    with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
        np.average(x, axis=1, weights=onp.array([1.0, -1.0, 0.0]))
    with pytest.raises(ValueError, match="ddof and correction"):
        np.var(x, ddof=1, correction=1)
    with pytest.raises(NotImplementedError, match="order="):
        np.sort(x, order="f")
    with pytest.raises(ValueError, match="order must be non-negative"):
        np.diff(x, n=-1)
    with pytest.raises(ValueError, match="at least one dimensional"):
        np.diff(onp.float64(1.0))
    with pytest.raises(ValueError, match="median of an empty slice"):
        np.median(onp.ones((2, 0)), axis=1)
    with pytest.raises(TypeError, match="out= cannot receive a traced value"):
        sg.grad(lambda x: np.sum(np.max(x, axis=0, out=onp.empty(3))))(x)
