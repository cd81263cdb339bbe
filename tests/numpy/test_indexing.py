"""Indexing: ``x[idx]`` for every kind of index, the ``x.at[idx]`` updates, take & co.

Values against NumPy, derivatives against finite differences (second order, both modes),
repeated indices (gradients accumulate), and the errors for out-of-range indices and
in-place writes.
"""

from __future__ import annotations

import numpy as onp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scigrad as sg
import scigrad.numpy as snp
from scigrad.numpy import _indexing as I
from tests.strategies import arrays

X_SHAPE = (4, 5, 3)
_MASK = onp.random.default_rng(3).standard_normal(X_SHAPE) > 0

INDICES = {
    "int": 1,
    "negative int": -1,
    "int tuple": (2, -1, 0),
    "slice": slice(1, 3),
    "negative step": (slice(None, None, -2),),
    "slices with steps": (slice(1, None, 2), slice(4, 0, -3)),
    "newaxis": (None, 1),
    "ellipsis": (Ellipsis, 1),
    "ellipsis and newaxis": (1, Ellipsis, None),
    "int array with repeats": onp.array([0, 0, 3, 1]),
    "list with repeats": [2, 0, 2],
    "2-d int array": (onp.array([[0, 1], [1, 1]]),),
    "negative int array": onp.array([-1, 0, -1]),
    "boolean mask (full)": _MASK,
    "boolean mask (leading)": (_MASK[:, :, 0],),
    "boolean mask (middle)": (slice(None), _MASK[0, :, 0]),
    "np.ix_": onp.ix_([0, 0, 2], [1, 4]),
    "np.ix_ 3-d": onp.ix_([1, 3], [0, 0], [2, 1]),
    "mixed: slice, array, int": (slice(None), [1, 1, 2], 0),
    "mixed: separated arrays": ([0, 1], slice(None), [2, 2]),
    "mixed: int and array": (1, [0, 0], slice(None)),
    "mixed: ellipsis and array": (Ellipsis, [0, 0]),
    "mixed: newaxis and arrays": (None, [1, 1], None, 0),
    "0-d int array": onp.array(2),
    "python bool": True,
    "0-d bool array": onp.array(True),
    "empty list": [],
}


@pytest.mark.parametrize("idx", INDICES.values(), ids=INDICES.keys())
def test_getitem(idx, rng):
    x = rng.standard_normal(X_SHAPE)
    onp.testing.assert_array_equal(I.getitem(x, idx), x[idx])
    onp.testing.assert_array_equal(sg.jvp(lambda x: x[idx], (x,), (x,))[1], x[idx])
    assert sg.eval_shape(lambda x: x[idx], x).shape == x[idx].shape
    sg.check_grads(lambda x: snp.sin(x[idx]) * x[idx], (x,), order=2)


@pytest.mark.parametrize("idx", INDICES.values(), ids=INDICES.keys())
def test_getitem_gradient_accumulates_over_repeats(idx, rng):
    x = rng.standard_normal(X_SHAPE)
    counts = onp.zeros(X_SHAPE)
    onp.add.at(counts, idx, 1.0)
    onp.testing.assert_array_equal(sg.grad(lambda x: snp.sum(x[idx]))(x), counts)


def test_repeated_indices_scatter_add():
    g = sg.grad(lambda x: snp.sum(x[onp.array([0, 0, 1, 0])] * onp.array([1.0, 2.0, 3.0, 4.0])))(
        onp.zeros(3)
    )
    onp.testing.assert_array_equal(g, [7.0, 3.0, 0.0])


@st.composite
def basic_index(draw, shape):
    """A random tuple of ints, slices (any step), None and Ellipsis for ``shape``."""
    idx = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "all"]))
        if kind == "int":
            idx.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.none() | st.integers(-n - 1, n + 1))
            stop = draw(st.none() | st.integers(-n - 1, n + 1))
            step = draw(st.none() | st.integers(-3, 3).filter(bool))
            idx.append(slice(start, stop, step))
        else:
            idx.append(slice(None))
        if draw(st.integers(0, 5)) == 0:
            idx.append(None)
    if idx and draw(st.booleans()):  # replace a trailing run of full slices by an ellipsis
        k = draw(st.integers(0, len(idx) - 1))
        idx = idx[:k] + [Ellipsis]
    return tuple(idx)


@given(data=st.data())
def test_getitem_random_basic_indices(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = data.draw(arrays(shape))
    idx = data.draw(basic_index(shape))
    onp.testing.assert_array_equal(I.getitem(x, idx), x[idx])
    sg.check_grads(lambda x: x[idx] * x[idx], (x,), order=2)


@given(data=st.data())
def test_getitem_random_integer_arrays_with_repeats(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = data.draw(arrays(shape))
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    ind_shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=5))
    ind = data.draw(hnp.arrays(onp.intp, ind_shape, elements=st.integers(-n, n - 1)))
    idx = (slice(None),) * axis + (ind,)
    if data.draw(st.booleans()) and len(shape) > axis + 1:  # a second array, broadcast
        m = shape[axis + 1]
        idx += (data.draw(hnp.arrays(onp.intp, (1,), elements=st.integers(-m, m - 1))),)
    onp.testing.assert_array_equal(I.getitem(x, idx), x[idx])
    sg.check_grads(lambda x: x[idx] * x[idx], (x,), order=2)
    counts = onp.zeros(shape)
    onp.add.at(counts, idx, 1.0)
    onp.testing.assert_array_equal(sg.grad(lambda x: snp.sum(x[idx]))(x), counts)


@given(data=st.data())
def test_getitem_random_boolean_masks(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = data.draw(arrays(shape))
    k = data.draw(st.integers(1, len(shape)))
    mask = data.draw(hnp.arrays(bool, shape[:k]))
    onp.testing.assert_array_equal(I.getitem(x, mask), x[mask])
    sg.check_grads(lambda x: x[mask] * x[mask], (x,), order=2)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("idx", [5, -6, (0, 7), [0, 5], (slice(None), onp.array([1, -9]))], ids=str)
def test_out_of_range_raises_index_error_on_the_forward_pass(idx, rng):
    x = rng.standard_normal((5, 4))
    with pytest.raises(IndexError):
        I.getitem(x, idx)
    with pytest.raises(IndexError):
        sg.grad(lambda x: snp.sum(x[idx]))(x)
    with pytest.raises(IndexError):
        sg.jvp(lambda x: x[idx], (x,), (x,))
    with pytest.raises(IndexError):
        snp.at(x)[idx].set(1.0)
    with pytest.raises(IndexError):
        sg.grad(lambda x: snp.sum(x.at[idx].add(1.0)))(x)


def test_invalid_indices(rng):
    x = rng.standard_normal((3, 4))
    with pytest.raises(IndexError, match="boolean index did not match"):
        sg.grad(lambda x: snp.sum(x[onp.array([True, False])]))(x)
    with pytest.raises(IndexError, match="integer or boolean"):
        I.getitem(x, onp.array([0.0, 1.0]))
    with pytest.raises(IndexError, match="valid indices"):
        sg.grad(lambda x: snp.sum(x[1.0]))(x)
    with pytest.raises(IndexError, match="too many indices"):
        I.getitem(x, (0, 0, 0))


def test_in_place_write_on_traced_value_raises():
    def f(x):
        x[0] = 1.0
        return snp.sum(x)

    with pytest.raises(TypeError, match=r"\.at\["):
        sg.grad(f)(onp.ones(3))


@pytest.mark.parametrize(
    "store",
    [
        lambda a, x: a.__setitem__(slice(0, 2), x[:2]),
        lambda a, x: a.__setitem__([0], x[0]),
        lambda a, x: a.__setitem__(Ellipsis, x),
    ],
    ids=["slice", "fancy", "whole"],
)
def test_storing_traced_value_into_numpy_array_raises(store):
    def f(x):
        a = onp.zeros(3)
        store(a, x)
        return snp.sum(a * x)

    with pytest.raises(TypeError, match="traced value"):
        sg.grad(f)(onp.ones(3))


def test_storing_traced_scalar_into_numpy_array_raises():
    # For a single element NumPy replaces the TypeError of the conversion by its own
    # ValueError ("setting an array element with a sequence"), raised *from* ours.
    def f(x):
        a = onp.zeros(3)
        a[0] = x[0]
        return snp.sum(a * x)

    with pytest.raises((TypeError, ValueError)) as info:
        sg.grad(f)(onp.ones(3))
    err = info.value if isinstance(info.value, TypeError) else info.value.__cause__
    assert isinstance(err, TypeError) and "traced value" in str(err)


# -- x.at[idx] ------------------------------------------------------------------------------
UFUNC_OF = {
    "set": None,
    "add": onp.add,
    "multiply": onp.multiply,
    "divide": onp.divide,
    "min": onp.minimum,
    "max": onp.maximum,
}

AT_INDICES = {
    "int": 1,
    "slice": (slice(None, None, 2), 1),
    "unique array": onp.array([3, 0]),
    "repeated array": onp.array([0, 2, 0, 0, 3]),
    "repeated pairs": (onp.array([0, 0, 1, 0]), onp.array([1, 1, 2, 1])),
    "mixed with repeats": (onp.array([1, 1]), slice(None)),
    "boolean mask": onp.array([True, False, True, True]),
}


def _separated_values(rng, shape):
    """Distinct values at least 0.1 apart and away from 0 (no ties, no poles)."""
    n = int(onp.prod(shape))
    v = (rng.permutation(n) - n / 2 + 0.5) * 0.23 + rng.uniform(-0.02, 0.02, n)
    return onp.where(onp.abs(v) < 0.3, onp.sign(v) * 0.4 + v, v).reshape(shape)


def _reference(x, idx, name, u):
    want = x.copy()
    if name == "set":
        want[idx] = u
    else:
        UFUNC_OF[name].at(want, idx, u)
    return want


@pytest.mark.parametrize("name", UFUNC_OF)
@pytest.mark.parametrize("idx", AT_INDICES.values(), ids=AT_INDICES.keys())
def test_at_updates(name, idx, rng):
    x = rng.standard_normal((4, 3))
    sel = x[idx].shape
    both = _separated_values(rng, (x.size + int(onp.prod(sel)),))
    x, u = both[: x.size].reshape(x.shape), both[x.size :].reshape(sel)
    f = lambda x, u: getattr(snp.at(x)[idx], name)(u)  # noqa: E731
    onp.testing.assert_allclose(getattr(snp.at(x)[idx], name)(u), _reference(x, idx, name, u))
    assert sg.eval_shape(f, x, u).shape == x.shape
    sg.check_grads(f, (x, u), order=2)
    # broadcast updates: a scalar, and a row for the last axis
    sg.check_grads(lambda x, s: getattr(snp.at(x)[idx], name)(s), (x, onp.float64(1.37)), order=2)
    if sel and sel[-1] == 3:
        row = onp.array([0.61, -1.43, 2.17])
        onp.testing.assert_allclose(
            getattr(snp.at(x)[idx], name)(row), _reference(x, idx, name, row)
        )
        sg.check_grads(lambda x, r: getattr(snp.at(x)[idx], name)(r), (x, row), order=2)


@pytest.mark.parametrize("idx", [1, onp.array([3, 0]), (slice(1, 3), onp.array([2, 0]))], ids=str)
def test_at_power(idx, rng):
    x = rng.uniform(0.5, 2.0, (4, 3))
    u = rng.uniform(-1.5, 2.0, x[idx].shape)
    want = x.copy()
    want[idx] = x[idx] ** u
    onp.testing.assert_allclose(snp.at(x)[idx].power(u), want)
    sg.check_grads(lambda x, u: snp.at(x)[idx].power(u), (x, u), order=2)


def test_at_power_with_repeated_indices_is_refused():
    with pytest.raises(NotImplementedError, match="repeated indices"):
        snp.at(onp.ones(3))[[0, 0]].power(2.0)


def test_at_multiply_with_repeats_and_zeros():
    x = onp.array([1.5, 0.0, 2.0])
    u = onp.array([0.0, 3.0, 2.0, 0.5])
    idx = onp.array([0, 0, 1, 0])
    gx, gu = sg.grad(lambda x, u: snp.sum(snp.at(x)[idx].multiply(u)), argnums=(0, 1))(x, u)
    # ans[0] = x0 * u0 * u1 * u3, ans[1] = x1 * u2, ans[2] = x2
    onp.testing.assert_allclose(gx, [0.0, 2.0, 1.0])
    onp.testing.assert_allclose(gu, [1.5 * 3.0 * 0.5, 0.0, 0.0, 0.0])
    sg.check_grads(lambda x, u: snp.at(x)[idx].multiply(u), (x, u), order=2)
    h = sg.hessian(lambda u: snp.sum(snp.at(x)[idx].multiply(u)))(u)
    want = onp.zeros((4, 4))  # d2/du_i du_j of x0 u0 u1 u3
    for i, j, k in [(0, 1, 3), (0, 3, 1), (1, 3, 0)]:
        want[i, j] = want[j, i] = 1.5 * u[k]
    onp.testing.assert_allclose(h, want)


def test_at_min_max_ties_share_the_derivative():
    x = onp.array([1.0, 2.0])
    u = onp.array([1.0, 0.5])
    idx = onp.array([0, 0])
    gx, gu = sg.grad(lambda x, u: snp.sum(snp.at(x)[idx].max(u)), argnums=(0, 1))(x, u)
    onp.testing.assert_array_equal(gx, [0.5, 1.0])
    onp.testing.assert_array_equal(gu, [0.5, 0.0])
    gx, gu = sg.grad(lambda x, u: snp.sum(snp.at(x)[idx].min(u)), argnums=(0, 1))(x, u)
    onp.testing.assert_array_equal(gx, [0.0, 1.0])
    onp.testing.assert_array_equal(gu, [0.0, 1.0])


def test_at_set_last_write_wins():
    idx = onp.array([0, 0, 2])
    x = onp.zeros(3)
    u = onp.array([1.0, 2.0, 3.0])
    onp.testing.assert_array_equal(snp.at(x)[idx].set(u), [2.0, 0.0, 3.0])
    gu = sg.grad(lambda u: snp.sum(snp.at(x)[idx].set(u) * onp.array([5.0, 6.0, 7.0])))(u)
    onp.testing.assert_array_equal(gu, [0.0, 5.0, 7.0])


def test_at_get_and_does_not_modify_input(rng):
    x = rng.standard_normal(4)
    x0 = x.copy()
    for name in UFUNC_OF:
        getattr(snp.at(x)[[1, 1]], name)(2.0)
    onp.testing.assert_array_equal(x, x0)
    onp.testing.assert_array_equal(snp.at(x)[[3, 1]].get(), x[[3, 1]])
    sg.check_grads(lambda x: snp.at(x)[[3, 1, 1]].get() ** 2, (x,), order=2)


@given(data=st.data())
def test_at_random_repeated_indices(data):
    n = data.draw(st.integers(1, 4))
    ind = data.draw(hnp.arrays(onp.intp, st.integers(1, 6), elements=st.integers(-n, n - 1)))
    name = data.draw(st.sampled_from(["add", "multiply", "set", "min", "max"]))
    rng = onp.random.default_rng(len(ind) * 7 + n)
    both = _separated_values(rng, (n + ind.size,))
    x, u = both[:n], both[n:]
    onp.testing.assert_allclose(getattr(snp.at(x)[ind], name)(u), _reference(x, ind, name, u))
    sg.check_grads(lambda x, u: getattr(snp.at(x)[ind], name)(u), (x, u), order=2)


# -- take, take_along_axis, compress, extract -----------------------------------------------------
@pytest.mark.parametrize(
    "indices,axis,mode",
    [
        ([2, 2, 0], 1, "raise"),
        ([[1, 0], [0, 0]], 0, "raise"),
        (5, None, "raise"),
        ([-1, 3], None, "raise"),
        ([5, -7, 1], 1, "wrap"),
        ([5, -7, 1], -1, "clip"),
    ],
    ids=str,
)
def test_take(indices, axis, mode, rng):
    a = rng.standard_normal((3, 4))
    f = lambda a: I.take(a, indices, axis=axis, mode=mode)  # noqa: E731
    onp.testing.assert_array_equal(f(a), onp.take(a, indices, axis=axis, mode=mode))
    sg.check_grads(lambda a: f(a) ** 2, (a,), order=2)


def test_take_errors(rng):
    a = rng.standard_normal((3, 4))
    with pytest.raises(IndexError):
        I.take(a, [4], axis=1)
    with pytest.raises(onp.exceptions.AxisError):
        I.take(a, [0], axis=2)
    with pytest.raises(ValueError, match="mode"):
        I.take(a, [0], axis=1, mode="nope")


@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_take_along_axis(axis, rng):
    a = rng.standard_normal((3, 4))
    ind = onp.argsort(a, axis=axis)
    if axis is not None:
        ind = onp.concatenate([ind, ind[:1] if axis == 0 else ind[:, :1]], axis=axis)  # repeats
    onp.testing.assert_array_equal(
        I.take_along_axis(a, ind, axis), onp.take_along_axis(a, ind, axis)
    )
    sg.check_grads(lambda a: I.take_along_axis(a, ind, axis) ** 2, (a,), order=2)


def test_take_along_axis_broadcasts_and_errors(rng):
    a = rng.standard_normal((3, 4))
    ind = onp.array([[0, 3, 3]])  # broadcast along axis 0
    onp.testing.assert_array_equal(I.take_along_axis(a, ind, 1), onp.take_along_axis(a, ind, 1))
    sg.check_grads(lambda a: I.take_along_axis(a, ind, 1), (a,), order=2)
    with pytest.raises(ValueError, match="same number of dimensions"):
        I.take_along_axis(a, onp.array([0, 1]), 1)
    with pytest.raises(IndexError, match="integers"):
        I.take_along_axis(a, onp.array([[0.0]]), 1)


def test_compress_and_extract(rng):
    a = rng.standard_normal((3, 4))
    for cond, axis in [([True, False, True], 0), ([False, True], 1), ([1, 0, 1, 1, 0], None)]:
        onp.testing.assert_array_equal(
            I.compress(cond, a, axis=axis), onp.compress(cond, a, axis=axis)
        )
        sg.check_grads(lambda a, c=cond, ax=axis: I.compress(c, a, axis=ax) ** 2, (a,), order=2)
    cond = a > 0
    onp.testing.assert_array_equal(I.extract(cond, a), onp.extract(cond, a))
    sg.check_grads(lambda a: I.extract(cond, a) ** 2, (a,), order=2)
    with pytest.raises(ValueError, match="1-d"):
        I.compress(cond, a)


def test_plain_numpy_calls_and_at_property_on_traced_values(rng):
    a = rng.standard_normal((3, 4))
    ind = onp.argsort(a, axis=1)

    def f(a):
        return (
            onp.take(a, [0, 0, 2], axis=0).sum()
            + (onp.take_along_axis(a, ind, axis=1) ** 2).sum()
            + onp.compress([True, False, True], a, axis=0).sum()
            + onp.extract(ind > 1, a).sum()
        )

    sg.check_grads(f, (a,), order=2)
    g = sg.grad(lambda a: snp.sum(a.at[[0, 0], 1].multiply(3.0).at[2].max(10.0)))(a)
    want = onp.ones((3, 4))
    want[0, 1] = 9.0
    want[2] = 0.0
    onp.testing.assert_allclose(g, want)
